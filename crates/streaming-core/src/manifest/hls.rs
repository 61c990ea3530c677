//! HLS playlists (RFC 8216): validated and classified by `m3u8-rs`, then
//! rewritten line by line so that everything but the URIs — comments,
//! tags `m3u8-rs` does not model, attribute order, number formatting,
//! line endings — comes out byte for byte as it went in.

use m3u8_rs::Playlist;

use super::{resolve, ManifestError, UriTarget};
use crate::domain::ObjectKey;

/// Tags whose `URI` attribute names another playlist.
const PLAYLIST_TAGS: [&str; 3] = ["EXT-X-MEDIA", "EXT-X-I-FRAME-STREAM-INF", "EXT-X-RENDITION-REPORT"];
/// Tags whose `URI` attribute names an object (media, an init section, a key, data).
const OBJECT_TAGS: [&str; 6] =
    ["EXT-X-MAP", "EXT-X-KEY", "EXT-X-SESSION-KEY", "EXT-X-SESSION-DATA", "EXT-X-PART", "EXT-X-PRELOAD-HINT"];
/// Tags whose absolute `URI` is a key server or key-system identifier
/// (`skd://…`): left as it is, since it is not an object of the movie.
const KEY_TAGS: [&str; 2] = ["EXT-X-KEY", "EXT-X-SESSION-KEY"];

/// Rewrites the HLS playlist `bytes`, stored at `manifest` under `root`:
/// each URI is resolved and replaced by `sign(target, key)`. URI lines are
/// variant playlists in a master playlist and segments in a media playlist;
/// `URI` attributes of `EXT-X-MEDIA`, `EXT-X-I-FRAME-STREAM-INF` and
/// `EXT-X-RENDITION-REPORT` are playlists, those of `EXT-X-MAP`,
/// `EXT-X-KEY`, `EXT-X-SESSION-KEY`, `EXT-X-SESSION-DATA`, `EXT-X-PART` and
/// `EXT-X-PRELOAD-HINT` are objects. Absolute key URIs (key servers) are
/// kept; any other absolute URI is refused. Everything else is kept as it was.
///
/// # Errors
/// [`ManifestError`] for a malformed playlist, a URI outside the movie, or a failed signature.
pub fn rewrite_hls(
    bytes: &[u8],
    manifest: &ObjectKey,
    root: &ObjectKey,
    sign: &mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
) -> Result<Vec<u8>, ManifestError> {
    let malformed = || ManifestError::Malformed("not an HLS playlist".into());
    let playlist = m3u8_rs::parse_playlist_res(bytes).map_err(|_| malformed())?;
    let lines = if matches!(playlist, Playlist::MasterPlaylist(_)) { UriTarget::Playlist } else { UriTarget::Object };
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    let mut rewrite = |target: UriTarget, uri: &str| -> Result<String, ManifestError> {
        let key = resolve(manifest, root, uri)?;
        sign(target, &key)
    };
    let mut out = String::with_capacity(text.len() * 3);
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        let trimmed = content.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if let Some(tag) = trimmed.strip_prefix('#') {
            let (name, attributes) = tag.split_once(':').unwrap_or((tag, ""));
            let target = if PLAYLIST_TAGS.contains(&name) {
                UriTarget::Playlist
            } else if OBJECT_TAGS.contains(&name) {
                UriTarget::Object
            } else {
                out.push_str(line);
                continue;
            };
            let keep_absolute = KEY_TAGS.contains(&name);
            let attributes = rewrite_uri_attribute(attributes, &mut |uri| {
                if keep_absolute && has_scheme(uri) {
                    Ok(uri.to_owned())
                } else {
                    rewrite(target, uri)
                }
            })?;
            out.push('#');
            out.push_str(name);
            out.push(':');
            out.push_str(&attributes);
            out.push_str(ending);
        } else {
            out.push_str(&rewrite(lines, trimmed)?);
            out.push_str(ending);
        }
    }
    Ok(out.into_bytes())
}

