//! OpenAI-format stream events → canonical chunks, as a state machine over already-framed SSE events.
//!
//! It holds the stream to the contract whatever the server did: the first delta of a choice carries
//! `role: "assistant"`; tool calls are numbered 0, 1, 2… in order of appearance and the first delta
//! of each has its id and type; exactly one chunk per choice carries a `finish_reason`; usage comes
//! alone in a last chunk with `choices: []`; a stream that stops before it is complete is an error.

use super::request::Dialect;
use crate::adapters::error_body::{code_for_error_kind, parse_error_body, ProviderError};
use crate::adapters::StreamAdapter;
use crate::client::sse::SseEvent;
use crate::error::{Error, ErrorCode, Result};
use crate::ids;
use crate::types::response::{
    assistant_role, chunk_object, inferred_finish_reason, native_finish_reason, normalize_created,
    normalize_finish_reason, now_seconds, ChatCompletionChunk, ChunkChoice, Delta, Usage,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct ChunkNormalizer {
    requested_model: String,
    id: Option<String>,
    model: Option<String>,
    created: Option<i64>,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
    /// `[DONE]` was seen.
    done: bool,
    /// `finish` ran.
    ended: bool,
    /// OpenAI always ends with `[DONE]` (after the usage chunk); some compatible servers do not.
    require_done: bool,
    /// The provider's extra chunk fields, from its first chunk.
    extra: Map<String, Value>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    /// Upstream tool-call keys in order of appearance; the position is our index.
    tool_keys: Vec<ToolKey>,
    finished: bool,
}

#[derive(Debug, PartialEq)]
enum ToolKey {
    Index(u32),
    Id(String),
}

impl ChunkNormalizer {
    pub fn new(requested_model: &str, dialect: Dialect) -> Self {
        ChunkNormalizer {
            require_done: dialect == Dialect::OpenAi,
            extra: Map::new(),
            requested_model: requested_model.to_string(),
            id: None,
            model: None,
            created: None,
            choices: BTreeMap::new(),
            usage: None,
            done: false,
            ended: false,
        }
    }
}

impl StreamAdapter for ChunkNormalizer {
    /// `[DONE]` was seen; nothing after it matters.
    fn is_done(&self) -> bool {
        self.done
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.done || self.ended {
            return Ok(());
        }
        let data = event.data.trim();
        if event.event.as_deref() == Some("error") {
            return Err(stream_error(data));
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        // Straight into the typed chunk (the common case, and the hot path of a stream); the
        // slower look at the JSON as a tree only when that fails.
        let chunk = match serde_json::from_str::<ChatCompletionChunk>(data) {
            Ok(chunk) => chunk,
            Err(typed) => return Err(not_a_chunk(data, typed)),
        };
        if chunk.extra.get("error").is_some_and(|e| !e.is_null()) {
            return Err(stream_error(data));
        }
        self.on_chunk(chunk, out);
        Ok(())
    }

    /// End of input. Completes the stream (a finish chunk where the server said `[DONE]` without
    /// one, then the usage chunk), or fails if the stream was cut before it was complete.
    fn finish(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        self.finish_stream(out)
    }
}

impl ChunkNormalizer {
    fn on_chunk(&mut self, mut chunk: ChatCompletionChunk, out: &mut Vec<ChatCompletionChunk>) {
        if let Some(usage) = chunk.usage.take() {
            self.usage = Some(usage);
        }
        if self.id.is_none() && !chunk.id.is_empty() {
            self.id = Some(chunk.id.clone());
        }
        if self.model.is_none() && !chunk.model.is_empty() {
            self.model = Some(chunk.model.clone());
        }
        if self.created.is_none() && chunk.created > 0 {
            self.created = Some(normalize_created(chunk.created));
        }
        chunk.extra.remove("obfuscation");
        if self.extra.is_empty() {
            // `system_fingerprint`, `service_tier`…: repeated on the chunks this normaliser adds.
            self.extra = chunk.extra.clone();
        }

        let mut choices = Vec::with_capacity(chunk.choices.len());
        for choice in chunk.choices {
            if let Some(c) = self.normalize_choice(choice) {
                choices.push(c);
            }
        }
        if choices.is_empty() {
            return;
        }
        out.push(ChatCompletionChunk {
            id: self.id(),
            object: chunk_object(),
            created: self.created(),
            model: self.model(),
            choices,
            usage: None,
            extra: chunk.extra,
        });
    }

    fn normalize_choice(&mut self, mut choice: ChunkChoice) -> Option<ChunkChoice> {
        let first = !self.choices.contains_key(&choice.index);
        let state = self.choices.entry(choice.index).or_default();
        if state.finished {
            // The provider said this choice was complete; what follows is not part of it.
            return None;
        }
        let delta = &mut choice.delta;
        delta.role = first.then(|| "assistant".to_string());

        if let Some(calls) = &mut delta.tool_calls {
            for call in calls.iter_mut() {
                let key = match (call.index, &call.id) {
                    (Some(i), _) => Some(ToolKey::Index(i)),
                    (None, Some(id)) if !id.is_empty() => Some(ToolKey::Id(id.clone())),
                    // No index and no id: a continuation of the latest call.
                    (None, _) => None,
                };
                let known = key
                    .as_ref()
                    .map(|k| state.tool_keys.iter().position(|x| x == k))
                    .unwrap_or_else(|| state.tool_keys.len().checked_sub(1));
                let ours = match known {
                    Some(pos) => {
                        // Only the first delta of a call names it.
                        call.id = None;
                        call.kind = None;
                        pos
                    }
                    None => {
                        state
                            .tool_keys
                            .push(key.unwrap_or(ToolKey::Index(u32::MAX)));
                        if call.id.as_deref().is_none_or(str::is_empty) {
                            call.id = Some(ids::tool_call_id());
                        }
                        let custom = match call.kind.as_deref() {
                            Some(kind) => kind == "custom",
                            None => call.custom.is_some() && call.function.is_none(),
                        };
                        if custom {
                            // OpenAI's custom tool call: its `input` comes in pieces.
                            call.kind = Some("custom".into());
                            let c = call.custom.get_or_insert_with(Default::default);
                            c.input.get_or_insert_with(String::new);
                        } else {
                            call.kind = Some("function".into());
                            let f = call.function.get_or_insert_with(Default::default);
                            f.arguments.get_or_insert_with(String::new);
                        }
                        state.tool_keys.len() - 1
                    }
                };
                call.index = Some(ours as u32);
            }
            // Deltas that carry nothing (an empty `arguments` after the first) are dropped.
            calls.retain(|c| c.carries_something());
        }

        // `""` is taken as null: some servers send it on every chunk.
        if let Some(native) = choice.finish_reason.take().filter(|r| !r.is_empty()) {
            state.finished = true;
            let mut r = normalize_finish_reason(&native);
            if r == "stop" && !state.tool_keys.is_empty() {
                r = "tool_calls".into();
            }
            if choice.native_finish_reason.is_none() {
                choice.native_finish_reason = native_finish_reason(&native, &r);
            }
            choice.finish_reason = Some(r);
        } else {
            // Only the finish chunk says it (an upstream's `native_finish_reason: null` on others).
            choice.native_finish_reason = None;
        }

        let carries = !choice.delta.is_empty()
            || choice.finish_reason.is_some()
            || choice.logprobs.as_ref().is_some_and(|l| !l.is_null());
        carries.then_some(choice)
    }

    fn finish_stream(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let any_finished = self.choices.values().any(|c| c.finished);
        if !self.done && !any_finished {
            return Err(Error::new(
                ErrorCode::StreamInterrupted,
                "The stream ended before the provider finished the answer (no finish_reason and no [DONE]); what arrived is incomplete.",
            ));
        }
        if !self.done && self.require_done {
            return Err(Error::new(
                ErrorCode::StreamInterrupted,
                "The stream ended after the answer but before its usage and [DONE], which OpenAI always sends; the connection was cut.",
            ));
        }
        if self.choices.is_empty() {
            // No choice at all (`[DONE]` alone): it still starts with its role.
            self.choices.insert(0, ChoiceState::default());
            let role = ChunkChoice {
                index: 0,
                delta: Delta {
                    role: Some(assistant_role()),
                    ..Default::default()
                },
                finish_reason: None,
                native_finish_reason: None,
                logprobs: None,
                extra: Map::new(),
            };
            out.push(self.bare_chunk(vec![role], None));
        }
        let unfinished: Vec<ChunkChoice> = self
            .choices
            .iter_mut()
            .filter(|(_, s)| !s.finished)
            .map(|(index, s)| {
                s.finished = true;
                ChunkChoice {
                    index: *index,
                    delta: Delta {
                        role: None,
                        ..Default::default()
                    },
                    // `[DONE]` without a finish_reason: the answer is complete.
                    finish_reason: Some(inferred_finish_reason(!s.tool_keys.is_empty())),
                    native_finish_reason: None,
                    logprobs: None,
                    extra: Map::new(),
                }
            })
            .collect();
        if !unfinished.is_empty() {
            out.push(self.bare_chunk(unfinished, None));
        }
        if let Some(mut usage) = self.usage.take() {
            if usage.total_tokens == 0 {
                usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
            }
            out.push(self.bare_chunk(Vec::new(), Some(usage)));
        }
        Ok(())
    }

    fn bare_chunk(
        &mut self,
        choices: Vec<ChunkChoice>,
        usage: Option<Usage>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id(),
            object: chunk_object(),
            created: self.created(),
            model: self.model(),
            choices,
            usage,
            extra: self.extra.clone(),
        }
    }

    fn id(&mut self) -> String {
        self.id.get_or_insert_with(ids::completion_id).clone()
    }

    fn created(&mut self) -> i64 {
        *self.created.get_or_insert_with(now_seconds)
    }

    /// Fixed by the first chunk sent: a model name that arrives later does not change it.
    fn model(&mut self) -> String {
        self.model
            .get_or_insert_with(|| self.requested_model.clone())
            .clone()
    }
}

/// Why `data` is not a chunk: not JSON, an error object, or JSON of another shape.
fn not_a_chunk(data: &str, typed: serde_json::Error) -> Error {
    let value: Value = match serde_json::from_str(data) {
        Ok(value) => value,
        Err(e) => {
            return Error::new(
                ErrorCode::StreamInterrupted,
                format!("The provider sent a stream event that is not valid JSON ({e}); the answer may be incomplete."),
            )
            .with_body(Some(Value::String(data.chars().take(2000).collect())))
        }
    };
    if value.get("error").is_some_and(|e| !e.is_null()) {
        return stream_error(data);
    }
    Error::new(
        ErrorCode::StreamInterrupted,
        format!("The provider sent a stream event that is not a chat.completion.chunk ({typed})."),
    )
}

fn stream_error(data: &str) -> Error {
    let body: Value = serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into()));
    let info = parse_error_body(&body).unwrap_or_else(|| ProviderError {
        message: data.chars().take(500).collect(),
        ..Default::default()
    });
    Error::new(
        code_for_error_kind(info.kind.as_deref(), info.code.as_deref()),
        format!(
            "The provider reported an error during the stream: {}",
            info.message
        ),
    )
    .with_body(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::sse::SseDecoder;
    use serde_json::json;

    fn run(bytes: &[u8]) -> Result<Vec<ChatCompletionChunk>> {
        run_as(bytes, Dialect::Compatible)
    }

    fn run_as(bytes: &[u8], dialect: Dialect) -> Result<Vec<ChatCompletionChunk>> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        decoder.feed(bytes, &mut events).unwrap();
        decoder.finish(&mut events).unwrap();
        let mut n = ChunkNormalizer::new("requested", dialect);
        let mut out = Vec::new();
        for e in &events {
            n.on_event(e, &mut out)?;
        }
        n.finish(&mut out)?;
        Ok(out)
    }

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Text, tool calls as (id, name, arguments), the finish reason, the usage.
    type Assembled = (String, Vec<(String, String, String)>, String, Option<Usage>);

    /// Checks the stream contract and returns what the chunks add up to.
    fn assemble(chunks: &[ChatCompletionChunk]) -> Assembled {
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut finishes = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.object, "chat.completion.chunk");
            if c.choices.is_empty() {
                assert_eq!(i, chunks.len() - 1, "usage chunk must be last");
                assert!(c.usage.is_some());
            } else {
                assert!(c.usage.is_none());
            }
            for ch in &c.choices {
                if i > 0 {
                    assert!(ch.delta.role.is_none());
                }
                text.push_str(ch.delta.content.as_deref().unwrap_or(""));
                for t in ch.delta.tool_calls.iter().flatten() {
                    let idx = t.index.unwrap() as usize;
                    if idx == calls.len() {
                        calls.push((
                            t.id.clone().expect("first delta has id"),
                            String::new(),
                            String::new(),
                        ));
                        assert_eq!(t.kind.as_deref(), Some("function"));
                    } else {
                        assert!(idx < calls.len(), "tool index {idx} skips numbers");
                        assert!(t.id.is_none());
                    }
                    if let Some(f) = &t.function {
                        calls[idx].1.push_str(f.name.as_deref().unwrap_or(""));
                        calls[idx].2.push_str(f.arguments.as_deref().unwrap_or(""));
                    }
                }
                if let Some(r) = &ch.finish_reason {
                    finishes.push(r.clone());
                }
            }
        }
        assert_eq!(finishes.len(), 1, "exactly one finish_reason");
        let usage = chunks.last().unwrap().usage.clone();
        (text, calls, finishes.remove(0), usage)
    }

    #[test]
    fn text_with_usage() {
        let chunks = run(&fixture("openai/sse/text-include-usage.sse")).unwrap();
        let (text, calls, finish, usage) = assemble(&chunks);
        assert!(text.starts_with("I now can give a great answer"), "{text}");
        assert!(text.ends_with("landmarks."));
        assert!(calls.is_empty());
        assert_eq!(finish, "stop");
        let usage = usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (168, 137, 305)
        );
        assert_eq!(chunks[0].id, "chatcmpl-ClLAi76zCMxpauGRKQ6MTp0xe6EyS");
        assert_eq!(chunks[0].model, "gpt-4o-mini-2024-07-18");
        assert_eq!(chunks[0].created, 1765398836);
        let v = serde_json::to_value(&chunks[1]).unwrap();
        assert!(v.get("obfuscation").is_none());
        assert_eq!(v["system_fingerprint"], "fp_11f3029f6b");
        // The usage chunk, made here, carries the same provider fields.
        let last = serde_json::to_value(chunks.last().unwrap()).unwrap();
        assert_eq!(last["system_fingerprint"], "fp_11f3029f6b");
        assert_eq!(last["service_tier"], "default");
        // 139 upstream chunks with choices → as many out, plus the usage chunk.
        assert_eq!(chunks.len(), 140);
    }

    #[test]
    fn tool_call_deltas() {
        let chunks = run(&fixture("openai/sse/tool-call-deltas-2024.sse")).unwrap();
        let (text, calls, finish, usage) = assemble(&chunks);
        assert_eq!(text, "");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "call_P9Ayqu3UQNYuTBVAg2sLimh9");
        assert_eq!(calls[0].1, "get_current_weather");
        let args: Value = serde_json::from_str(&calls[0].2).unwrap();
        assert_eq!(args["location"], "San Francisco");
        assert_eq!(finish, "tool_calls");
        assert!(usage.is_none());
    }

    #[test]
    fn parallel_tool_call_deltas() {
        for f in [
            "openai/sse/parallel-tool-call-deltas-2024.sse",
            "openai/sse/parallel-tool-call-deltas-2026.sse",
        ] {
            let chunks = run(&fixture(f)).unwrap();
            let (_, calls, finish, _) = assemble(&chunks);
            assert_eq!(calls.len(), 2, "{f}");
            assert!(calls.iter().all(|c| c.1 == "get_current_weather"));
            let cities: Vec<String> = calls
                .iter()
                .map(|c| {
                    serde_json::from_str::<Value>(&c.2).unwrap()["location"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert!(
                cities[0].contains("San Francisco") && cities[1].contains("Boston"),
                "{cities:?}"
            );
            assert_eq!(finish, "tool_calls");
        }
    }

    #[test]
    fn deepseek_usage_on_the_finish_chunk_moves_to_its_own_chunk() {
        let chunks = run(&fixture(
            "openai-compatible/sse/deepseek-usage-in-final-choice-chunk.sse",
        ))
        .unwrap();
        let (text, _, finish, usage) = assemble(&chunks);
        assert!(text.starts_with("Sure! Here"), "{text}");
        assert!(text.ends_with(" 😄"));
        assert_eq!(finish, "stop");
        let usage = usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (12, 89, 101)
        );
        assert_eq!(usage.extra["prompt_cache_miss_tokens"], 12);
    }

    #[test]
    fn gateway_tool_index_starting_at_one_is_renumbered_from_zero() {
        let chunks = run(&fixture(
            "openai-compatible/sse/gateway-tool-call-index-1.sse",
        ))
        .unwrap();
        let (text, calls, finish, _) = assemble(&chunks);
        assert_eq!(text, "Reading it.");
        assert_eq!(
            calls,
            vec![(
                "toolu_sanitized".into(),
                "read_file".into(),
                "{\"path\": \"a.txt\"}".into()
            )]
        );
        assert_eq!(finish, "tool_calls");
    }

    #[test]
    fn missing_done_after_a_finish_is_complete() {
        let body = b"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"eos\"}]}\n\n";
        let chunks = run(body).unwrap();
        let (text, _, finish, _) = assemble(&chunks);
        assert_eq!((text.as_str(), finish.as_str()), ("hi", "stop"));
    }

    #[test]
    fn openai_streams_cut_before_done_are_errors_even_after_the_finish() {
        let full = fixture("openai/sse/text-include-usage.sse");
        let whole = run_as(&full, Dialect::OpenAi).unwrap();
        assert!(whole.last().unwrap().usage.is_some());
        // Cut right after the finish chunk: the usage chunk and [DONE] never came.
        let text = String::from_utf8(full).unwrap();
        let cut = text.find("\"finish_reason\":\"stop\"").unwrap();
        let end = cut + text[cut..].find("\n\n").unwrap() + 2;
        let e = run_as(&text.as_bytes()[..end], Dialect::OpenAi).unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(e.message.contains("[DONE]"), "{}", e.message);
        // A compatible server may end there; that is complete.
        assert!(run_as(&text.as_bytes()[..end], Dialect::Compatible).is_ok());
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let body =
            b"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        let e = run(body).unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        // Cut in the middle of an event's JSON.
        let e = run(b"data: {\"id\":\"a\",\"choices\":[{\"ind").unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(run(b"").is_err());
    }

    #[test]
    fn done_without_finish_gets_one() {
        let body = b"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
        let chunks = run(body).unwrap();
        assert_eq!(assemble(&chunks).2, "stop");
    }

    #[test]
    fn error_events_inside_a_200_stream() {
        let e = run(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\nevent: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert!(e.message.contains("Overloaded"));
        let e = run(b"data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}\n\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimit);
        assert_eq!(e.body.unwrap()["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn tool_calls_without_index_are_keyed_by_id_and_get_ids() {
        let events = [
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x1","function":{"name":"a","arguments":"{"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x2","function":{"name":"b","arguments":"{}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":5,"function":{"name":"c","arguments":"[]"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        ];
        let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        let chunks = run(body.as_bytes()).unwrap();
        let (_, calls, finish, _) = assemble(&chunks);
        assert_eq!(calls[0], ("x1".into(), "a".into(), "{}".into()));
        assert_eq!(calls[1], ("x2".into(), "b".into(), "{}".into()));
        assert!(calls[2].0.starts_with("call_"));
        assert_eq!(calls[2].2, "[]");
        assert_eq!(finish, "tool_calls");
    }

    // Found by the fuzz targets (tests/hostile.rs): `[DONE]` with no choice before it gave a
    // finish chunk without the role delta.
    #[test]
    fn done_alone_still_starts_with_the_role() {
        for body in [
            &b"data: [DONE]\n\n"[..],
            b"data: {\"id\":\"x\",\"choices\":[]}\n\ndata: [DONE]\n\n",
        ] {
            let chunks = run_as(body, Dialect::OpenAi).unwrap();
            let (text, calls, finish, _) = assemble(&chunks);
            assert_eq!(
                (text.as_str(), calls.len(), finish.as_str()),
                ("", 0, "stop")
            );
            assert_eq!(chunks.len(), 2);
        }
    }

    // Found by the fuzz targets: a first chunk without `model` was sent with the requested model
    // and the later ones with the upstream's.
    #[test]
    fn the_model_of_the_first_chunk_sent_stays() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"model\":\"late\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let chunks = run(body).unwrap();
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.model == "requested"), "{chunks:?}");
    }

    // Found by the fuzz targets: deltas after a choice's finish_reason were passed on after the
    // finish chunk.
    #[test]
    fn nothing_of_a_choice_follows_its_finish() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\ndata: [DONE]\n\n";
        let chunks = run(body).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(assemble(&chunks).0, "a");
    }

    fn finishes(chunks: &[ChatCompletionChunk]) -> Vec<(String, Option<String>)> {
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|ch| {
                ch.finish_reason
                    .clone()
                    .map(|r| (r, ch.native_finish_reason.clone()))
            })
            .collect()
    }

    // Found by the types review: a word OpenAI does not have was passed through as finish_reason.
    #[test]
    fn unknown_finish_reasons_are_stop_with_the_native_word_kept() {
        for (given, want) in [("abort", "stop"), ("eos", "stop"), ("MAX_TOKENS", "length")] {
            let body = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"native_finish_reason\":null}}]}}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{given}\"}}]}}\n\ndata: [DONE]\n\n");
            let chunks = run(body.as_bytes()).unwrap();
            assert_eq!(assemble(&chunks).2, want, "{given}");
            assert_eq!(
                finishes(&chunks),
                vec![(want.to_string(), Some(given.to_string()))]
            );
            let v = serde_json::to_value(&chunks[0]).unwrap();
            assert!(v["choices"][0].get("native_finish_reason").is_none(), "{v}");
        }
        let chunks = run(&fixture("openai/sse/text-include-usage.sse")).unwrap();
        assert_eq!(finishes(&chunks), vec![("stop".to_string(), None)]);
    }

    #[test]
    fn done_without_finish_after_tool_calls_gets_tool_calls_and_empty_finish_is_none() {
        let events = [
            json!({"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":""}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":""}]}),
        ];
        let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        body.push_str("data: [DONE]\n\n");
        let chunks = run(body.as_bytes()).unwrap();
        let (text, calls, finish, _) = assemble(&chunks);
        assert_eq!((text.as_str(), calls.len()), ("a", 1));
        assert_eq!(finish, "tool_calls");
        assert_eq!(finishes(&chunks), vec![("tool_calls".to_string(), None)]);
    }

    // Found by the types review: custom tool-call deltas were made function calls, and their
    // `input` pieces dropped.
    #[test]
    fn custom_tool_call_deltas_keep_their_type_and_input() {
        let events = [
            json!({"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_c","type":"custom","custom":{"name":"sql","input":""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"custom":{"input":"SELECT "}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"custom":{"input":"1"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_f","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
        ];
        let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        body.push_str("data: [DONE]\n\n");
        let chunks = run_as(body.as_bytes(), Dialect::OpenAi).unwrap();
        let deltas: Vec<Value> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
            .map(|t| serde_json::to_value(t).unwrap())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"index":0,"id":"call_c","type":"custom","custom":{"name":"sql","input":""}}),
                json!({"index":0,"custom":{"input":"SELECT "}}),
                json!({"index":0,"custom":{"input":"1"}}),
                json!({"index":1,"id":"call_f","type":"function","function":{"name":"f","arguments":"{}"}}),
            ]
        );
        assert_eq!(finishes(&chunks), vec![("tool_calls".to_string(), None)]);
        // Without `type`, a call with only `custom` is a custom call.
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"custom\":{\"name\":\"sql\"}}]},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let chunks = run(body.as_bytes()).unwrap();
        let first = &chunks[0].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(first.kind.as_deref(), Some("custom"));
        assert_eq!(first.custom.as_ref().unwrap().input.as_deref(), Some(""));
        assert!(first.function.is_none());
        assert_eq!(
            finishes(&chunks),
            vec![("tool_calls".to_string(), Some("stop".to_string()))]
        );
    }

    #[test]
    fn duplicate_finish_reasons_are_reduced_to_one() {
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let chunks = run(body).unwrap();
        assemble(&chunks);
    }
}
