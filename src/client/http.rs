//! Sending a request upstream: one shared connection pool, auth headers, timeouts, and the mapping
//! of HTTP failures to error codes.

use crate::adapters::error_body::ProviderError;
use crate::client::sigv4::{self, AwsCredentials};
use crate::config::{TimeoutKind, Timeouts};
use crate::error::{Error, ErrorCode, Result};
use crate::secret::Secret;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

const USER_AGENT: &str = concat!("llm-proxy/", env!("CARGO_PKG_VERSION"));
/// Error bodies are read up to this size; past it they are cut.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest non-streamed answer read: 64 MiB. A chat completion is a few KiB, a few MiB with
/// images or long reasoning; tens of MiB are no completion (a base URL that points at something
/// other than the API, a gateway gone wrong), and reading such a body whole would hold all of it
/// in memory, per call. Past this the answer is refused and its connection closed.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// Connection pools kept for the process, one per connect timeout in use.
const MAX_SHARED_POOLS: usize = 8;
/// Idle connections a pool keeps per host; past it a connection whose request has ended is
/// closed instead of pooled. Steady workloads keep every connection they use: 64 requests in
/// flight to one host use at most 64 HTTP/1.1 connections (HTTP/2 hosts, as the large APIs are,
/// need one), and four times that absorbs their bursts without reconnecting. A burst of thousands
/// (a batch job fanning out) leaves no more than this many sockets open afterwards, each a file
/// descriptor here and a connection the server holds, until the idle timeout closes them.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle pooled connection is kept before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The process's connection pool for the default connect timeout.
pub fn shared_client() -> Result<reqwest::Client> {
    pool_for(Duration::from_millis(
        crate::config::DEFAULT_CONNECT_TIMEOUT_MS,
    ))
}

/// The connection pool for requests with this connect timeout. reqwest fixes the connect timeout
/// per client (per pool), so the process keeps one pool per connect timeout in use: every
/// `LLMProxy` with the same `connectMs` (the default included) shares connections and TLS
/// sessions. Past [`MAX_SHARED_POOLS`] different values a fresh pool is returned, which its
/// caller (one `Proxy`) keeps for itself.
pub fn pool_for(connect: Duration) -> Result<reqwest::Client> {
    let mut pools = pools()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, client)) = pools.iter().find(|(c, _)| *c == connect) {
        return Ok(client.clone());
    }
    let client = build_client(connect)?;
    if pools.len() < MAX_SHARED_POOLS {
        pools.push((connect, client.clone()));
    }
    Ok(client)
}

fn pools() -> &'static Mutex<Vec<(Duration, reqwest::Client)>> {
    static POOLS: OnceLock<Mutex<Vec<(Duration, reqwest::Client)>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(Vec::new()))
}

fn build_client(connect: Duration) -> Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; ring is ours. Installing fails
    // harmlessly if the host application installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        // Bounds DNS, TCP and TLS together (reqwest wraps the whole connector in it).
        .connect_timeout(connect)
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build()
        .map_err(|e| Error::internal(format!("Could not create the HTTP client: {e}.")))
}

