//! Rewritten HLS playlists and DASH MPDs: snapshots of the exact output,
//! and properties that hold for any manifest — every URI is signed and stays
//! inside the movie, and no input makes the rewriters panic.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use streaming_core::domain::ObjectKey;
use streaming_core::manifest::{rewrite_dash, rewrite_hls, ManifestError, UriTarget};

fn key(text: &str) -> ObjectKey {
    ObjectKey::try_from(text).unwrap()
}

/// Signs visibly: playlists to the endpoint, objects to the store, the key in full.
fn sign(target: UriTarget, key: &ObjectKey) -> Result<String, ManifestError> {
    Ok(match target {
        UriTarget::Playlist => format!("https://svc.example/api/v1/stream/m1/manifest/{}?grant=G", key.as_str()),
        UriTarget::Object => format!("https://store.example/{}?X-Amz-Signature=S", key.as_str()),
    })
}

fn rewrite(text: &str, at: &str) -> String {
    String::from_utf8(rewrite_hls(text.as_bytes(), &key(at), &key("movies/m1"), &mut sign).unwrap()).unwrap()
}

#[test]
fn the_demo_media_playlist() {
    let demo = include_str!("../../../apps/streaming-api/demo/movie/index.m3u8");
    insta::assert_snapshot!(rewrite(demo, "movies/m1/index.m3u8"));
}

#[test]
fn a_master_playlist_with_renditions_and_alternatives() {
    let master = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,LANGUAGE=\"en\",URI=\"audio/en/index.m3u8\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Deutsch\",LANGUAGE=\"de\",URI=\"subs/de.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=2560000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"aud\",SUBTITLES=\"subs\"
1080p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=640000,RESOLUTION=640x360,AUDIO=\"aud\"
360p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,RESOLUTION=640x360,URI=\"360p/iframes.m3u8\"
";
    insta::assert_snapshot!(rewrite(master, "movies/m1/index.m3u8"));
}

#[test]
fn a_fragmented_mp4_playlist_with_a_map_a_key_and_byte_ranges() {
    let media = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k1.bin\"
#EXTINF:4.000,
#EXT-X-BYTERANGE:1000@0
main.mp4
#EXTINF:4.000,
#EXT-X-BYTERANGE:1200@1000
main.mp4
#EXT-X-ENDLIST
";
    insta::assert_snapshot!(rewrite(media, "movies/m1/1080p/index.m3u8"));
}

/// A relative URI of 1–3 path segments of plain and awkward characters,
/// possibly with `./`, with a query string.
fn relative_uri() -> impl Strategy<Value = String> {
    let segment = "[a-zA-Z0-9_-]{1,8}( [a-z]{1,3})?(\\.ts)?";
    (prop::collection::vec(segment, 1..4), any::<bool>(), any::<bool>()).prop_map(|(parts, dot, query)| {
        let mut uri = parts.join("/").replace(' ', "%20");
        if dot {
            uri = format!("./{uri}");
        }
        if query {
            uri.push_str("?v=1");
        }
        uri
    })
}

proptest! {
    #[test]
    fn every_uri_of_any_media_playlist_is_signed_and_inside_the_movie(
        uris in prop::collection::vec(relative_uri(), 1..20),
        nested in any::<bool>(),
    ) {
        let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n");
        for uri in &uris {
            playlist.push_str(&format!("#EXTINF:4.0,\n{uri}\n"));
        }
        playlist.push_str("#EXT-X-ENDLIST\n");
        let at = if nested { "movies/m1/720p/index.m3u8" } else { "movies/m1/index.m3u8" };
        let out = rewrite(&playlist, at);
        let uri_lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
        prop_assert_eq!(uri_lines.len(), uris.len());
        for line in uri_lines {
            prop_assert!(line.starts_with("https://store.example/movies/m1/"), "{}", line);
            prop_assert!(line.ends_with("?X-Amz-Signature=S"), "{}", line);
            prop_assert!(!line.contains("/../") && !line.contains("/./"), "{}", line);
        }
    }

    #[test]
    fn a_uri_that_climbs_out_of_the_movie_is_refused_whatever_else_the_playlist_holds(
        uris in prop::collection::vec(relative_uri(), 0..10),
        position in 0usize..10,
    ) {
        let mut all = uris.clone();
        all.insert(position.min(all.len()), "../../m2/secret.ts".to_owned());
        let mut playlist = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:4\n");
        for uri in &all {
            playlist.push_str(&format!("#EXTINF:4.0,\n{uri}\n"));
        }
        let result = rewrite_hls(playlist.as_bytes(), &key("movies/m1/720p/index.m3u8"), &key("movies/m1"), &mut sign);
        prop_assert!(matches!(result, Err(ManifestError::OutsideMovie(_))));
    }
}

