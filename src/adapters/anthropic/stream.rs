//! Anthropic Messages stream events → canonical chunks, as a state machine over parsed events.
//!
//! It holds the stream to the same contract as the OpenAI side: the first chunk carries
//! `role: "assistant"`; `tool_use` blocks become tool calls numbered 0, 1, 2… in order of
//! appearance, the first delta of each with its id and type; exactly one chunk carries a
//! `finish_reason`; usage comes alone in a last chunk with `choices: []`; a stream that ends
//! before `message_stop` is an error.

use super::response::{arguments_text, finish_reason, usage};
use crate::adapters::error_body::{code_for_error_kind, parse_error_body};
use crate::adapters::StreamAdapter;
use crate::client::sse::SseEvent;
use crate::error::{Error, ErrorCode, Result};
use crate::ids;
use crate::types::response::{
    chunk_object, native_finish_reason, now_seconds, ChatCompletionChunk, ChunkChoice, Delta,
    FunctionDelta, ToolCallDelta, Usage,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct AnthropicStream {
    requested_model: String,
    json_tool: Option<String>,
    id: Option<String>,
    model: Option<String>,
    created: Option<i64>,
    /// `message_start`'s usage, overridden field by field by each `message_delta`'s.
    usage: Map<String, Value>,
    /// Open content blocks that need state, by Anthropic's block `index`.
    blocks: BTreeMap<u64, Block>,
    tool_calls: u32,
    json_tool_used: bool,
    /// The first (role) chunk was sent.
    started: bool,
    /// The chunk with the finish_reason was sent.
    finished: bool,
    /// `message_stop` was seen.
    done: bool,
    /// `finish` ran.
    ended: bool,
}

#[derive(Debug)]
enum Block {
    /// `index`: our tool-call index; None for the json_tool, whose input is the answer's content.
    /// `complete`: the start event already carried the whole input, so later deltas would repeat it.
    Tool {
        index: Option<u32>,
        complete: bool,
    },
    Thinking {
        text: String,
        signature: String,
    },
}

impl AnthropicStream {
    /// `json_tool`: name of the tool that carries a `response_format`; its `input_json_delta`s are
    /// delivered as `content` (the JSON answer) instead of tool-call deltas, and its `tool_use`
    /// stop is a normal "stop".
    pub fn new(requested_model: &str, json_tool: Option<String>) -> Self {
        AnthropicStream {
            requested_model: requested_model.to_string(),
            json_tool,
            id: None,
            model: None,
            created: None,
            usage: Map::new(),
            blocks: BTreeMap::new(),
            tool_calls: 0,
            json_tool_used: false,
            started: false,
            finished: false,
            done: false,
            ended: false,
        }
    }

    /// One Anthropic stream event, already parsed: the SSE `data` JSON, or the decoded payload of
    /// an event-stream frame. Same semantics as `on_event`.
    /// Token counts from elsewhere (Bedrock's invocation metrics), used where the events gave none.
    pub fn fill_usage(&mut self, input_tokens: u64, output_tokens: u64) {
        for (key, n) in [
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
        ] {
            self.usage
                .entry(key.to_string())
                .or_insert_with(|| Value::from(n));
        }
    }

    pub fn on_json(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        self.handle(event, None, out)
    }
}

impl StreamAdapter for AnthropicStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.done || self.ended {
            return Ok(());
        }
        let data = event.data.trim();
        let name = event.event.as_deref();
        if name == Some("error") {
            let body = serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into()));
            return Err(stream_error(body));
        }
        if data.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            Error::new(
                ErrorCode::StreamInterrupted,
                format!("Anthropic sent a stream event that is not valid JSON ({e}); the answer may be incomplete."),
            )
            .with_body(Some(Value::String(data.chars().take(2000).collect())))
        })?;
        self.handle(&value, name, out)
    }

    /// `message_stop` was seen; nothing after it matters.
    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        if !self.done {
            return Err(Error::new(
                ErrorCode::StreamInterrupted,
                "The stream ended before message_stop; what arrived from Anthropic is incomplete.",
            ));
        }
        if !self.finished {
            // message_stop without a stop_reason: the answer is complete.
            self.push_finish(None, out);
        }
        if !self.usage.is_empty() {
            let usage = usage(&Value::Object(self.usage.clone()));
            let chunk = self.chunk(Vec::new(), Some(usage));
            out.push(chunk);
        }
        Ok(())
    }
}

