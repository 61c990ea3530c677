//! AWS Signature Version 4 for presigned `GET` URLs (query-string
//! authentication), computed locally. Its output is byte-identical to
//! rusoto's `GetObjectRequest::get_presigned_url` (a test compares them), at
//! a fraction of the cost: the signing key is derived once per day, and the
//! URL is built without rusoto's intermediate maps and strings.

use std::fmt::Write as _;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Signs `GET /{bucket}/{key}` (path style) for one endpoint and credentials.
pub struct QuerySigner {
    scheme: String,
    host: String,
    region: String,
    access_key: String,
    secret_key: SecretString,
    /// (yyyymmdd, signing key) of the last day signed for.
    day_key: Mutex<Option<(u32, [u8; 32])>>,
}

impl std::fmt::Debug for QuerySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuerySigner")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl QuerySigner {
    /// A signer for `scheme://host` in `region`.
    pub fn new(scheme: &str, host: &str, region: &str, access_key: &str, secret_key: SecretString) -> Self {
        Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            region: region.to_owned(),
            access_key: access_key.to_owned(),
            secret_key,
            day_key: Mutex::new(None),
        }
    }

    /// The presigned URL of `GET /{bucket}/{key}` signed at `at` (second
    /// resolution) and valid for `expires_in_seconds`. `None` only if the
    /// MAC refuses its key, which HMAC never does.
    pub fn presign_get(&self, bucket: &str, key: &str, at: OffsetDateTime, expires_in_seconds: u64) -> Option<String> {
        let at = at.to_offset(time::UtcOffset::UTC);
        let date = (at.year() as u32) * 10_000 + u32::from(u8::from(at.month())) * 100 + u32::from(at.day());
        let mut amz_date = String::with_capacity(16);
        let _ = write!(amz_date, "{date:08}T{:02}{:02}{:02}Z", at.hour(), at.minute(), at.second());

        let mut uri = String::with_capacity(bucket.len() + key.len() + 8);
        uri.push('/');
        encode_into(&mut uri, bucket, false);
        uri.push('/');
        encode_into(&mut uri, key, true);

        let mut credential = String::with_capacity(64);
        let _ = write!(credential, "{}/{date:08}/{}/s3/aws4_request", self.access_key, self.region);
        // Query parameters in byte order of their names, as the canonical form requires.
        let mut query_head = String::with_capacity(256);
        query_head.push_str("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        encode_into(&mut query_head, &credential, false);
        let _ = write!(query_head, "&X-Amz-Date={amz_date}&X-Amz-Expires={expires_in_seconds}");
        let query_tail = "X-Amz-SignedHeaders=host";

        let mut hasher = Sha256::new();
        for part in
            ["GET\n", &uri, "\n", &query_head, "&", query_tail, "\nhost:", &self.host, "\n\nhost\nUNSIGNED-PAYLOAD"]
        {
            hasher.update(part.as_bytes());
        }
        let canonical_hash = hasher.finalize();

        let mut mac = HmacSha256::new_from_slice(&self.signing_key(date)?).ok()?;
        mac.update(b"AWS4-HMAC-SHA256\n");
        mac.update(amz_date.as_bytes());
        // The scope is the credential without the access key.
        let scope = &credential[self.access_key.len() + 1..];
        mac.update(b"\n");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(hex(&canonical_hash).as_bytes());
        let signature = hex(&mac.finalize().into_bytes());

        let mut url = String::with_capacity(self.scheme.len() + self.host.len() + uri.len() + query_head.len() + 120);
        let _ =
            write!(url, "{}://{}{uri}?{query_head}&X-Amz-Signature={signature}&{query_tail}", self.scheme, self.host);
        Some(url)
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request"), cached per day.
    fn signing_key(&self, date: u32) -> Option<[u8; 32]> {
        let mut cached = self.day_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((day, key)) = *cached {
            if day == date {
                return Some(key);
            }
        }
        let secret = format!("AWS4{}", self.secret_key.expose_secret());
        let k_date = hmac(secret.as_bytes(), format!("{date:08}").as_bytes())?;
        let k_region = hmac(&k_date, self.region.as_bytes())?;
        let k_service = hmac(&k_region, b"s3")?;
        let k_signing = hmac(&k_service, b"aws4_request")?;
        *cached = Some((date, k_signing));
        Some(k_signing)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and
/// `/` when `keep_slash`), upper-case hex: SigV4's URI encoding.
fn encode_into(out: &mut String, text: &str, keep_slash: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusoto_core::Region;
    use rusoto_credential::AwsCredentials;
    use rusoto_s3::util::{PreSignedRequest, PreSignedRequestOption};
    use rusoto_s3::GetObjectRequest;
    use time::macros::format_description;
    use time::PrimitiveDateTime;

    fn rusoto_url(endpoint: &str, region: &str, bucket: &str, key: &str, expires: u64) -> String {
        let request = GetObjectRequest { bucket: bucket.into(), key: key.into(), ..Default::default() };
        let region = Region::Custom { name: region.into(), endpoint: endpoint.into() };
        let credentials = AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None);
        request.get_presigned_url(
            &region,
            &credentials,
            &PreSignedRequestOption { expires_in: std::time::Duration::from_secs(expires) },
        )
    }

    fn signed_at(url: &str) -> OffsetDateTime {
        let date = url.split("X-Amz-Date=").nth(1).unwrap().split('&').next().unwrap();
        PrimitiveDateTime::parse(date, format_description!("[year][month][day]T[hour][minute][second]Z"))
            .unwrap()
            .assume_utc()
    }

    #[test]
    fn urls_are_byte_identical_to_rusoto() {
        let keys = [
            "tracks/01HXKZ3Y8Q4N7W2M5V6B9C0D1E.mp3",
            "movies/5eed0000-0000-4000-8000-000000000001/index.m3u8",
            "with space/and+plus&amp=eq?q#h",
            "ünïcödé/😀.wav",
            "a~b_c-d.e/(parens)[brackets]{braces}!$'*,;:@",
        ];
        for (endpoint, scheme, host, region) in [
            ("http://127.0.0.1:9000", "http", "127.0.0.1:9000", "us-east-1"),
            ("https://minio.example.com", "https", "minio.example.com", "eu-central-1"),
        ] {
            let ours = QuerySigner::new(
                scheme,
                host,
                region,
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            );
            for key in keys {
                for expires in [1, 120, 3600, 604_800] {
                    let theirs = rusoto_url(endpoint, region, "my-bucket", key, expires);
                    let mine = ours.presign_get("my-bucket", key, signed_at(&theirs), expires).unwrap();
                    assert_eq!(mine, theirs, "{endpoint} {key} {expires}");
                }
            }
        }
    }

    #[test]
    fn the_signing_key_changes_with_the_day() {
        let signer = QuerySigner::new("http", "h", "us-east-1", "AK", "secret".into());
        let day1 = time::macros::datetime!(2026-01-01 23:59:59 UTC);
        let day2 = time::macros::datetime!(2026-01-02 00:00:00 UTC);
        let a = signer.presign_get("b", "k", day1, 60).unwrap();
        let b = signer.presign_get("b", "k", day2, 60).unwrap();
        assert!(a.contains("X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"));
        assert!(b.contains("20260102%2F"));
        // Back to day 1: the cache must not reuse day 2's key.
        assert_eq!(signer.presign_get("b", "k", day1, 60).unwrap(), a);
    }
}
