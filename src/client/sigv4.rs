//! AWS Signature Version 4 for Bedrock, on AWS's own `aws-sigv4` crate.
//!
//! `reqwest::Request` is not an `http::Request`, so the request is described to the signer by its
//! method, URL, headers and buffered body bytes; [`sign`] returns the headers to put on it. Sign the
//! exact URL that is sent, and sign again on every retry.
//!
//! Settings are the ones the AWS SDKs use for `bedrock-runtime` (every service but S3):
//! - double URI encoding: the path is taken as already encoded once (the model id `a:b` is sent as
//!   `a%3Ab`) and encoded again in the canonical request (`a%253Ab`), as botocore and the Rust SDK do;
//! - URI path normalization (RFC 3986 dot segments and empty segments removed);
//! - the session token signed (`x-amz-security-token` in the canonical request);
//! - no `x-amz-content-sha256` header (only S3 wants it); the body hash is still signed;
//! - `authorization`, `user-agent`, `x-amzn-trace-id` and `transfer-encoding` never signed.

use crate::error::{Error, Result};
use crate::secret::Secret;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    self as signer, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::fmt;
use std::time::{Duration, SystemTime};

/// AWS credentials. Debug shows the access key id only (it is not secret); never the secret or token.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Headers the signer owns: any value of these in the input is stale (a previous attempt's) and is
/// ignored, so that re-signing a retried request gives the same result as signing it afresh. The
/// caller replaces them on the request with the returned ones.
const SIGNER_OWNED_HEADERS: [&str; 3] = ["authorization", "x-amz-date", "x-amz-security-token"];

/// The latest instant the signer can format (9999-12-31T23:59:59Z).
const MAX_SIGNING_SECS: u64 = 253_402_300_799;

/// The signing settings of the AWS SDKs for every service but S3 (see the module documentation).
fn signing_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    settings.session_token_mode = SessionTokenMode::Include;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.signature_location = SignatureLocation::Headers;
    settings
}

/// Signs a request with AWS Signature Version 4 and returns the headers to add to it
/// (`authorization`, `x-amz-date`, and `x-amz-security-token` when there is a session token;
/// plus `x-amz-content-sha256` only if settings require it — Bedrock does not, so it is not added).
/// `url` must be exactly the URL that will be sent (already percent-encoded path). `headers` are
/// the headers that will be sent (the host header is derived from the URL by the signer if absent,
/// and is always signed). The body is the exact bytes sent.
///
/// Values of `authorization`, `x-amz-date` and `x-amz-security-token` in `headers` are ignored:
/// the caller must replace those headers on the request (not append to them).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>> {
    validate_scope_part("region", region)?;
    validate_scope_part("service name", service)?;
    validate_method(method)?;
    validate_url(url)?;
    validate_time(time)?;
    let key_id = credentials.access_key_id.trim();
    if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(Error::config(
            "The AWS access key id is empty or contains characters that are not allowed.",
        ));
    }
    if let Some(token) = &credentials.session_token {
        if !token.expose().bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::config(
                "The AWS session token contains characters that are not allowed in an HTTP header.",
            ));
        }
    }

    let identity: Identity = Credentials::new(
        key_id,
        credentials.secret_access_key.expose(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "llm-proxy",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(signing_settings())
        .build()
        .map_err(|e| fail(credentials, "could not build the signing parameters", &e))?
        .into();

    let signed_input = headers
        .iter()
        .filter(|(name, _)| {
            !SIGNER_OWNED_HEADERS
                .iter()
                .any(|owned| name.trim().eq_ignore_ascii_case(owned))
        })
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let request = SignableRequest::new(method, url, signed_input, SignableBody::Bytes(body))
        .map_err(|e| fail(credentials, "the URL is not valid for signing", &e))?;
    let (instructions, _signature) = signer::sign(request, &params)
        .map_err(|e| fail(credentials, "signing failed", &e))?
        .into_parts();
    let (out_headers, _params) = instructions.into_parts();
    Ok(out_headers
        .into_iter()
        .map(|h| (h.name().to_ascii_lowercase(), h.value().to_string()))
        .collect())
}

/// An internal error for a signer failure: the message carries the error's chain of causes (which
/// name what was wrong, never a value), scrubbed of the credentials all the same.
fn fail(
    credentials: &AwsCredentials,
    what: &str,
    error: &(dyn std::error::Error + 'static),
) -> Error {
    let mut message = format!("AWS SigV4: {what}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message.push('.');
    let mut secrets = vec![&credentials.secret_access_key];
    if let Some(token) = &credentials.session_token {
        secrets.push(token);
    }
    Error::internal(crate::secret::redact(&message, &secrets))
}

fn validate_scope_part(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "The AWS {what} for signing is empty or contains characters other than letters, digits, '-', '_' and '.'."
        )))
    }
}