fn rewrite_mpd(text: &str, at: &str) -> Result<String, ManifestError> {
    rewrite_dash(text.as_bytes(), &key(at), &key("movies/m1"), &mut sign).map(|out| String::from_utf8(out).unwrap())
}

#[test]
fn the_demo_mpd() {
    let demo = include_str!("../../../apps/streaming-api/demo/movie/index.mpd");
    insta::assert_snapshot!(rewrite_mpd(demo, "movies/m1/index.mpd").unwrap());
}

#[test]
fn an_mpd_with_base_urls_inherited_templates_lists_and_a_single_file() {
    let mpd = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- two periods: the first sets its length, the second runs to the end -->
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S" minBufferTime="PT2S">
  <BaseURL>media/</BaseURL>
  <Location>https://origin.example/index.mpd</Location>
  <Period id="intro" duration="PT4S">
    <BaseURL>intro/</BaseURL>
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true">
      <SegmentTemplate timescale="1000" duration="2000" startNumber="0"
        initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number%05d$.m4s?v=2"/>
      <Representation id="360p" bandwidth="400000" width="640" height="360"/>
      <Representation id="720p" bandwidth="1500000" width="1280" height="720">
        <SegmentTemplate media="720p/t$Time$-b$Bandwidth$.m4s"/>
      </Representation>
    </AdaptationSet>
  </Period>
  <Period id="main">
    <AdaptationSet mimeType="audio/mp4" lang="en">
      <Representation id="aac" bandwidth="64000">
        <BaseURL>audio/</BaseURL>
        <SegmentList timescale="48000" duration="96000">
          <Initialization sourceURL="init.mp4"/>
          <SegmentURL media="a1.m4s"/>
          <SegmentURL media="a2.m4s" mediaRange="0-999"/>
          <SegmentURL media="../shared/a3.m4s"/>
        </SegmentList>
      </Representation>
    </AdaptationSet>
    <AdaptationSet mimeType="text/vtt" lang="de">
      <Representation id="subs" bandwidth="256">
        <BaseURL>subs/de.vtt</BaseURL>
      </Representation>
    </AdaptationSet>
    <AdaptationSet mimeType="video/mp4">
      <Representation id="onefile" bandwidth="800000">
        <BaseURL>full%20movie.mp4</BaseURL>
        <SegmentBase indexRange="800-1999"><Initialization range="0-799"/></SegmentBase>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#;
    insta::assert_snapshot!(rewrite_mpd(mpd, "movies/m1/index.mpd").unwrap());
}

/// The URIs a rewritten MPD names: `media`, `sourceURL`, `index` attributes and `BaseURL` texts.
fn mpd_uris(mpd: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(mpd);
    let mut uris = Vec::new();
    let mut in_base_url = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => return uris,
            Event::Start(element) | Event::Empty(element) => {
                in_base_url = element.local_name().as_ref() == b"BaseURL";
                for attribute in element.attributes() {
                    let attribute = attribute.unwrap();
                    if [&b"media"[..], b"sourceURL", b"index", b"initialization"].contains(&attribute.key.as_ref()) {
                        let value = attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap();
                        uris.push(value.into_owned());
                    }
                }
            }
            Event::Text(text) if in_base_url => uris.push(text.decode().unwrap().into_owned()),
            Event::End(_) => in_base_url = false,
            _ => {}
        }
    }
}

/// An `S` run of a SegmentTimeline: duration and repeat count.
fn timeline() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((1u64..10_000, 0u64..20), 1..6)
}