impl AnthropicStream {
    /// `sse_name`: the SSE `event:` field, used when the data has no `type`.
    fn handle(
        &mut self,
        event: &Value,
        sse_name: Option<&str>,
        out: &mut Vec<ChatCompletionChunk>,
    ) -> Result<()> {
        if self.done || self.ended {
            return Ok(());
        }
        let kind = event.get("type").and_then(Value::as_str).or(sse_name);
        match kind {
            Some("error") => return Err(stream_error(event.clone())),
            None if event.get("error").is_some_and(|e| !e.is_null()) => {
                return Err(stream_error(event.clone()))
            }
            Some("message_start") => self.message_start(event, out),
            Some("content_block_start") => self.block_start(event, out),
            Some("content_block_delta") => self.block_delta(event, out),
            Some("content_block_stop") => self.block_stop(event, out),
            Some("message_delta") => self.message_delta(event, out),
            Some("message_stop") => self.done = true,
            // `ping` and event types added after this was written.
            _ => {}
        }
        Ok(())
    }

    fn message_start(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let message = event.get("message").unwrap_or(&Value::Null);
        let text = |k: &str| {
            message
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        // A stream that (wrongly) sent chunks first keeps the id and model they carried.
        if self.id.is_none() {
            self.id = text("id");
        }
        if self.model.is_none() {
            self.model = text("model");
        }
        if let Some(Value::Object(u)) = message.get("usage") {
            merge_usage(&mut self.usage, u);
        }
        self.ensure_started(out);
    }

    fn block_start(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let Some(block) = event.get("content_block") else {
            return;
        };
        let index = event.get("index").and_then(Value::as_u64);
        let text = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or("");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => self.push_content(text("text"), out),
            Some("thinking") => {
                self.push_reasoning(text("thinking"), out);
                if let Some(index) = index {
                    let block = Block::Thinking {
                        text: text("thinking").to_string(),
                        signature: text("signature").to_string(),
                    };
                    self.blocks.insert(index, block);
                }
            }
            Some("redacted_thinking") => self.push_delta(
                Delta {
                    thinking_blocks: Some(vec![block.clone()]),
                    ..Default::default()
                },
                out,
            ),
            Some("tool_use") => {
                // Without an index its deltas could not be told apart from another block's.
                if let Some(index) = index {
                    self.tool_start(index, block, out);
                }
            }
            // Server tools, their results and future block types have no OpenAI form.
            _ => {}
        }
    }

    fn tool_start(&mut self, block_index: u64, block: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let name = block.get("name").and_then(Value::as_str).unwrap_or("");
        // Anthropic starts with `input: {}` and streams the input; a start that already holds it
        // (some gateways) is the whole input.
        let input = block
            .get("input")
            .filter(|i| !i.is_null() && i.as_object().is_none_or(|o| !o.is_empty()))
            .map(arguments_text);
        let complete = input.is_some();
        if self.json_tool.as_deref() == Some(name) {
            self.json_tool_used = true;
            self.blocks.insert(
                block_index,
                Block::Tool {
                    index: None,
                    complete,
                },
            );
            self.push_content(input.as_deref().unwrap_or(""), out);
            return;
        }
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.blocks.insert(
            block_index,
            Block::Tool {
                index: Some(index),
                complete,
            },
        );
        let id = block
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(ids::tool_call_id);
        let call = ToolCallDelta {
            index: Some(index),
            id: Some(id),
            kind: Some("function".into()),
            function: Some(FunctionDelta {
                name: Some(name.to_string()),
                arguments: Some(input.unwrap_or_default()),
            }),
            ..Default::default()
        };
        self.push_tool_call(call, out);
    }

