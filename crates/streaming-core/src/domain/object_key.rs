use std::fmt;

/// Why a string was refused as an object key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidObjectKey {
    /// The key is empty.
    #[error("object key is empty")]
    Empty,
    /// The key is longer than S3 allows (1024 bytes).
    #[error("object key is longer than 1024 bytes")]
    TooLong,
    /// The key starts with `/`.
    #[error("object key starts with '/'")]
    LeadingSlash,
    /// The key has an empty, `.` or `..` path segment.
    #[error("object key has an empty, '.' or '..' segment")]
    BadSegment,
    /// The key contains a control character or a backslash.
    #[error("object key contains a control character or a backslash")]
    BadCharacter,
}

/// The key of an object in the private store, e.g. `tracks/01HXK….mp3`.
///
/// Safe to join under a directory: no leading `/`, no empty, `.` or `..`
/// segments, no backslashes or control characters, at most 1024 bytes.
/// Object keys are never logged (their `Debug` form is redacted).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(Box<str>);

impl ObjectKey {
    /// The largest accepted key length in bytes, as in S3.
    pub const MAX_LEN: usize = 1024;

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether this key lies under `prefix` (a whole-segment prefix such as `movies/42/`).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl TryFrom<&str> for ObjectKey {
    type Error = InvalidObjectKey;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Err(InvalidObjectKey::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidObjectKey::TooLong);
        }
        if value.starts_with('/') {
            return Err(InvalidObjectKey::LeadingSlash);
        }
        if value.chars().any(|c| c.is_control() || c == '\\') {
            return Err(InvalidObjectKey::BadCharacter);
        }
        if value.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(InvalidObjectKey::BadSegment);
        }
        Ok(Self(value.into()))
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = InvalidObjectKey;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Object keys are guess-resistant by design; keep them out of logs.
        f.write_str("ObjectKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for ok in ["a", "tracks/01HXK.mp3", "movies/x/720p/seg-001.ts", "dir/file with space.wav", "ünï/cödé"] {
            assert_eq!(ObjectKey::try_from(ok).unwrap().as_str(), ok);
        }
        assert!(ObjectKey::try_from("k".repeat(1024).as_str()).is_ok());
    }

    #[test]
    fn refuses_unsafe_keys() {
        let cases = [
            ("", InvalidObjectKey::Empty),
            ("/etc/passwd", InvalidObjectKey::LeadingSlash),
            ("..", InvalidObjectKey::BadSegment),
            ("a/../b", InvalidObjectKey::BadSegment),
            ("a/./b", InvalidObjectKey::BadSegment),
            ("a//b", InvalidObjectKey::BadSegment),
            ("a/", InvalidObjectKey::BadSegment),
            ("a\\..\\b", InvalidObjectKey::BadCharacter),
            ("a\0b", InvalidObjectKey::BadCharacter),
            ("a\nb", InvalidObjectKey::BadCharacter),
            ("a\u{7f}b", InvalidObjectKey::BadCharacter),
        ];
        for (input, expected) in cases {
            assert_eq!(ObjectKey::try_from(input), Err(expected), "{input:?}");
        }
        assert_eq!(ObjectKey::try_from("k".repeat(1025).as_str()), Err(InvalidObjectKey::TooLong));
    }

    #[test]
    fn debug_form_hides_the_key() {
        let key = ObjectKey::try_from("tracks/secret-suffix.mp3").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }
}
