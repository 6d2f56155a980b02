//! An Anthropic Messages response → the canonical `chat.completion`.

use crate::adapters::error_body::{code_for_error_kind, parse_error_body};
use crate::error::{Error, ErrorCode, Result};
use crate::ids;
use crate::types::request::ToolCall;
use crate::types::response::{
    assistant_role, native_finish_reason, now_seconds, ChatCompletion, Choice, ResponseMessage,
    Usage,
};
use serde_json::{json, Map, Value};

/// Anthropic's `stop_reason` in OpenAI's words. `json_tool_used`: the answer is the input of the
/// tool that carries a `response_format`, which is a normal stop, not a tool call. `pause_turn` (a
/// server tool's long turn, to be continued) and a reason newer than this release are `stop`; the
/// callers keep Anthropic's word as `native_finish_reason`.
pub fn finish_reason(stop_reason: &str, json_tool_used: bool) -> String {
    match stop_reason {
        "tool_use" if json_tool_used => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn, and every unknown word.
        _ => "stop",
    }
    .to_string()
}

/// Anthropic counts cached input apart from `input_tokens`; OpenAI's `prompt_tokens` includes it.
pub fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let input = n("input_tokens");
    let cache_read = n("cache_read_input_tokens");
    let cache_creation = n("cache_creation_input_tokens");
    let output = n("output_tokens");
    let prompt = input + cache_read + cache_creation;
    let mut details = Map::new();
    details.insert("cached_tokens".into(), json!(cache_read));
    details.insert("cache_creation_tokens".into(), json!(cache_creation));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: prompt + output,
        prompt_tokens_details: Some(details),
        completion_tokens_details: None,
        extra: Map::new(),
    }
}

/// The JSON text OpenAI would put in `function.arguments` for a `tool_use` input.
pub fn arguments_text(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    }
}

