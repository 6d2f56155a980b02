//! Canonical (OpenAI) request → the body of Anthropic's `POST /v1/messages`.
//!
//! System and developer messages, wherever they stand, become `system`; tool calls become
//! `tool_use` blocks after the assistant's text; tool results become `tool_result` blocks in a user
//! turn; consecutive turns of one role are merged (never padded with invented turns).

use crate::error::{Error, Result};
use crate::types::request::{ChatRequest, Content, ContentPart, Message, Role, Tool, ToolChoice};
use serde_json::{json, Map, Value};

/// Fields of an OpenAI-format request that are Anthropic's own and passed through as given.
const PASSTHROUGH: [&str; 4] = ["top_k", "thinking", "metadata", "service_tier"];
/// Name of the tool that carries `response_format: json_object`.
const JSON_OBJECT_TOOL: &str = "json_response";

#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicRequest {
    pub body: Value,
    /// The tool added for `response_format`; its input is the answer.
    pub json_tool: Option<String>,
}

/// The output limit when the request sets none (Anthropic requires one): the Claude 3 models
/// accept at most 4096, later ones at least 8192.
pub fn default_max_tokens(model: &str) -> u64 {
    let claude3 = model.contains("claude-3-")
        && !model.contains("claude-3-5")
        && !model.contains("claude-3-7");
    if claude3 {
        4096
    } else {
        8192
    }
}

/// The `reasoning_effort`s Anthropic takes, with their thinking budgets (`None`: no thinking).
const THINKING_BUDGETS: [(&str, Option<u64>); 6] = [
    ("none", None),
    ("minimal", Some(1024)),
    ("low", Some(2048)),
    ("medium", Some(8192)),
    ("high", Some(16384)),
    ("xhigh", Some(32768)),
];

/// The thinking budget for a `reasoning_effort`; `None` for no thinking.
fn thinking_budget(effort: &str) -> Result<Option<u64>> {
    if let Some((_, budget)) = THINKING_BUDGETS.iter().find(|(e, _)| *e == effort) {
        return Ok(*budget);
    }
    // The message lists exactly what is accepted.
    let names: Vec<String> = THINKING_BUDGETS
        .iter()
        .map(|(e, _)| format!("'{e}'"))
        .collect();
    let (last, rest) = names.split_last().expect("efforts are listed");
    Err(Error::invalid_request(format!(
        "reasoning_effort '{effort}' is not known for Claude; use {} or {last}.",
        rest.join(", ")
    )))
}

