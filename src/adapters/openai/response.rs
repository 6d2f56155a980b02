//! A `chat.completion` body from OpenAI or a compatible server → the canonical response.

use crate::adapters::error_body::{code_for_error_kind, parse_error_body};
use crate::error::{Error, ErrorCode, Result};
use crate::ids;
use crate::types::request::tool_call_shape_problem;
use crate::types::response::{
    assistant_role, inferred_finish_reason, native_finish_reason, normalize_created,
    normalize_finish_reason, now_seconds, ChatCompletion,
};
use serde_json::Value;

/// Parses a successful `chat.completion` body and brings it to the canonical form: ids present,
/// `created` in seconds, finish reasons in OpenAI's words, every tool call with an id.
pub fn parse_response(body: &[u8], requested_model: &str) -> Result<ChatCompletion> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorCode::ServerError,
            format!("The provider answered with a body that is not valid JSON ({e})."),
        )
        .with_body(Some(Value::String(
            String::from_utf8_lossy(body).chars().take(2000).collect(),
        )))
    })?;
    if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
        let info = parse_error_body(&value).unwrap_or_default();
        return Err(Error::new(
            code_for_error_kind(info.kind.as_deref(), info.code.as_deref()),
            format!(
                "The provider returned an error instead of a completion: {}",
                info.message
            ),
        )
        .with_body(Some(err.clone())));
    }
    if value.get("choices").is_none() {
        // `{}`, `{"message": …}`, `{"detail": …}`: a gateway's answer, not a completion.
        let said = parse_error_body(&value)
            .map(|i| i.message)
            .filter(|m| !m.is_empty())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(Error::new(
            ErrorCode::ServerError,
            format!("The provider's response has no `choices`; it is not a chat completion{said}"),
        )
        .with_body(Some(value)));
    }
    let mut completion: ChatCompletion = serde_json::from_value(value.clone()).map_err(|e| {
        Error::new(
            ErrorCode::ServerError,
            format!("The provider's response is not a chat completion ({e})."),
        )
        .with_body(Some(value.clone()))
    })?;
    for (i, choice) in completion.choices.iter().enumerate() {
        for (j, call) in choice.message.tool_calls.iter().flatten().enumerate() {
            if let Some(problem) = tool_call_shape_problem(call) {
                return Err(Error::new(
                    ErrorCode::ServerError,
                    format!("The provider's response is not a chat completion: choices[{i}].message.tool_calls[{j}] {problem}."),
                )
                .with_body(Some(value)));
            }
        }
    }
    normalize(&mut completion, requested_model);
    Ok(completion)
}

