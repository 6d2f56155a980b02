//! Provider error bodies → what they say, and error `type`s → error codes. One reader serves
//! OpenAI, Anthropic and OpenAI-compatible servers, whose shapes overlap.

use crate::error::ErrorCode;
use serde_json::Value;

/// What a provider's error body says, in a provider-independent form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderError {
    pub message: String,
    /// `type` (OpenAI: `invalid_request_error`…).
    pub kind: Option<String>,
    /// `code` (OpenAI: `invalid_api_key`, `insufficient_quota`…).
    pub code: Option<String>,
}

/// Reads OpenAI's `{"error": {"message", "type", "code"}}`, Anthropic's
/// `{"type": "error", "error": {"type", "message"}}`, and the shapes compatible servers use
/// (`{"error": "text"}`, `{"message": …}`, FastAPI's `{"detail": …}`).
pub fn parse_error_body(body: &Value) -> Option<ProviderError> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let error = body.get("error");
    match error {
        Some(Value::Object(e)) => Some(ProviderError {
            message: e.get("message").and_then(text).unwrap_or_default(),
            kind: e.get("type").and_then(text),
            code: e.get("code").and_then(text),
        }),
        Some(Value::String(s)) => Some(ProviderError {
            message: s.clone(),
            ..Default::default()
        }),
        _ => {
            let message = body
                .get("message")
                .or_else(|| body.get("Message"))
                .or_else(|| body.get("detail"))
                .and_then(text)?;
            Some(ProviderError {
                message,
                kind: body.get("type").and_then(text),
                code: body.get("code").and_then(text),
            })
        }
    }
}

/// The error code an OpenAI-style error `type`/`code` stands for, when no HTTP status says it
/// (errors inside a 200 stream).
pub fn code_for_error_kind(kind: Option<&str>, code: Option<&str>) -> ErrorCode {
    let words = [kind.unwrap_or(""), code.unwrap_or("")];
    let has = |needle: &str| words.iter().any(|w| w.contains(needle));
    if has("authentication") || has("invalid_api_key") {
        ErrorCode::Authentication
    } else if has("permission") {
        ErrorCode::Permission
    } else if has("not_found") || has("model_not_found") {
        ErrorCode::NotFound
    } else if has("rate_limit") || has("insufficient_quota") {
        ErrorCode::RateLimit
    } else if has("overloaded") {
        ErrorCode::Overloaded
    } else if has("invalid_request") || has("invalid_") || has("unsupported") || has("too_large") {
        ErrorCode::InvalidRequest
    } else if has("timeout") {
        ErrorCode::Timeout
    } else {
        ErrorCode::ServerError
    }
}

/// The error code for an AWS error type: the `x-amzn-ErrorType` header (`ThrottlingException:http://…`),
/// a body's `__type`, or an event-stream exception's `:exception-type`.
pub fn code_for_aws_error(error_type: &str) -> ErrorCode {
    let name = error_type.split(':').next().unwrap_or(error_type);
    let name = name.rsplit('#').next().unwrap_or(name).trim();
    // Event-stream exceptions are named in lowerCamel (`throttlingException`).
    let mut chars = name.chars();
    let name: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    match name.as_str() {
        "ThrottlingException" | "TooManyRequestsException" | "ServiceQuotaExceededException" => {
            ErrorCode::RateLimit
        }
        "ValidationException" | "SerializationException" => ErrorCode::InvalidRequest,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "InvalidClientTokenId" => ErrorCode::Authentication,
        "AccessDeniedException" => ErrorCode::Permission,
        "ResourceNotFoundException" => ErrorCode::NotFound,
        "ModelNotReadyException" | "ServiceUnavailableException" => ErrorCode::Overloaded,
        "ModelTimeoutException" => ErrorCode::Timeout,
        "ModelStreamErrorException" => ErrorCode::StreamInterrupted,
        "ModelErrorException" | "InternalServerException" | "InternalFailure" => {
            ErrorCode::ServerError
        }
        _ => ErrorCode::ServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn error_bodies_in_every_shape() {
        let e = parse_error_body(
            &serde_json::from_slice(&fixture("openai/errors/401-invalid-api-key.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
        assert!(e.message.starts_with("Incorrect API key provided"));
        assert_eq!(
            parse_error_body(&json!({"error": "boom"})).unwrap().message,
            "boom"
        );
        assert_eq!(
            parse_error_body(&json!({"detail": "Not Found"}))
                .unwrap()
                .message,
            "Not Found"
        );
        assert_eq!(parse_error_body(&json!({"ok": true})), None);
        assert_eq!(
            code_for_error_kind(Some("invalid_request_error"), Some("invalid_api_key")),
            ErrorCode::Authentication
        );
        assert_eq!(
            code_for_error_kind(Some("server_error"), None),
            ErrorCode::ServerError
        );
        assert_eq!(
            code_for_error_kind(None, Some("rate_limit_exceeded")),
            ErrorCode::RateLimit
        );
    }

    #[test]
    fn aws_error_types_map_to_codes() {
        for (kind, code) in [
            ("ThrottlingException", ErrorCode::RateLimit),
            (
                "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                ErrorCode::InvalidRequest,
            ),
            (
                "com.amazon.coral.service#UnrecognizedClientException",
                ErrorCode::Authentication,
            ),
            ("AccessDeniedException", ErrorCode::Permission),
            ("ResourceNotFoundException", ErrorCode::NotFound),
            ("ModelNotReadyException", ErrorCode::Overloaded),
            ("ServiceUnavailableException", ErrorCode::Overloaded),
            ("ModelTimeoutException", ErrorCode::Timeout),
            ("InternalServerException", ErrorCode::ServerError),
            // As event-stream exception frames name them.
            ("throttlingException", ErrorCode::RateLimit),
            ("modelStreamErrorException", ErrorCode::StreamInterrupted),
            ("validationException", ErrorCode::InvalidRequest),
            ("serviceUnavailableException", ErrorCode::Overloaded),
        ] {
            assert_eq!(code_for_aws_error(kind), code, "{kind}");
        }
    }

    #[test]
    fn anthropic_error_types_map_to_codes() {
        for (kind, code) in [
            ("invalid_request_error", ErrorCode::InvalidRequest),
            ("authentication_error", ErrorCode::Authentication),
            ("permission_error", ErrorCode::Permission),
            ("not_found_error", ErrorCode::NotFound),
            ("request_too_large", ErrorCode::InvalidRequest),
            ("rate_limit_error", ErrorCode::RateLimit),
            ("overloaded_error", ErrorCode::Overloaded),
            ("api_error", ErrorCode::ServerError),
        ] {
            let body = json!({"type": "error", "error": {"type": kind, "message": "m"}});
            let info = parse_error_body(&body).unwrap();
            assert_eq!(
                code_for_error_kind(info.kind.as_deref(), info.code.as_deref()),
                code,
                "{kind}"
            );
        }
    }
}