proptest! {
    #[test]
    fn every_uri_of_any_mpd_is_signed_and_inside_the_movie(
        bases in prop::collection::vec(prop::option::of("[a-z0-9]{1,6}/"), 3),
        list in prop::collection::vec(relative_uri(), 1..10),
        runs in timeline(),
        nested in any::<bool>(),
    ) {
        let base = |level: usize| bases[level].as_ref().map(|b| format!("<BaseURL>{b}</BaseURL>")).unwrap_or_default();
        let segment_urls: String = list.iter().map(|uri| format!("<SegmentURL media=\"{uri}\"/>")).collect();
        let s: String = runs.iter().map(|(d, r)| format!("<S d=\"{d}\" r=\"{r}\"/>")).collect();
        let mpd = format!(
            "<MPD type=\"static\">{}<Period>{}<AdaptationSet>{}\
             <Representation id=\"list\" bandwidth=\"1\"><SegmentList duration=\"4\">\
             <Initialization sourceURL=\"init.mp4\"/>{segment_urls}</SegmentList></Representation>\
             <Representation id=\"tpl\" bandwidth=\"2\"><SegmentTemplate timescale=\"1000\" \
             initialization=\"$RepresentationID$/init.mp4\" media=\"$RepresentationID$/$Time$.m4s\">\
             <SegmentTimeline>{s}</SegmentTimeline></SegmentTemplate></Representation>\
             <Representation id=\"one\" bandwidth=\"3\"><BaseURL>one.mp4</BaseURL><SegmentBase/></Representation>\
             </AdaptationSet></Period></MPD>",
            base(0), base(1), base(2),
        );
        let at = if nested { "movies/m1/dash/index.mpd" } else { "movies/m1/index.mpd" };
        let out = rewrite_mpd(&mpd, at).unwrap();
        let uris = mpd_uris(&out);
        let expanded: u64 = runs.iter().map(|(_, r)| r + 1).sum();
        // list: init + segments; template: init + segments; single file: one BaseURL.
        prop_assert_eq!(uris.len() as u64, 1 + list.len() as u64 + 1 + expanded + 1, "{}", out);
        for uri in &uris {
            prop_assert!(uri.starts_with("https://store.example/movies/m1/"), "{}", uri);
            prop_assert!(uri.ends_with("?X-Amz-Signature=S"), "{}", uri);
            prop_assert!(!uri.contains("/../") && !uri.contains("/./") && !uri.contains('$'), "{}", uri);
        }
        prop_assert!(!out.contains("SegmentTemplate"), "{}", out);
    }

    #[test]
    fn an_mpd_uri_that_climbs_out_of_the_movie_is_refused(
        list in prop::collection::vec(relative_uri(), 0..6),
        position in 0usize..6,
        depth in 1usize..4,
    ) {
        let mut all = list.clone();
        all.insert(position.min(all.len()), format!("{}m2/secret.m4s", "../".repeat(depth + 1)));
        let segment_urls: String = all.iter().map(|uri| format!("<SegmentURL media=\"{uri}\"/>")).collect();
        let mpd = format!(
            "<MPD><Period><AdaptationSet><Representation id=\"a\"><SegmentList duration=\"4\">{segment_urls}\
             </SegmentList></Representation></AdaptationSet></Period></MPD>"
        );
        prop_assert!(matches!(rewrite_mpd(&mpd, "movies/m1/index.mpd"), Err(ManifestError::OutsideMovie(_))));
    }

    #[test]
    fn no_input_makes_a_rewriter_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 0usize..2_000) {
        let _ = rewrite_dash(&bytes, &key("movies/m1/index.mpd"), &key("movies/m1"), &mut sign);
        let _ = rewrite_hls(&bytes, &key("movies/m1/index.m3u8"), &key("movies/m1"), &mut sign);
        // Truncations of a valid MPD: an error or a manifest, never a panic.
        let demo = include_str!("../../../apps/streaming-api/demo/movie/index.mpd");
        let cut = demo.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
        let _ = rewrite_mpd(&demo[..cut], "movies/m1/index.mpd");
    }
}
