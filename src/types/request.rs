//! The canonical request: OpenAI's Chat Completions request, parsed and checked once, with the legacy
//! `functions` form already translated to tools. Every provider adapter starts from this.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub response_format: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub reasoning_effort: Option<String>,
    pub user: Option<String>,
    pub seed: Option<i64>,
    /// For the built-in `mock/` provider: the reply to give. Never sent upstream.
    pub mock_response: Option<String>,
    /// For the built-in `mock/` provider: tool calls to answer with. Never sent upstream.
    pub mock_tool_calls: Option<Vec<MockToolCall>>,
    /// The request used the legacy `functions` / `function_call` fields.
    pub legacy_functions: bool,
    /// Fields this library does not model, passed unchanged to OpenAI-format providers.
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    /// `None` only for an assistant turn that carries tool calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text of the content: the string, or the text parts joined.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A tool call of an assistant message: a function call (`function`), or one of OpenAI's custom
/// tool calls (`custom`: free-form `input` text). A `type` OpenAI adds later is kept as it is, with
/// its fields in `extra`, and passed through to OpenAI-format servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawToolCall")]
pub struct ToolCall {
    pub id: String,
    /// `"function"`, `"custom"`, or another type passed through. When a call gives no `type`, it is
    /// `"custom"` if the call has `custom` and no `function`, else `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomCall>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolCall {
    /// A function call.
    pub fn function(id: String, name: String, arguments: String) -> Self {
        ToolCall {
            id,
            kind: function_type(),
            function: Some(FunctionCall { name, arguments }),
            custom: None,
            extra: Map::new(),
        }
    }

    /// The function called, when this is a function call (`type: 'function'` with its `function`).
    pub fn as_function(&self) -> Option<&FunctionCall> {
        self.function.as_ref().filter(|_| self.kind == "function")
    }
}