pub fn normalize(c: &mut ChatCompletion, requested_model: &str) {
    if c.id.is_empty() {
        c.id = ids::completion_id();
    }
    c.object = "chat.completion".into();
    c.created = if c.created <= 0 {
        now_seconds()
    } else {
        normalize_created(c.created)
    };
    if c.model.is_empty() {
        c.model = requested_model.to_string();
    }
    for choice in &mut c.choices {
        let message = &mut choice.message;
        if message.role.is_empty() {
            message.role = assistant_role();
        }
        let mut has_calls = false;
        if let Some(calls) = &mut message.tool_calls {
            has_calls = !calls.is_empty();
            for call in calls.iter_mut() {
                if call.id.is_empty() {
                    call.id = ids::tool_call_id();
                }
                if call.kind.is_empty() {
                    call.kind = "function".into();
                }
            }
            if calls.is_empty() {
                message.tool_calls = None;
            }
        }
        // A completed answer always says why it ended, in OpenAI's words; the server's own word
        // is kept when it differs (and it gave none of its own).
        let finish = match choice.finish_reason.take().filter(|r| !r.is_empty()) {
            Some(native) => {
                let mut r = normalize_finish_reason(&native);
                // Some servers say "stop" after calling tools; clients branch on "tool_calls".
                if has_calls && r == "stop" {
                    r = "tool_calls".into();
                }
                if choice.native_finish_reason.is_none() {
                    choice.native_finish_reason = native_finish_reason(&native, &r);
                }
                r
            }
            // Some compatible servers send none.
            None => inferred_finish_reason(has_calls),
        };
        choice.finish_reason = Some(finish);
    }
    if let Some(usage) = &mut c.usage {
        if usage.total_tokens == 0 {
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/openai/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn text_response_keeps_every_field() {
        let c = parse_response(&fixture("chat/text-gpt35-2026.json"), "gpt-3.5-turbo").unwrap();
        assert_eq!(c.id, "chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C");
        assert_eq!(c.object, "chat.completion");
        assert_eq!(c.created, 1774962775);
        assert_eq!(c.model, "gpt-3.5-turbo-0125");
        let choice = &c.choices[0];
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
        assert!(choice
            .message
            .content
            .as_deref()
            .unwrap()
            .starts_with("Why did the Opentelemetry developer go broke?"));
        let usage = c.usage.as_ref().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (15, 31, 46)
        );
        assert_eq!(
            usage.prompt_tokens_details.as_ref().unwrap()["cached_tokens"],
            0
        );
        assert_eq!(
            usage.completion_tokens_details.as_ref().unwrap()["reasoning_tokens"],
            0
        );
        // Provider fields not modelled here pass through.
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["service_tier"], "default");
        assert_eq!(v["choices"][0]["message"]["annotations"], json!([]));
    }

    #[test]
    fn parallel_tool_calls_keep_ids_and_arguments() {
        let c = parse_response(&fixture("chat/parallel-tool-calls.json"), "x").unwrap();
        let calls = c.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_rU416PaA6UFgxje2GemBVAwt");
        let f = |i: usize| calls[i].as_function().unwrap();
        assert_eq!(f(0).name, "get_current_weather");
        assert_eq!(f(0).arguments, "{\"location\": \"San Francisco\"}");
        assert_eq!(calls[1].id, "call_iqCZB6DkOW5TPjHK29vpiAFa");
        assert_eq!(f(1).arguments, "{\"location\": \"Boston\"}");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.choices[0].message.content, None);
    }

    #[test]
    fn compatible_quirks_are_normalised() {
        let body = json!({
            "created": 1795561959577i64,
            "choices": [{"message": {"content": null, "tool_calls": [
                {"function": {"name": "f", "arguments": "{}"}}
            ]}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}
        });
        let c = parse_response(body.to_string().as_bytes(), "local-model").unwrap();
        assert!(c.id.starts_with("chatcmpl-"));
        assert_eq!(c.created, 1795561959);
        assert_eq!(c.model, "local-model");
        let call = &c.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert!(call.id.starts_with("call_") && call.kind == "function");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        // The server's own word, which was not OpenAI's for this answer.
        assert_eq!(c.choices[0].native_finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.usage.unwrap().total_tokens, 7);
    }

    fn finish_of(choice: Value) -> (Option<String>, Option<String>) {
        let body = json!({"id": "x", "created": 1, "model": "m", "choices": [choice]});
        let c = parse_response(body.to_string().as_bytes(), "m").unwrap();
        let choice = c.choices.into_iter().next().unwrap();
        (choice.finish_reason, choice.native_finish_reason)
    }

    // Found by the types review: an answer without finish_reason kept null, which OpenAI's
    // ChatCompletion does not allow.
    #[test]
    fn an_answer_without_finish_reason_gets_one() {
        let text = json!({"index": 0, "message": {"role": "assistant", "content": "hi"}});
        for given in [Value::Null, json!("")] {
            let mut choice = text.clone();
            choice["finish_reason"] = given;
            assert_eq!(finish_of(choice), (Some("stop".into()), None));
        }
        assert_eq!(finish_of(text), (Some("stop".into()), None));
        let calls = json!({"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]}});
        assert_eq!(finish_of(calls), (Some("tool_calls".into()), None));
    }

    // Found by the types review: a word OpenAI does not have was passed through as finish_reason.
    #[test]
    fn unknown_finish_reasons_are_stop_with_the_native_word_kept() {
        let choice = |reason: &str| json!({"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": reason});
        for (given, want) in [
            ("abort", "stop"),
            ("error", "stop"),
            ("eos", "stop"),
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("SAFETY", "content_filter"),
        ] {
            assert_eq!(
                finish_of(choice(given)),
                (Some(want.into()), Some(given.into())),
                "{given}"
            );
        }
        for word in ["stop", "length", "tool_calls", "content_filter"] {
            assert_eq!(finish_of(choice(word)), (Some(word.into()), None), "{word}");
        }
        // An upstream that already names its native reason (OpenRouter) keeps its own.
        let mut routed = choice("stop");
        routed["native_finish_reason"] = json!("STOP");
        assert_eq!(
            finish_of(routed),
            (Some("stop".into()), Some("STOP".into()))
        );
    }

    // Found by the types review: `function` was required of every tool call, so an answer holding
    // an OpenAI custom tool call was a server_error.
    #[test]
    fn custom_tool_calls_in_an_answer_are_kept() {
        let body = json!({"id": "x", "created": 1, "model": "gpt-5", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
            ]}, "finish_reason": "tool_calls"}]});
        let c = parse_response(body.to_string().as_bytes(), "m").unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"],
            body["choices"][0]["message"]["tool_calls"]
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        // A call whose type needs a field it lacks is not a completion.
        for call in [
            json!({"id": "c", "type": "custom"}),
            json!({"id": "c", "type": "function"}),
        ] {
            let body = json!({"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]});
            let e = parse_response(body.to_string().as_bytes(), "m").unwrap_err();
            assert_eq!(e.code, ErrorCode::ServerError);
            assert!(
                e.message.contains("tool_calls[0] has type"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn an_error_object_in_a_200_body_is_an_error_and_garbage_is_too() {
        let e = parse_response(
            br#"{"error":{"message":"model overloaded","type":"overloaded_error"}}"#,
            "m",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded);
        let e = parse_response(b"<html>502</html>", "m").unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        let e = parse_response(br#"{"choices": "nope"}"#, "m").unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
    }

    // Found by the fuzz targets (tests/hostile.rs): a 200 body without `choices` was a
    // completion with no choice at all.
    #[test]
    fn a_body_without_choices_is_not_a_completion() {
        for body in [
            &br#"{}"#[..],
            br#"{"message":"The provided model identifier is invalid."}"#,
            br#"{"detail":"Not Found"}"#,
            br#"[1, 2]"#,
        ] {
            let e = parse_response(body, "m").unwrap_err();
            assert_eq!(e.code, ErrorCode::ServerError);
            assert!(e.message.contains("no `choices`"), "{}", e.message);
        }
        let e = parse_response(br#"{"detail":"Not Found"}"#, "m").unwrap_err();
        assert!(e.message.ends_with(": Not Found"), "{}", e.message);
        // An explicit empty list is the provider's answer (say, everything filtered).
        assert!(parse_response(br#"{"choices":[]}"#, "m").is_ok());
    }
}