pub fn build_body(req: &ChatRequest, model: &str, stream: bool) -> Result<AnthropicRequest> {
    if req.extra.get("n").and_then(Value::as_u64).unwrap_or(1) > 1 {
        return Err(Error::invalid_request(
            "Anthropic returns one choice per request; `n` above 1 cannot be honoured. Send several requests instead.",
        ));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(content_blocks(m.content.as_ref(), &path, false)?);
                continue;
            }
            Role::User => ("user", content_blocks(m.content.as_ref(), &path, true)?),
            Role::Assistant => ("assistant", assistant_blocks(m, &path)?),
            Role::Tool => ("user", vec![tool_result(m, &path)?]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(Error::invalid_request(
            "Anthropic needs at least one non-empty user or assistant message besides the system prompt.",
        ));
    }
    if !system.is_empty() {
        body.insert("system".into(), compact(system));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| json!({ "role": role, "content": compact(blocks) }))
        .collect();
    body.insert("messages".into(), Value::Array(messages));

    let budget = match &req.reasoning_effort {
        Some(effort) if !req.extra.contains_key("thinking") => thinking_budget(effort)?,
        _ => None,
    };
    let requested_max = req.max_output_tokens();
    let (max_tokens, budget) = match (budget, requested_max) {
        (None, max) => (max.unwrap_or_else(|| default_max_tokens(model)), None),
        (Some(b), None) => (default_max_tokens(model) + b, Some(b)),
        (Some(b), Some(max)) if max > b => (max, Some(b)),
        (Some(_), Some(max)) if max > 1024 => (max, Some(max - 1).map(|b| b.max(1024))),
        (Some(_), Some(max)) => {
            return Err(Error::invalid_request(format!(
                "reasoning_effort needs room to think: Claude's thinking takes at least 1024 tokens, but max_tokens is {max}. Raise max_tokens or drop reasoning_effort."
            )))
        }
    };
    body.insert("max_tokens".into(), json!(max_tokens));
    let thinking = budget.is_some() || req.extra.contains_key("thinking");
    if let Some(b) = budget {
        body.insert(
            "thinking".into(),
            json!({ "type": "enabled", "budget_tokens": b }),
        );
    }

    if !thinking {
        // Anthropic's range is 0–1 where OpenAI's is 0–2.
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
        if let Some(p) = req.top_p {
            body.insert("top_p".into(), json!(p));
        }
    }
    if let Some(stop) = &req.stop {
        let sequences: Vec<String> = stop
            .sequences()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !sequences.is_empty() {
            body.insert("stop_sequences".into(), json!(sequences));
        }
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    for key in PASSTHROUGH {
        if let Some(v) = req.extra.get(key) {
            if key == "top_k" && thinking {
                continue;
            }
            body.insert(key.to_string(), v.clone());
        }
    }

    let mut tools: Vec<Value> = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        tools.push(tool_definition(tool, i)?);
    }
    let has_user_tools = !tools.is_empty();
    let json_tool = response_format_tool(req.response_format.as_ref())?;
    if let Some((name, _)) = &json_tool {
        if tools.iter().any(|t| t["name"] == json!(name)) {
            return Err(Error::invalid_request(format!(
                "response_format is named '{name}', like one of the tools; give the schema another name."
            )));
        }
    }
    let mut tool_choice = match &req.tool_choice {
        _ if !has_user_tools => None,
        None => None,
        Some(ToolChoice::Auto) => Some(json!({ "type": "auto" })),
        Some(ToolChoice::None) => Some(json!({ "type": "none" })),
        Some(ToolChoice::Required) => Some(json!({ "type": "any" })),
        Some(ToolChoice::Function(name)) => Some(json!({ "type": "tool", "name": name })),
        Some(ToolChoice::Other(v)) => {
            return Err(Error::invalid_request(format!(
                "tool_choice {v} has no Anthropic equivalent; use 'auto', 'none', 'required' or {{ type: 'function', function: {{ name }} }}."
            )))
        }
    };
    if let Some((name, definition)) = &json_tool {
        tools.push(definition.clone());
        // Forcing the tool is the reliable way to get the JSON, but Anthropic does not allow it
        // with thinking, and it would stop the model from calling the caller's own tools.
        if !has_user_tools && !thinking {
            tool_choice = Some(json!({ "type": "tool", "name": name }));
        }
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        body.insert("tool_choice".into(), choice);
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(AnthropicRequest {
        body: Value::Object(body),
        json_tool: json_tool.map(|(name, _)| name),
    })
}

/// A single plain text block is sent as a string, as Anthropic's own examples do.
fn compact(blocks: Vec<Value>) -> Value {
    if let [only] = blocks.as_slice() {
        if only["type"] == "text" && only.as_object().is_some_and(|o| o.len() == 2) {
            return only["text"].clone();
        }
    }
    Value::Array(blocks)
}

fn text_block(text: &str, part: Option<&ContentPart>) -> Option<Value> {
    // Anthropic rejects text blocks without visible text.
    if text.trim().is_empty() {
        return None;
    }
    let mut block = json!({ "type": "text", "text": text });
    if let Some(cc) = part.and_then(|p| p.extra.get("cache_control")) {
        block["cache_control"] = cc.clone();
    }
    Some(block)
}

fn content_blocks(content: Option<&Content>, path: &str, media: bool) -> Result<Vec<Value>> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(s)) => Ok(text_block(s, None).into_iter().collect()),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.content[{k}]");
                match part.kind.as_str() {
                    "text" => blocks.extend(text_block(part.text.as_deref().unwrap_or(""), Some(part))),
                    "image_url" | "file" if !media => {
                        return Err(Error::invalid_request(format!(
                            "{part_path}: Anthropic takes only text in system prompts; move the {} to a user message.",
                            part.kind
                        )))
                    }
                    "image_url" => blocks.push(image_block(part, &part_path)?),
                    "file" => blocks.push(document_block(part, &part_path)?),
                    "input_audio" | "refusal" => {
                        return Err(Error::invalid_request(format!(
                            "{part_path} is an '{}' part, which Anthropic does not accept.",
                            part.kind
                        )))
                    }
                    // Anthropic's own block types (document, search_result…) are passed as given.
                    _ => blocks.push(serde_json::to_value(part).unwrap_or(Value::Null)),
                }
            }
            Ok(blocks)
        }
    }
}