    fn block_delta(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let Some(delta) = event.get("delta") else {
            return;
        };
        let block = event
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| self.blocks.get_mut(&i));
        let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => self.push_content(text("text"), out),
            Some("thinking_delta") => {
                if let Some(Block::Thinking { text: t, .. }) = block {
                    t.push_str(text("thinking"));
                }
                self.push_reasoning(text("thinking"), out);
            }
            Some("signature_delta") => {
                if let Some(Block::Thinking { signature, .. }) = block {
                    signature.push_str(text("signature"));
                }
            }
            Some("input_json_delta") => {
                let partial = text("partial_json");
                match block {
                    Some(Block::Tool { complete: true, .. }) => {}
                    Some(Block::Tool { index: None, .. }) => self.push_content(partial, out),
                    Some(&mut Block::Tool {
                        index: Some(index), ..
                    }) if !partial.is_empty() => {
                        let call = ToolCallDelta {
                            index: Some(index),
                            function: Some(FunctionDelta {
                                name: None,
                                arguments: Some(partial.to_string()),
                            }),
                            ..Default::default()
                        };
                        self.push_tool_call(call, out);
                    }
                    // A delta for a block that never started has no tool call to belong to.
                    _ => {}
                }
            }
            // `citations_delta` and future delta types.
            _ => {}
        }
    }

    fn block_stop(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let Some(index) = event.get("index").and_then(Value::as_u64) else {
            return;
        };
        if let Some(Block::Thinking { text, signature }) = self.blocks.remove(&index) {
            let block = json!({ "type": "thinking", "thinking": text, "signature": signature });
            self.push_delta(
                Delta {
                    thinking_blocks: Some(vec![block]),
                    ..Default::default()
                },
                out,
            );
        }
    }

    fn message_delta(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        if let Some(Value::Object(u)) = event.get("usage") {
            merge_usage(&mut self.usage, u);
        }
        let stop_reason = event
            .get("delta")
            .and_then(|d| d.get("stop_reason"))
            .and_then(Value::as_str);
        if let Some(reason) = stop_reason {
            if !self.finished {
                self.push_finish(Some(reason), out);
            }
        }
    }

    fn push_finish(&mut self, stop_reason: Option<&str>, out: &mut Vec<ChatCompletionChunk>) {
        self.ensure_started(out);
        self.finished = true;
        // The json_tool's `tool_use` is the answer, unless real tool calls came with it.
        let mut reason = finish_reason(
            stop_reason.unwrap_or("end_turn"),
            self.json_tool_used && self.tool_calls == 0,
        );
        if reason == "stop" && self.tool_calls > 0 {
            reason = "tool_calls".into();
        }
        let choice = ChunkChoice {
            index: 0,
            delta: Delta::default(),
            native_finish_reason: stop_reason.and_then(|r| native_finish_reason(r, &reason)),
            finish_reason: Some(reason),
            logprobs: None,
            extra: Map::new(),
        };
        let chunk = self.chunk(vec![choice], None);
        out.push(chunk);
    }

    fn push_content(&mut self, text: &str, out: &mut Vec<ChatCompletionChunk>) {
        if !text.is_empty() {
            self.push_delta(
                Delta {
                    content: Some(text.to_string()),
                    ..Default::default()
                },
                out,
            );
        }
    }

    fn push_reasoning(&mut self, text: &str, out: &mut Vec<ChatCompletionChunk>) {
        if !text.is_empty() {
            self.push_delta(
                Delta {
                    reasoning_content: Some(text.to_string()),
                    ..Default::default()
                },
                out,
            );
        }
    }

    fn push_tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<ChatCompletionChunk>) {
        self.push_delta(
            Delta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            out,
        );
    }

    /// A content chunk for choice 0. Nothing follows the finish chunk, so a stray block event
    /// after `message_delta` is dropped.
    fn push_delta(&mut self, delta: Delta, out: &mut Vec<ChatCompletionChunk>) {
        if self.finished {
            return;
        }
        self.ensure_started(out);
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason: None,
            native_finish_reason: None,
            logprobs: None,
            extra: Map::new(),
        };
        let chunk = self.chunk(vec![choice], None);
        out.push(chunk);
    }

    fn ensure_started(&mut self, out: &mut Vec<ChatCompletionChunk>) {
        if self.started {
            return;
        }
        self.started = true;
        let choice = ChunkChoice {
            index: 0,
            delta: Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Default::default()
            },
            finish_reason: None,
            native_finish_reason: None,
            logprobs: None,
            extra: Map::new(),
        };
        let chunk = self.chunk(vec![choice], None);
        out.push(chunk);
    }

    fn chunk(&mut self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.get_or_insert_with(ids::completion_id).clone(),
            object: chunk_object(),
            created: *self.created.get_or_insert_with(now_seconds),
            model: self
                .model
                .get_or_insert_with(|| self.requested_model.clone())
                .clone(),
            choices,
            usage,
            extra: Map::new(),
        }
    }
}

/// Fields present (and not null) in `update` replace those in `usage`.
fn merge_usage(usage: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (k, v) in update {
        if !v.is_null() {
            usage.insert(k.clone(), v.clone());
        }
    }
}

