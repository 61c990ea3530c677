use std::fmt;
use std::str::FromStr;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// The string is empty.
    #[error("identifier is empty")]
    Empty,
    /// The string is longer than the identifier allows.
    #[error("identifier is longer than {max} bytes")]
    TooLong {
        /// The largest accepted length in bytes.
        max: usize,
    },
    /// The string contains a character the identifier does not allow.
    #[error("identifier contains a character that is not allowed")]
    BadCharacter,
    /// The string is not a ULID or a UUID.
    #[error("identifier is neither a ULID nor a UUID")]
    NotUlidOrUuid,
    /// The string is not a ULID.
    #[error("identifier is not a ULID")]
    NotUlid,
    /// The string is not a UUID.
    #[error("identifier is not a UUID")]
    NotUuid,
}

/// The subject of a verified token: who is asking.
///
/// Accepts the ids identity providers hand out (ULIDs, UUIDs and opaque ids
/// such as `auth0|abc`): 1 to 128 bytes of ASCII letters, digits and
/// `.`, `_`, `-`, `@`, `|`. Colons, braces, whitespace and anything else are
/// refused because the id becomes part of cache keys (`stream:{user}:{media}`)
/// where they would make two keys collide or break a cluster hash tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Box<str>);

impl UserId {
    /// The largest accepted length in bytes.
    pub const MAX_LEN: usize = 128;

    /// The id as it was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for UserId {
    type Error = InvalidId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Err(InvalidId::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidId::TooLong { max: Self::MAX_LEN });
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'|');
        if !value.bytes().all(allowed) {
            return Err(InvalidId::BadCharacter);
        }
        Ok(Self(value.into()))
    }
}

impl FromStr for UserId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// Which syntax a [`MediaId`] was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdFormat {
    /// A ULID (NovaTune track ids), stored in canonical upper case.
    Ulid,
    /// A UUID (cinema movie ids), stored lower-case and hyphenated.
    Uuid,
}

/// The id of a track or a movie: a ULID or a UUID, normalised to its
/// canonical spelling so that `01hxk…` and `01HXK…` name the same media.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId {
    canonical: Box<str>,
    format: IdFormat,
}

impl MediaId {
    /// Parses a ULID only (the track contract).
    ///
    /// # Errors
    /// [`InvalidId::NotUlid`] for anything that is not a 26-character Crockford ULID.
    pub fn parse_ulid(value: &str) -> Result<Self, InvalidId> {
        // `ulid` accepts 26 Crockford characters; reject longer input before it
        // reaches the parser so an attacker cannot make us copy megabytes.
        if value.len() != ulid::ULID_LEN {
            return Err(InvalidId::NotUlid);
        }
        // 26 base-32 digits carry 130 bits; a ULID's first digit is at most
        // 7 so that it fits 128. The `ulid` crate silently drops the overflow,
        // which would make two different strings name the same media.
        if !matches!(value.as_bytes()[0], b'0'..=b'7') {
            return Err(InvalidId::NotUlid);
        }
        let parsed = ulid::Ulid::from_string(value).map_err(|_| InvalidId::NotUlid)?;
        Ok(Self { canonical: parsed.to_string().into(), format: IdFormat::Ulid })
    }

    /// Parses a UUID only (the cinema contract), in its hyphenated form.
    ///
    /// # Errors
    /// [`InvalidId::NotUuid`] for anything that is not a hyphenated UUID.
    pub fn parse_uuid(value: &str) -> Result<Self, InvalidId> {
        if value.len() != uuid::fmt::Hyphenated::LENGTH {
            return Err(InvalidId::NotUuid);
        }
        let parsed = uuid::Uuid::try_parse(value).map_err(|_| InvalidId::NotUuid)?;
        Ok(Self { canonical: parsed.hyphenated().to_string().into(), format: IdFormat::Uuid })
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Whether the id is a ULID or a UUID.
    pub fn format(&self) -> IdFormat {
        self.format
    }
}

impl TryFrom<&str> for MediaId {
    type Error = InvalidId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse_ulid(value).or_else(|_| Self::parse_uuid(value)).map_err(|_| InvalidId::NotUlidOrUuid)
    }
}

impl FromStr for MediaId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s)
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaId({})", self.canonical)
    }
}

/// The id of one playback session (a UUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A fresh random session id.
    pub fn random() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for SessionId {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

impl FromStr for SessionId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != uuid::fmt::Hyphenated::LENGTH {
            return Err(InvalidId::NotUuid);
        }
        uuid::Uuid::try_parse(s).map(Self).map_err(|_| InvalidId::NotUuid)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_provider_shapes_and_refuse_separators() {
        for ok in ["01HXKZ3Y8Q4N7W2M5V6B9C0D1E", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "auth0|abc.def", "a@b_c-d"] {
            assert_eq!(UserId::try_from(ok).map(|u| u.to_string()), Ok(ok.to_owned()));
        }
        assert_eq!(UserId::try_from(""), Err(InvalidId::Empty));
        assert_eq!(UserId::try_from("a".repeat(129).as_str()), Err(InvalidId::TooLong { max: 128 }));
        for bad in ["a:b", "a{b}", "a b", "a\nb", "a/b", "é", "a*"] {
            assert_eq!(UserId::try_from(bad), Err(InvalidId::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn media_ids_are_canonicalised_and_remember_their_format() {
        let lower = MediaId::try_from("01hxkz3y8q4n7w2m5v6b9c0d1e").unwrap();
        let upper = MediaId::try_from("01HXKZ3Y8Q4N7W2M5V6B9C0D1E").unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower.as_str(), "01HXKZ3Y8Q4N7W2M5V6B9C0D1E");
        assert_eq!(lower.format(), IdFormat::Ulid);

        let uuid = MediaId::try_from("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap();
        assert_eq!(uuid.as_str(), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert_eq!(uuid.format(), IdFormat::Uuid);
    }

    #[test]
    fn media_ids_refuse_everything_else() {
        for bad in [
            "",
            "not-an-id",
            "01HXKZ3Y8Q4N7W2M5V6B9C0D1",
            "01HXKZ3Y8Q4N7W2M5V6B9C0D1EX",
            "81HXKZ3Y8Q4N7W2M5V6B9C0D1E", // overflows 128 bits
            "01HXKZ3Y8Q4N7W2M5V6B9C0D1U", // U is not Crockford
            "3f2504e04f8911d39a0c0305e82c3301",
            "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
            "../../../etc/passwd",
        ] {
            assert!(MediaId::try_from(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(MediaId::parse_ulid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"), Err(InvalidId::NotUlid));
        assert_eq!(MediaId::parse_uuid("01HXKZ3Y8Q4N7W2M5V6B9C0D1E"), Err(InvalidId::NotUuid));
    }

    #[test]
    fn session_ids_round_trip() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert!("nope".parse::<SessionId>().is_err());
    }
}