/// `data:<media type>;base64,<data>` → (media type, data).
fn data_uri(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn with_cache_control(mut block: Value, part: &ContentPart) -> Value {
    if let Some(cc) = part.extra.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    block
}

fn image_block(part: &ContentPart, path: &str) -> Result<Value> {
    let url = part
        .image_url
        .as_ref()
        .map(|i| i.url.as_str())
        .unwrap_or("");
    let source = if let Some((media_type, data)) = data_uri(url) {
        json!({ "type": "base64", "media_type": media_type, "data": data })
    } else if url.starts_with("https://") || url.starts_with("http://") {
        json!({ "type": "url", "url": url })
    } else {
        return Err(Error::invalid_request(format!(
            "{path}.image_url.url must be an http(s) URL or a base64 data URI (data:image/png;base64,…)."
        )));
    };
    Ok(with_cache_control(
        json!({ "type": "image", "source": source }),
        part,
    ))
}

fn document_block(part: &ContentPart, path: &str) -> Result<Value> {
    let file = part.extra.get("file");
    let data = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    let Some((media_type, data)) = data.and_then(data_uri) else {
        return Err(Error::invalid_request(format!(
            "{path}: Anthropic needs the file inline as `file.file_data` (a base64 data URI); OpenAI file ids cannot be read by Anthropic."
        )));
    };
    let mut block = json!({
        "type": "document",
        "source": { "type": "base64", "media_type": media_type, "data": data }
    });
    if let Some(name) = file.and_then(|f| f.get("filename")) {
        block["title"] = name.clone();
    }
    Ok(with_cache_control(block, part))
}

fn assistant_blocks(m: &Message, path: &str) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    // Signed thinking from an earlier answer must come first, unchanged.
    if let Some(Value::Array(thinking)) = m.extra.get("thinking_blocks") {
        blocks.extend(thinking.iter().cloned());
    }
    blocks.extend(content_blocks(m.content.as_ref(), path, false)?);
    for (j, call) in m.tool_calls.iter().enumerate() {
        // OpenAI's custom tools are not Anthropic's (as in `tools`, where they are rejected too).
        let Some(function) = call.as_function() else {
            return Err(Error::invalid_request(format!(
                "{path}.tool_calls[{j}] is a '{}' tool call, which Anthropic does not know; it takes only function tool calls.",
                call.kind
            )));
        };
        let args = function.arguments.trim();
        let input: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                Error::invalid_request(format!(
                    "{path}.tool_calls[{j}].function.arguments is not valid JSON ({e}); Anthropic needs the arguments as a JSON object."
                ))
            })?
        };
        if !input.is_object() {
            return Err(Error::invalid_request(format!(
                "{path}.tool_calls[{j}].function.arguments must be a JSON object for Anthropic."
            )));
        }
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": function.name,
            "input": input,
        }));
    }
    Ok(blocks)
}

fn tool_result(m: &Message, path: &str) -> Result<Value> {
    let mut block = json!({
        "type": "tool_result",
        "tool_use_id": m.tool_call_id.as_deref().unwrap_or(""),
    });
    match &m.content {
        Some(Content::Text(s)) if !s.is_empty() => block["content"] = json!(s),
        Some(Content::Parts(_)) => {
            let blocks = content_blocks(m.content.as_ref(), path, true)?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
        _ => {}
    }
    if let Some(flag) = m.extra.get("is_error") {
        block["is_error"] = flag.clone();
    }
    Ok(block)
}

fn tool_definition(tool: &Tool, i: usize) -> Result<Value> {
    let Some(f) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
        // Anthropic's server tools ({ type: 'web_search_20250305', name, … }) are passed as given.
        let v = serde_json::to_value(tool).unwrap_or(Value::Null);
        if v.get("name").is_none() {
            return Err(Error::invalid_request(format!(
                "tools[{i}] has type '{}', which Anthropic does not know.",
                tool.kind
            )));
        }
        return Ok(v);
    };
    let mut def = json!({ "name": f.name });
    if let Some(d) = &f.description {
        def["description"] = json!(d);
    }
    def["input_schema"] = f
        .parameters
        .clone()
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    if let Some(cc) = tool.extra.get("cache_control") {
        def["cache_control"] = cc.clone();
    }
    Ok(def)
}