/// A request ready to send, as built by an adapter plus the endpoint's auth.
pub struct UpstreamRequest {
    pub provider: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Headers whose values are credentials (never logged, scrubbed from errors).
    pub secret_headers: Vec<(&'static str, String)>,
    pub secrets: Vec<Secret>,
    pub body: Bytes,
    pub timeouts: Timeouts,
    pub stream: bool,
    /// The `Accept` header.
    pub accept: &'static str,
    /// Requests to AWS are signed (SigV4) just before each send.
    pub aws: Option<AwsSigning>,
    /// Reads the provider's error body format.
    pub parse_error: fn(&Value) -> Option<ProviderError>,
}

pub struct AwsSigning {
    pub credentials: AwsCredentials,
    pub region: String,
    pub service: &'static str,
}

impl UpstreamRequest {
    pub fn secret_refs(&self) -> Vec<&Secret> {
        self.secrets.iter().collect()
    }
}

/// A response with a success status, and what to scrub from anything read from it.
pub struct Sent {
    pub response: reqwest::Response,
    /// The request's credentials, and the SigV4 signature of this attempt (a fresh one each
    /// attempt): a provider may echo the signature in an error as it echoes keys.
    pub secrets: Vec<Secret>,
}

impl Sent {
    pub fn secret_refs(&self) -> Vec<&Secret> {
        self.secrets.iter().collect()
    }
}

/// The signature in the value of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=<hex>`).
fn sigv4_signature(authorization: &str) -> Option<Secret> {
    let (_, rest) = authorization.rsplit_once("Signature=")?;
    Secret::new(rest.split([',', ' ']).next().unwrap_or_default())
}

/// Sends the request through `client` (see [`pool_for`]) and returns the response once its status
/// is a success. A failure status is read and turned into an [`Error`] with the provider's message
/// and body.
///
/// A non-streamed request is limited as a whole by `timeouts.request` (the caller reads its body
/// under the same limit, see [`read_body`]); a stream's wait for its response head by
/// `timeouts.first_chunk` (the caller goes on limiting the wait for the first chunk from the same
/// start).
pub async fn send(client: &reqwest::Client, req: &UpstreamRequest) -> Result<Sent> {
    let mut builder = client.post(&req.url);
    if !req.stream {
        builder = builder.timeout(req.timeouts.request);
    }
    let mut plain: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 2);
    plain.push(("content-type".into(), "application/json".into()));
    plain.push(("accept".into(), req.accept.into()));
    plain.extend(req.headers.iter().cloned());
    let mut secrets = req.secrets.clone();
    let mut secret_headers: Vec<(String, String)> = req
        .secret_headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    if let Some(aws) = &req.aws {
        // Signed now, over exactly the headers and body sent, so a retry gets a fresh signature.
        let signed = sigv4::sign(
            "POST",
            &req.url,
            &plain,
            &req.body,
            &aws.credentials,
            &aws.region,
            aws.service,
            SystemTime::now(),
        )?;
        for (name, value) in signed {
            if name.eq_ignore_ascii_case("x-amz-date") {
                plain.push((name, value));
            } else {
                if name.eq_ignore_ascii_case("authorization") {
                    secrets.extend(sigv4_signature(&value));
                }
                secret_headers.push((name, value));
            }
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &plain {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::config(format!("'{name}' is not a valid HTTP header name.")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::config(format!(
                "The value of header '{name}' is not valid in HTTP."
            ))
        })?;
        headers.append(name, value);
    }
    for (name, value) in &secret_headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::internal("invalid credential header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::config(format!(
                "The credential for {} contains characters not allowed in an HTTP header (a newline?).",
                req.provider
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let send = builder.headers(headers).body(req.body.clone()).send();
    // For a stream, the first-chunk limit covers the wait for the response head.
    let response = if req.stream {
        match tokio::time::timeout(req.timeouts.first_chunk(), send).await {
            Ok(r) => r,
            Err(_) => return Err(timeout_error(req, TimeoutKind::FirstChunk)),
        }
    } else {
        send.await
    }
    .map_err(|e| transport_error(req, &e))?;

    let status = response.status();
    if status.is_success() {
        return Ok(Sent { response, secrets });
    }
    let headers = response.headers().clone();
    let body = read_limited(response, MAX_ERROR_BODY).await;
    let secrets: Vec<&Secret> = secrets.iter().collect();
    Err(http_error_scrubbed(
        req,
        &secrets,
        status.as_u16(),
        &headers,
        &body,
    ))
}

/// The body of a non-streamed answer, read as it arrives and refused past [`MAX_RESPONSE_BODY`]
/// (see [`read_body_within`]). reqwest's timeout of the request (`timeouts.request`) goes on
/// limiting the read.
pub async fn read_body(response: reqwest::Response, req: &UpstreamRequest) -> Result<Bytes> {
    read_body_within(response, req, MAX_RESPONSE_BODY).await
}

/// [`read_body`] with the limit given. A body declared (`Content-Length`) or found larger than
/// `limit` is an error at once; the response is dropped unread, which closes its connection
/// rather than returning it to the pool.
pub(crate) async fn read_body_within(
    mut response: reqwest::Response,
    req: &UpstreamRequest,
    limit: usize,
) -> Result<Bytes> {
    let status = response.status().as_u16();
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(body_too_large(req, status, limit));
    }
    // Room for what is declared, but no more than 1 MiB up front: the header is the server's word.
    let mut buf = Vec::with_capacity(declared.map_or(0, |l| l as usize).min(1 << 20));
    while let Some(chunk) = response.chunk().await.map_err(|e| body_error(req, &e))? {
        if chunk.len() > limit - buf.len() {
            return Err(body_too_large(req, status, limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// A non-streamed answer larger than `limit`. Not retryable: the same request would get the same
/// answer.
fn body_too_large(req: &UpstreamRequest, status: u16, limit: usize) -> Error {
    let size = if limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    };
    Error::new(
        ErrorCode::ServerError,
        format!(
            "{} sent an answer larger than {size}, the most llm-proxy reads of a non-streamed answer; it was not read further and its connection was closed. A chat completion is far smaller: check that the base URL points to the provider's API.",
            req.provider
        ),
    )
    .with_provider(&req.provider)
    .with_status(status)
    .with_retryable(false)
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

/// `code: timeout` for the limit of `req` that fired.
pub fn timeout_error(req: &UpstreamRequest, kind: TimeoutKind) -> Error {
    let limit = match kind {
        TimeoutKind::Request => req.timeouts.request,
        TimeoutKind::Connect => req.timeouts.connect,
        TimeoutKind::FirstChunk => req.timeouts.first_chunk(),
        TimeoutKind::Idle => req.timeouts.idle(),
    };
    timeout_fired(&req.provider, kind, limit)
}

/// `code: timeout`: which limit fired, its value, and what to do about it.
pub fn timeout_fired(provider: &str, kind: TimeoutKind, limit: Duration) -> Error {
    let ms = limit.as_millis();
    let which = kind.describe();
    let message = match kind {
        TimeoutKind::Request => format!(
            "{provider} did not answer within {ms} ms ({which}). Raise it if the model needs longer."
        ),
        TimeoutKind::Connect => format!(
            "{provider} could not be connected to within {ms} ms ({which}). Check the network and the base URL."
        ),
        TimeoutKind::FirstChunk => format!(
            "{provider} sent no first chunk of the stream within {ms} ms ({which}). Raise it if the model thinks longer before it answers."
        ),
        TimeoutKind::Idle => format!(
            "The stream from {provider} sent nothing for {ms} ms ({which}); the answer is incomplete. Raise it if the model pauses longer."
        ),
    };
    Error::new(ErrorCode::Timeout, message)
        .with_provider(provider)
        .with_timeout(kind)
}

/// The connection broke while the response body was being read.
pub fn body_error(req: &UpstreamRequest, e: &reqwest::Error) -> Error {
    connection_error(req, e, |provider, detail| {
        format!("The connection to {provider} broke while its answer was being received ({detail}); nothing was returned.")
    })
}

/// A failure below HTTP (no connection, reset, timeout) for this request.
pub fn transport_error(req: &UpstreamRequest, e: &reqwest::Error) -> Error {
    connection_error(req, e, |provider, detail| {
        format!("Could not reach {provider} ({detail}). Check the network and the base URL.")
    })
}

fn connection_error(
    req: &UpstreamRequest,
    e: &reqwest::Error,
    message: impl Fn(&str, &str) -> String,
) -> Error {
    if e.is_timeout() {
        // reqwest's connect timeout (the pool's) or its whole-request timeout (non-streamed
        // requests only; streams are timed here, not by reqwest).
        let kind = if e.is_connect() {
            TimeoutKind::Connect
        } else {
            TimeoutKind::Request
        };
        return timeout_error(req, kind);
    }
    // The error and its causes, without the repeats reqwest's Display already includes.
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        source = s.source();
    }
    Error::new(ErrorCode::Connection, message(&req.provider, &detail))
        .with_provider(&req.provider)
        .scrub(&req.secret_refs())
}

/// Maps a failure status and its body to an error.
pub fn http_error(req: &UpstreamRequest, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    http_error_scrubbed(req, &req.secret_refs(), status, headers, body)
}

/// [`http_error`], with `secrets` (the request's and its attempt's) removed from the message and
/// the body.
fn http_error_scrubbed(
    req: &UpstreamRequest,
    secrets: &[&Secret],
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let info = parsed.as_ref().and_then(|v| (req.parse_error)(v));
    // AWS names the error in a header; it is more precise than the status.
    let aws_type = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.split(':').next().unwrap_or(t).to_string());
    let code = match &aws_type {
        Some(t) => crate::adapters::error_body::code_for_aws_error(t),
        None => code_for_status(status, info.as_ref()),
    };
    let provider_message = info
        .as_ref()
        .map(|i| i.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            // Redacted before it is cut: a key cut in two would no longer be recognised.
            crate::secret::redact(&text, secrets)
                .chars()
                .take(300)
                .collect::<String>()
                .trim()
                .to_string()
        });
    let quota_exhausted =
        info.as_ref().and_then(|i| i.code.as_deref()) == Some("insufficient_quota");
    let advice = match code {
        ErrorCode::Authentication => " Check the API key for this provider.",
        ErrorCode::Permission => " The key is valid but may not use this model or resource.",
        ErrorCode::NotFound => " Check the model name and the base URL.",
        ErrorCode::RateLimit if quota_exhausted => {
            " The account has run out of quota; retrying will not help."
        }
        ErrorCode::RateLimit => " Wait and retry, or lower the request rate.",
        ErrorCode::Overloaded | ErrorCode::ServerError => {
            " This is on the provider's side; retrying may help."
        }
        ErrorCode::InvalidRequest => " Fix the request before retrying.",
        _ => "",
    };
    let mut message = format!("{} returned HTTP {status}", req.provider);
    if let Some(t) = &aws_type {
        message.push_str(&format!(" ({t})"));
    }
    if !provider_message.is_empty() {
        message.push_str(": ");
        message.push_str(&provider_message);
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    message.push_str(advice);
    let retryable = match code {
        ErrorCode::RateLimit => !quota_exhausted,
        other => other.retryable_by_default() || status == 409,
    };
    Error::new(code, message)
        .with_provider(&req.provider)
        .with_status(status)
        .with_retryable(retryable)
        .with_retry_after_ms(retry_after_ms(headers, SystemTime::now()))
        .with_body(Some(
            parsed.unwrap_or_else(|| Value::String(text.into_owned())),
        ))
        .scrub(secrets)
}

pub fn code_for_status(status: u16, info: Option<&ProviderError>) -> ErrorCode {
    match status {
        400 | 413 | 422 => {
            // Some servers answer 400 for what is an auth or quota problem; the body says so.
            match info.map(|i| {
                crate::adapters::error_body::code_for_error_kind(
                    i.kind.as_deref(),
                    i.code.as_deref(),
                )
            }) {
                Some(c @ (ErrorCode::Authentication | ErrorCode::RateLimit)) => c,
                _ => ErrorCode::InvalidRequest,
            }
        }
        401 => ErrorCode::Authentication,
        403 => ErrorCode::Permission,
        404 => ErrorCode::NotFound,
        408 => ErrorCode::Timeout,
        409 => ErrorCode::ServerError,
        429 => ErrorCode::RateLimit,
        503 | 529 => ErrorCode::Overloaded,
        500..=599 => ErrorCode::ServerError,
        _ => ErrorCode::InvalidRequest,
    }
}

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date.
pub fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(ms.round() as u64);
        }
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(now)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::error_body::parse_error_body;

    fn req() -> UpstreamRequest {
        UpstreamRequest {
            provider: "openai".into(),
            url: "http://127.0.0.1:9/v1/chat/completions".into(),
            headers: vec![],
            secret_headers: vec![],
            secrets: vec![Secret::new("sk-test-secret-value").unwrap()],
            body: Bytes::new(),
            timeouts: Timeouts::default(),
            stream: false,
            accept: "application/json",
            aws: None,
            parse_error: parse_error_body,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_map_to_codes() {
        for (status, code) in [
            (400, ErrorCode::InvalidRequest),
            (401, ErrorCode::Authentication),
            (403, ErrorCode::Permission),
            (404, ErrorCode::NotFound),
            (408, ErrorCode::Timeout),
            (409, ErrorCode::ServerError),
            (422, ErrorCode::InvalidRequest),
            (429, ErrorCode::RateLimit),
            (500, ErrorCode::ServerError),
            (502, ErrorCode::ServerError),
            (503, ErrorCode::Overloaded),
            (504, ErrorCode::ServerError),
            (529, ErrorCode::Overloaded),
        ] {
            let e = http_error(&req(), status, &HeaderMap::new(), b"{}");
            assert_eq!(e.code, code, "{status}");
            assert_eq!(e.status, Some(status));
            let retryable = matches!(status, 408 | 409 | 429 | 500..=599);
            assert_eq!(e.retryable, retryable, "{status}");
        }
    }

    #[test]
    fn the_401_fixture_keeps_the_body_and_hides_the_key() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/openai/errors/401-invalid-api-key.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let e = http_error(&req(), 401, &HeaderMap::new(), &body);
        assert_eq!(e.code, ErrorCode::Authentication);
        assert!(
            e.message
                .starts_with("openai returned HTTP 401: Incorrect API key provided: [redacted]."),
            "{}",
            e.message
        );
        assert!(e.message.contains("Check the API key"));
        assert_eq!(e.body.as_ref().unwrap()["error"]["code"], "invalid_api_key");
        assert!(!e.to_json().contains("sk-"), "{}", e.to_json());
    }

    #[test]
    fn echoed_secrets_are_scrubbed_from_message_and_body() {
        let body = br#"{"error":{"message":"key sk-test-secret-value is revoked","type":"authentication_error"}}"#;
        let e = http_error(&req(), 401, &HeaderMap::new(), body);
        assert!(!e.to_json().contains("sk-test-secret-value"));
    }

    #[test]
    fn insufficient_quota_is_not_retryable() {
        let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let e = http_error(&req(), 429, &HeaderMap::new(), body);
        assert_eq!(e.code, ErrorCode::RateLimit);
        assert!(!e.retryable);
        assert!(e.message.contains("quota"));
    }

    #[test]
    fn the_400_fixture_is_invalid_request_with_the_provider_message() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/openai/errors/400-unsupported-parameter.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let e = http_error(&req(), 400, &HeaderMap::new(), &body);
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("Unsupported parameter: 'max_tokens'"));
        assert!(!e.retryable);
    }

    #[test]
    fn non_json_error_bodies_are_kept_as_text() {
        let e = http_error(&req(), 502, &HeaderMap::new(), b"<html>Bad Gateway</html>");
        assert_eq!(
            e.body,
            Some(Box::new(Value::String("<html>Bad Gateway</html>".into())))
        );
        assert!(e.message.contains("Bad Gateway"));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "2")]), now),
            Some(2000)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "0.5")]), now),
            Some(500)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after-ms", "1234"), ("retry-after", "9")]),
                now
            ),
            Some(1234)
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", &date)]), now),
            Some(30_000)
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", &past)]), now),
            Some(0)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(retry_after_ms(&HeaderMap::new(), now), None);
    }

    #[test]
    fn timeout_errors_say_which_limit_fired_and_its_value() {
        let mut r = req();
        r.timeouts = Timeouts {
            request: Duration::from_millis(1000),
            connect: Duration::from_millis(200),
            first_chunk: Some(Duration::from_millis(300)),
            idle: Some(Duration::from_millis(400)),
        };
        for (kind, says) in [
            (
                TimeoutKind::Request,
                "1000 ms (the request timeout, timeouts.requestMs)",
            ),
            (
                TimeoutKind::Connect,
                "200 ms (the connect timeout, timeouts.connectMs)",
            ),
            (
                TimeoutKind::FirstChunk,
                "300 ms (the first-chunk timeout, timeouts.firstChunkMs)",
            ),
            (
                TimeoutKind::Idle,
                "400 ms (the idle timeout, timeouts.idleMs)",
            ),
        ] {
            let e = timeout_error(&r, kind);
            assert_eq!(e.code, ErrorCode::Timeout);
            assert_eq!(e.timeout, Some(kind));
            assert!(e.retryable);
            assert_eq!(e.provider.as_deref(), Some("openai"));
            assert!(e.message.contains(says), "{kind:?}: {}", e.message);
            let json: Value = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(json["timeout"], serde_json::to_value(kind).unwrap());
        }
        let json: Value =
            serde_json::from_str(&timeout_error(&r, TimeoutKind::FirstChunk).to_json()).unwrap();
        assert_eq!(json["timeout"], "firstChunk");
        // A provider's own timeout (HTTP 408) names no limit of ours.
        let e = http_error(&r, 408, &HeaderMap::new(), b"{}");
        assert_eq!(e.code, ErrorCode::Timeout);
        assert_eq!(e.timeout, None);
        let json: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert!(json.get("timeout").is_none(), "{json}");
    }

    #[test]
    fn the_signature_of_a_sigv4_authorization_is_found() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        assert_eq!(
            sigv4_signature(auth).unwrap().expose(),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(sigv4_signature("Bearer sk-x").is_none());
        assert!(sigv4_signature("AWS4-HMAC-SHA256 Signature=").is_none());
    }

    /// A loopback server that answers one request with `head` then `body`, and closes.
    async fn answer_once(head: String, body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut tmp).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let _ = sock.write_all(head.as_bytes()).await;
            // In pieces, so that the limit is met while reading.
            for piece in body.chunks(100) {
                if sock.write_all(piece).await.is_err() {
                    return;
                }
                let _ = sock.flush().await;
            }
            let _ = sock.shutdown().await;
        });
        url
    }

    #[tokio::test]
    async fn a_body_is_read_up_to_its_limit_and_refused_past_it() {
        let client = shared_client().unwrap();
        let limit = 1000;
        for (declared, size, ok) in [
            (false, 1000, true),
            (false, 1001, false),
            (true, 1000, true),
            (true, 1001, false),
        ] {
            let head = if declared {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n")
            } else {
                // No length: the body ends when the connection does.
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
            };
            let url = answer_once(head, vec![b'x'; size]).await;
            let response = client.get(&url).send().await.unwrap();
            let read = read_body_within(response, &req(), limit).await;
            let what = format!("{size} bytes (declared: {declared})");
            match read {
                Ok(body) => {
                    assert!(ok, "{what}: read");
                    assert_eq!(body.len(), size, "{what}");
                }
                Err(e) => {
                    assert!(!ok, "{what}: {}", e.message);
                    assert_eq!(e.code, ErrorCode::ServerError, "{what}");
                    assert!(!e.retryable);
                    assert_eq!(e.status, Some(200));
                    assert!(
                        e.message
                            .starts_with("openai sent an answer larger than 1000 bytes"),
                        "{what}: {}",
                        e.message
                    );
                }
            }
        }
        assert_eq!(
            body_too_large(&req(), 200, MAX_RESPONSE_BODY).message[..45],
            *"openai sent an answer larger than 64 MiB, the"
        );
    }

    #[test]
    fn proxies_with_the_same_connect_timeout_share_one_pool() {
        let a = Duration::from_millis(12_345);
        let b = Duration::from_millis(12_346);
        pool_for(a).unwrap();
        pool_for(a).unwrap();
        pool_for(b).unwrap();
        shared_client().unwrap();
        let pools = pools().lock().unwrap();
        let count = |d: Duration| pools.iter().filter(|(c, _)| *c == d).count();
        assert_eq!(count(a), 1);
        assert_eq!(count(b), 1);
        assert_eq!(
            count(Duration::from_millis(
                crate::config::DEFAULT_CONNECT_TIMEOUT_MS
            )),
            1
        );
        assert!(pools.len() <= MAX_SHARED_POOLS);
    }
}
