//! HLS playlists (RFC 8216) rewritten with `m3u8-rs`.

use m3u8_rs::Playlist;

use super::{resolve, ManifestError, UriTarget};
use crate::domain::ObjectKey;

/// Rewrites the HLS playlist `bytes`, stored at `manifest` under `root`:
/// each URI is resolved and replaced by `sign(target, key)`. Master
/// playlists: variant streams, `EXT-X-I-FRAME-STREAM-INF` and `EXT-X-MEDIA`
/// (playlists), `EXT-X-SESSION-KEY` (objects). Media playlists: segments,
/// `EXT-X-MAP`, `EXT-X-KEY` (objects); byte ranges, durations and other
/// tags are kept.
///
/// # Errors
/// [`ManifestError`] for a malformed playlist, a URI outside the movie, or a failed signature.
pub fn rewrite_hls(
    bytes: &[u8],
    manifest: &ObjectKey,
    root: &ObjectKey,
    sign: &mut dyn FnMut(UriTarget, &ObjectKey) -> Result<String, ManifestError>,
) -> Result<Vec<u8>, ManifestError> {
    let playlist =
        m3u8_rs::parse_playlist_res(bytes).map_err(|_| ManifestError::Malformed("not an HLS playlist".into()))?;
    let mut rewrite = |target: UriTarget, uri: &mut String| -> Result<(), ManifestError> {
        let key = resolve(manifest, root, uri)?;
        *uri = sign(target, &key)?;
        Ok(())
    };
    let mut out = Vec::with_capacity(bytes.len() * 3);
    match playlist {
        Playlist::MasterPlaylist(mut master) => {
            for variant in &mut master.variants {
                rewrite(UriTarget::Playlist, &mut variant.uri)?;
            }
            for media in &mut master.alternatives {
                if let Some(uri) = media.uri.as_mut() {
                    rewrite(UriTarget::Playlist, uri)?;
                }
            }
            for session_key in &mut master.session_key {
                if let Some(uri) = session_key.0.uri.as_mut() {
                    rewrite(UriTarget::Object, uri)?;
                }
            }
            master.write_to(&mut out)
        }
        Playlist::MediaPlaylist(mut media) => {
            for segment in &mut media.segments {
                rewrite(UriTarget::Object, &mut segment.uri)?;
                if let Some(map) = segment.map.as_mut() {
                    rewrite(UriTarget::Object, &mut map.uri)?;
                }
                if let Some(uri) = segment.key.as_mut().and_then(|key| key.uri.as_mut()) {
                    rewrite(UriTarget::Object, uri)?;
                }
            }
            media.write_to(&mut out)
        }
    }
    .map_err(|_| ManifestError::Malformed("cannot write the playlist".into()))?;
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