/// The tool that carries `response_format`, as (name, definition).
fn response_format_tool(format: Option<&Value>) -> Result<Option<(String, Value)>> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some((
            JSON_OBJECT_TOOL.to_string(),
            json!({
                "name": JSON_OBJECT_TOOL,
                "description": "Give the answer as a JSON object by calling this tool.",
                "input_schema": { "type": "object" }
            }),
        ))),
        Some("json_schema") => {
            let spec = format.get("json_schema").cloned().unwrap_or(Value::Null);
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(JSON_OBJECT_TOOL)
                .to_string();
            let schema = spec
                .get("schema")
                .cloned()
                .unwrap_or_else(|| json!({ "type": "object" }));
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(Error::invalid_request(
                    "response_format.json_schema.schema must describe an object (type: 'object') for Anthropic, which returns structured output as a tool's input.",
                ));
            }
            let description = spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Give the answer by calling this tool with an object that matches the schema.");
            Ok(Some((
                name.clone(),
                json!({ "name": name, "description": description, "input_schema": schema }),
            )))
        }
        Some(other) => Err(Error::invalid_request(format!(
            "response_format type '{other}' is not known; use 'text', 'json_object' or 'json_schema'."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Value {
        build(v).body
    }

    fn build(v: Value) -> AnthropicRequest {
        let model = v["model"].as_str().unwrap().to_string();
        build_body(&ChatRequest::from_value(v).unwrap(), &model, false).unwrap()
    }

    fn err(v: Value) -> String {
        let model = v["model"].as_str().unwrap().to_string();
        build_body(&ChatRequest::from_value(v).unwrap(), &model, false)
            .unwrap_err()
            .message
    }

    #[test]
    fn system_messages_anywhere_become_the_system_field() {
        let b = body(json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "Hi."},
                {"role": "system", "content": "Be brief."},
                {"role": "assistant", "content": "Hello."},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "How are you?"}
            ]
        }));
        assert_eq!(
            b,
            json!({
                "model": "claude-sonnet-4-5",
                "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}],
                "messages": [
                    {"role": "user", "content": "Hi."},
                    {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "How are you?"}
                ],
                "max_tokens": 8192
            })
        );
    }

    #[test]
    fn a_single_system_prompt_is_a_string_and_defaults_fit_the_model() {
        let b = body(json!({"model": "claude-3-haiku-20240307", "messages": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "U"}
        ]}));
        assert_eq!(b["system"], "S");
        assert_eq!(b["max_tokens"], 4096);
        assert!(b.get("temperature").is_none());
    }

    #[test]
    fn tool_calls_and_parallel_results_pair_up_without_filler_turns() {
        let b = body(json!({
            "model": "claude-sonnet-4-5",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "20C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "25C"},
                {"role": "user", "content": "Thanks. Which is warmer?"}
            ]
        }));
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking both."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "20C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"},
                    {"type": "text", "text": "Thanks. Which is warmer?"}
                ]}
            ])
        );
        assert_eq!(
            b["tools"],
            json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        );
        assert!(b.get("tool_choice").is_none());
    }

    #[test]
    fn legacy_function_history_becomes_tool_use_and_tool_result() {
        let b = body(json!({
            "model": "claude-sonnet-4-5",
            "functions": [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": null, "function_call": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"role": "function", "name": "get_weather", "content": "{\"temp_c\":20}"},
                {"role": "user", "content": "Thanks."},
                {"role": "user", "content": "And tomorrow?"}
            ]
        }));
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_legacy_2", "name": "get_weather", "input": {"location": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_legacy_2", "content": "{\"temp_c\":20}"},
                    {"type": "text", "text": "Thanks."},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ])
        );
        assert_eq!(b["system"], "You are a helpful assistant.");
    }

    #[test]
    fn images_as_data_uri_and_url_with_cache_control() {
        let b = body(json!({
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
            ]}]
        }));
        assert_eq!(
            b["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ])
        );
        let m = err(
            json!({"model": "claude-x", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}
            ]}]}),
        );
        assert!(m.contains("messages[0].content[0].image_url.url"), "{m}");
    }

    #[test]
    fn tool_choice_parallel_and_sampling_fields() {
        let base = json!({
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}],
            "max_completion_tokens": 300, "temperature": 1.7, "top_p": 0.9, "stop": ["END", " "],
            "user": "u-42", "seed": 1, "logprobs": true, "top_k": 5
        });
        for (choice, want) in [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (json!("required"), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ] {
            let mut v = base.clone();
            v["tool_choice"] = choice;
            assert_eq!(body(v)["tool_choice"], want);
        }
        let mut v = base.clone();
        v["parallel_tool_calls"] = json!(false);
        let b = body(v);
        assert_eq!(
            b["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            b["tools"][0],
            json!({"name": "f", "input_schema": {"type": "object", "properties": {}}, "cache_control": {"type": "ephemeral"}})
        );
        assert_eq!(b["max_tokens"], 300);
        assert_eq!(b["temperature"], 1.0);
        assert_eq!(b["top_p"], 0.9);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id": "u-42"}));
        assert_eq!(b["top_k"], 5);
        for dropped in ["seed", "logprobs", "user", "stop", "max_completion_tokens"] {
            assert!(b.get(dropped).is_none(), "{dropped}");
        }
    }

    #[test]
    fn reasoning_effort_enables_thinking_with_room_for_it() {
        let b = body(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "low", "temperature": 0.2}),
        );
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert_eq!(b["max_tokens"], 8192 + 2048);
        assert!(b.get("temperature").is_none());
        let b = body(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "high", "max_tokens": 4000}),
        );
        assert_eq!(b["thinking"]["budget_tokens"], 3999);
        assert_eq!(b["max_tokens"], 4000);
        let m = err(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "high", "max_tokens": 500}),
        );
        assert!(m.contains("max_tokens is 500"), "{m}");
        let b = body(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "none"}),
        );
        assert!(b.get("thinking").is_none());
    }

    // Found by the types review: the message listed none…high, while xhigh was accepted too.
    #[test]
    fn an_unknown_reasoning_effort_is_told_exactly_what_is_accepted() {
        let effort = |e: &str| {
            ChatRequest::from_value(json!({"model": "claude-sonnet-4-5", "max_tokens": 40000,
                "messages": [{"role": "user", "content": "x"}], "reasoning_effort": e}))
            .unwrap()
        };
        let m = build_body(&effort("max"), "claude-sonnet-4-5", false)
            .unwrap_err()
            .message;
        assert_eq!(
            m,
            "reasoning_effort 'max' is not known for Claude; use 'none', 'minimal', 'low', 'medium', 'high' or 'xhigh'."
        );
        // Every effort the message names is accepted.
        let listed: Vec<&str> = m.split('\'').skip(3).step_by(2).collect();
        assert_eq!(
            listed,
            ["none", "minimal", "low", "medium", "high", "xhigh"]
        );
        for e in listed {
            build_body(&effort(e), "claude-sonnet-4-5", false).unwrap();
        }
    }

    #[test]
    fn thinking_blocks_are_sent_back_first() {
        let b = body(json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "reasoning_content": "hmm",
             "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": ""}
        ]}));
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
            ])
        );
        assert_eq!(
            b["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "t1"}])
        );
    }

    #[test]
    fn response_format_becomes_a_forced_tool() {
        let r = build(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object", "properties": {"t": {"type": "number"}}}}}}),
        );
        assert_eq!(r.json_tool.as_deref(), Some("weather"));
        assert_eq!(
            r.body["tool_choice"],
            json!({"type": "tool", "name": "weather"})
        );
        assert_eq!(
            r.body["tools"][0]["input_schema"]["properties"]["t"]["type"],
            "number"
        );
        let r = build(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(r.json_tool.as_deref(), Some("json_response"));
        let r = build(
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "text"}}),
        );
        assert_eq!(r.json_tool, None);
    }

    #[test]
    fn requests_anthropic_cannot_honour_are_rejected() {
        let m = err(
            json!({"model": "claude-x", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert!(m.contains("`n`"), "{m}");
        let m = err(
            json!({"model": "claude-x", "messages": [{"role": "system", "content": "only system"}]}),
        );
        assert!(m.contains("at least one"), "{m}");
        let m = err(json!({"model": "claude-x", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}));
        assert!(
            m.contains("messages[0].tool_calls[0].function.arguments is not valid JSON"),
            "{m}"
        );
        // An OpenAI custom tool call in the history, as an OpenAI answer can hold one.
        let m = err(json!({"model": "claude-x", "messages": [
            {"role": "user", "content": "Count"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"}
        ]}));
        assert!(
            m.contains(
                "messages[1].tool_calls[0] is a 'custom' tool call, which Anthropic does not know"
            ),
            "{m}"
        );
        let m = err(
            json!({"model": "claude-x", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
            ]}]}),
        );
        assert!(m.contains("does not accept"), "{m}");
    }

    #[test]
    fn streaming_adds_the_flag() {
        let req = ChatRequest::from_value(
            json!({"model": "claude-x", "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        assert_eq!(
            build_body(&req, "claude-x", true).unwrap().body["stream"],
            true
        );
    }
}
