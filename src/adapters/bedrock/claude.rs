//! Claude on Bedrock's InvokeModel: the Anthropic Messages body with Bedrock's `anthropic_version`,
//! and stream chunks that wrap Anthropic stream events in base64.

use super::chunk_payload;
use crate::adapters::anthropic::{self, request::AnthropicRequest, stream::AnthropicStream};
use crate::adapters::StreamAdapter;
use crate::client::sse::SseEvent;
use crate::error::{Error, Result};
use crate::types::request::ChatRequest;
use crate::types::response::ChatCompletionChunk;
use serde_json::{json, Value};

pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Anthropic fields Bedrock's InvokeModel does not accept for Claude.
const NOT_ON_BEDROCK: [&str; 4] = ["model", "stream", "metadata", "service_tier"];

pub fn build_body(req: &ChatRequest, model: &str) -> Result<AnthropicRequest> {
    let mut built = anthropic::request::build_body(req, model, false)?;
    let Value::Object(body) = &mut built.body else {
        return Err(Error::internal("the Anthropic body is not an object"));
    };
    for key in NOT_ON_BEDROCK {
        body.remove(key);
    }
    // Bedrock takes images only inline.
    let url_image = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .any(|block| block["type"] == "image" && block["source"]["type"] == "url");
    if url_image {
        return Err(Error::invalid_request(
            "Claude on Bedrock takes images only as base64 data URIs (data:image/png;base64,…), not as URLs.",
        ));
    }
    let mut with_version = serde_json::Map::new();
    with_version.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    with_version.extend(std::mem::take(body));
    built.body = Value::Object(with_version);
    Ok(built)
}

/// InvokeModelWithResponseStream chunks → the Anthropic stream adapter.
pub struct ClaudeInvokeStream {
    inner: AnthropicStream,
}

impl ClaudeInvokeStream {
    pub fn new(requested_model: &str, json_tool: Option<String>) -> Self {
        ClaudeInvokeStream {
            inner: AnthropicStream::new(requested_model, json_tool),
        }
    }
}

impl StreamAdapter for ClaudeInvokeStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if event.event.as_deref() != Some("chunk") {
            return Ok(());
        }
        self.inner.on_json(&chunk_payload(event)?, out)
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }

    fn finish(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        self.inner.finish(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn req(v: Value) -> ChatRequest {
        ChatRequest::from_value(v).unwrap()
    }

    #[test]
    fn the_anthropic_body_with_bedrocks_version_and_without_unsupported_fields() {
        let r = req(json!({
            "model": "anthropic.claude-3-haiku-20240307-v1:0",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
            "max_tokens": 100, "user": "u1"
        }));
        let built = build_body(&r, "anthropic.claude-3-haiku-20240307-v1:0").unwrap();
        assert_eq!(
            built.body,
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "system": "S",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 100
            })
        );
        // The first key is the version, as AWS's examples write it.
        assert_eq!(
            built.body.as_object().unwrap().keys().next().unwrap(),
            "anthropic_version"
        );
    }

    #[test]
    fn image_urls_are_refused_on_bedrock() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ]}]}),
        );
        let e = build_body(&r, "anthropic.claude-3-haiku-20240307-v1:0").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("base64"));
    }
}
