//! Claude on Bedrock's InvokeModel: the Anthropic Messages body with Bedrock's `anthropic_version`,
//! and stream chunks that wrap Anthropic stream events in base64.

use super::{chunk_payload, invocation_metrics};
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
        let payload = chunk_payload(event)?;
        if let Some((input, output)) = invocation_metrics(&payload) {
            self.inner.fill_usage(input, output);
        }
        self.inner.on_json(&payload, out)
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

    fn chunk(inner: Value) -> SseEvent {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(inner.to_string());
        SseEvent {
            event: Some("chunk".into()),
            data: json!({ "bytes": b64, "p": "abc" }).to_string(),
            id: None,
        }
    }

    #[test]
    fn invocation_metrics_supply_usage_the_events_lack() {
        let mut s = ClaudeInvokeStream::new("m", None);
        let mut out = Vec::new();
        for ev in [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "m", "content": []}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 16, "outputTokenCount": 21}}),
        ] {
            s.on_event(&chunk(ev), &mut out).unwrap();
        }
        assert!(s.is_done());
        s.finish(&mut out).unwrap();
        let usage = out.last().unwrap().usage.as_ref().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (16, 21, 37)
        );
    }

    #[test]
    fn the_recorded_stream_agrees_with_its_metrics() {
        use crate::client::eventstream::EventStreamFramer;
        use crate::client::stream::Framer;
        let bytes = std::fs::read(format!(
            "{}/tests/fixtures/bedrock/invoke-stream/claude3-text.eventstream.bin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut framer = EventStreamFramer::new();
        let mut events = Vec::new();
        framer.feed(&bytes, &mut events).unwrap();
        framer.finish(&mut events).unwrap();
        let mut s = ClaudeInvokeStream::new("m", None);
        let mut out = Vec::new();
        for ev in &events {
            s.on_event(ev, &mut out).unwrap();
        }
        s.finish(&mut out).unwrap();
        let text: String = out
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert_eq!(
            text,
            "Why did the distributed tracing span cross the road? To get to the other service!"
        );
        let usage = out.last().unwrap().usage.as_ref().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (16, 21));
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
