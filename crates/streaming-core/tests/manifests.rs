//! Rewritten HLS playlists: snapshots of the exact output, and properties
//! that hold for any playlist — every URI is signed and stays inside the movie.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use streaming_core::domain::ObjectKey;
use streaming_core::manifest::{rewrite_hls, ManifestError, UriTarget};

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