fn stream_error(body: Value) -> Error {
    let info = parse_error_body(&body).unwrap_or_default();
    let message = if info.message.is_empty() {
        body.to_string().chars().take(500).collect()
    } else {
        info.message
    };
    let kind = info
        .kind
        .as_deref()
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    Error::new(
        code_for_error_kind(info.kind.as_deref(), info.code.as_deref()),
        format!("Anthropic reported an error during the stream: {message}{kind}"),
    )
    .with_body(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::contract::{assemble, Assembled};
    use crate::client::sse::SseDecoder;

    const FIXTURES: [&str; 7] = [
        "cache-read-usage-in-message-delta.sse",
        "error-first-event.TEST-LITERAL.sse",
        "error-overloaded-mid-stream.TEST-LITERAL.sse",
        "redacted-thinking.sse",
        "text.sse",
        "thinking.sse",
        "tool-use-input-json-delta.sse",
    ];

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/anthropic/sse/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// SSE events of `bytes`, fed `size` bytes at a time.
    fn decode(bytes: &[u8], size: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for piece in bytes.chunks(size.max(1)) {
            decoder.feed(piece, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        events
    }

    /// The chunks produced up to the end or the first error, and how it ended.
    fn run_events(
        events: &[SseEvent],
        json_tool: Option<&str>,
    ) -> (Vec<ChatCompletionChunk>, Result<()>) {
        let mut s = AnthropicStream::new("requested", json_tool.map(str::to_string));
        let mut out = Vec::new();
        let result = events
            .iter()
            .try_for_each(|e| s.on_event(e, &mut out))
            .and_then(|()| s.finish(&mut out));
        (out, result)
    }

    fn run(bytes: &[u8]) -> (Vec<ChatCompletionChunk>, Result<()>) {
        run_events(&decode(bytes, bytes.len()), None)
    }

    fn run_ok(bytes: &[u8]) -> Vec<ChatCompletionChunk> {
        let (chunks, result) = run(bytes);
        result.unwrap();
        chunks
    }

    fn sse(events: &[Value]) -> Vec<u8> {
        events
            .iter()
            .map(|e| {
                format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap_or("x")
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    /// What a fixture says, read straight from its `data:` lines.
    #[derive(Debug, Default)]
    struct Expected {
        id: String,
        model: String,
        text: String,
        thinking: String,
        signature: String,
        redacted: Vec<String>,
        /// (id, name, concatenated partial_json)
        tools: Vec<(String, String, String)>,
        stop_reason: String,
        usage: Map<String, Value>,
    }

    fn expected(bytes: &[u8]) -> Expected {
        let mut x = Expected::default();
        let mut tool_of_block = BTreeMap::new();
        for line in std::str::from_utf8(bytes).unwrap().lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let v: Value = serde_json::from_str(data).unwrap();
            let s = |v: &Value| v.as_str().unwrap().to_string();
            match v["type"].as_str().unwrap() {
                "message_start" => {
                    x.id = s(&v["message"]["id"]);
                    x.model = s(&v["message"]["model"]);
                    x.usage = v["message"]["usage"].as_object().unwrap().clone();
                }
                "content_block_start" => {
                    let b = &v["content_block"];
                    match b["type"].as_str().unwrap() {
                        "tool_use" => {
                            tool_of_block.insert(v["index"].as_u64().unwrap(), x.tools.len());
                            x.tools.push((s(&b["id"]), s(&b["name"]), String::new()));
                        }
                        "redacted_thinking" => x.redacted.push(s(&b["data"])),
                        _ => {}
                    }
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    match d["type"].as_str().unwrap() {
                        "text_delta" => x.text.push_str(d["text"].as_str().unwrap()),
                        "thinking_delta" => x.thinking.push_str(d["thinking"].as_str().unwrap()),
                        "signature_delta" => x.signature = s(&d["signature"]),
                        "input_json_delta" => {
                            let t = tool_of_block[&v["index"].as_u64().unwrap()];
                            x.tools[t].2.push_str(d["partial_json"].as_str().unwrap());
                        }
                        other => panic!("unexpected delta {other}"),
                    }
                }
                "message_delta" => {
                    x.stop_reason = s(&v["delta"]["stop_reason"]);
                    for (k, val) in v["usage"].as_object().unwrap() {
                        x.usage.insert(k.clone(), val.clone());
                    }
                }
                _ => {}
            }
        }
        x
    }

    fn n(usage: &Map<String, Value>, k: &str) -> u64 {
        usage.get(k).and_then(Value::as_u64).unwrap_or(0)
    }

    /// The parts every complete fixture shares: id, model, usage, finish.
    fn check_common(chunks: &[ChatCompletionChunk], x: &Expected) -> Assembled {
        let a = assemble(chunks);
        assert_eq!(chunks[0].id, x.id);
        assert_eq!(chunks[0].model, x.model);
        assert!((chunks[0].created - now_seconds()).abs() < 5);
        assert_eq!(
            chunks[0].choices[0].delta,
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Default::default()
            }
        );
        let u = a.usage.clone().unwrap();
        let prompt = n(&x.usage, "input_tokens")
            + n(&x.usage, "cache_read_input_tokens")
            + n(&x.usage, "cache_creation_input_tokens");
        let output = n(&x.usage, "output_tokens");
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (prompt, output, prompt + output)
        );
        assert_eq!(
            u.prompt_tokens_details.unwrap()["cached_tokens"],
            n(&x.usage, "cache_read_input_tokens")
        );
        a
    }

    #[test]
    fn text() {
        let bytes = fixture("text.sse");
        let x = expected(&bytes);
        let chunks = run_ok(&bytes);
        let a = check_common(&chunks, &x);
        assert!(x.text.starts_with("Here's an OpenTelemetry-themed joke"));
        assert_eq!(a.text, x.text);
        assert_eq!((a.reasoning.as_str(), a.calls.len()), ("", 0));
        assert!(a.thinking_blocks.is_empty());
        assert_eq!(a.finish, "stop");
        let u = a.usage.unwrap();
        // message_start said 3 output tokens; message_delta's cumulative 171 wins.
        assert_eq!((u.prompt_tokens, u.completion_tokens), (17, 171));
        // Role chunk, one chunk per text_delta, finish, usage.
        let text_deltas = bytes.windows(10).filter(|w| w == b"text_delta").count();
        assert_eq!(chunks.len(), 1 + text_deltas + 2);
    }

    #[test]
    fn text_then_two_tool_calls() {
        let bytes = fixture("tool-use-input-json-delta.sse");
        let x = expected(&bytes);
        let a = check_common(&run_ok(&bytes), &x);
        assert!(a.text.starts_with("Certainly! I can help"));
        assert_eq!(a.text, x.text);
        assert_eq!(a.calls.len(), 2);
        assert_eq!(x.tools.len(), 2);
        for (call, tool) in a.calls.iter().zip(&x.tools) {
            assert_eq!((&call.0, &call.1), (&tool.0, &tool.1));
            let got: Value = serde_json::from_str(&call.2).unwrap();
            let want: Value = serde_json::from_str(&tool.2).unwrap();
            assert_eq!(got, want);
        }
        assert_eq!(a.calls[0].1, "get_weather");
        assert_eq!(a.calls[1].1, "get_time");
        assert_eq!(x.stop_reason, "tool_use");
        assert_eq!(a.finish, "tool_calls");
    }

    #[test]
    fn thinking_streams_as_reasoning_and_ends_with_its_signed_block() {
        let bytes = fixture("thinking.sse");
        let x = expected(&bytes);
        let chunks = run_ok(&bytes);
        let a = check_common(&chunks, &x);
        assert!(x.thinking.starts_with("Let me count"));
        assert_eq!(a.reasoning, x.thinking);
        assert_eq!(a.text, x.text);
        assert!(!x.signature.is_empty());
        assert_eq!(
            a.thinking_blocks,
            vec![json!({"type": "thinking", "thinking": x.thinking, "signature": x.signature})]
        );
        // The signed block arrives after the reasoning and before the answer text.
        let at = |f: &dyn Fn(&Delta) -> bool| {
            chunks
                .iter()
                .position(|c| c.choices.first().is_some_and(|ch| f(&ch.delta)))
                .unwrap()
        };
        let block = at(&|d| d.thinking_blocks.is_some());
        assert!(at(&|d| d.reasoning_content.is_some()) < block);
        assert!(block < at(&|d| d.content.as_deref().is_some_and(|c| !c.is_empty())));
        assert_eq!(a.finish, "stop");
    }

    #[test]
    fn redacted_thinking_blocks_are_forwarded() {
        let bytes = fixture("redacted-thinking.sse");
        let x = expected(&bytes);
        let a = check_common(&run_ok(&bytes), &x);
        assert_eq!(x.redacted.len(), 2);
        let want: Vec<Value> = x
            .redacted
            .iter()
            .map(|d| json!({"type": "redacted_thinking", "data": d}))
            .collect();
        assert_eq!(a.thinking_blocks, want);
        assert_eq!(a.reasoning, "");
        assert_eq!(a.text, x.text);
        assert!(a.text.starts_with("I notice that"));
        assert_eq!(a.finish, "stop");
    }

    #[test]
    fn cache_reads_count_as_prompt_tokens() {
        let bytes = fixture("cache-read-usage-in-message-delta.sse");
        let x = expected(&bytes);
        let a = check_common(&run_ok(&bytes), &x);
        assert_eq!(a.text, "Hello");
        let u = a.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1220, 4, 1224)
        );
        let d = u.prompt_tokens_details.unwrap();
        assert_eq!(
            (
                d["cached_tokens"].clone(),
                d["cache_creation_tokens"].clone()
            ),
            (json!(1217), json!(0))
        );
    }

    #[test]
    fn message_delta_usage_overrides_message_start() {
        let events = [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"input_tokens": 12, "output_tokens": 7, "cache_creation_input_tokens": null}}),
            json!({"type": "message_stop"}),
        ];
        let a = assemble(&run_ok(&sse(&events)));
        assert_eq!(a.text, "Hi");
        assert_eq!(a.finish, "length");
        let u = a.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (12 + 5, 7));
    }

    #[test]
    fn error_as_the_first_event() {
        let (chunks, result) = run(&fixture("error-first-event.TEST-LITERAL.sse"));
        let e = result.unwrap_err();
        assert!(chunks.is_empty());
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert!(e.retryable);
        assert!(e.message.contains("Overloaded"), "{}", e.message);
        assert_eq!(e.body.unwrap()["error"]["type"], "overloaded_error");
    }

    #[test]
    fn error_in_the_middle_of_the_stream() {
        let (chunks, result) = run(&fixture("error-overloaded-mid-stream.TEST-LITERAL.sse"));
        assert_eq!(result.unwrap_err().code, ErrorCode::Overloaded);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].id, "msg_01KfpJoAEabmH2iHRRFjQMAG");
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
        assert!(chunks.iter().all(|c| c.choices[0].finish_reason.is_none()));
    }

    #[test]
    fn error_without_the_sse_event_name_or_with_other_kinds() {
        let (_, r) = run(
            br#"data: {"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(r.unwrap_err().code, ErrorCode::RateLimit);
        let (_, r) = run(b"event: error\ndata: upstream exploded\n\n");
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        assert!(e.message.contains("upstream exploded"));
        let mut s = AnthropicStream::new("m", None);
        let e = s
            .on_json(
                &json!({"type": "error", "error": {"type": "api_error", "message": "Internal"}}),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        assert!(e.message.contains("Internal"));
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_an_error() {
        let text = String::from_utf8(fixture("text.sse")).unwrap();
        let stop = text.find("event: message_stop").unwrap();
        // After the finish chunk was sent, still an error: message_stop never came.
        let (chunks, r) = run(&text.as_bytes()[..stop]);
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(e.message.contains("message_stop"), "{}", e.message);
        assert!(chunks.iter().any(|c| c.choices[0].finish_reason.is_some()));
        // Cut in the middle of the text.
        let mid = text.find("Span").unwrap();
        let cut = mid + text[mid..].find("\n\n").unwrap() + 2;
        assert_eq!(
            run(&text.as_bytes()[..cut]).1.unwrap_err().code,
            ErrorCode::StreamInterrupted
        );
        // Cut in the middle of an event's JSON: the decoder hands over the partial data.
        let (_, r) = run(&text.as_bytes()[..mid]);
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        // Nothing at all.
        assert_eq!(run(b"").1.unwrap_err().code, ErrorCode::StreamInterrupted);
    }

    #[test]
    fn events_after_message_stop_are_not_read() {
        let mut bytes = fixture("text.sse");
        bytes.extend_from_slice(b"data: garbage\n\nevent: error\ndata: {}\n\n");
        let whole = run_ok(&fixture("text.sse"));
        assert_eq!(run_ok(&bytes), whole);
        let mut s = AnthropicStream::new("m", None);
        let mut out = Vec::new();
        for e in decode(&fixture("text.sse"), usize::MAX) {
            s.on_event(&e, &mut out).unwrap();
        }
        assert!(s.is_done());
    }

    #[test]
    fn pings_anywhere_are_ignored() {
        let bytes = fixture("text.sse");
        let ping = SseEvent {
            event: Some("ping".into()),
            data: r#"{"type": "ping"}"#.into(),
            id: None,
        };
        let mut events = vec![ping.clone(), ping.clone()];
        for e in decode(&bytes, bytes.len()) {
            events.push(e);
            events.push(ping.clone());
            events.push(ping.clone());
        }
        let (with_pings, r) = run_events(&events, None);
        r.unwrap();
        assert_eq!(with_pings, run_ok(&bytes));
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_chunks() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let events = decode(&bytes, bytes.len());
            assert_eq!(decode(&bytes, 1), events, "{name}");
            let (mut whole, r1) = run_events(&events, None);
            let (mut split, r2) = run_events(&decode(&bytes, 1), None);
            // `created` is the clock at the first chunk; the two runs may straddle a second.
            for c in whole.iter_mut().chain(split.iter_mut()) {
                c.created = 0;
            }
            assert_eq!(whole, split, "{name}");
            assert_eq!(r1.map_err(|e| e.code), r2.map_err(|e| e.code), "{name}");
        }
    }

    #[test]
    fn on_json_matches_on_event() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let (mut by_event, r1) = run(&bytes);
            let mut s = AnthropicStream::new("requested", None);
            let mut by_json = Vec::new();
            let r2 = bytes
                .split(|&b| b == b'\n')
                .filter_map(|l| l.strip_prefix(b"data: "))
                .try_for_each(|d| s.on_json(&serde_json::from_slice(d).unwrap(), &mut by_json))
                .and_then(|()| s.finish(&mut by_json));
            for c in by_event.iter_mut().chain(by_json.iter_mut()) {
                c.created = 0;
            }
            assert_eq!(by_event, by_json, "{name}");
            assert_eq!(r1.map_err(|e| e.code), r2.map_err(|e| e.code), "{name}");
        }
    }

    fn json_tool_events(start_input: Value, pieces: &[&str]) -> Vec<Value> {
        let mut events = vec![
            json!({"type": "message_start", "message": {"id": "msg_j", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_j", "name": "answer", "input": start_input}}),
        ];
        for p in pieces {
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}));
        }
        events.extend([
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
            json!({"type": "message_stop"}),
        ]);
        events
    }

    #[test]
    fn the_json_tool_streams_as_content_and_stops_normally() {
        let bytes = sse(&json_tool_events(
            json!({}),
            &["", "{\"city\": ", "\"Paris\"", ", \"temp\": 20}"],
        ));
        let (chunks, r) = run_events(&decode(&bytes, bytes.len()), Some("answer"));
        r.unwrap();
        let a = assemble(&chunks);
        assert_eq!(a.text, r#"{"city": "Paris", "temp": 20}"#);
        assert!(a.calls.is_empty());
        assert_eq!(a.finish, "stop");
        assert_eq!(a.usage.unwrap().completion_tokens, 12);
        // Without json_tool it is an ordinary tool call.
        let a = assemble(&run_ok(&bytes));
        assert_eq!(a.text, "");
        assert_eq!(
            a.calls,
            vec![(
                "toolu_j".into(),
                "answer".into(),
                r#"{"city": "Paris", "temp": 20}"#.into()
            )]
        );
        assert_eq!(a.finish, "tool_calls");
    }

    #[test]
    fn a_tool_input_given_whole_at_the_start_is_used_once() {
        let bytes = sse(&json_tool_events(json!({"a": 1}), &["{\"a\": 1}"]));
        let (chunks, r) = run_events(&decode(&bytes, bytes.len()), Some("answer"));
        r.unwrap();
        assert_eq!(assemble(&chunks).text, r#"{"a":1}"#);
        let a = assemble(&run_ok(&bytes));
        assert_eq!(a.calls[0].2, r#"{"a":1}"#);
    }

    #[test]
    fn tool_calls_are_numbered_in_order_of_appearance() {
        let tool = |index: u64, id: &str| json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": id, "input": {}}});
        let args = |index: u64, p: &str| json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}});
        let events = [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Two calls."}}),
            json!({"type": "content_block_stop", "index": 0}),
            tool(7, "a"),
            tool(3, "b"),
            args(3, "[2"),
            args(7, "[1"),
            args(3, "]"),
            args(7, "]"),
            args(9, "{\"unknown\": 1}"),
            json!({"type": "content_block_delta", "index": 4, "delta": {"type": "citations_delta", "citation": {}}}),
            json!({"type": "content_block_start", "index": 5, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
            args(5, "{\"query\": \"x\"}"),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
            json!({"type": "message_stop"}),
        ];
        let a = assemble(&run_ok(&sse(&events)));
        assert_eq!(a.text, "Two calls.");
        assert_eq!(
            a.calls,
            vec![
                ("a".into(), "a".into(), "[1]".into()),
                ("b".into(), "b".into(), "[2]".into())
            ]
        );
        assert_eq!(a.finish, "tool_calls");
    }

    #[test]
    fn nothing_follows_the_finish_chunk_but_usage() {
        // The docs allow several message_delta events; only the first stop_reason finishes.
        let events = [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 4}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "on time"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": null}, "usage": {"output_tokens": 1}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "late"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 3}}),
            json!({"type": "message_stop"}),
        ];
        let a = assemble(&run_ok(&sse(&events)));
        assert_eq!((a.text.as_str(), a.finish.as_str()), ("on time", "stop"));
        assert_eq!(a.usage.unwrap().completion_tokens, 3);
    }

    // Found by the types review: a stop_reason newer than this release was passed through as
    // finish_reason, outside OpenAI's words.
    #[test]
    fn the_finish_is_in_openai_words_with_anthropic_word_kept() {
        let finish_of = |stop_reason: Value| {
            let events = [
                json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 4}}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}),
                json!({"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 1}}),
                json!({"type": "message_stop"}),
            ];
            let chunks = run_ok(&sse(&events));
            let a = assemble(&chunks);
            let finish = chunks
                .iter()
                .flat_map(|c| &c.choices)
                .find(|ch| ch.finish_reason.is_some())
                .unwrap();
            assert_eq!(finish.finish_reason.as_deref(), Some(a.finish.as_str()));
            (a.finish, finish.native_finish_reason.clone())
        };
        for (given, want) in [
            ("end_turn", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("refusal", "content_filter"),
            ("some_new_reason", "stop"),
        ] {
            assert_eq!(
                finish_of(json!(given)),
                (want.to_string(), Some(given.to_string())),
                "{given}"
            );
        }
        // None given (message_stop alone): stop, and no word of Anthropic's.
        assert_eq!(finish_of(Value::Null), ("stop".to_string(), None));
    }

    #[test]
    fn missing_pieces_are_filled_in() {
        // No message_start, a tool_use without id, message_stop without message_delta.
        let events = [
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "name": "f"}}),
            json!({"type": "message_stop"}),
        ];
        let chunks = run_ok(&sse(&events));
        let a = assemble(&chunks);
        assert!(chunks[0].id.starts_with("chatcmpl-"));
        assert_eq!(chunks[0].model, "requested");
        assert!(a.calls[0].0.starts_with("call_"));
        assert_eq!(a.finish, "tool_calls");
        assert!(a.usage.is_none());
        // Only message_stop.
        let a = assemble(&run_ok(&sse(&[json!({"type": "message_stop"})])));
        assert_eq!((a.text.as_str(), a.finish.as_str()), ("", "stop"));
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            &b"data: not json\n\n"[..],
            b"data: {\"type\":\"message_start\"",
            b"event: message_start\ndata: {\"type\":\"message_start\",}\n\n",
        ] {
            let (_, r) = run(body);
            let e = r.unwrap_err();
            assert_eq!(e.code, ErrorCode::StreamInterrupted);
            assert!(e.body.is_some());
        }
        // JSON that is no event is skipped, like an unknown event type.
        let mut s = AnthropicStream::new("m", None);
        let mut out = Vec::new();
        for v in [
            json!(42),
            json!([1]),
            json!(null),
            json!({"type": "future_event"}),
            json!({"type": 3}),
        ] {
            s.on_json(&v, &mut out).unwrap();
        }
        assert!(out.is_empty());
    }

    /// Every event of every fixture with one field removed or of the wrong type: never a panic,
    /// and whatever completes still keeps the contract.
    #[test]
    fn mutated_events_never_panic() {
        let wrong = [
            json!(null),
            json!(42),
            json!(-1),
            json!("x"),
            json!([]),
            json!({}),
            json!(true),
        ];
        for name in FIXTURES {
            let events = decode(&fixture(name), usize::MAX);
            for (i, event) in events.iter().enumerate() {
                let Ok(Value::Object(original)) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                let mut variants = Vec::new();
                for (k, v) in &original {
                    let mut removed = original.clone();
                    removed.remove(k);
                    variants.push(removed);
                    for w in &wrong {
                        let mut changed = original.clone();
                        changed.insert(k.clone(), w.clone());
                        variants.push(changed);
                    }
                    // One level down: message, content_block, delta, usage.
                    if let Value::Object(inner) = v {
                        for ik in inner.keys() {
                            for w in wrong.iter().take(4) {
                                let mut changed = original.clone();
                                changed[k.as_str()][ik.as_str()] = w.clone();
                                variants.push(changed);
                            }
                        }
                    }
                }
                for variant in variants {
                    let mut mutated = events.clone();
                    mutated[i].data = Value::Object(variant).to_string();
                    let (chunks, r) = run_events(&mutated, None);
                    if r.is_ok() {
                        assemble(&chunks);
                    }
                }
            }
        }
    }
}
