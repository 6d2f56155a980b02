//! AWS Bedrock Runtime: Claude and Llama 3.1 over InvokeModel, every model over Converse.

pub mod claude;
pub mod converse;
pub mod llama;

use crate::client::sse::SseEvent;
use crate::error::{Error, ErrorCode, Result};
use base64::Engine;
use serde_json::Value;

/// The model id as a URL path segment, encoded as the AWS SDK does (`:` → `%3A`, `/` in ARNs →
/// `%2F`), so that the signed path is the path sent.
pub fn model_path_segment(model_id: &str) -> String {
    let mut out = String::with_capacity(model_id.len() + 8);
    for b in model_id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The model's own JSON inside an InvokeModelWithResponseStream `chunk` event:
/// `{"bytes": "<base64>", "p": "<padding>"}`.
pub fn chunk_payload(event: &SseEvent) -> Result<Value> {
    let wrapper: Value = serde_json::from_str(&event.data)
        .map_err(|e| malformed(format!("a chunk is not JSON ({e})")))?;
    let encoded = wrapper
        .get("bytes")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a chunk has no `bytes` field".into()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| malformed(format!("a chunk's `bytes` is not base64 ({e})")))?;
    serde_json::from_slice(&raw)
        .map_err(|e| malformed(format!("a chunk's decoded bytes are not JSON ({e})")))
}

fn malformed(what: String) -> Error {
    Error::new(
        ErrorCode::StreamInterrupted,
        format!("Bedrock sent a malformed stream: {what}; the answer may be incomplete."),
    )
}

/// Usage from `amazon-bedrock-invocationMetrics` (`inputTokenCount`, `outputTokenCount`), which
/// Bedrock adds to the last chunk of an InvokeModel stream.
pub fn invocation_metrics(payload: &Value) -> Option<(u64, u64)> {
    let m = payload.get("amazon-bedrock-invocationMetrics")?;
    Some((
        m.get("inputTokenCount")?.as_u64()?,
        m.get("outputTokenCount")?.as_u64()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_like_the_aws_sdk() {
        assert_eq!(
            model_path_segment("anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1%3A0"
        );
        assert_eq!(
            model_path_segment("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x"
        );
    }

    #[test]
    fn chunk_payloads_are_unwrapped() {
        let inner = r#"{"type":"message_stop"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
        let ev = SseEvent {
            event: Some("chunk".into()),
            data: format!(r#"{{"bytes":"{b64}","p":"abcdef"}}"#),
            id: None,
        };
        assert_eq!(chunk_payload(&ev).unwrap()["type"], "message_stop");
        let bad = SseEvent {
            event: Some("chunk".into()),
            data: r#"{"bytes":"***"}"#.into(),
            id: None,
        };
        assert_eq!(
            chunk_payload(&bad).unwrap_err().code,
            ErrorCode::StreamInterrupted
        );
    }
}
