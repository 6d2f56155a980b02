//! The built-in `mock/` provider: answered in-process, no network, no key. It speaks the OpenAI wire
//! format (a JSON body, or SSE bytes one word per event), so its answers go through the same output
//! adapters as a real provider's.
//!
//! The reply is the request's `mock_response` if given, else the text of the last user message;
//! with `mock_tool_calls` it is those tool calls (and `mock_response` as text before them, if
//! given), with `finish_reason: 'tool_calls'`.

use crate::ids;
use crate::types::request::{ChatRequest, Role};
use crate::types::response::now_seconds;
use bytes::Bytes;
use serde_json::{json, Value};

fn reply(req: &ChatRequest) -> String {
    if let Some(text) = &req.mock_response {
        return text.clone();
    }
    if req.mock_tool_calls.is_some() {
        return String::new();
    }
    req.messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_ref())
        .map(|c| c.text())
        .unwrap_or_default()
}

/// The scripted tool calls as OpenAI writes them, with ids `call_mock_0`, `call_mock_1`…
fn tool_calls(req: &ChatRequest) -> Option<Vec<Value>> {
    let calls = req.mock_tool_calls.as_ref().filter(|c| !c.is_empty())?;
    Some(
        calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                json!({
                    "id": format!("call_mock_{i}"),
                    "type": "function",
                    "function": { "name": call.name, "arguments": call.arguments_text() },
                })
            })
            .collect(),
    )
}

/// Token counts are words, not a real tokenizer's count: enough to test code that reads usage.
fn usage(req: &ChatRequest, reply: &str) -> Value {
    let prompt: usize = req
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| c.text().split_whitespace().count())
        .sum();
    let completion = reply.split_whitespace().count();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0 }
    })
}

/// A `chat.completion` body, as OpenAI would send it.
pub fn response_body(req: &ChatRequest, model: &str) -> Bytes {
    let text = reply(req);
    let calls = tool_calls(req);
    let mut message = json!({ "role": "assistant", "content": text, "refusal": null });
    if let Some(calls) = &calls {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!(calls);
    }
    let finish = if calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let body = json!({
        "id": ids::completion_id(),
        "object": "chat.completion",
        "created": now_seconds(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": usage(req, &text),
    });
    Bytes::from(body.to_string())
}

/// The SSE bytes of a streamed answer, one `Bytes` per event: a role event, one event per word
/// (with the whitespace before it), a finish event, a usage event and `[DONE]`.
pub fn stream_events(req: &ChatRequest, model: &str) -> Vec<Bytes> {
    let text = reply(req);
    let id = ids::completion_id();
    let created = now_seconds();
    let event = |choices: Value, usage: Value| {
        let chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices, "usage": usage,
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    let delta = |delta: Value, finish: Value| json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]);
    let mut events = vec![event(
        delta(json!({ "role": "assistant", "content": "" }), Value::Null),
        Value::Null,
    )];
    for word in words(&text) {
        events.push(event(
            delta(json!({ "content": word }), Value::Null),
            Value::Null,
        ));
    }
    // Each tool call as OpenAI streams one: its id and name first, then its arguments.
    let calls = tool_calls(req);
    for (i, call) in calls.iter().flatten().enumerate() {
        let function = &call["function"];
        let start = json!({ "index": i, "id": call["id"], "type": "function",
            "function": { "name": function["name"], "arguments": "" } });
        let rest = json!({ "index": i, "function": { "arguments": function["arguments"] } });
        events.push(event(
            delta(json!({ "tool_calls": [start] }), Value::Null),
            Value::Null,
        ));
        events.push(event(
            delta(json!({ "tool_calls": [rest] }), Value::Null),
            Value::Null,
        ));
    }
    let finish = if calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    events.push(event(delta(json!({}), json!(finish)), Value::Null));
    events.push(event(json!([]), usage(req, &text)));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Splits text into pieces that each start with the whitespace before a word; joined they give
/// the text back exactly.
fn words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                pieces.push(&text[start..i]);
                start = i;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        ChatRequest::from_value(v).unwrap()
    }

    #[test]
    fn words_rejoin_to_the_text() {
        for text in [
            "Hello world",
            "  lead and trail  ",
            "one",
            "",
            "a\n\nb\tc",
            "émoji 😄 ok",
        ] {
            assert_eq!(words(text).concat(), text);
        }
        assert_eq!(words("Hello big world"), vec!["Hello", " big", " world"]);
    }

    #[test]
    fn echoes_the_last_user_message_or_gives_the_mock_response() {
        let r = req(json!({"model": "mock/x", "messages": [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]}
        ]}));
        assert_eq!(reply(&r), "second");
        let r = req(
            json!({"model": "mock/x", "mock_response": "canned", "messages": [{"role": "user", "content": "q"}]}),
        );
        assert_eq!(reply(&r), "canned");
    }
}
