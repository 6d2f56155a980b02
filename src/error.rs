//! The one error type of the library. It crosses into Node as `LLMProxyError` with the same fields.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// What went wrong, in words a caller can branch on. The strings are the `code` values of
/// `LLMProxyError` in JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RateLimit,
    Overloaded,
    ServerError,
    Timeout,
    Aborted,
    Connection,
    StreamInterrupted,
    UnsupportedModel,
    Config,
    /// A bug in llm-proxy itself (for example a caught panic). Never retryable.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Authentication,
        ErrorCode::Permission,
        ErrorCode::NotFound,
        ErrorCode::RateLimit,
        ErrorCode::Overloaded,
        ErrorCode::ServerError,
        ErrorCode::Timeout,
        ErrorCode::Aborted,
        ErrorCode::Connection,
        ErrorCode::StreamInterrupted,
        ErrorCode::UnsupportedModel,
        ErrorCode::Config,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Authentication => "authentication",
            ErrorCode::Permission => "permission",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimit => "rate_limit",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ServerError => "server_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Connection => "connection",
            ErrorCode::StreamInterrupted => "stream_interrupted",
            ErrorCode::UnsupportedModel => "unsupported_model",
            ErrorCode::Config => "config",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether trying the same request again may succeed, when the provider gives no better hint.
    pub fn retryable_by_default(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimit
                | ErrorCode::Overloaded
                | ErrorCode::ServerError
                | ErrorCode::Timeout
                | ErrorCode::Connection
                | ErrorCode::StreamInterrupted
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of llm-proxy's own time limits fired, on a `timeout` error (`LLMProxyError.timeout`). A
/// timeout the provider reports (HTTP 408, Bedrock's ModelTimeoutException) has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TimeoutKind {
    /// `timeouts.requestMs`: a whole non-streamed attempt.
    Request,
    /// `timeouts.connectMs`: DNS, TCP and TLS.
    Connect,
    /// `timeouts.firstChunkMs`: from sending a stream's request to its first chunk.
    FirstChunk,
    /// `timeouts.idleMs`: silence in a stream that has begun.
    Idle,
}

impl TimeoutKind {
    /// How messages name it: `the first-chunk timeout, timeouts.firstChunkMs`.
    pub fn describe(self) -> &'static str {
        match self {
            TimeoutKind::Request => "the request timeout, timeouts.requestMs",
            TimeoutKind::Connect => "the connect timeout, timeouts.connectMs",
            TimeoutKind::FirstChunk => "the first-chunk timeout, timeouts.firstChunkMs",
            TimeoutKind::Idle => "the idle timeout, timeouts.idleMs",
        }
    }
}

/// One model of a call with fallbacks that did not answer: on the final error's `tried` (every model
/// tried, the last one included) and on the answer's `llm_proxy.failed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tried {
    /// As named in the request or in its fallbacks.
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Requests sent to this model; 0 when it could not be used (no key, a request it cannot take).
    pub attempts: u32,
    pub message: String,
}

/// The longest name (a model's, say) that a message quotes whole.
pub const MAX_QUOTED_CHARS: usize = 200;

/// `'name'` for a message. A name longer than [`MAX_QUOTED_CHARS`] characters is cut there and
/// marked with `…` and its length (`'xxxx…' (1048576 characters)`): a message stays readable
/// whatever was passed.
pub fn quote(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("'{name}'"),
        Some((cut, _)) => format!("'{}…' ({} characters)", &name[..cut], name.chars().count()),
    }
}

/// An error with everything a caller needs to decide what to do next. Messages never contain
/// credentials: text that comes from a provider goes through [`crate::redact`] first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The provider's own error body: parsed JSON when it was JSON, else the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<Value>>,
    /// On a `timeout` error, which of llm-proxy's limits fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutKind>,
    /// When a call with fallbacks moved on from its first model: every model tried, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<Tried>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            provider: None,
            status: None,
            retryable: code.retryable_by_default(),
            retry_after_ms: None,
            body: None,
            timeout: None,
            tried: Vec::new(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    pub fn aborted() -> Self {
        Self::new(
            ErrorCode::Aborted,
            "The request was aborted by its AbortSignal.",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::Internal,
            format!(
                "{} This is a bug in llm-proxy; please report it.",
                message.into()
            ),
        )
    }

    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn with_retry_after_ms(mut self, ms: Option<u64>) -> Self {
        self.retry_after_ms = ms;
        self
    }

    pub fn with_body(mut self, body: Option<Value>) -> Self {
        self.body = body.map(Box::new);
        self
    }

    pub fn with_timeout(mut self, kind: TimeoutKind) -> Self {
        self.timeout = Some(kind);
        self
    }

    /// Removes credentials from the message and the provider body (see [`crate::secret::redact`]).
    pub fn scrub(mut self, secrets: &[&crate::secret::Secret]) -> Self {
        self.message = crate::secret::redact(&self.message, secrets);
        if let Some(body) = &mut self.body {
            crate::secret::redact_json(body, secrets);
        }
        for tried in &mut self.tried {
            tried.message = crate::secret::redact(&tried.message, secrets);
        }
        self
    }

    /// The JSON form handed to the JavaScript layer, which turns it into an `LLMProxyError`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"code":"internal","message":"unserialisable error","retryable":false}"#.to_string()
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn json_form_uses_camel_case_and_omits_empty_fields() {
        let e = Error::new(ErrorCode::RateLimit, "slow down")
            .with_provider("openai")
            .with_status(429)
            .with_retry_after_ms(Some(1500));
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["code"], "rate_limit");
        assert_eq!(v["retryAfterMs"], 1500);
        assert_eq!(v["retryable"], true);
        assert!(v.get("body").is_none());
    }
}