fn validate_method(method: &str) -> Result<()> {
    if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(Error::internal("AWS SigV4: the HTTP method is not valid."))
    }
}

/// The signer panics on a URL without a host, so that is checked here first: an absolute `http(s)`
/// URL with a non-empty host.
fn validate_url(url: &str) -> Result<()> {
    let bad = || Error::internal("AWS SigV4: the URL to sign is not an absolute http(s) URL.");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return Err(bad());
    }
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map(|(h, _)| h.trim_start_matches('['))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || reqwest::Url::parse(url).is_err() {
        return Err(bad());
    }
    Ok(())
}

/// The signer panics on a time it cannot format; such a clock is reported instead.
fn validate_time(time: SystemTime) -> Result<()> {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) if d <= Duration::from_secs(MAX_SIGNING_SECS) => Ok(()),
        _ => Err(Error::config(
            "AWS SigV4: the system clock is outside the range a signature can carry.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const SUITE_DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigv4/aws4_testsuite"
    );
    const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 20150830T123600Z
    const SUITE_TIME_SECS: u64 = 1_440_938_160;

    /// Cases of the suite that the settings a Bedrock client uses are not meant to reproduce.
    const EXCLUDED: &[(&str, &str)] = &[(
        "post-sts-header-after",
        "expects the session token added after signing (SessionTokenMode::Exclude); the SDKs sign it for Bedrock",
    )];

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn suite_time() -> SystemTime {
        at(SUITE_TIME_SECS)
    }

    fn creds(key_id: &str, secret: &str, token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: key_id.to_string(),
            secret_access_key: Secret::new(secret).unwrap(),
            session_token: token.map(|t| Secret::new(t).unwrap()),
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        header(headers, "authorization").expect("an authorization header")
    }

    fn signature_of(headers: &[(String, String)]) -> String {
        let auth = authorization(headers);
        auth.rsplit_once("Signature=")
            .map(|(_, s)| s.to_string())
            .expect("a signature")
    }

    // ---- the AWS SigV4 test suite ----

    struct SuiteRequest {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// Parses a `.req` file: request line, header lines (a line starting with whitespace continues
    /// the previous header with another value), blank line, body (no trailing newline).
    fn parse_req(text: &str) -> SuiteRequest {
        let (head, body) = match text.split_once("\n\n") {
            Some((head, body)) => (head, body),
            None => (text, ""),
        };
        let mut lines = head.lines();
        let request_line = lines.next().expect("a request line");
        let (method, rest) = request_line.split_once(' ').expect("a method");
        let path = rest
            .strip_suffix(" HTTP/1.1")
            .expect("a request line ending in HTTP/1.1");
        let mut host = None;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let name = headers.last().expect("a header to continue").0.clone();
                headers.push((name, line.trim().to_string()));
                continue;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            if name.eq_ignore_ascii_case("host") {
                host = Some(value.trim().to_string());
            } else {
                // The value as the wire has it after the colon: leading/trailing and inner
                // whitespace is left for the signer to normalise.
                headers.push((name.to_string(), value.to_string()));
            }
        }
        SuiteRequest {
            method: method.to_string(),
            url: format!("https://{}{}", host.expect("a host header"), path),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    /// Every directory (recursively) holding `<name>.req` and `<name>.authz`.
    fn suite_cases(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                suite_cases(&path, out);
            } else if path.extension().is_some_and(|e| e == "req") {
                let name = path.file_stem().unwrap().to_string_lossy().to_string();
                if path.with_extension("authz").is_file() {
                    out.push((name, path.with_extension("")));
                }
            }
        }
    }

    /// The session token a case signs with, as its canonical request shows it.
    fn token_in_creq(creq: &str) -> Option<String> {
        creq.lines()
            .find_map(|l| l.strip_prefix("x-amz-security-token:"))
            .map(str::to_string)
    }

    fn sign_case(base: &Path, token: Option<&str>) -> Vec<(String, String)> {
        let req = std::fs::read_to_string(base.with_extension("req")).unwrap();
        let req = parse_req(&req);
        sign(
            &req.method,
            &req.url,
            &req.headers,
            &req.body,
            &creds(SUITE_KEY_ID, SUITE_SECRET, token),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap_or_else(|e| panic!("signing {}: {e}", base.display()))
    }

    #[test]
    fn aws_test_suite() {
        let mut cases = Vec::new();
        suite_cases(Path::new(SUITE_DIR), &mut cases);
        assert!(cases.len() >= 25, "only {} cases found", cases.len());
        assert!(EXCLUDED.len() <= 5);
        for (name, _) in EXCLUDED {
            assert!(
                cases.iter().any(|(n, _)| n == name),
                "excluded case {name} is not in the suite"
            );
        }

        let mut failures = Vec::new();
        let mut passed = 0;
        for (name, base) in &cases {
            let expected = std::fs::read_to_string(base.with_extension("authz")).unwrap();
            let expected = expected.trim_end();
            let creq = std::fs::read_to_string(base.with_extension("creq")).unwrap();
            let token = token_in_creq(&creq).or_else(|| {
                base.starts_with(Path::new(SUITE_DIR).join("post-sts-token"))
                    .then(readme_token)
            });
            let out = sign_case(base, token.as_deref());
            let matches = authorization(&out) == expected;
            if EXCLUDED.iter().any(|(n, _)| n == name) {
                assert!(!matches, "{name} passes now: take it off the excluded list");
                continue;
            }
            if !matches {
                failures.push(format!(
                    "{name}:\n  expected {expected}\n  got      {}",
                    authorization(&out)
                ));
                continue;
            }
            assert_eq!(
                header(&out, "x-amz-date"),
                Some("20150830T123600Z"),
                "{name}"
            );
            assert_eq!(header(&out, "x-amz-security-token"), token.as_deref());
            assert!(header(&out, "x-amz-content-sha256").is_none(), "{name}");
            assert_eq!(out.len(), 2 + usize::from(token.is_some()), "{name}");
            passed += 1;
        }
        assert!(
            failures.is_empty(),
            "failing cases:\n{}",
            failures.join("\n")
        );
        assert_eq!(passed + EXCLUDED.len(), cases.len());
    }

    #[test]
    fn session_token_is_signed_and_returned() {
        let base = Path::new(SUITE_DIR)
            .join("get-vanilla-with-session-token/get-vanilla-with-session-token");
        let creq = std::fs::read_to_string(base.with_extension("creq")).unwrap();
        let token = token_in_creq(&creq).expect("the token in the canonical request");
        let expected = std::fs::read_to_string(base.with_extension("authz")).unwrap();
        let out = sign_case(&base, Some(&token));
        assert_eq!(authorization(&out), expected.trim_end());
        assert!(authorization(&out).contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert_eq!(header(&out, "x-amz-security-token"), Some(token.as_str()));
        // Without the token the signature is a different one.
        assert_ne!(sign_case(&base, None), out);
    }

    /// The session token of the post-sts-token cases, from their readme.
    fn readme_token() -> String {
        let readme =
            std::fs::read_to_string(Path::new(SUITE_DIR).join("post-sts-token/readme.txt"))
                .unwrap();
        readme
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AQoDYXdzEPT"))
            .expect("the token in the readme")
            .to_string()
    }

    #[test]
    fn sts_token_from_the_readme_is_signed_the_sdk_way() {
        // post-sts-header-after wants the token left out of the signature; Bedrock (like every
        // service the SDKs sign for but a few) signs it, which is what `sign` does.
        let token = readme_token();
        let token = token.as_str();
        let base =
            Path::new(SUITE_DIR).join("post-sts-token/post-sts-header-after/post-sts-header-after");
        let out = sign_case(&base, Some(token));
        assert!(authorization(&out).contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert_eq!(header(&out, "x-amz-security-token"), Some(token));
        // Without a token it is the suite's signature (the token would be added afterwards).
        let expected = std::fs::read_to_string(base.with_extension("authz")).unwrap();
        assert_eq!(authorization(&sign_case(&base, None)), expected.trim_end());
    }

    #[test]
    fn stale_signing_headers_are_ignored_on_re_signing() {
        let base = Path::new(SUITE_DIR).join("post-header-key-sort/post-header-key-sort");
        let req = parse_req(&std::fs::read_to_string(base.with_extension("req")).unwrap());
        let c = creds(SUITE_KEY_ID, SUITE_SECRET, None);
        let fresh = sign(
            &req.method,
            &req.url,
            &req.headers,
            &req.body,
            &c,
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        let mut stale = req.headers.clone();
        stale.push(("Authorization".into(), "AWS4-HMAC-SHA256 old".into()));
        stale.push(("X-Amz-Date".into(), "20000101T000000Z".into()));
        stale.push(("x-amz-security-token".into(), "old-token".into()));
        let again = sign(
            &req.method,
            &req.url,
            &stale,
            &req.body,
            &c,
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        assert_eq!(fresh, again);
        let expected = std::fs::read_to_string(base.with_extension("authz")).unwrap();
        assert_eq!(authorization(&again), expected.trim_end());
    }

    // ---- an independent SHA-256 / HMAC-SHA256, to check the signer against ----

    #[allow(clippy::needless_range_loop)]
    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(v);
            }
        }
        let mut out = [0u8; 32];
        for (i, v) in h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&sha256(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        inner.extend_from_slice(msg);
        let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        outer.extend_from_slice(&sha256(&inner));
        sha256(&outer)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The SigV4 signature of a canonical request, computed from the specification alone.
    fn independent_signature(
        creq: &str,
        secret: &str,
        amz_date: &str,
        region: &str,
        service: &str,
    ) -> String {
        let date = &amz_date[..8];
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&sha256(creq.as_bytes()))
        );
        let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k_region = hmac_sha256(&k_date, region.as_bytes());
        let k_service = hmac_sha256(&k_region, service.as_bytes());
        let k_signing = hmac_sha256(&k_service, b"aws4_request");
        hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()))
    }

    #[test]
    fn independent_implementation_matches_known_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The suite's canonical request and signature for two cases, one with a body.
        for case in [
            "get-vanilla/get-vanilla",
            "post-x-www-form-urlencoded/post-x-www-form-urlencoded",
        ] {
            let base = Path::new(SUITE_DIR).join(case);
            let creq = std::fs::read_to_string(base.with_extension("creq")).unwrap();
            let authz = std::fs::read_to_string(base.with_extension("authz")).unwrap();
            let sig = independent_signature(
                creq.trim_end(),
                SUITE_SECRET,
                "20150830T123600Z",
                "us-east-1",
                "service",
            );
            assert!(
                authz.trim_end().ends_with(&format!("Signature={sig}")),
                "{case}"
            );
        }
    }

    // ---- a Bedrock-shaped request ----

    const BEDROCK_HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
    const BEDROCK_PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke";
    const BEDROCK_BODY: &[u8] = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;
    /// 2024-01-01T00:00:00Z
    const BEDROCK_TIME_SECS: u64 = 1_704_067_200;

    fn bedrock_headers() -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json".into()),
        ]
    }

    fn sign_bedrock(
        path: &str,
        body: &[u8],
        region: &str,
        secs: u64,
        token: Option<&str>,
    ) -> Vec<(String, String)> {
        let host = BEDROCK_HOST.replace("us-east-1", region);
        sign(
            "POST",
            &format!("https://{host}{path}"),
            &bedrock_headers(),
            body,
            &creds("AKIDEXAMPLE", SUITE_SECRET, token),
            region,
            "bedrock",
            at(secs),
        )
        .unwrap()
    }

    #[test]
    fn bedrock_request_matches_an_independent_signature_with_a_double_encoded_path() {
        let out = sign_bedrock(
            BEDROCK_PATH,
            BEDROCK_BODY,
            "us-east-1",
            BEDROCK_TIME_SECS,
            None,
        );
        let auth = authorization(&out);
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, SignedHeaders="
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=accept;content-type;host;x-amz-date, "),
            "{auth}"
        );
        assert_eq!(header(&out, "x-amz-date"), Some("20240101T000000Z"));
        assert!(header(&out, "x-amz-security-token").is_none());
        assert!(header(&out, "x-amz-content-sha256").is_none());
        assert_eq!(out.len(), 2);

        let creq = format!(
            "POST\n\
             /model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke\n\
             \n\
             accept:application/json\n\
             content-type:application/json\n\
             host:{BEDROCK_HOST}\n\
             x-amz-date:20240101T000000Z\n\
             \n\
             accept;content-type;host;x-amz-date\n\
             {}",
            hex(&sha256(BEDROCK_BODY))
        );
        let expected = independent_signature(
            &creq,
            SUITE_SECRET,
            "20240101T000000Z",
            "us-east-1",
            "bedrock",
        );
        assert_eq!(signature_of(&out), expected);
        // The single-encoded path would be another signature: the match above is the double one.
        let single = independent_signature(
            &creq.replace("%253A", "%3A"),
            SUITE_SECRET,
            "20240101T000000Z",
            "us-east-1",
            "bedrock",
        );
        assert_ne!(signature_of(&out), single);
    }

    #[test]
    fn bedrock_request_with_a_session_token_matches_an_independent_signature() {
        let token = "FwoGZXIvYXdzEXAMPLE/token+with=chars";
        let out = sign_bedrock(
            BEDROCK_PATH,
            BEDROCK_BODY,
            "us-east-1",
            BEDROCK_TIME_SECS,
            Some(token),
        );
        assert_eq!(header(&out, "x-amz-security-token"), Some(token));
        let creq = format!(
            "POST\n\
             /model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke\n\
             \n\
             accept:application/json\n\
             content-type:application/json\n\
             host:{BEDROCK_HOST}\n\
             x-amz-date:20240101T000000Z\n\
             x-amz-security-token:{token}\n\
             \n\
             accept;content-type;host;x-amz-date;x-amz-security-token\n\
             {}",
            hex(&sha256(BEDROCK_BODY))
        );
        let expected = independent_signature(
            &creq,
            SUITE_SECRET,
            "20240101T000000Z",
            "us-east-1",
            "bedrock",
        );
        assert_eq!(signature_of(&out), expected);
    }

    #[test]
    fn bedrock_signature_is_deterministic_and_sensitive_to_every_input() {
        let base = sign_bedrock(
            BEDROCK_PATH,
            BEDROCK_BODY,
            "us-east-1",
            BEDROCK_TIME_SECS,
            None,
        );
        let again = sign_bedrock(
            BEDROCK_PATH,
            BEDROCK_BODY,
            "us-east-1",
            BEDROCK_TIME_SECS,
            None,
        );
        assert_eq!(base, again);
        let sig = signature_of(&base);

        let mut body = BEDROCK_BODY.to_vec();
        let last = body.len() - 2;
        body[last] ^= 1;
        let variants = [
            sign_bedrock(BEDROCK_PATH, &body, "us-east-1", BEDROCK_TIME_SECS, None),
            sign_bedrock(
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
                BEDROCK_BODY,
                "us-east-1",
                BEDROCK_TIME_SECS,
                None,
            ),
            sign_bedrock(
                "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
                BEDROCK_BODY,
                "us-east-1",
                BEDROCK_TIME_SECS,
                None,
            ),
            sign_bedrock(
                BEDROCK_PATH,
                BEDROCK_BODY,
                "us-west-2",
                BEDROCK_TIME_SECS,
                None,
            ),
            sign_bedrock(
                BEDROCK_PATH,
                BEDROCK_BODY,
                "us-east-1",
                BEDROCK_TIME_SECS + 1,
                None,
            ),
            sign_bedrock(
                BEDROCK_PATH,
                BEDROCK_BODY,
                "us-east-1",
                BEDROCK_TIME_SECS,
                Some("a-token"),
            ),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(signature_of(v), sig, "variant {i}");
        }
        assert!(authorization(&variants[3]).contains("/us-west-2/bedrock/aws4_request"));
        assert_eq!(header(&variants[4], "x-amz-date"), Some("20240101T000001Z"));
    }

    #[test]
    fn aws_double_encode_path_vector() {
        // aws-signing-test-suite/v4/double-encode-path from smithy-rs's aws-sigv4 (an API Gateway
        // connection id ending in an encoded '='): the path `%3D` is signed as `%253D`.
        let out = sign(
            "POST",
            "https://tj9n5r0m12.execute-api.us-east-1.amazonaws.com/test/@connections/JBDvjfGEIAMCERw%3D",
            &[("X-amz-date".into(), "20150830T123600Z".into())],
            b"",
            &creds("ANOTREAL", "notrealrnrELgWzOk3IfjzDKtFBhDby", None),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            authorization(&out),
            "AWS4-HMAC-SHA256 Credential=ANOTREAL/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=57d157672191bac40bae387e48bbe14b15303c001fdbb01f4abf295dccb09705"
        );
    }

    #[test]
    fn host_is_signed_from_the_url_or_the_header() {
        let c = creds(SUITE_KEY_ID, SUITE_SECRET, None);
        let from_url = sign(
            "GET",
            "https://localhost:8443/x",
            &[],
            b"",
            &c,
            "us-east-1",
            "bedrock",
            suite_time(),
        )
        .unwrap();
        let from_header = sign(
            "GET",
            "https://localhost:8443/x",
            &[("Host".into(), "localhost:8443".into())],
            b"",
            &c,
            "us-east-1",
            "bedrock",
            suite_time(),
        )
        .unwrap();
        assert_eq!(from_url, from_header);
        assert!(authorization(&from_url).contains("SignedHeaders=host;x-amz-date,"));
        // The default port is not part of the signed host, as it is not part of the sent one.
        let default_port = sign(
            "GET",
            "https://localhost:443/x",
            &[],
            b"",
            &c,
            "us-east-1",
            "bedrock",
            suite_time(),
        )
        .unwrap();
        let no_port = sign(
            "GET",
            "https://localhost/x",
            &[],
            b"",
            &c,
            "us-east-1",
            "bedrock",
            suite_time(),
        )
        .unwrap();
        assert_eq!(default_port, no_port);
        assert_ne!(from_url, no_port);
    }

    // ---- credentials never leak ----

    #[test]
    fn debug_shows_the_key_id_only() {
        let c = creds(
            "AKIAEXAMPLEKEYID",
            "super-secret-value-123",
            Some("session-token-value-456"),
        );
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIAEXAMPLEKEYID"), "{shown}");
        assert!(!shown.contains("super-secret-value-123"), "{shown}");
        assert!(!shown.contains("session-token-value-456"), "{shown}");
        let shown = format!("{:#?}", Some(&c));
        assert!(!shown.contains("super-secret") && !shown.contains("session-token-value"));
    }

    #[test]
    fn errors_never_contain_credentials() {
        let secret = "super-secret-value-123";
        let token = "session-token-value-456";
        let c = creds("AKIAEXAMPLEKEYID", secret, Some(token));
        let attempt = |method: &str, url: &str, headers: &[(String, String)], region: &str| {
            sign(
                method,
                url,
                headers,
                b"{}",
                &c,
                region,
                "bedrock",
                suite_time(),
            )
        };
        let bad_header = [("bad header".to_string(), "x".to_string())];
        let bad_value = [("x-ok".to_string(), "line\nbreak".to_string())];
        let errors = [
            attempt("POST", "not a url", &[], "us-east-1"),
            attempt("POST", "https:///model/x", &[], "us-east-1"),
            attempt("POST", "ftp://host/model/x", &[], "us-east-1"),
            attempt("POST", "https://host/model/x y", &[], "us-east-1"),
            attempt("POST", "https://host/x", &bad_header, "us-east-1"),
            attempt("POST", "https://host/x", &bad_value, "us-east-1"),
            attempt("POST", "https://host/x", &[], "us east 1"),
            attempt("PO ST", "https://host/x", &[], "us-east-1"),
            sign(
                "POST",
                "https://host/x",
                &[],
                b"",
                &creds("AKIA", secret, Some("token\nwith-newline-456")),
                "us-east-1",
                "bedrock",
                suite_time(),
            ),
            sign(
                "POST",
                "https://host/x",
                &[],
                b"",
                &creds("AKIA/BAD", secret, Some(token)),
                "us-east-1",
                "bedrock",
                suite_time(),
            ),
            sign(
                "POST",
                "https://host/x",
                &[],
                b"",
                &c,
                "us-east-1",
                "bedrock",
                SystemTime::UNIX_EPOCH + Duration::from_secs(MAX_SIGNING_SECS + 1),
            ),
        ];
        for (i, result) in errors.into_iter().enumerate() {
            let e = result.expect_err(&format!("case {i} should fail"));
            let text = format!("{e} {e:?} {}", e.to_json());
            assert!(!text.contains(secret), "case {i}: {text}");
            assert!(!text.contains("session-token-value"), "case {i}: {text}");
            assert!(!text.contains("with-newline"), "case {i}: {text}");
            assert!(
                matches!(
                    e.code,
                    crate::error::ErrorCode::Internal | crate::error::ErrorCode::Config
                ),
                "case {i}: {text}"
            );
        }
    }
}
