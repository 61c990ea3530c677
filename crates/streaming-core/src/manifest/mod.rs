//! Manifests that play from a private bucket: every URI of an HLS playlist
//! or a DASH MPD is rewritten to a signed URL — nested HLS playlists to the
//! service's own manifest endpoint (with the same grant), everything else
//! (segments, `EXT-X-MAP`, `EXT-X-KEY`, DASH `BaseURL`s, `SegmentList`s and
//! `SegmentTemplate`s expanded to lists) to a presigned object-store URL.
//! URIs are resolved against the manifest's own location and must stay
//! inside the movie's root; an absolute URI, a `..` escape or a malformed
//! manifest is a [`ManifestError`], never a partly rewritten manifest.

mod dash;
mod grant;
mod hls;
mod xml;

pub use dash::{rewrite_dash, MAX_SEGMENT_URLS};
pub use grant::{GrantError, ManifestGrant};
pub use hls::rewrite_hls;

use crate::domain::ObjectKey;

/// What a rewritten URI points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriTarget {
    /// Another playlist: served (and rewritten) by the manifest endpoint.
    Playlist,
    /// Media bytes (a segment, an init section, a key): a presigned object URL.
    Object,
}

/// Why a manifest cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a playlist this service can parse.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// A URI that leaves the movie's root or names another host.
    #[error("the manifest refers outside the movie: {0}")]
    OutsideMovie(String),
    /// Signing a URI failed.
    #[error("signing a manifest URI failed: {0}")]
    Signing(String),
}

/// Resolves `uri` (relative to `manifest`) to an object key inside `root`.
///
/// # Errors
/// [`ManifestError::OutsideMovie`] for absolute URIs and escapes.
pub fn resolve(manifest: &ObjectKey, root: &ObjectKey, uri: &str) -> Result<ObjectKey, ManifestError> {
    let outside = || ManifestError::OutsideMovie(truncated(uri));
    if uri.contains("://") || uri.starts_with('/') || uri.starts_with("data:") || uri.is_empty() {
        return Err(outside());
    }
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let path = crate::domain::percent_decode(path).ok_or_else(outside)?;
    let mut segments: Vec<&str> = manifest.as_str().split('/').collect();
    segments.pop(); // the manifest's own file name
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let key = segments.join("/");
    if !key.starts_with(&format!("{}/", root.as_str())) {
        return Err(outside());
    }
    ObjectKey::try_from(key).map_err(|_| outside())
}

/// The object key of the manifest a player asked for at `path`, relative
/// to `root`. The HTTP layer has decoded the path once; nothing is decoded
/// again and nothing is split off as a query, so `%253F` or `%3F` in a
/// request stay part of the name. `.` and `..` segments are resolved; a
/// path that leaves `root` or names nothing is `None`.
pub fn requested_key(root: &ObjectKey, path: &str) -> Option<ObjectKey> {
    let mut segments: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    if segments.is_empty() {
        return None;
    }
    ObjectKey::try_from(format!("{}/{}", root.as_str(), segments.join("/"))).ok()
}

/// The first 100 characters (URIs in errors are for operators, bounded).
fn truncated(uri: &str) -> String {
    uri.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ObjectKey {
        ObjectKey::try_from(text).unwrap()
    }

    #[test]
    fn requested_paths_are_normalised_not_decoded_again() {
        let root = key("movies/m1");
        assert_eq!(requested_key(&root, "index.m3u8"), Some(key("movies/m1/index.m3u8")));
        assert_eq!(requested_key(&root, "720p/./index.m3u8"), Some(key("movies/m1/720p/index.m3u8")));
        assert_eq!(requested_key(&root, "x/../index.m3u8"), Some(key("movies/m1/index.m3u8")));
        assert_eq!(requested_key(&root, "seg.ts?.m3u8"), Some(key("movies/m1/seg.ts?.m3u8")), "no query");
        assert_eq!(requested_key(&root, "x%2f..%2findex.m3u8"), Some(key("movies/m1/x%2f..%2findex.m3u8")));
        for outside in ["../m2/index.m3u8", "a/../../index.m3u8", "", "/", "./."] {
            assert_eq!(requested_key(&root, outside), None, "{outside}");
        }
    }

    #[test]
    fn uris_resolve_against_the_manifest_and_stay_inside_the_root() {
        let root = key("movies/m1");
        let master = key("movies/m1/index.m3u8");
        let media = key("movies/m1/720p/index.m3u8");
        assert_eq!(resolve(&master, &root, "720p/index.m3u8").unwrap(), media);
        assert_eq!(resolve(&media, &root, "seg-1.ts").unwrap(), key("movies/m1/720p/seg-1.ts"));
        assert_eq!(resolve(&media, &root, "../audio/a.aac?x=1#t").unwrap(), key("movies/m1/audio/a.aac"));
        assert_eq!(resolve(&media, &root, "./seg%20two.ts").unwrap(), key("movies/m1/720p/seg two.ts"));
        for bad in
            ["../../m2/index.m3u8", "../..", "/movies/m1/a.ts", "https://cdn.example/a.ts", "", "%zz.ts", "data:x"]
        {
            assert!(matches!(resolve(&media, &root, bad), Err(ManifestError::OutsideMovie(_))), "{bad}");
        }
    }
}