pub fn parse_response(
    body: &[u8],
    requested_model: &str,
    json_tool: Option<&str>,
) -> Result<ChatCompletion> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorCode::ServerError,
            format!("Anthropic answered with a body that is not valid JSON ({e})."),
        )
        .with_body(Some(Value::String(
            String::from_utf8_lossy(body).chars().take(2000).collect(),
        )))
    })?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        let info = parse_error_body(&value).unwrap_or_default();
        return Err(Error::new(
            code_for_error_kind(info.kind.as_deref(), info.code.as_deref()),
            format!("Anthropic returned an error: {}", info.message),
        )
        .with_body(Some(value)));
    }
    let Some(blocks) = value.get("content").and_then(Value::as_array) else {
        return Err(Error::new(
            ErrorCode::ServerError,
            "Anthropic's response has no `content` array; it is not a message.",
        )
        .with_body(Some(value)));
    };

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_tool_used = false;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                has_text = true;
                text.push_str(block.get("text").and_then(Value::as_str).unwrap_or(""));
            }
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(block.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(block.clone()),
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                if json_tool == Some(name) {
                    json_tool_used = true;
                    has_text = true;
                    text.push_str(&arguments_text(&input));
                    continue;
                }
                tool_calls.push(ToolCall::function(
                    block
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(ids::tool_call_id),
                    name.to_string(),
                    arguments_text(&input),
                ));
            }
            // Server tools, citations and future block types have no OpenAI form; skipped.
            _ => {}
        }
    }

    let stop_reason = value.get("stop_reason").and_then(Value::as_str);
    let has_calls = !tool_calls.is_empty();
    let mut finish = finish_reason(
        stop_reason.unwrap_or("end_turn"),
        json_tool_used && !has_calls,
    );
    if finish == "stop" && has_calls {
        finish = "tool_calls".into();
    }
    let message = ResponseMessage {
        role: assistant_role(),
        content: has_text.then_some(text),
        refusal: None,
        tool_calls: has_calls.then_some(tool_calls),
        reasoning_content: (!thinking_blocks.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        extra: Map::new(),
    };
    let mut extra = Map::new();
    if let Some(seq) = value.get("stop_sequence").filter(|s| !s.is_null()) {
        extra.insert("stop_sequence".into(), seq.clone());
    }
    Ok(ChatCompletion {
        id: value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(ids::completion_id),
        object: "chat.completion".into(),
        created: now_seconds(),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_string(),
        choices: vec![Choice {
            index: 0,
            message,
            native_finish_reason: stop_reason.and_then(|r| native_finish_reason(r, &finish)),
            finish_reason: Some(finish),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: value.get("usage").map(usage),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/anthropic/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn text() {
        let c = parse_response(&fixture("messages/text.json"), "claude-3-opus", None).unwrap();
        assert_eq!(c.id, "msg_01TPXhkPo8jy6yQMrMhjpiAE");
        assert_eq!(c.object, "chat.completion");
        assert_eq!(c.model, "claude-3-opus-20240229");
        assert!((c.created - now_seconds()).abs() < 5);
        let m = &c.choices[0].message;
        assert!(m
            .content
            .as_deref()
            .unwrap()
            .starts_with("Sure, here's a joke about OpenTelemetry:\n\nWhy did"));
        assert!(m
            .content
            .as_deref()
            .unwrap()
            .ends_with("meter their progress in real life."));
        assert_eq!(m.tool_calls, None);
        assert_eq!(m.reasoning_content, None);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (17, 220, 237)
        );
        assert_eq!(u.prompt_tokens_details.unwrap()["cached_tokens"], 0);
    }

    #[test]
    fn text_before_two_tool_uses_is_kept() {
        let c = parse_response(&fixture("messages/text-and-two-tool-use.json"), "x", None).unwrap();
        let m = &c.choices[0].message;
        assert!(m
            .content
            .as_deref()
            .unwrap()
            .starts_with("Certainly! I'd be happy to help"));
        let calls = m.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "toolu_012r6TBCWjRHG71j6zruYyUL");
        assert_eq!(calls[0].kind, "function");
        let f = |i: usize| calls[i].as_function().unwrap();
        assert_eq!(f(0).name, "get_weather");
        assert_eq!(
            f(0).arguments,
            r#"{"location":"New York, NY","unit":"fahrenheit"}"#
        );
        assert_eq!(calls[1].id, "toolu_01SkeBKkLCNYWNuivqFerGDd");
        assert_eq!(f(1).arguments, r#"{"timezone":"America/New_York"}"#);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (514, 152, 666)
        );
    }

    #[test]
    fn thinking_is_reasoning_content_with_its_signature_kept() {
        let c = parse_response(&fixture("messages/thinking.json"), "x", None).unwrap();
        let m = &c.choices[0].message;
        assert_eq!(
            m.content.as_deref(),
            Some("The letter 'r' appears 3 times in the word \"strawberry\".")
        );
        let reasoning = m.reasoning_content.as_deref().unwrap();
        assert!(reasoning.starts_with("Let me count the number of times the letter 'r'"));
        let blocks = m.thinking_blocks.as_ref().unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0]["type"], "thinking");
        assert_eq!(blocks[0]["thinking"], reasoning);
        assert!(blocks[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("ErUBCkYIARgCIkBSkP4z"));
    }

    #[test]
    fn cache_tokens_count_as_prompt_tokens() {
        let u = usage(&json!({
            "input_tokens": 3, "cache_read_input_tokens": 1217,
            "cache_creation_input_tokens": 10, "output_tokens": 4
        }));
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1230, 4, 1234)
        );
        let d = u.prompt_tokens_details.unwrap();
        assert_eq!(d["cached_tokens"], 1217);
        assert_eq!(d["cache_creation_tokens"], 10);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("end_turn", false), "stop");
        assert_eq!(finish_reason("stop_sequence", false), "stop");
        assert_eq!(finish_reason("max_tokens", false), "length");
        assert_eq!(finish_reason("tool_use", false), "tool_calls");
        assert_eq!(finish_reason("tool_use", true), "stop");
        assert_eq!(finish_reason("refusal", false), "content_filter");
        assert_eq!(finish_reason("pause_turn", false), "stop");
        assert_eq!(
            finish_reason("model_context_window_exceeded", false),
            "length"
        );
    }

    // Found by the types review: a stop_reason newer than this release was passed through as
    // finish_reason, outside OpenAI's words.
    #[test]
    fn unknown_stop_reasons_are_stop_with_anthropic_word_kept() {
        assert_eq!(finish_reason("some_new_reason", false), "stop");
        let answer = |stop_reason: &str| {
            let body = json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "x"}],
                "stop_reason": stop_reason, "usage": {"input_tokens": 1, "output_tokens": 2}
            });
            let c = parse_response(body.to_string().as_bytes(), "x", None).unwrap();
            let choice = c.choices.into_iter().next().unwrap();
            (choice.finish_reason.unwrap(), choice.native_finish_reason)
        };
        for (given, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("refusal", "content_filter"),
            ("some_new_reason", "stop"),
        ] {
            assert_eq!(answer(given), (want.to_string(), Some(given.to_string())));
        }
    }

    #[test]
    fn the_json_response_tool_becomes_the_content() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "answer", "input": {"city": "Paris", "temp": 20}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}
        });
        let c = parse_response(body.to_string().as_bytes(), "x", Some("answer")).unwrap();
        let m = &c.choices[0].message;
        assert_eq!(m.content.as_deref(), Some(r#"{"city":"Paris","temp":20}"#));
        assert_eq!(m.tool_calls, None);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn a_real_tool_call_beside_the_json_tool_is_still_a_tool_call() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "answer", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "x"}}
            ],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}
        });
        let c = parse_response(body.to_string().as_bytes(), "x", Some("answer")).unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            c.choices[0].message.tool_calls.as_ref().unwrap()[0].id,
            "toolu_2"
        );
    }

    #[test]
    fn error_bodies_and_garbage() {
        let e = parse_response(
            &fixture("errors/529-overloaded.TEST-LITERAL.json"),
            "x",
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert!(e.message.contains("Overloaded"));
        assert_eq!(
            parse_response(b"nope", "x", None).unwrap_err().code,
            ErrorCode::ServerError
        );
        assert_eq!(
            parse_response(br#"{"id":"m"}"#, "x", None)
                .unwrap_err()
                .code,
            ErrorCode::ServerError
        );
    }
}
