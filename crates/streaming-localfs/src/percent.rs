//! Percent-encoding of object keys in URL paths: every byte outside the
//! RFC 3986 unreserved set is escaped, `/` separates segments.

/// Escapes `key` for use as a URL path, keeping `/` as the segment separator.
pub fn encode_path(key: &str) -> String {
    streaming_core::domain::percent_encode_path(key)
}

/// Undoes [`encode_path`] (and any other valid escaping); `None` for a
/// malformed escape or a result that is not UTF-8.
pub fn decode_path(path: &str) -> Option<String> {
    streaming_core::domain::percent_decode(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let all: String = (1u8..=127).map(char::from).chain("ü€😀".chars()).collect();
        assert_eq!(decode_path(&encode_path(&all)).as_deref(), Some(all.as_str()));
        assert_eq!(encode_path("a b/c?d#e%f"), "a%20b/c%3Fd%23e%25f");
    }

    #[test]
    fn refuses_malformed_escapes() {
        for bad in ["%", "%4", "%G0", "%C3", "%FF"] {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
        assert_eq!(decode_path("%2e%2E").as_deref(), Some(".."));
    }
}
