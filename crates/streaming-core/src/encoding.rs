//! The byte encodings every crate of the workspace shares: lowercase hex
//! and RFC 3986 percent-encoding (one implementation each).

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(LOWER[usize::from(byte >> 4)]));
        out.push(char::from(LOWER[usize::from(byte & 0x0f)]));
    }
    out
}

/// Appends `text` to `out` with every byte outside the RFC 3986 unreserved
/// set percent-encoded (upper-case hex, as SigV4 requires), keeping `/`
/// when `keep_slash`.
pub fn percent_encode_into(out: &mut String, text: &str, keep_slash: bool) {
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(UPPER[usize::from(byte >> 4)]));
            out.push(char::from(UPPER[usize::from(byte & 0x0f)]));
        }
    }
}

/// Escapes `path` for a URL path: every byte outside the RFC 3986
/// unreserved set is percent-encoded, `/` stays the segment separator.
pub fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + path.len() / 2);
    percent_encode_into(&mut out, path, true);
    out
}

/// Undoes URL percent-escaping (`%2F` → `/`); `None` for a malformed escape
/// or a result that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn paths_round_trip_every_byte() {
        let all: String = (1u8..=127).map(char::from).chain("ü€😀".chars()).collect();
        assert_eq!(percent_decode(&percent_encode_path(&all)).as_deref(), Some(all.as_str()));
        assert_eq!(percent_encode_path("a b/c?d#e%f~"), "a%20b/c%3Fd%23e%25f~");
        let mut query = String::new();
        percent_encode_into(&mut query, "a/b c", false);
        assert_eq!(query, "a%2Fb%20c");
    }

    #[test]
    fn malformed_escapes_are_refused() {
        for bad in ["%", "%4", "%G0", "%C3", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