/// A tool call as written: `type` may be missing.
#[derive(Deserialize)]
struct RawToolCall {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionCall>,
    #[serde(default)]
    custom: Option<CustomCall>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl From<RawToolCall> for ToolCall {
    fn from(raw: RawToolCall) -> Self {
        let kind = raw.kind.unwrap_or_else(|| {
            if raw.custom.is_some() && raw.function.is_none() {
                "custom".into()
            } else {
                function_type()
            }
        });
        ToolCall {
            id: raw.id,
            kind,
            function: raw.function,
            custom: raw.custom,
            extra: raw.extra,
        }
    }
}

/// What the model gave an OpenAI custom tool: its name and free-form input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomCall {
    pub name: String,
    #[serde(default)]
    pub input: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_type() -> String {
    "function".to_string()
}

/// The problem with a tool call whose `type` needs a field it lacks, for an error message.
pub(crate) fn tool_call_shape_problem(call: &ToolCall) -> Option<&'static str> {
    match call.kind.as_str() {
        "function" if call.function.is_none() => {
            Some("has type 'function' but no `function` ({ name, arguments })")
        }
        "custom" if call.custom.is_none() => {
            Some("has type 'custom' but no `custom` ({ name, input })")
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it. An object given here is turned into its JSON text.
    #[serde(deserialize_with = "arguments_as_text", default)]
    pub arguments: String,
}

fn arguments_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"auto"`, `"none"`, `"required"`, a named function, or another OpenAI form passed through.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
    Other(Value),
}

impl Serialize for ToolChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Function(name) => serde_json::json!({
                "type": "function",
                "function": { "name": name }
            })
            .serialize(s),
            ToolChoice::Other(v) => v.serialize(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// A tool call the `mock/` provider answers with: `{ name, arguments }`, the arguments as an
/// object or as JSON text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockToolCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Option<Value>,
}

impl MockToolCall {
    /// The arguments as the JSON text OpenAI sends (`{}` when none were given).
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            None | Some(Value::Null) => "{}".to_string(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }
}

impl ChatRequest {
    /// Parses and checks a request given as JSON text (what the JavaScript layer hands over).
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            // serde_json stops at 128 levels (so deep input cannot overflow the stack); JavaScript
            // callers never wrote JSON, so say what is wrong with their object.
            if e.to_string().starts_with("recursion limit exceeded") {
                Error::invalid_request(
                    "The request is nested too deeply: arrays and objects may be nested at most 128 levels.",
                )
            } else {
                Error::invalid_request(format!("The request is not valid JSON: {e}."))
            }
        })?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut map) = value else {
            return Err(Error::invalid_request(format!(
                "The request must be an object like {{ model, messages }}, not {}.",
                describe(&value)
            )));
        };
        let model: String = take(&mut map, "model", "")?.ok_or_else(|| {
            Error::invalid_request(
                "The request has no `model`. Pass a model name such as 'gpt-4o', 'claude-sonnet-4-5' or 'mock/echo'.",
            )
        })?;
        if model.trim().is_empty() {
            return Err(Error::invalid_request(
                "`model` is empty. Pass a model name such as 'gpt-4o' or 'mock/echo'.",
            ));
        }
        let raw_messages: Vec<Value> = take(&mut map, "messages", "")?.ok_or_else(|| {
            Error::invalid_request(
                "The request has no `messages`. Pass an array such as [{ role: 'user', content: 'Hello' }].",
            )
        })?;
        if raw_messages.is_empty() {
            return Err(Error::invalid_request(
                "`messages` is empty. Pass at least one message, such as { role: 'user', content: 'Hello' }.",
            ));
        }

        let mut tools: Option<Vec<Tool>> = take(&mut map, "tools", "")?;
        let functions: Option<Vec<FunctionDef>> = take(&mut map, "functions", "")?;
        let function_call: Option<Value> = take(&mut map, "function_call", "")?;
        let legacy_functions = functions.is_some() || function_call.is_some();
        if let Some(functions) = functions {
            let tools = tools.get_or_insert_with(Vec::new);
            tools.extend(functions.into_iter().map(|f| Tool {
                kind: "function".into(),
                function: Some(f),
                extra: Map::new(),
            }));
        }
        if let Some(tools) = &tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.kind == "function" && tool.function.is_none() {
                    return Err(Error::invalid_request(format!(
                        "tools[{i}] has type 'function' but no `function`. Write {{ type: 'function', function: {{ name, description, parameters }} }}."
                    )));
                }
            }
        }

        let tool_choice = match take::<Value>(&mut map, "tool_choice", "")? {
            Some(v) => Some(parse_tool_choice(v, "tool_choice")?),
            None => match function_call {
                Some(v) => Some(parse_tool_choice(v, "function_call")?),
                None => None,
            },
        };

        let messages = parse_messages(raw_messages)?;
        let max_tokens = take(&mut map, "max_tokens", "")?;
        let max_completion_tokens = take(&mut map, "max_completion_tokens", "")?;
        let temperature = take(&mut map, "temperature", "")?;
        let top_p = take(&mut map, "top_p", "")?;
        let stop = take(&mut map, "stop", "")?;
        let response_format = take(&mut map, "response_format", "")?;
        let parallel_tool_calls = take(&mut map, "parallel_tool_calls", "")?;
        let reasoning_effort = take(&mut map, "reasoning_effort", "")?;
        let user = take(&mut map, "user", "")?;
        let seed = take(&mut map, "seed", "")?;
        let mock_response = take(&mut map, "mock_response", "")?;
        let mock_tool_calls = take(&mut map, "mock_tool_calls", "")?;
        // Streaming is chosen by calling `stream()`; these would contradict it.
        map.remove("stream");
        map.remove("stream_options");

        Ok(ChatRequest {
            model,
            messages,
            tools,
            tool_choice,
            max_tokens,
            max_completion_tokens,
            temperature,
            top_p,
            stop,
            response_format,
            parallel_tool_calls,
            reasoning_effort,
            user,
            seed,
            mock_response,
            mock_tool_calls,
            legacy_functions,
            extra: map,
        })
    }

    /// The output-token limit the caller asked for, under either name.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

fn parse_tool_choice(v: Value, field: &str) -> Result<ToolChoice> {
    Ok(match v {
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" | "any" => ToolChoice::Required,
            other => {
                return Err(Error::invalid_request(format!(
                    "`{field}` is '{other}'; use 'auto', 'none', 'required' or {{ type: 'function', function: {{ name }} }}."
                )))
            }
        },
        Value::Object(ref o) => {
            // { type: 'function', function: { name } } and the legacy { name }.
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            match name {
                Some(name) => ToolChoice::Function(name.to_string()),
                None => ToolChoice::Other(v),
            }
        }
        other => {
            return Err(Error::invalid_request(format!(
                "`{field}` must be a string or an object, not {}.",
                describe(&other)
            )))
        }
    })
}

fn parse_messages(raw: Vec<Value>) -> Result<Vec<Message>> {
    let mut messages = Vec::with_capacity(raw.len());
    // Legacy assistant `function_call`s waiting for their `role: 'function'` result: (name, id).
    let mut open_calls: Vec<(String, String)> = Vec::new();
    for (i, value) in raw.into_iter().enumerate() {
        let path = format!("messages[{i}]");
        let Value::Object(mut map) = value else {
            return Err(Error::invalid_request(format!(
                "{path} must be an object like {{ role: 'user', content: 'Hello' }}, not {}.",
                describe(&value)
            )));
        };
        let role: String = take(&mut map, "role", &path)?.ok_or_else(|| {
            Error::invalid_request(format!(
                "{path} has no `role`. Use 'system', 'developer', 'user', 'assistant' or 'tool'."
            ))
        })?;
        let content: Option<Content> = take_content(&mut map, &path)?;
        let name: Option<String> = take(&mut map, "name", &path)?;
        let mut message = Message {
            role: Role::User,
            content,
            name,
            tool_calls: Vec::new(),
            tool_call_id: None,
            extra: Map::new(),
        };
        match role.as_str() {
            "system" | "developer" | "user" => {
                message.role = match role.as_str() {
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    _ => Role::User,
                };
                if message.content.is_none() {
                    return Err(Error::invalid_request(format!(
                        "{path} ({role}) has no `content`. Give it a string or an array of content parts."
                    )));
                }
            }
            "assistant" => {
                message.role = Role::Assistant;
                message.tool_calls = take(&mut map, "tool_calls", &path)?.unwrap_or_default();
                if let Some(call) = take::<FunctionCall>(&mut map, "function_call", &path)? {
                    let id = format!("call_legacy_{i}");
                    open_calls.push((call.name.clone(), id.clone()));
                    message
                        .tool_calls
                        .push(ToolCall::function(id, call.name, call.arguments));
                }
                for (j, call) in message.tool_calls.iter().enumerate() {
                    if call.id.is_empty() {
                        return Err(Error::invalid_request(format!(
                            "{path}.tool_calls[{j}].id is empty. Keep the id the model returned so the tool result can refer to it."
                        )));
                    }
                    if let Some(problem) = tool_call_shape_problem(call) {
                        return Err(Error::invalid_request(format!(
                            "{path}.tool_calls[{j}] {problem}."
                        )));
                    }
                }
                if message.content.is_none() && message.tool_calls.is_empty() {
                    return Err(Error::invalid_request(format!(
                        "{path} (assistant) has neither `content` nor `tool_calls`. Give it the text the model answered."
                    )));
                }
            }
            "tool" => {
                message.role = Role::Tool;
                message.tool_call_id = Some(take(&mut map, "tool_call_id", &path)?.ok_or_else(|| {
                    Error::invalid_request(format!(
                        "{path} (tool) has no `tool_call_id`. Set it to the id of the assistant tool call it answers."
                    ))
                })?);
                if message.content.is_none() {
                    message.content = Some(Content::Text(String::new()));
                }
            }
            "function" => {
                let fname = message.name.take().ok_or_else(|| {
                    Error::invalid_request(format!(
                        "{path} (function) has no `name`. Set it to the name of the function whose result it is."
                    ))
                })?;
                let pos = open_calls
                    .iter()
                    .position(|(n, _)| *n == fname)
                    .ok_or_else(|| {
                        Error::invalid_request(format!(
                            "{path} is the result of function '{fname}', but no earlier assistant message called it. Add the assistant message with its `function_call` before it."
                        ))
                    })?;
                let (_, id) = open_calls.remove(pos);
                message.role = Role::Tool;
                message.tool_call_id = Some(id);
                if message.content.is_none() {
                    message.content = Some(Content::Text(String::new()));
                }
            }
            other => {
                return Err(Error::invalid_request(format!(
                    "{path}.role is '{other}'; use 'system', 'developer', 'user', 'assistant', 'tool' or 'function'."
                )))
            }
        }
        message.extra = map;
        messages.push(message);
    }
    Ok(messages)
}

fn take_content(map: &mut Map<String, Value>, path: &str) -> Result<Option<Content>> {
    let Some(value) = map.remove("content") else {
        return Ok(None);
    };
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Content::Text(s))),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (k, item) in items.into_iter().enumerate() {
                let part_path = format!("{path}.content[{k}]");
                let part: ContentPart = from_value(item, &part_path)?;
                match part.kind.as_str() {
                    "text" if part.text.is_none() => {
                        return Err(Error::invalid_request(format!(
                            "{part_path} is a text part without `text`. Write {{ type: 'text', text: '…' }}."
                        )))
                    }
                    "image_url" if part.image_url.is_none() => {
                        return Err(Error::invalid_request(format!(
                            "{part_path} is an image part without `image_url`. Write {{ type: 'image_url', image_url: {{ url }} }}."
                        )))
                    }
                    _ => {}
                }
                parts.push(part);
            }
            Ok(Some(Content::Parts(parts)))
        }
        other => Err(Error::invalid_request(format!(
            "{path}.content must be a string or an array of content parts, not {}.",
            describe(&other)
        ))),
    }
}

/// Removes `key` from `map` and deserialises it; `null` counts as absent. Errors name the field.
fn take<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<T>> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let field = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            from_value(v, &field).map(Some)
        }
    }
}

fn from_value<T: DeserializeOwned>(v: Value, field: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." || inner.is_empty() {
            field.to_string()
        } else if inner.starts_with('[') {
            // An index: `messages[0].tool_calls[1]`, not `tool_calls.[1]`.
            format!("{field}{inner}")
        } else {
            format!("{field}.{inner}")
        };
        Error::invalid_request(format!("`{at}` is invalid: {}.", e.inner()))
    })
}

/// "a number", "an array"… for error messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest> {
        ChatRequest::from_value(v)
    }

    fn err(v: Value) -> String {
        let e = parse(v).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::InvalidRequest);
        e.message
    }

    #[test]
    fn parses_a_plain_request_and_keeps_unknown_fields() {
        let r = parse(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.2,
            "logprobs": true,
            "stream": true
        }))
        .unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert_eq!(r.temperature, Some(0.2));
        assert_eq!(r.extra.get("logprobs"), Some(&json!(true)));
        assert!(!r.extra.contains_key("stream"));
        assert_eq!(r.messages[0].content, Some(Content::Text("Hi".into())));
    }

    #[test]
    fn rejects_missing_or_wrong_fields_with_a_path() {
        assert!(err(json!({"messages": []})).contains("no `model`"));
        assert!(err(json!({"model": "gpt-4o"})).contains("no `messages`"));
        assert!(err(json!({"model": "gpt-4o", "messages": []})).contains("`messages` is empty"));
        assert!(err(json!({"model": 5, "messages": []})).contains("`model` is invalid"));
        assert!(err(json!({"model": "m", "messages": "hi"})).contains("`messages` is invalid"));
        assert!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": 3}]}))
                .contains("messages[0].content must be a string or an array")
        );
        assert!(
            err(json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]}))
                .contains("messages[0].role is 'bot'")
        );
        assert!(
            err(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
                .contains("no `tool_call_id`")
        );
        let m = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        );
        assert!(m.contains("`temperature` is invalid"), "{m}");
        let m = err(
            json!({"model": "m", "messages": [{"role": "assistant", "content": null,
            "tool_calls": [{"id": "a", "type": "function", "function": {"arguments": "{}"}}]}]}),
        );
        assert!(m.contains("messages[0].tool_calls"), "{m}");
    }

    #[test]
    fn translates_legacy_functions_with_matching_ids() {
        let r = parse(json!({
            "model": "gpt-4o",
            "functions": [{"name": "get_weather", "parameters": {"type": "object"}}],
            "function_call": {"name": "get_weather"},
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "function_call": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"role": "function", "name": "get_weather", "content": "{\"temp\":20}"}
            ]
        }))
        .unwrap();
        assert!(r.legacy_functions);
        let tools = r.tools.unwrap();
        assert_eq!(tools[0].function.as_ref().unwrap().name, "get_weather");
        assert_eq!(
            r.tool_choice,
            Some(ToolChoice::Function("get_weather".into()))
        );
        let call = &r.messages[1].tool_calls[0];
        assert_eq!(call.id, "call_legacy_1");
        assert_eq!(
            call.as_function().unwrap().arguments,
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(r.messages[2].role, Role::Tool);
        assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("call_legacy_1"));
        assert_eq!(r.messages[2].name, None);
    }

    #[test]
    fn a_function_result_without_its_call_is_rejected() {
        let m = err(json!({"model": "m", "messages": [
            {"role": "function", "name": "f", "content": "1"}
        ]}));
        assert!(m.contains("no earlier assistant message called it"), "{m}");
    }

    #[test]
    fn object_arguments_become_json_text() {
        let r = parse(json!({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}
        ]}))
        .unwrap();
        assert_eq!(
            r.messages[0].tool_calls[0].as_function().unwrap().arguments,
            "{\"a\":1}"
        );
    }

    // Found by the types review: serde_path_to_error's path of an array item starts with its
    // index, which was joined with a dot (`messages[0].tool_calls.[0].function`).
    #[test]
    fn error_paths_have_no_dot_before_an_index() {
        let m = err(
            json!({"model": "m", "messages": [{"role": "assistant", "content": null,
            "tool_calls": [{"id": "a", "type": "function", "function": {"arguments": "{}"}}]}]}),
        );
        assert!(
            m.starts_with("`messages[0].tool_calls[0].function` is invalid: missing field `name`"),
            "{m}"
        );
        let m = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": 1}}]}),
        );
        assert!(m.starts_with("`tools[0].function.name` is invalid"), "{m}");
        let m =
            err(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}));
        assert!(!m.contains(".["), "{m}");
    }

    // Found by the types review: `function` was required, so OpenAI's custom tool calls (as an
    // answer holding one is sent back) were invalid_request.
    #[test]
    fn custom_tool_calls_are_read_and_written_back_unchanged() {
        let history = json!([
            {"role": "user", "content": "Count the rows"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
                {"id": "call_f", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_c", "content": "1"},
            {"role": "tool", "tool_call_id": "call_f", "content": "ok"}
        ]);
        let r = parse(json!({"model": "m", "messages": history})).unwrap();
        let calls = &r.messages[1].tool_calls;
        assert_eq!(calls[0].kind, "custom");
        assert_eq!(calls[0].as_function(), None);
        let custom = calls[0].custom.as_ref().unwrap();
        assert_eq!(
            (custom.name.as_str(), custom.input.as_str()),
            ("sql", "SELECT 1")
        );
        assert_eq!(calls[1].as_function().unwrap().name, "f");
        // Serialised back, each call is as it was given.
        let back = serde_json::to_value(&r.messages[1]).unwrap();
        assert_eq!(back["tool_calls"], history[1]["tool_calls"]);

        // Without `type`, a call with only `custom` is a custom call; fields of a later kind of
        // call are kept.
        let r = parse(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c1", "custom": {"name": "sql", "input": "x"}},
                {"id": "c2", "type": "mcp", "mcp": {"server": "s"}}
            ]}]}),
        )
        .unwrap();
        assert_eq!(r.messages[0].tool_calls[0].kind, "custom");
        let later = serde_json::to_value(&r.messages[0].tool_calls[1]).unwrap();
        assert_eq!(
            later,
            json!({"id": "c2", "type": "mcp", "mcp": {"server": "s"}})
        );

        // A call whose type needs a field it lacks.
        let m = err(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "custom", "function": {"name": "f", "arguments": "{}"}}
            ]}]}),
        );
        assert!(
            m.contains("messages[0].tool_calls[0] has type 'custom' but no `custom`"),
            "{m}"
        );
        let m = err(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function"}
            ]}]}),
        );
        assert!(
            m.contains("messages[0].tool_calls[0] has type 'function' but no `function`"),
            "{m}"
        );
        let m = err(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"input": "x"}}
            ]}]}),
        );
        assert!(
            m.starts_with("`messages[0].tool_calls[0].custom` is invalid: missing field `name`"),
            "{m}"
        );
    }

    #[test]
    fn tool_choice_forms() {
        for (given, want) in [
            (json!("auto"), ToolChoice::Auto),
            (json!("none"), ToolChoice::None),
            (json!("required"), ToolChoice::Required),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                ToolChoice::Function("f".into()),
            ),
        ] {
            let r = parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": given})).unwrap();
            assert_eq!(r.tool_choice, Some(want));
        }
        assert!(err(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}))
            .contains("'sometimes'"));
    }

    #[test]
    fn content_parts_are_checked() {
        let m = err(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        );
        assert!(m.contains("messages[0].content[0] is an image part"), "{m}");
        let r = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
            ]}]}),
        )
        .unwrap();
        let Some(Content::Parts(parts)) = &r.messages[0].content else {
            panic!()
        };
        assert_eq!(
            parts[1].image_url.as_ref().unwrap().detail.as_deref(),
            Some("low")
        );
    }

    // Found by tests/hostile.rs: a request nested past serde_json's limit was reported as "not
    // valid JSON", which a JavaScript caller never wrote.
    #[test]
    fn a_request_nested_too_deeply_says_so() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let text =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"m":{deep}}}"#);
        let e = ChatRequest::from_json(&text).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::InvalidRequest);
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        let e = ChatRequest::from_json("{").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn mock_tool_call_arguments_are_json_text() {
        let call = |v: Value| {
            serde_json::from_value::<MockToolCall>(v)
                .unwrap()
                .arguments_text()
        };
        assert_eq!(call(json!({"name": "f"})), "{}");
        assert_eq!(
            call(json!({"name": "f", "arguments": {"a": 1}})),
            r#"{"a":1}"#
        );
        assert_eq!(
            call(json!({"name": "f", "arguments": "{\"a\":1}"})),
            r#"{"a":1}"#
        );
        assert!(serde_json::from_value::<MockToolCall>(json!({"name": "f", "args": {}})).is_err());
    }
}
