//! Named service credentials: the bearer keys other services and operators
//! present to the internal admin API (never user tokens).

use std::fmt;

use sha2::{Digest as _, Sha256};

/// What is wrong with a credential list; it never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// An entry is not `name:key`.
    #[error("each entry must be name:key")]
    NotNameAndKey,
    /// A name is empty, too long or has other characters.
    #[error("a credential name must be 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName,
    /// A key is too short to resist guessing.
    #[error("the key of {name:?} is shorter than {min} bytes")]
    ShortKey {
        /// Whose key.
        name: String,
        /// The shortest accepted length.
        min: usize,
    },
    /// A name appears twice.
    #[error("{0:?} is named twice")]
    Duplicate(String),
    /// The list is empty.
    #[error("at least one name:key is required")]
    Empty,
}

/// Named service credentials. Keys are kept as SHA-256 digests and compared
/// in constant time, so neither a key nor its length leaks through timing.
#[derive(Clone)]
pub struct ServiceCredentials(Vec<(String, [u8; 32])>);

impl fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl std::str::FromStr for ServiceCredentials {
    type Err = CredentialsError;

    /// Parses `name:key, name:key`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut credentials: Vec<(String, [u8; 32])> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, key) = entry.split_once(':').ok_or(CredentialsError::NotNameAndKey)?;
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_name {
                return Err(CredentialsError::BadName);
            }
            if key.trim().len() < Self::MIN_KEY_LEN {
                return Err(CredentialsError::ShortKey { name: name.to_owned(), min: Self::MIN_KEY_LEN });
            }
            if credentials.iter().any(|(known, _)| known == name) {
                return Err(CredentialsError::Duplicate(name.to_owned()));
            }
            credentials.push((name.to_owned(), Sha256::digest(key.trim().as_bytes()).into()));
        }
        if credentials.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Self(credentials))
    }
}

impl ServiceCredentials {
    /// The shortest accepted key, in bytes.
    pub const MIN_KEY_LEN: usize = 32;

    /// The name of the credential `presented` is, if any. Every configured
    /// key is compared, whichever matches.
    pub fn holder(&self, presented: &str) -> Option<&str> {
        use subtle::ConstantTimeEq as _;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, key) in &self.0 {
            if bool::from(key.ct_eq(&digest)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn credentials_name_their_holder_and_refuse_weak_or_malformed_keys() {
        let key = "k".repeat(32);
        let credentials: ServiceCredentials = format!("ops:{key}, deploy-bot:{}", "d".repeat(40)).parse().unwrap();
        assert_eq!(credentials.holder(&key), Some("ops"));
        assert_eq!(credentials.holder(&"d".repeat(40)), Some("deploy-bot"));
        assert_eq!(credentials.holder(&"k".repeat(31)), None);
        assert_eq!(credentials.holder(""), None);
        assert!(!format!("{credentials:?}").contains(&key), "keys are not printed");
        for bad in ["", "ops", "ops:short", &format!(":{key}"), &format!("a b:{key}"), &format!("x:{key},x:{key}")] {
            let error = bad.parse::<ServiceCredentials>().unwrap_err().to_string();
            assert!(!error.contains(&key), "{error}");
        }
    }
}