/// Whether `uri` starts with a scheme (`https:`, `skd:`): RFC 3986 §3.1.
fn has_scheme(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The attribute list `attributes` (`NAME=VALUE,…`, values plain or
/// double-quoted) with the value of its quoted `URI` attribute replaced by `f(value)`.
fn rewrite_uri_attribute(
    attributes: &str,
    f: &mut dyn FnMut(&str) -> Result<String, ManifestError>,
) -> Result<String, ManifestError> {
    let mut out = String::with_capacity(attributes.len() + 256);
    let mut rest = attributes;
    while !rest.is_empty() {
        let (name, after) =
            rest.split_once('=').ok_or_else(|| ManifestError::Malformed("an HLS attribute without a value".into()))?;
        out.push_str(name);
        out.push('=');
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| ManifestError::Malformed("an unterminated quoted HLS attribute".into()))?;
                (&after[..end + 2], &quoted[end + 1..])
            }
            None => after.split_at(after.find(',').unwrap_or(after.len())),
        };
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(uri) if name.trim() == "URI" => {
                out.push('"');
                out.push_str(&f(uri)?);
                out.push('"');
            }
            _ => out.push_str(value),
        }
        match after.strip_prefix(',') {
            Some(next) => {
                out.push(',');
                rest = next;
            }
            None if after.is_empty() => rest = after,
            None => return Err(ManifestError::Malformed("HLS attributes not separated by commas".into())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ObjectKey {
        ObjectKey::try_from(text).unwrap()
    }

    /// Signs like a service would, visibly: `P:` playlists, `O:` objects.
    fn fake(target: UriTarget, key: &ObjectKey) -> Result<String, ManifestError> {
        Ok(match target {
            UriTarget::Playlist => format!("https://svc/manifest/{}?grant=g", key.as_str()),
            UriTarget::Object => format!("https://store/{}?sig=s", key.as_str()),
        })
    }

    const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,LANGUAGE=\"en\",URI=\"audio/en.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aud\"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=640000,RESOLUTION=640x360,AUDIO=\"aud\"
360p/index.m3u8?v=2
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"720p/iframes.m3u8\"
";

    const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k1.bin\",IV=0x00000000000000000000000000000001
#EXTINF:4.000,
#EXT-X-BYTERANGE:1000@0
main.mp4
#EXTINF:4.000,
#EXT-X-BYTERANGE:1200@1000
main.mp4
#EXT-X-ENDLIST
";

    #[test]
    fn a_master_playlist_points_every_rendition_at_the_manifest_endpoint() {
        let out = rewrite_hls(MASTER.as_bytes(), &key("movies/m1/index.m3u8"), &key("movies/m1"), &mut fake).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("https://svc/manifest/movies/m1/720p/index.m3u8?grant=g\n"), "{out}");
        assert!(out.contains("https://svc/manifest/movies/m1/360p/index.m3u8?grant=g\n"), "{out}");
        assert!(out.contains("URI=\"https://svc/manifest/movies/m1/audio/en.m3u8?grant=g\""), "{out}");
        assert!(out.contains("URI=\"https://svc/manifest/movies/m1/720p/iframes.m3u8?grant=g\""), "{out}");
        assert!(out.contains("RESOLUTION=1280x720") && out.contains("LANGUAGE=\"en\""), "attributes kept: {out}");
    }

    #[test]
    fn a_media_playlist_signs_segments_maps_and_keys_and_keeps_byte_ranges() {
        let manifest = key("movies/m1/720p/index.m3u8");
        let out =
            String::from_utf8(rewrite_hls(MEDIA.as_bytes(), &manifest, &key("movies/m1"), &mut fake).unwrap()).unwrap();
        assert_eq!(out.matches("https://store/movies/m1/720p/main.mp4?sig=s").count(), 2, "{out}");
        assert!(out.contains("URI=\"https://store/movies/m1/720p/init.mp4?sig=s\""), "{out}");
        assert!(out.contains("URI=\"https://store/movies/m1/keys/k1.bin?sig=s\""), "{out}");
        assert!(out.contains("#EXT-X-BYTERANGE:1200@1000"), "{out}");
        assert!(out.contains("#EXT-X-ENDLIST"), "{out}");
    }

    #[test]
    fn everything_but_the_uris_is_kept_byte_for_byte() {
        let text =
            "#EXTM3U\r\n# made by hand\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\r\n\
                    #EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-42\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\r\n\
                    #EXT-X-PART:DURATION=1.001,URI=\"part1.mp4\",INDEPENDENT=YES\r\n\
                    #EXTINF:4.004,title, with a comma URI=\"x\"\r\n\
                    seg.ts\r\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.mp4\"\r\n";
        let out = rewrite_hls(text.as_bytes(), &key("movies/m1/index.m3u8"), &key("movies/m1"), &mut fake).unwrap();
        let expected = text
            .replace("\"part1.mp4\"", "\"https://store/movies/m1/part1.mp4?sig=s\"")
            .replace("\"part2.mp4\"", "\"https://store/movies/m1/part2.mp4?sig=s\"")
            .replace("\r\nseg.ts\r\n", "\r\nhttps://store/movies/m1/seg.ts?sig=s\r\n");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn attribute_lists_are_tokenised_with_quotes() {
        let mut upper = |uri: &str| Ok(uri.to_uppercase());
        assert_eq!(
            rewrite_uri_attribute("CODECS=\"a,b\",URI=\"x/y,z\",BANDWIDTH=1", &mut upper).unwrap(),
            "CODECS=\"a,b\",URI=\"X/Y,Z\",BANDWIDTH=1"
        );
        for bad in ["URI", "URI=\"open", "A=\"1\"B=2"] {
            assert!(rewrite_uri_attribute(bad, &mut upper).is_err(), "{bad}");
        }
        assert!(has_scheme("skd://k") && has_scheme("https://k"));
        assert!(!has_scheme("a/b:c.ts") && !has_scheme("1x:y") && !has_scheme("seg.ts"));
    }

    #[test]
    fn escapes_absolute_uris_and_garbage_are_refused_whole() {
        let root = key("movies/m1");
        let manifest = key("movies/m1/index.m3u8");
        let escape = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n../m2/seg.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(
            rewrite_hls(escape.as_bytes(), &manifest, &root, &mut fake),
            Err(ManifestError::OutsideMovie(_))
        ));
        let absolute = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttp://evil.example/seg.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(
            rewrite_hls(absolute.as_bytes(), &manifest, &root, &mut fake),
            Err(ManifestError::OutsideMovie(_))
        ));
        for garbage in [&b""[..], b"<html>", b"\xff\xfe"] {
            assert!(
                rewrite_hls(garbage, &manifest, &root, &mut fake).is_err(),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
