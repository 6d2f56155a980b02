//! Canonical request → the body of `POST /chat/completions` for OpenAI or a compatible server.

use crate::resolver::is_openai_reasoning_model;
use crate::types::request::{ChatRequest, Role};
use serde_json::{json, Map, Value};

/// Who will receive the body: OpenAI proper knows every current field; compatible servers mostly
/// know the older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Compatible,
}

/// Parameters OpenAI's reasoning models (o-series, gpt-5) reject.
const REASONING_UNSUPPORTED: [&str; 8] = [
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "stop",
];

pub fn build_body(req: &ChatRequest, model: &str, dialect: Dialect, stream: bool) -> Value {
    let reasoning = dialect == Dialect::OpenAi && is_openai_reasoning_model(model);
    let mut body = Map::new();
    body.insert("model".into(), json!(model));

    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            // Most compatible servers only know `system`.
            if dialect == Dialect::Compatible && m.role == Role::Developer {
                v["role"] = json!("system");
            }
            v
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));

    // Pass-through fields first, so that the modelled fields below take precedence.
    for (k, v) in &req.extra {
        if k != "model" && k != "messages" {
            body.insert(k.clone(), v.clone());
        }
    }

    let has_tools = req.tools.as_ref().is_some_and(|t| !t.is_empty());
    if has_tools {
        body.insert("tools".into(), json!(req.tools));
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), json!(choice));
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    }

    match (dialect, reasoning) {
        (Dialect::OpenAi, true) => {
            if let Some(n) = req.max_output_tokens() {
                body.insert("max_completion_tokens".into(), json!(n));
            }
        }
        (Dialect::OpenAi, false) => {
            if let Some(n) = req.max_tokens {
                body.insert("max_tokens".into(), json!(n));
            }
            if let Some(n) = req.max_completion_tokens {
                body.insert("max_completion_tokens".into(), json!(n));
            }
        }
        (Dialect::Compatible, _) => {
            if let Some(n) = req.max_output_tokens() {
                body.insert("max_tokens".into(), json!(n));
            }
        }
    }

    insert_opt(&mut body, "temperature", req.temperature.map(|t| json!(t)));
    insert_opt(&mut body, "top_p", req.top_p.map(|t| json!(t)));
    insert_opt(&mut body, "stop", req.stop.as_ref().map(|s| json!(s)));
    insert_opt(&mut body, "response_format", req.response_format.clone());
    insert_opt(&mut body, "user", req.user.as_ref().map(|u| json!(u)));
    insert_opt(&mut body, "seed", req.seed.map(|s| json!(s)));
    // OpenAI accepts reasoning_effort only on reasoning models; compatible servers decide themselves.
    if reasoning || dialect == Dialect::Compatible {
        insert_opt(
            &mut body,
            "reasoning_effort",
            req.reasoning_effort.as_ref().map(|r| json!(r)),
        );
    }
    if reasoning {
        for k in REASONING_UNSUPPORTED {
            body.remove(k);
        }
    }

    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    } else {
        body.remove("stream");
        body.remove("stream_options");
    }
    Value::Object(body)
}

fn insert_opt(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        body.insert(key.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        ChatRequest::from_value(v).unwrap()
    }

    #[test]
    fn passes_every_field_through_to_openai() {
        let r = req(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["END"],
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
            "user": "u-1",
            "seed": 7,
            "logprobs": true,
            "mock_response": "never sent",
            "mock_tool_calls": [{"name": "never_sent"}]
        }));
        let body = build_body(&r, "gpt-4o", Dialect::OpenAi, false);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "max_tokens": 100,
                "temperature": 0.5,
                "top_p": 0.9,
                "stop": ["END"],
                "response_format": {"type": "json_object"},
                "user": "u-1",
                "seed": 7,
                "logprobs": true
            })
        );
    }

    #[test]
    fn reasoning_models_get_max_completion_tokens_and_no_sampling_fields() {
        let r = req(json!({
            "model": "o3-mini", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 500, "temperature": 0, "top_p": 1, "stop": "x", "reasoning_effort": "high"
        }));
        let body = build_body(&r, "o3-mini", Dialect::OpenAi, false);
        assert_eq!(body["max_completion_tokens"], 500);
        for k in ["max_tokens", "temperature", "top_p", "stop"] {
            assert!(body.get(k).is_none(), "{k} should be dropped");
        }
        assert_eq!(body["reasoning_effort"], "high");
    }

    #[test]
    fn compatible_servers_get_max_tokens_and_system_for_developer() {
        let r = req(json!({
            "model": "llama", "messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "x"}],
            "max_completion_tokens": 64, "reasoning_effort": "low"
        }));
        let body = build_body(&r, "llama", Dialect::Compatible, false);
        assert_eq!(body["max_tokens"], 64);
        assert!(body.get("max_completion_tokens").is_none());
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["reasoning_effort"], "low");
    }

    #[test]
    fn non_reasoning_openai_models_do_not_get_reasoning_effort() {
        let r = req(
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"}),
        );
        assert!(build_body(&r, "gpt-4o", Dialect::OpenAi, false)
            .get("reasoning_effort")
            .is_none());
    }

    #[test]
    fn streaming_always_asks_for_usage_and_tool_fields_need_tools() {
        let r = req(json!({
            "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}],
            "tool_choice": "auto", "parallel_tool_calls": true,
            "stream": false, "stream_options": {"include_usage": false}
        }));
        let body = build_body(&r, "gpt-4o", Dialect::OpenAi, true);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert!(body.get("tool_choice").is_none());
        assert!(body.get("parallel_tool_calls").is_none());
        let body = build_body(&r, "gpt-4o", Dialect::OpenAi, false);
        assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
    }

    #[test]
    fn tool_history_and_legacy_functions_are_sent_as_tools() {
        let r = req(json!({
            "model": "gpt-4o",
            "functions": [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
            "function_call": "auto",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "function_call": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"role": "function", "name": "get_weather", "content": "20C"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "21C"}
            ]
        }));
        let body = build_body(&r, "gpt-4o", Dialect::OpenAi, false);
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}])
        );
        assert_eq!(body["tool_choice"], "auto");
        assert!(body.get("functions").is_none() && body.get("function_call").is_none());
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "tool_calls": [{"id": "call_legacy_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "tool", "tool_call_id": "call_legacy_1", "content": "20C"})
        );
        assert_eq!(body["messages"][3]["tool_calls"][0]["id"], "call_a");
        assert_eq!(body["messages"][3]["content"], "Checking both.");
        assert_eq!(
            body["messages"][4],
            json!({"role": "tool", "tool_call_id": "call_a", "content": "21C"})
        );
    }
}
