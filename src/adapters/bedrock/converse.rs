//! Bedrock Converse: canonical (OpenAI) request → the body of `POST /model/{modelId}/converse` and
//! `/converse-stream`; a Converse response → `chat.completion`; ConverseStream events → chunks.
//!
//! Converse is one format for every Bedrock model. Its conventions follow Anthropic's, and so does
//! this adapter: system and developer messages, wherever they stand, become `system`; tool calls
//! become `toolUse` blocks after the assistant's text; tool results become `toolResult` blocks in a
//! user turn; consecutive turns of one role are merged (never padded with invented turns); signed
//! Claude thinking is sent back first in its assistant turn.

use crate::adapters::anthropic::response::{arguments_text, usage as anthropic_usage};
use crate::adapters::error_body::code_for_aws_error;
use crate::adapters::StreamAdapter;
use crate::client::sse::SseEvent;
use crate::error::{Error, ErrorCode, Result};
use crate::ids;
use crate::types::request::{
    ChatRequest, Content, ContentPart, Message, Role, ToolCall, ToolChoice,
};
use crate::types::response::{
    assistant_role, chunk_object, native_finish_reason, now_seconds, ChatCompletion,
    ChatCompletionChunk, Choice, ChunkChoice, Delta, FunctionDelta, ResponseMessage, ToolCallDelta,
    Usage,
};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Fields of an OpenAI-format request that are Converse's own and passed through as given.
/// `additionalModelRequestFields` is how a caller reaches model-specific options (Claude's
/// `thinking`, `top_k`…), which this adapter cannot choose without knowing the model.
const PASSTHROUGH: [&str; 4] = [
    "additionalModelRequestFields",
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
];

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// Body of `POST /model/{modelId}/converse` and `/converse-stream` (the model id is in the path,
/// not the body).
pub fn build_body(req: &ChatRequest) -> Result<Value> {
    if req.extra.get("n").and_then(Value::as_u64).unwrap_or(1) > 1 {
        return Err(Error::invalid_request(
            "Bedrock Converse returns one choice per request; `n` above 1 cannot be honoured. Send several requests instead.",
        ));
    }
    let mut b = Builder::default();
    let mut body = Map::new();

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(b.content_blocks(m.content.as_ref(), &path, Place::System)?);
                continue;
            }
            Role::User => (
                "user",
                b.content_blocks(m.content.as_ref(), &path, Place::User)?,
            ),
            Role::Assistant => ("assistant", b.assistant_blocks(m, &path)?),
            Role::Tool => ("user", b.tool_result(m, &path)?),
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
            "Bedrock Converse needs at least one non-empty user or assistant message besides the system prompt.",
        ));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }

    let mut inference = Map::new();
    if let Some(max) = req.max_output_tokens() {
        inference.insert("maxTokens".into(), json!(max));
    }
    // The valid range is the model's (Claude 0–1, Llama and Mistral 0–1, Nova 0–1…); Bedrock
    // reports a value out of range, so it is passed as given.
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        let sequences: Vec<String> = stop
            .sequences()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if !sequences.is_empty() {
            inference.insert("stopSequences".into(), json!(sequences));
        }
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }

    if let Some(config) = tool_config(req, b.tool_blocks)? {
        body.insert("toolConfig".into(), config);
    }
    if let Some(output) = output_config(req.response_format.as_ref())? {
        body.insert("outputConfig".into(), output);
    }
    for key in PASSTHROUGH {
        if let Some(v) = req.extra.get(key) {
            body.insert(key.to_string(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Where content goes: it decides which block types are allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    System,
    User,
    Assistant,
    ToolResult,
}

#[derive(Default)]
struct Builder {
    /// Document names given so far, with how often (Converse wants them distinct).
    document_names: HashMap<String, usize>,
    /// The messages hold `toolUse` or `toolResult` blocks.
    tool_blocks: bool,
}

fn cache_point() -> Value {
    json!({ "cachePoint": { "type": "default" } })
}

fn is_cache_point(block: &Value) -> bool {
    block.get("cachePoint").is_some()
}

/// Bedrock rejects text blocks without visible text.
fn text_block(text: &str) -> Option<Value> {
    (!text.trim().is_empty()).then(|| json!({ "text": text }))
}

/// `data:<media type>[;params];base64,<data>` → (media type, data).
fn data_uri(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let media_type = meta.split(';').next().unwrap_or("");
    Some((media_type, data))
}

fn image_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

fn document_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

impl Builder {
    fn content_blocks(
        &mut self,
        content: Option<&Content>,
        path: &str,
        place: Place,
    ) -> Result<Vec<Value>> {
        let parts = match content {
            None => return Ok(Vec::new()),
            Some(Content::Text(s)) => return Ok(text_block(s).into_iter().collect()),
            Some(Content::Parts(parts)) => parts,
        };
        let media = matches!(place, Place::User | Place::ToolResult);
        let mut blocks = Vec::with_capacity(parts.len());
        for (k, part) in parts.iter().enumerate() {
            let part_path = format!("{path}.content[{k}]");
            let block = match part.kind.as_str() {
                "text" => text_block(part.text.as_deref().unwrap_or("")),
                "image_url" | "file" if !media => {
                    let place = if place == Place::System {
                        "system prompts"
                    } else {
                        "assistant messages"
                    };
                    return Err(Error::invalid_request(format!(
                        "{part_path}: Bedrock Converse takes only text in {place}; move the {} to a user message.",
                        part.kind
                    )));
                }
                "image_url" => Some(image_block(part, &part_path)?),
                "file" => Some(self.document_block(part, &part_path)?),
                // Converse's own block types, written `{ type: 'guardContent', guardContent: {…} }`
                // (or `json`, `video`, `cachePoint`…), are passed as given.
                kind => match part.extra.get(kind) {
                    Some(v) if !matches!(kind, "input_audio" | "refusal") => {
                        Some(json!({ kind: v }))
                    }
                    _ => {
                        return Err(Error::invalid_request(format!(
                        "{part_path} is an '{kind}' part, which Bedrock Converse does not accept."
                    )))
                    }
                },
            };
            if let Some(block) = block {
                blocks.push(block);
                if part.extra.contains_key("cache_control") {
                    blocks.push(cache_point());
                }
            }
        }
        Ok(blocks)
    }

    fn document_block(&mut self, part: &ContentPart, path: &str) -> Result<Value> {
        let file = part.extra.get("file");
        let data = file
            .and_then(|f| f.get("file_data"))
            .and_then(Value::as_str);
        let Some((media_type, data)) = data.and_then(data_uri) else {
            return Err(Error::invalid_request(format!(
                "{path}: Bedrock Converse needs the file inline as `file.file_data` (a base64 data URI); OpenAI file ids cannot be read by Bedrock."
            )));
        };
        if let Some(format) = image_format(media_type) {
            return Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }));
        }
        let Some(format) = document_format(media_type) else {
            return Err(Error::invalid_request(format!(
                "{path}.file.file_data is '{media_type}'; Bedrock Converse reads pdf, csv, doc, docx, xls, xlsx, html, txt and md documents."
            )));
        };
        let filename = file
            .and_then(|f| f.get("filename"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = self.document_name(filename);
        Ok(json!({
            "document": { "format": format, "name": name, "source": { "bytes": data } }
        }))
    }

    /// Converse accepts document names of letters, digits, single spaces, hyphens, parentheses and
    /// square brackets, distinct within a request: `my_report.v2.pdf` → `my-report-v2`.
    fn document_name(&mut self, filename: &str) -> String {
        let stem = match filename.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => filename,
        };
        let mapped: String = stem
            .chars()
            .map(|c| match c {
                c if c.is_ascii_alphanumeric() => c,
                '-' | '(' | ')' | '[' | ']' => c,
                c if c.is_whitespace() => ' ',
                _ => '-',
            })
            .collect();
        let mut name = mapped.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() {
            name = "document".into();
        }
        let seen = self.document_names.entry(name.clone()).or_insert(0);
        *seen += 1;
        if *seen > 1 {
            name = format!("{name} ({seen})");
        }
        name
    }

    fn assistant_blocks(&mut self, m: &Message, path: &str) -> Result<Vec<Value>> {
        let mut blocks = Vec::new();
        // Signed thinking from an earlier answer must come first, unchanged.
        if let Some(Value::Array(thinking)) = m.extra.get("thinking_blocks") {
            blocks.extend(thinking.iter().filter_map(reasoning_block));
        }
        blocks.extend(self.content_blocks(m.content.as_ref(), path, Place::Assistant)?);
        for (j, call) in m.tool_calls.iter().enumerate() {
            // As in `tools`, where OpenAI's custom tools are rejected too.
            let Some(function) = call.as_function() else {
                return Err(Error::invalid_request(format!(
                    "{path}.tool_calls[{j}] is a '{}' tool call; Bedrock Converse takes only function tool calls.",
                    call.kind
                )));
            };
            let args = function.arguments.trim();
            let input: Value = if args.is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    Error::invalid_request(format!(
                        "{path}.tool_calls[{j}].function.arguments is not valid JSON ({e}); Bedrock Converse needs the arguments as a JSON object."
                    ))
                })?
            };
            if !input.is_object() {
                return Err(Error::invalid_request(format!(
                    "{path}.tool_calls[{j}].function.arguments must be a JSON object for Bedrock Converse."
                )));
            }
            self.tool_blocks = true;
            blocks.push(json!({
                "toolUse": { "toolUseId": call.id, "name": function.name, "input": input }
            }));
        }
        Ok(blocks)
    }

    /// A tool result: one `toolResult` block, then a cache point if a part asked for one (Converse
    /// takes none inside a tool result).
    fn tool_result(&mut self, m: &Message, path: &str) -> Result<Vec<Value>> {
        let blocks = self.content_blocks(m.content.as_ref(), path, Place::ToolResult)?;
        let cached = blocks.iter().any(is_cache_point);
        // An empty result is sent as no content rather than a blank text block, which Bedrock
        // rejects.
        let content: Vec<Value> = blocks.into_iter().filter(|b| !is_cache_point(b)).collect();
        let mut result = json!({
            "toolUseId": m.tool_call_id.as_deref().unwrap_or(""),
            "content": content,
        });
        // `status` is read by Claude and Nova only; it is sent just for a failure.
        if m.extra.get("is_error") == Some(&Value::Bool(true)) {
            result["status"] = json!("error");
        }
        self.tool_blocks = true;
        let mut out = vec![json!({ "toolResult": result })];
        if cached {
            out.push(cache_point());
        }
        Ok(out)
    }
}

fn image_block(part: &ContentPart, path: &str) -> Result<Value> {
    let url = part
        .image_url
        .as_ref()
        .map(|i| i.url.as_str())
        .unwrap_or("");
    if let Some((media_type, data)) = data_uri(url) {
        let format = image_format(media_type).ok_or_else(|| {
            Error::invalid_request(format!(
                "{path}.image_url.url is a '{media_type}' image; Bedrock Converse takes png, jpeg, gif and webp."
            ))
        })?;
        return Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }));
    }
    if url.starts_with("s3://") {
        let ext = url.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let format = image_format(&format!("image/{ext}")).ok_or_else(|| {
            Error::invalid_request(format!(
                "{path}.image_url.url is an S3 object whose name does not end in .png, .jpg, .jpeg, .gif or .webp; Bedrock needs the image format."
            ))
        })?;
        return Ok(
            json!({ "image": { "format": format, "source": { "s3Location": { "uri": url } } } }),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Err(Error::invalid_request(format!(
            "{path}.image_url.url is a web address, which Bedrock Converse cannot fetch; pass the image as a base64 data URI (data:image/png;base64,…)."
        )));
    }
    Err(Error::invalid_request(format!(
        "{path}.image_url.url must be a base64 data URI (data:image/png;base64,…) for Bedrock Converse."
    )))
}

/// A thinking block as the Anthropic adapter (or this one) returned it → Converse's
/// `reasoningContent`. Other block types have no Converse form and are left out.
fn reasoning_block(block: &Value) -> Option<Value> {
    let text = |k: &str| block.get(k).and_then(Value::as_str);
    match text("type")? {
        "thinking" => {
            let mut reasoning = json!({ "text": text("thinking").unwrap_or("") });
            // Reasoning of models other than Claude has no signature; none is sent for it.
            if let Some(signature) = text("signature").filter(|s| !s.is_empty()) {
                reasoning["signature"] = json!(signature);
            }
            Some(json!({ "reasoningContent": { "reasoningText": reasoning } }))
        }
        "redacted_thinking" => {
            Some(json!({ "reasoningContent": { "redactedContent": text("data")? } }))
        }
        _ => None,
    }
}

fn tool_config(req: &ChatRequest, tool_blocks: bool) -> Result<Option<Value>> {
    let mut tools: Vec<Value> = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        let Some(f) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
            return Err(Error::invalid_request(format!(
                "tools[{i}] is a '{}' tool; Bedrock Converse takes only function tools.",
                tool.kind
            )));
        };
        let schema = f
            .parameters
            .clone()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        let mut spec = json!({ "name": f.name, "inputSchema": { "json": schema } });
        if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
            spec["description"] = json!(d);
        }
        tools.push(json!({ "toolSpec": spec }));
        if tool.extra.contains_key("cache_control") {
            tools.push(cache_point());
        }
    }
    if tools.is_empty() {
        if tool_blocks {
            return Err(Error::invalid_request(
                "The messages hold tool calls or tool results, and Bedrock Converse then needs the tools they used: pass them in `tools`.",
            ));
        }
        return Ok(None);
    }
    let choice = match &req.tool_choice {
        None | Some(ToolChoice::Auto) => None,
        Some(ToolChoice::Required) => Some(json!({ "any": {} })),
        Some(ToolChoice::Function(name)) => Some(json!({ "tool": { "name": name } })),
        // Converse has no "none". Leaving the tools out says it, but Bedrock requires them
        // whenever the messages hold tool calls or results; then they are sent without a choice
        // and the model is only asked, not forced, not to call one.
        Some(ToolChoice::None) if !tool_blocks => return Ok(None),
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Other(v)) => {
            return Err(Error::invalid_request(format!(
                "tool_choice {v} has no Bedrock Converse equivalent; use 'auto', 'none', 'required' or {{ type: 'function', function: {{ name }} }}."
            )))
        }
    };
    let mut config = json!({ "tools": tools });
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Ok(Some(config))
}

/// `response_format` → `outputConfig.textFormat` (Bedrock's structured output, on the models that
/// support it).
fn output_config(format: Option<&Value>) -> Result<Option<Value>> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Err(Error::invalid_request(
            "response_format 'json_object' has no Bedrock Converse equivalent; use { type: 'json_schema', json_schema: { name, schema } }, which Bedrock enforces.",
        )),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let Some(schema) = spec.get("schema").filter(|s| s.is_object()) else {
                return Err(Error::invalid_request(
                    "response_format.json_schema.schema must be a JSON schema object.",
                ));
            };
            let mut definition = json!({ "schema": schema.to_string() });
            for key in ["name", "description"] {
                if let Some(v) = spec.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                    definition[key] = json!(v);
                }
            }
            Ok(Some(json!({
                "textFormat": { "type": "json_schema", "structure": { "jsonSchema": definition } }
            })))
        }
        Some(other) => Err(Error::invalid_request(format!(
            "response_format type '{other}' is not known; use 'text', 'json_object' or 'json_schema'."
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/// Converse's `stopReason` in OpenAI's words. `malformed_tool_use`, `malformed_model_output` and a
/// reason newer than this release are `stop`; the callers keep Bedrock's word as
/// `native_finish_reason`.
fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and every other word.
        _ => "stop",
    }
    .to_string()
}

/// Converse counts cached input apart from `inputTokens`; OpenAI's `prompt_tokens` includes it.
fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    anthropic_usage(&json!({
        "input_tokens": n("inputTokens"),
        "output_tokens": n("outputTokens"),
        "cache_read_input_tokens": n("cacheReadInputTokens"),
        "cache_creation_input_tokens": n("cacheWriteInputTokens"),
    }))
}

pub fn parse_response(body: &[u8], requested_model: &str) -> Result<ChatCompletion> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorCode::ServerError,
            format!("Bedrock answered with a body that is not valid JSON ({e})."),
        )
        .with_body(Some(Value::String(
            String::from_utf8_lossy(body).chars().take(2000).collect(),
        )))
    })?;
    let Some(blocks) = value
        .pointer("/output/message/content")
        .and_then(Value::as_array)
    else {
        let said = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(Error::new(
            ErrorCode::ServerError,
            format!("Bedrock's response has no `output.message.content`; it is not a Converse answer{said}"),
        )
        .with_body(Some(value)));
    };

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            has_text = true;
            text.push_str(t);
        } else if let Some(r) = block.get("reasoningContent") {
            if let Some(rt) = r.get("reasoningText") {
                let t = rt.get("text").and_then(Value::as_str).unwrap_or("");
                let signature = rt.get("signature").and_then(Value::as_str).unwrap_or("");
                reasoning.push_str(t);
                thinking_blocks
                    .push(json!({ "type": "thinking", "thinking": t, "signature": signature }));
            } else if let Some(data) = r.get("redactedContent").and_then(Value::as_str) {
                thinking_blocks.push(json!({ "type": "redacted_thinking", "data": data }));
            }
        } else if let Some(u) = block.get("toolUse") {
            let input = u.get("input").cloned().unwrap_or(Value::Null);
            tool_calls.push(ToolCall::function(
                u.get("toolUseId")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(ids::tool_call_id),
                u.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                arguments_text(&input),
            ));
        }
        // Citations, images and future block types have no OpenAI form; skipped.
    }

    let has_calls = !tool_calls.is_empty();
    let stop_reason = value.get("stopReason").and_then(Value::as_str);
    let mut reason = finish_reason(stop_reason.unwrap_or("end_turn"));
    if reason == "stop" && has_calls {
        reason = "tool_calls".into();
    }
    let native = stop_reason.and_then(|r| native_finish_reason(r, &reason));
    let has_thinking = !thinking_blocks.is_empty();
    let message = ResponseMessage {
        role: assistant_role(),
        content: has_text.then_some(text),
        refusal: None,
        tool_calls: has_calls.then_some(tool_calls),
        reasoning_content: has_thinking.then_some(reasoning),
        thinking_blocks: has_thinking.then_some(thinking_blocks),
        extra: Map::new(),
    };
    // `metrics` (latency) and `trace` (guardrail assessments) have no OpenAI form; ignored.
    Ok(ChatCompletion {
        id: ids::completion_id(),
        object: "chat.completion".into(),
        created: now_seconds(),
        model: requested_model.to_string(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(reason),
            native_finish_reason: native,
            logprobs: None,
            extra: Map::new(),
        }],
        usage: value.get("usage").filter(|u| u.is_object()).map(usage),
        extra: Map::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// ConverseStream events → canonical chunks. It holds the stream to the same contract as the
/// other adapters: the first chunk carries `role: "assistant"`; `toolUse` blocks become tool calls
/// numbered 0, 1, 2… in order of appearance, the first delta of each with its id and type; exactly
/// one chunk carries a `finish_reason`; usage comes alone in a last chunk with `choices: []`.
///
/// The stream is complete once both `messageStop` and `metadata` have arrived. AWS always ends
/// with `metadata` (it carries the usage), so a stream that stops without it was cut off, like an
/// OpenAI stream without `[DONE]`, and `finish` reports it.
#[derive(Debug)]
pub struct ConverseStream {
    requested_model: String,
    id: Option<String>,
    created: Option<i64>,
    usage: Option<Usage>,
    /// Open content blocks that need state, by `contentBlockIndex`.
    blocks: BTreeMap<u64, Block>,
    tool_calls: u32,
    /// The first (role) chunk was sent.
    started: bool,
    /// `messageStop` was seen and the chunk with the finish_reason sent.
    stopped: bool,
    /// `metadata` was seen.
    metadata: bool,
    /// `finish` ran.
    ended: bool,
}

#[derive(Debug)]
enum Block {
    /// Our tool-call index.
    Tool(u32),
    Reasoning {
        text: String,
        signature: String,
        /// `redactedContent` pieces, base64 each.
        redacted: Vec<String>,
    },
}

/// Key for events without a `contentBlockIndex` (Bedrock always sends one).
const NO_INDEX: u64 = u64::MAX;

impl ConverseStream {
    pub fn new(requested_model: &str) -> Self {
        ConverseStream {
            requested_model: requested_model.to_string(),
            id: None,
            created: None,
            usage: None,
            blocks: BTreeMap::new(),
            tool_calls: 0,
            started: false,
            stopped: false,
            metadata: false,
            ended: false,
        }
    }
}

impl StreamAdapter for ConverseStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.is_done() || self.ended {
            return Ok(());
        }
        let data = event.data.trim();
        let name = event.event.as_deref().unwrap_or("");
        if name.ends_with("Exception") {
            return Err(stream_exception(name, data));
        }
        let value: Value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(data).map_err(|e| {
                Error::new(
                    ErrorCode::StreamInterrupted,
                    format!("Bedrock sent a stream event that is not valid JSON ({e}); the answer may be incomplete."),
                )
                .with_body(Some(Value::String(data.chars().take(2000).collect())))
            })?
        };
        match name {
            "messageStart" => self.ensure_started(out),
            "contentBlockStart" => self.block_start(&value, out),
            "contentBlockDelta" => self.block_delta(&value, out),
            "contentBlockStop" => self.block_stop(&value, out),
            "messageStop" => self.message_stop(&value, out),
            "metadata" => {
                self.metadata = true;
                if let Some(u) = value.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(usage(u));
                }
            }
            // Event types added after this was written.
            _ => {}
        }
        Ok(())
    }

    /// Both `messageStop` and `metadata` were seen; nothing after them matters.
    fn is_done(&self) -> bool {
        self.stopped && self.metadata
    }

    fn finish(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        if !self.stopped {
            return Err(Error::new(
                ErrorCode::StreamInterrupted,
                "The stream ended before messageStop; what arrived from Bedrock is incomplete.",
            ));
        }
        if !self.metadata {
            return Err(Error::new(
                ErrorCode::StreamInterrupted,
                "The stream ended after messageStop but before the metadata event that Bedrock always sends last; the connection was cut and the usage is missing.",
            ));
        }
        if let Some(usage) = self.usage.take() {
            let chunk = self.chunk(Vec::new(), Some(usage));
            out.push(chunk);
        }
        Ok(())
    }
}

fn block_key(event: &Value) -> u64 {
    event
        .get("contentBlockIndex")
        .and_then(Value::as_u64)
        .unwrap_or(NO_INDEX)
}

/// An exception message in the stream (`:exception-type` such as `throttlingException`, payload
/// `{"message": …}`).
fn stream_exception(name: &str, data: &str) -> Error {
    let body = serde_json::from_str::<Value>(data).unwrap_or_else(|_| Value::String(data.into()));
    let message = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| data.chars().take(500).collect());
    let mut type_name = String::with_capacity(name.len());
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        type_name.extend(first.to_uppercase());
        type_name.push_str(chars.as_str());
    }
    Error::new(
        code_for_aws_error(&type_name),
        format!("Bedrock reported an error during the stream: {message} ({type_name})"),
    )
    .with_body(Some(body))
}

impl ConverseStream {
    fn block_start(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let Some(tool) = event.get("start").and_then(|s| s.get("toolUse")) else {
            // Other block starts (tool results, images of newer models) have no OpenAI form.
            return;
        };
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.blocks.insert(block_key(event), Block::Tool(index));
        let text = |k: &str| {
            tool.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let call = ToolCallDelta {
            index: Some(index),
            id: Some(text("toolUseId").unwrap_or_else(ids::tool_call_id)),
            kind: Some("function".into()),
            function: Some(FunctionDelta {
                name: Some(text("name").unwrap_or_default()),
                arguments: Some(String::new()),
            }),
            ..Default::default()
        };
        self.push_delta(
            Delta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            out,
        );
    }

    fn block_delta(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        let Some(delta) = event.get("delta") else {
            return;
        };
        let key = block_key(event);
        if let Some(text) = delta.get("text").and_then(Value::as_str) {
            if !text.is_empty() {
                self.push_delta(
                    Delta {
                        content: Some(text.to_string()),
                        ..Default::default()
                    },
                    out,
                );
            }
        } else if let Some(tool) = delta.get("toolUse") {
            let input = tool.get("input").and_then(Value::as_str).unwrap_or("");
            // A delta for a block that never started has no tool call to belong to.
            if let (Some(&Block::Tool(index)), false) = (self.blocks.get(&key), input.is_empty()) {
                let call = ToolCallDelta {
                    index: Some(index),
                    function: Some(FunctionDelta {
                        name: None,
                        arguments: Some(input.to_string()),
                    }),
                    ..Default::default()
                };
                self.push_delta(
                    Delta {
                        tool_calls: Some(vec![call]),
                        ..Default::default()
                    },
                    out,
                );
            }
        } else if let Some(r) = delta.get("reasoningContent") {
            if self.stopped {
                return;
            }
            let piece = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            let block = self.blocks.entry(key).or_insert_with(|| Block::Reasoning {
                text: String::new(),
                signature: String::new(),
                redacted: Vec::new(),
            });
            let Block::Reasoning {
                text,
                signature,
                redacted,
            } = block
            else {
                return;
            };
            text.push_str(piece("text"));
            signature.push_str(piece("signature"));
            if !piece("redactedContent").is_empty() {
                redacted.push(piece("redactedContent").to_string());
            }
            if !piece("text").is_empty() {
                self.push_delta(
                    Delta {
                        reasoning_content: Some(piece("text").to_string()),
                        ..Default::default()
                    },
                    out,
                );
            }
        }
        // Citations and future delta types have no OpenAI form.
    }

    fn block_stop(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        if let Some(block) = self.blocks.remove(&block_key(event)) {
            self.close_block(block, out);
        }
    }

    /// A reasoning block ends with its whole text and signature, which the caller sends back.
    fn close_block(&mut self, block: Block, out: &mut Vec<ChatCompletionChunk>) {
        let Block::Reasoning {
            text,
            signature,
            redacted,
        } = block
        else {
            return;
        };
        let mut blocks = Vec::new();
        if !text.is_empty() || !signature.is_empty() {
            blocks.push(json!({ "type": "thinking", "thinking": text, "signature": signature }));
        }
        if !redacted.is_empty() {
            blocks.push(json!({ "type": "redacted_thinking", "data": join_base64(&redacted) }));
        }
        if !blocks.is_empty() {
            self.push_delta(
                Delta {
                    thinking_blocks: Some(blocks),
                    ..Default::default()
                },
                out,
            );
        }
    }

    fn message_stop(&mut self, event: &Value, out: &mut Vec<ChatCompletionChunk>) {
        if self.stopped {
            return;
        }
        // Reasoning blocks left open still carry a signature the caller needs.
        for (_, block) in std::mem::take(&mut self.blocks) {
            self.close_block(block, out);
        }
        self.ensure_started(out);
        let stop_reason = event.get("stopReason").and_then(Value::as_str);
        let mut reason = finish_reason(stop_reason.unwrap_or("end_turn"));
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
        self.stopped = true;
    }

    /// A content chunk for choice 0. Nothing follows the finish chunk but usage, so a stray
    /// block event after `messageStop` is dropped.
    fn push_delta(&mut self, delta: Delta, out: &mut Vec<ChatCompletionChunk>) {
        if self.stopped {
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
            model: self.requested_model.clone(),
            choices,
            usage,
            extra: Map::new(),
        }
    }
}

/// Redacted reasoning sent in several base64 pieces, as one base64 text of all the bytes (as
/// given when the pieces are not base64).
fn join_base64(pieces: &[String]) -> String {
    if let [only] = pieces {
        return only.clone();
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = Vec::new();
    for p in pieces {
        match engine.decode(p) {
            Ok(b) => bytes.extend(b),
            Err(_) => return pieces.concat(),
        }
    }
    engine.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::contract::{assemble, Assembled};
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    use aws_smithy_types::event_stream::Message as Frame;

    const STREAMS: [&str; 3] = [
        "claude-tool-use.eventstream.bin",
        "claude4-reasoning.eventstream.bin",
        "llama-text.eventstream.bin",
    ];

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/bedrock/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn fixture_json(name: &str) -> Value {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    // ---- request ----

    fn body(v: Value) -> Value {
        build_body(&ChatRequest::from_value(v).unwrap()).unwrap()
    }

    fn err(v: Value) -> Error {
        build_body(&ChatRequest::from_value(v).unwrap()).unwrap_err()
    }

    #[test]
    fn system_and_developer_messages_anywhere_become_the_system_field() {
        let b = body(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Hi."},
                {"role": "system", "content": "Be brief."},
                {"role": "assistant", "content": "Hello."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}, {"type": "text", "text": " "}]},
                {"role": "user", "content": "How are you?"}
            ]
        }));
        assert_eq!(
            b,
            json!({
                "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
                "messages": [
                    {"role": "user", "content": [{"text": "Hi."}]},
                    {"role": "assistant", "content": [{"text": "Hello."}]},
                    {"role": "user", "content": [{"text": "How are you?"}]}
                ]
            })
        );
    }

    #[test]
    fn parallel_tool_calls_and_results_pair_up_and_merge_with_the_next_user_message() {
        let b = body(json!({
            "model": "m",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "tooluse_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "20C"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": "25C", "is_error": true},
                {"role": "user", "content": "Thanks. Which is warmer?"}
            ]
        }));
        assert_eq!(
            b,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"text": "Checking both."},
                        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Rome"}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "20C"}]}},
                        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "25C"}], "status": "error"}},
                        {"text": "Thanks. Which is warmer?"}
                    ]}
                ],
                "toolConfig": {"tools": [{"toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}
                }}]}
            })
        );
    }

    #[test]
    fn legacy_function_history_becomes_tool_use_and_tool_result() {
        let b = body(json!({
            "model": "m",
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
            b,
            json!({
                "system": [{"text": "You are a helpful assistant."}],
                "messages": [
                    {"role": "user", "content": [{"text": "What's the weather in Paris?"}]},
                    {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "call_legacy_2", "name": "get_weather", "input": {"location": "Paris"}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "call_legacy_2", "content": [{"text": "{\"temp_c\":20}"}]}},
                        {"text": "Thanks."},
                        {"text": "And tomorrow?"}
                    ]}
                ],
                "toolConfig": {"tools": [{"toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": {"type": "object", "properties": {}}}
                }}]}
            })
        );
    }

    #[test]
    fn images_documents_and_cache_points() {
        let b = body(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "text", "text": ""},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ", "detail": "high"}, "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "s3://bucket/cats/tabby.WEBP"}},
                    {"type": "file", "file": {"filename": "my_report.v2.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
                    {"type": "file", "file": {"filename": "my report  v2.txt", "file_data": "data:text/plain;base64,aGk="}},
                    {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}},
                    {"type": "guardContent", "guardContent": {"text": {"text": "check me"}}}
                ]}
            ]
        }));
        assert_eq!(
            b["system"],
            json!([{"text": "Long rules"}, {"cachePoint": {"type": "default"}}])
        );
        assert_eq!(
            b["messages"],
            json!([{"role": "user", "content": [
                {"text": "Compare"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
                {"cachePoint": {"type": "default"}},
                {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://bucket/cats/tabby.WEBP"}}}},
                {"document": {"format": "pdf", "name": "my-report-v2", "source": {"bytes": "JVBERi0x"}}},
                {"document": {"format": "txt", "name": "my report v2", "source": {"bytes": "aGk="}}},
                {"document": {"format": "csv", "name": "document", "source": {"bytes": "YSxi"}}},
                {"guardContent": {"text": {"text": "check me"}}}
            ]}])
        );
        // Two files of one name get distinct names.
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AA=="}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AQ=="}}
            ]}]}),
        );
        assert_eq!(b["messages"][0]["content"][0]["document"]["name"], "a");
        assert_eq!(b["messages"][0]["content"][1]["document"]["name"], "a (2)");
    }

    #[test]
    fn tool_results_with_parts_or_nothing() {
        let b = body(json!({"model": "m",
            "tools": [{"type": "function", "function": {"name": "shot"}, "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": ""}},
                    {"id": "t2", "type": "function", "function": {"name": "shot", "arguments": {"a": 1}}}
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": [
                    {"type": "text", "text": "Here", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
                    {"type": "json", "json": {"ok": true}}
                ]},
                {"role": "tool", "tool_call_id": "t2", "content": " "}
            ]
        }));
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"toolUse": {"toolUseId": "t1", "name": "shot", "input": {}}},
                {"toolUse": {"toolUseId": "t2", "name": "shot", "input": {"a": 1}}}
            ])
        );
        assert_eq!(
            b["messages"][2]["content"],
            json!([
                {"toolResult": {"toolUseId": "t1", "content": [
                    {"text": "Here"},
                    {"image": {"format": "gif", "source": {"bytes": "R0lG"}}},
                    {"json": {"ok": true}}
                ]}},
                {"cachePoint": {"type": "default"}},
                {"toolResult": {"toolUseId": "t2", "content": []}}
            ])
        );
        assert_eq!(
            b["toolConfig"],
            json!({"tools": [
                {"toolSpec": {"name": "shot", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                {"cachePoint": {"type": "default"}}
            ]})
        );
    }

    #[test]
    fn thinking_blocks_are_sent_back_first_as_reasoning_content() {
        let b = body(json!({"model": "m",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
                 "thinking_blocks": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                    {"type": "redacted_thinking", "data": "RURBQ1RFRA=="},
                    {"type": "something_else", "x": 1},
                    {"type": "thinking", "thinking": "unsigned", "signature": ""}
                 ],
                 "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "done"}
            ]
        }));
        assert_eq!(
            b["messages"][1],
            json!({"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig=="}}},
                {"reasoningContent": {"redactedContent": "RURBQ1RFRA=="}},
                {"reasoningContent": {"reasoningText": {"text": "unsigned"}}},
                {"text": "Let me look."},
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}
            ]})
        );
    }

    #[test]
    fn what_a_response_gave_back_round_trips() {
        // The reasoning answer parsed by this adapter, sent back as history.
        let answer = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "c2ln"}}},
                {"reasoningContent": {"redactedContent": "cmVk"}},
                {"text": "Calling."},
                {"toolUse": {"toolUseId": "tooluse_9", "name": "f", "input": {"q": [1, 2]}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}
        });
        let c = parse_response(answer.to_string().as_bytes(), "m").unwrap();
        let mut message = serde_json::to_value(&c.choices[0].message).unwrap();
        message.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        let b = body(json!({"model": "m",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"}, message]
        }));
        assert_eq!(
            b["messages"][1]["content"],
            answer["output"]["message"]["content"]
        );
    }

    #[test]
    fn inference_config_takes_only_what_is_set() {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "max_completion_tokens": 300, "max_tokens": 9, "temperature": 1.7, "top_p": 0.9,
                "stop": ["END", "", "\n\n"], "seed": 1, "logprobs": true, "user": "u", "top_k": 5,
                "parallel_tool_calls": false, "reasoning_effort": "high", "response_format": {"type": "text"}
            }),
        );
        assert_eq!(
            b,
            json!({
                "messages": [{"role": "user", "content": [{"text": "x"}]}],
                "inferenceConfig": {"maxTokens": 300, "temperature": 1.7, "topP": 0.9, "stopSequences": ["END", "\n\n"]}
            })
        );
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": "#", "max_tokens": 7}),
        );
        assert_eq!(
            b["inferenceConfig"],
            json!({"maxTokens": 7, "stopSequences": ["#"]})
        );
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}),
        );
        assert_eq!(b["inferenceConfig"], json!({"temperature": 0.0}));
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        assert!(b.get("inferenceConfig").is_none());
    }

    #[test]
    fn converse_fields_pass_through_and_json_schema_becomes_output_config() {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
                "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1", "trace": "enabled"},
                "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true,
                    "schema": {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"], "additionalProperties": false}}}
            }),
        );
        assert_eq!(
            b["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
        );
        assert_eq!(b["guardrailConfig"]["guardrailIdentifier"], "g1");
        let definition = &b["outputConfig"]["textFormat"]["structure"]["jsonSchema"];
        assert_eq!(b["outputConfig"]["textFormat"]["type"], "json_schema");
        assert_eq!(definition["name"], "person");
        assert!(definition.get("description").is_none());
        let schema: Value = serde_json::from_str(definition["schema"].as_str().unwrap()).unwrap();
        assert_eq!(
            schema,
            json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"], "additionalProperties": false})
        );
    }

    #[test]
    fn tool_choice_variants() {
        let base = json!({
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "", "parameters": {"type": "object"}}}]
        });
        let spec =
            json!([{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]);
        for (choice, want) in [
            (json!(null), Some(json!({"tools": spec}))),
            (json!("auto"), Some(json!({"tools": spec}))),
            (
                json!("required"),
                Some(json!({"tools": spec, "toolChoice": {"any": {}}})),
            ),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                Some(json!({"tools": spec, "toolChoice": {"tool": {"name": "f"}}})),
            ),
            (json!("none"), None),
        ] {
            let mut v = base.clone();
            v["tool_choice"] = choice.clone();
            assert_eq!(body(v).get("toolConfig"), want.as_ref(), "{choice}");
        }
        // 'none' with tool history: Bedrock needs the tools, so they stay, without a choice.
        let mut v = base.clone();
        v["tool_choice"] = json!("none");
        v["messages"] = json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "1"}
        ]);
        assert_eq!(body(v)["toolConfig"], json!({"tools": spec}));
        // A tool_choice without tools says nothing.
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
        );
        assert!(b.get("toolConfig").is_none());
        let mut v = base.clone();
        v["tool_choice"] = json!({"type": "allowed_tools", "allowed_tools": {}});
        let e = err(v);
        assert!(
            e.message.contains("no Bedrock Converse equivalent"),
            "{}",
            e.message
        );
    }

    #[test]
    fn requests_converse_cannot_honour_are_rejected() {
        let user = |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
        let cases = [
            (
                user(
                    json!([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]),
                ),
                "messages[0].content[0].image_url.url is a web address",
            ),
            (
                user(
                    json!([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]),
                ),
                "data URI",
            ),
            (
                user(
                    json!([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]),
                ),
                "'image/bmp'",
            ),
            (
                user(json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
                "must be a base64 data URI",
            ),
            (
                user(json!([{"type": "image_url", "image_url": {"url": "s3://b/noext"}}])),
                "S3 object",
            ),
            (
                user(json!([{"type": "file", "file": {"file_id": "file-abc"}}])),
                "file ids",
            ),
            (
                user(
                    json!([{"type": "file", "file": {"file_data": "data:application/zip;base64,UEs="}}]),
                ),
                "'application/zip'",
            ),
            (
                user(
                    json!([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]),
                ),
                "does not accept",
            ),
            (
                json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
                "`n`",
            ),
            (
                json!({"model": "m", "messages": [{"role": "system", "content": "only system"}]}),
                "at least one",
            ),
            (
                json!({"model": "m", "messages": [{"role": "system", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
                ]}, {"role": "user", "content": "x"}]}),
                "messages[0].content[0]: Bedrock Converse takes only text in system prompts",
            ),
            (
                json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}
                ]}),
                "messages[0].tool_calls[0].function.arguments must be a JSON object",
            ),
            (
                json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
                ]}),
                "messages[1].tool_calls[0].function.arguments is not valid JSON",
            ),
            (
                // An OpenAI custom tool call in the history, as an OpenAI answer can hold one.
                json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f"}}], "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}]},
                    {"role": "tool", "tool_call_id": "a", "content": "1"}
                ]}),
                "messages[1].tool_calls[0] is a 'custom' tool call; Bedrock Converse takes only function tool calls",
            ),
            (
                json!({"model": "m", "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "a", "content": "1"}
                ]}),
                "pass them in `tools`",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0] is a 'web_search_20250305' tool",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "response_format": {"type": "json_object"}}),
                "json_schema",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
                "must be a JSON schema object",
            ),
        ];
        for (request, needle) in cases {
            let e = err(request);
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }

    // ---- response ----

    #[test]
    fn llama_text_response() {
        let raw = fixture("converse/llama32-text.json");
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let c = parse_response(&raw, "us.meta.llama3-2-90b-instruct-v1:0").unwrap();
        assert!(c.id.starts_with("chatcmpl-"));
        assert_eq!(c.object, "chat.completion");
        assert_eq!(c.model, "us.meta.llama3-2-90b-instruct-v1:0");
        assert!((c.created - now_seconds()).abs() < 5);
        assert!(c.extra.is_empty());
        assert_eq!(c.choices.len(), 1);
        let ch = &c.choices[0];
        assert_eq!(ch.index, 0);
        assert_eq!(ch.logprobs, None);
        assert_eq!(ch.finish_reason.as_deref(), Some("stop"));
        let m = &ch.message;
        assert_eq!(m.role, "assistant");
        assert_eq!(
            m.content.as_deref(),
            v["output"]["message"]["content"][0]["text"].as_str()
        );
        assert!(m
            .content
            .as_deref()
            .unwrap()
            .starts_with("Why did the OpenTelemetry trace go to therapy?"));
        assert_eq!(
            (
                &m.tool_calls,
                &m.reasoning_content,
                &m.thinking_blocks,
                &m.refusal
            ),
            (&None, &None, &None, &None)
        );
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (52, 30, 82)
        );
        assert_eq!(u.total_tokens, v["usage"]["totalTokens"]);
        assert_eq!(u.prompt_tokens_details.unwrap()["cached_tokens"], 0);
    }

    #[test]
    fn claude_response_with_a_guardrail_trace() {
        let raw = fixture("converse/claude37-guardrail-trace.json");
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert!(v["trace"]["guardrail"].is_object());
        let c = parse_response(&raw, "claude").unwrap();
        let m = &c.choices[0].message;
        assert_eq!(
            m.content.as_deref(),
            v["output"]["message"]["content"][0]["text"].as_str()
        );
        assert!(m
            .content
            .as_deref()
            .unwrap()
            .ends_with("what your distributed system is doing!"));
        assert_eq!(m.tool_calls, None);
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(c.extra.is_empty());
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (20, 72, 92)
        );
        let d = u.prompt_tokens_details.unwrap();
        assert_eq!(
            (
                d["cached_tokens"].as_u64(),
                d["cache_creation_tokens"].as_u64()
            ),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn tool_use_reasoning_and_cache_usage() {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "First ", "signature": "s1"}}},
                {"reasoningContent": {"redactedContent": "UkVE"}},
                {"text": "I'll check "},
                {"text": "both."},
                {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"name": "get_time", "input": {}}},
                {"citationsContent": {"content": []}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 1234, "cacheReadInputTokens": 1217, "cacheWriteInputTokens": 10},
            "metrics": {"latencyMs": 1}
        });
        let c = parse_response(body.to_string().as_bytes(), "m").unwrap();
        let m = &c.choices[0].message;
        assert_eq!(m.content.as_deref(), Some("I'll check both."));
        assert_eq!(m.reasoning_content.as_deref(), Some("First "));
        assert_eq!(
            m.thinking_blocks,
            Some(vec![
                json!({"type": "thinking", "thinking": "First ", "signature": "s1"}),
                json!({"type": "redacted_thinking", "data": "UkVE"})
            ])
        );
        let calls = m.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (
                calls[0].id.as_str(),
                calls[0].kind.as_str(),
                calls[0].as_function().unwrap().name.as_str()
            ),
            ("tooluse_a", "function", "get_weather")
        );
        assert_eq!(
            calls[0].as_function().unwrap().arguments,
            r#"{"city":"Paris"}"#
        );
        assert!(calls[1].id.starts_with("call_"));
        assert_eq!(calls[1].as_function().unwrap().arguments, "{}");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1230, 4, 1234)
        );
        let d = u.prompt_tokens_details.unwrap();
        assert_eq!(d["cached_tokens"], 1217);
        assert_eq!(d["cache_creation_tokens"], 10);
    }

    #[test]
    fn stop_reasons() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            // Found by the types review: these were passed through as finish_reason, outside
            // OpenAI's words.
            ("malformed_tool_use", "stop"),
            ("malformed_model_output", "stop"),
            ("some_new_reason", "stop"),
        ] {
            let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop});
            let c = parse_response(body.to_string().as_bytes(), "m").unwrap();
            assert_eq!(c.choices[0].finish_reason.as_deref(), Some(want), "{stop}");
            // Bedrock's word is kept.
            assert_eq!(c.choices[0].native_finish_reason.as_deref(), Some(stop));
            assert_eq!(c.usage, None);
        }
        // None given: stop, and no word of Bedrock's.
        let body =
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}});
        let c = parse_response(body.to_string().as_bytes(), "m").unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.choices[0].native_finish_reason, None);
    }

    #[test]
    fn error_bodies_and_garbage() {
        let e = parse_response(b"nope", "m").unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        assert!(e.body.is_some());
        let e = parse_response(
            &fixture("errors/400-validation-exception-invoke-stream.json"),
            "m",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerError);
        let said = fixture_json("errors/400-validation-exception-invoke-stream.json")["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(e.message.contains(&said), "{}", e.message);
        for garbage in [
            json!([]),
            json!({"output": {"message": {"content": "x"}}}),
            json!(3),
        ] {
            assert_eq!(
                parse_response(garbage.to_string().as_bytes(), "m")
                    .unwrap_err()
                    .code,
                ErrorCode::ServerError
            );
        }
    }

    // ---- stream ----

    fn to_event(m: &Frame) -> SseEvent {
        let header = |name: &str| {
            m.headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string())
        };
        assert_eq!(header(":message-type").as_deref(), Some("event"));
        SseEvent {
            event: header(":event-type"),
            data: String::from_utf8(m.payload().to_vec()).unwrap(),
            id: None,
        }
    }

    /// The events of an event-stream capture, its bytes fed `size` at a time.
    fn decode(bytes: &[u8], size: usize) -> Vec<SseEvent> {
        let mut decoder = MessageFrameDecoder::new();
        let mut buffer = bytes::BytesMut::new();
        let mut events = Vec::new();
        for piece in bytes.chunks(size.max(1)) {
            buffer.extend_from_slice(piece);
            while let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buffer).unwrap() {
                events.push(to_event(&m));
            }
        }
        assert!(buffer.is_empty());
        events
    }

    fn stream_fixture(name: &str) -> Vec<SseEvent> {
        let bytes = fixture(&format!("converse-stream/{name}"));
        decode(&bytes, bytes.len())
    }

    fn run(events: &[SseEvent]) -> (Vec<ChatCompletionChunk>, Result<()>) {
        let mut s = ConverseStream::new("requested");
        let mut out = Vec::new();
        let result = events
            .iter()
            .try_for_each(|e| s.on_event(e, &mut out))
            .and_then(|()| s.finish(&mut out));
        (out, result)
    }

    fn run_ok(events: &[SseEvent]) -> Vec<ChatCompletionChunk> {
        let (chunks, result) = run(events);
        result.unwrap();
        chunks
    }

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
            id: None,
        }
    }

    /// What a capture says, read straight from its event payloads.
    #[derive(Debug, Default)]
    struct Expected {
        text: String,
        text_deltas: usize,
        reasoning: String,
        signature: String,
        /// (id, name, concatenated input fragments)
        tools: Vec<(String, String, String)>,
        stop_reason: String,
        usage: Value,
    }

    fn expected(events: &[SseEvent]) -> Expected {
        let mut x = Expected::default();
        let mut tool_of_block = BTreeMap::new();
        for e in events {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            let s = |v: &Value| v.as_str().unwrap().to_string();
            match e.event.as_deref().unwrap() {
                "contentBlockStart" => {
                    let t = &v["start"]["toolUse"];
                    tool_of_block.insert(v["contentBlockIndex"].as_u64().unwrap(), x.tools.len());
                    x.tools
                        .push((s(&t["toolUseId"]), s(&t["name"]), String::new()));
                }
                "contentBlockDelta" => {
                    let d = &v["delta"];
                    if let Some(t) = d.get("text") {
                        x.text.push_str(t.as_str().unwrap());
                        x.text_deltas += usize::from(!t.as_str().unwrap().is_empty());
                    } else if let Some(u) = d.get("toolUse") {
                        let t = tool_of_block[&v["contentBlockIndex"].as_u64().unwrap()];
                        x.tools[t].2.push_str(u["input"].as_str().unwrap());
                    } else if let Some(r) = d.get("reasoningContent") {
                        if let Some(t) = r.get("text") {
                            x.reasoning.push_str(t.as_str().unwrap());
                        }
                        if let Some(sig) = r.get("signature") {
                            x.signature.push_str(sig.as_str().unwrap());
                        }
                    } else {
                        panic!("unexpected delta {d}");
                    }
                }
                "messageStop" => x.stop_reason = s(&v["stopReason"]),
                "metadata" => x.usage = v["usage"].clone(),
                _ => {}
            }
        }
        x
    }

    /// What every capture shares: the role chunk, the requested model, usage.
    fn check_common(chunks: &[ChatCompletionChunk], x: &Expected) -> Assembled {
        let a = assemble(chunks);
        assert!(chunks[0].id.starts_with("chatcmpl-"));
        assert_eq!(chunks[0].model, "requested");
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
        let n = |k: &str| x.usage[k].as_u64().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (n("inputTokens"), n("outputTokens"), n("totalTokens"))
        );
        a
    }

    #[test]
    fn claude_tool_use_stream() {
        let events = stream_fixture("claude-tool-use.eventstream.bin");
        let x = expected(&events);
        let chunks = run_ok(&events);
        let a = check_common(&chunks, &x);
        assert_eq!(a.text, x.text);
        assert_eq!(
            a.text,
            "Okay, let me check the weather for Barcelona using the available tool:"
        );
        assert_eq!(x.tools.len(), 1);
        assert_eq!(a.calls.len(), 1);
        assert_eq!(
            (&a.calls[0].0, &a.calls[0].1),
            (&x.tools[0].0, &x.tools[0].1)
        );
        assert_eq!(a.calls[0].0, "tooluse_yypYDr71TwCwByoyao4-Vg");
        assert_eq!(a.calls[0].1, "get_weather");
        assert_eq!(a.calls[0].2, x.tools[0].2);
        let args: Value = serde_json::from_str(&a.calls[0].2).unwrap();
        assert_eq!(args, json!({"location": "Barcelona"}));
        assert_eq!(x.stop_reason, "tool_use");
        assert_eq!(a.finish, "tool_calls");
        assert_eq!(a.usage.unwrap().prompt_tokens, 236);
        // The text comes before the tool call.
        let last_text = chunks
            .iter()
            .rposition(|c| {
                c.choices
                    .first()
                    .is_some_and(|ch| ch.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
            })
            .unwrap();
        let first_call = chunks
            .iter()
            .position(|c| {
                c.choices
                    .first()
                    .is_some_and(|ch| ch.delta.tool_calls.is_some())
            })
            .unwrap();
        assert!(last_text < first_call);
    }

    #[test]
    fn claude4_reasoning_stream() {
        let events = stream_fixture("claude4-reasoning.eventstream.bin");
        let x = expected(&events);
        let chunks = run_ok(&events);
        let a = check_common(&chunks, &x);
        assert!(x.reasoning.starts_with("The user has greeted me"));
        assert_eq!(a.reasoning, x.reasoning);
        assert!(x.signature.starts_with("Eu0CCkgIBxABGAIq"));
        assert_eq!(
            a.thinking_blocks,
            vec![json!({"type": "thinking", "thinking": x.reasoning, "signature": x.signature})]
        );
        assert_eq!(a.text, x.text);
        assert_eq!(
            a.text,
            "Hello! It's nice to meet you. How can I help you today?"
        );
        assert!(a.calls.is_empty());
        assert_eq!(a.finish, "stop");
        // Reasoning, then the signed block, then the answer.
        let at = |f: &dyn Fn(&Delta) -> bool| {
            chunks
                .iter()
                .position(|c| c.choices.first().is_some_and(|ch| f(&ch.delta)))
                .unwrap()
        };
        let block = at(&|d| d.thinking_blocks.is_some());
        assert!(at(&|d| d.reasoning_content.is_some()) < block);
        assert!(block < at(&|d| d.content.as_deref().is_some_and(|c| !c.is_empty())));
    }

    #[test]
    fn llama_text_stream() {
        let events = stream_fixture("llama-text.eventstream.bin");
        let x = expected(&events);
        let chunks = run_ok(&events);
        let a = check_common(&chunks, &x);
        assert_eq!(a.text, x.text);
        assert!(a
            .text
            .starts_with("Why did the OpenTelemetry metric go to therapy?\n\n"));
        assert_eq!((a.reasoning.as_str(), a.calls.len()), ("", 0));
        assert!(a.thinking_blocks.is_empty());
        assert_eq!(a.finish, "stop");
        assert_eq!(a.usage.unwrap().completion_tokens, 36);
        // Role chunk, one chunk per non-empty text delta, finish, usage.
        assert_eq!(chunks.len(), 1 + x.text_deltas + 2);
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_chunks() {
        for name in STREAMS {
            let bytes = fixture(&format!("converse-stream/{name}"));
            let whole = decode(&bytes, bytes.len());
            let normalized = |events: &[SseEvent]| {
                let mut chunks = run_ok(events);
                // `id` and `created` are made here, per stream.
                for c in &mut chunks {
                    c.id.clear();
                    c.created = 0;
                }
                chunks
            };
            let want = normalized(&whole);
            for size in [1, 7, 64, 1000] {
                let split = decode(&bytes, size);
                assert_eq!(split, whole, "{name} by {size}");
                assert_eq!(normalized(&split), want, "{name} by {size}");
            }
            // The adapter is done after the last event and ignores anything later.
            let mut s = ConverseStream::new("requested");
            let mut out = Vec::new();
            for (i, e) in whole.iter().enumerate() {
                assert!(!s.is_done(), "{name}: done before event {i}");
                s.on_event(e, &mut out).unwrap();
            }
            assert!(s.is_done());
            let n = out.len();
            s.on_event(
                &ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "late"}}),
                ),
                &mut out,
            )
            .unwrap();
            s.on_event(
                &SseEvent {
                    event: Some("messageStop".into()),
                    data: "garbage".into(),
                    id: None,
                },
                &mut out,
            )
            .unwrap();
            assert_eq!(out.len(), n);
        }
    }

    /// The captures through the crate's own framer, split anywhere: the same events as the smithy
    /// decoder gives and the same chunks.
    #[test]
    fn captures_through_the_event_stream_framer() {
        use crate::client::eventstream::EventStreamFramer;
        use crate::client::stream::Framer;
        for name in STREAMS {
            let bytes = fixture(&format!("converse-stream/{name}"));
            let want = decode(&bytes, bytes.len());
            for size in [bytes.len(), 1, 13] {
                let mut framer = EventStreamFramer::new();
                let mut s = ConverseStream::new("requested");
                let (mut events, mut chunks) = (Vec::new(), Vec::new());
                for piece in bytes.chunks(size) {
                    let mut fresh = Vec::new();
                    framer.feed(piece, &mut fresh).unwrap();
                    for e in &fresh {
                        s.on_event(e, &mut chunks).unwrap();
                    }
                    events.extend(fresh);
                }
                framer.finish(&mut events).unwrap();
                assert!(s.is_done(), "{name}");
                s.finish(&mut chunks).unwrap();
                assert_eq!(events, want, "{name} by {size}");
                let a = assemble(&chunks);
                assert_eq!(a.text, expected(&want).text, "{name} by {size}");
                assert!(a.usage.is_some());
            }
        }
    }

    #[test]
    fn a_stream_cut_short_is_an_error() {
        let events = stream_fixture("claude-tool-use.eventstream.bin");
        let stop = events
            .iter()
            .position(|e| e.event.as_deref() == Some("messageStop"))
            .unwrap();
        // Without metadata: everything but the usage arrived, still an error.
        let (chunks, r) = run(&events[..stop + 1]);
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(e.message.contains("metadata"), "{}", e.message);
        assert!(chunks.iter().any(|c| c
            .choices
            .first()
            .is_some_and(|ch| ch.finish_reason.is_some())));
        assert!(chunks.iter().all(|c| c.usage.is_none()));
        // Without messageStop.
        for cut in [0, 1, 10, stop] {
            let e = run(&events[..cut]).1.unwrap_err();
            assert_eq!(e.code, ErrorCode::StreamInterrupted);
            assert!(e.message.contains("messageStop"), "{}", e.message);
        }
        // Metadata without messageStop is no end either.
        let mut without_stop = events.clone();
        without_stop.remove(stop);
        assert_eq!(
            run(&without_stop).1.unwrap_err().code,
            ErrorCode::StreamInterrupted
        );
    }

    #[test]
    fn metadata_before_message_stop_still_ends_with_usage() {
        let events = [
            ev("messageStart", json!({"role": "assistant"})),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            ev(
                "metadata",
                json!({"usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6, "cacheReadInputTokens": 2}}),
            ),
            ev("messageStop", json!({"stopReason": "max_tokens"})),
        ];
        let a = assemble(&run_ok(&events));
        assert_eq!((a.text.as_str(), a.finish.as_str()), ("Hi", "length"));
        let u = a.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (7, 1, 8)
        );
        assert_eq!(u.prompt_tokens_details.unwrap()["cached_tokens"], 2);
    }

    #[test]
    fn garbage_and_exceptions_are_errors() {
        for data in ["not json", "{\"contentBlockIndex\":", "{,}"] {
            let events = [
                ev("messageStart", json!({"role": "assistant"})),
                SseEvent {
                    event: Some("contentBlockDelta".into()),
                    data: data.into(),
                    id: None,
                },
            ];
            let (chunks, r) = run(&events);
            let e = r.unwrap_err();
            assert_eq!(e.code, ErrorCode::StreamInterrupted);
            assert!(e.body.is_some());
            assert_eq!(chunks.len(), 1);
        }
        for (name, code) in [
            ("throttlingException", ErrorCode::RateLimit),
            ("validationException", ErrorCode::InvalidRequest),
            ("serviceUnavailableException", ErrorCode::Overloaded),
            ("internalServerException", ErrorCode::ServerError),
            ("modelStreamErrorException", ErrorCode::StreamInterrupted),
        ] {
            let events = [
                ev("messageStart", json!({"role": "assistant"})),
                ev(name, json!({"message": "Too many tokens, please wait."})),
            ];
            let e = run(&events).1.unwrap_err();
            assert_eq!(e.code, code, "{name}");
            assert!(
                e.message.contains("Too many tokens, please wait."),
                "{}",
                e.message
            );
            assert_eq!(e.body.unwrap()["message"], "Too many tokens, please wait.");
        }
        let e = run(&[SseEvent {
            event: Some("throttlingException".into()),
            data: "slow".into(),
            id: None,
        }])
        .1
        .unwrap_err();
        assert!(e.message.contains("slow"));
    }

    #[test]
    fn unknown_events_and_blocks_are_ignored() {
        let events = [
            ev("messageStart", json!({"role": "assistant"})),
            ev("somethingNew", json!({"x": 1})),
            SseEvent {
                event: None,
                data: "{}".into(),
                id: None,
            },
            ev(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"image": {}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"citation": {}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 5, "delta": {"toolUse": {"input": "{\"orphan\":1}"}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"text": "ok"}}),
            ),
            ev("contentBlockStop", json!({"contentBlockIndex": 9})),
            ev("messageStop", json!({"stopReason": "end_turn"})),
            ev("metadata", json!({"metrics": {"latencyMs": 3}})),
        ];
        let chunks = run_ok(&events);
        let a = assemble(&chunks);
        assert_eq!((a.text.as_str(), a.finish.as_str()), ("ok", "stop"));
        assert!(a.calls.is_empty());
        assert!(a.usage.is_none());
    }

    // Found by the types review: a stopReason newer than this release was passed through as
    // finish_reason, outside OpenAI's words.
    #[test]
    fn a_streamed_stop_reason_is_in_openai_words_with_bedrock_word_kept() {
        for (stop, want, native) in [
            (json!("end_turn"), "stop", Some("end_turn")),
            (
                json!("malformed_model_output"),
                "stop",
                Some("malformed_model_output"),
            ),
            (
                json!("guardrail_intervened"),
                "content_filter",
                Some("guardrail_intervened"),
            ),
            (Value::Null, "stop", None),
        ] {
            let events = [
                ev("messageStart", json!({"role": "assistant"})),
                ev(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": "ok"}}),
                ),
                ev("messageStop", json!({"stopReason": stop})),
                ev(
                    "metadata",
                    json!({"usage": {"inputTokens": 1, "outputTokens": 1}}),
                ),
            ];
            let chunks = run_ok(&events);
            assert_eq!(assemble(&chunks).finish, want, "{stop}");
            let finish = chunks
                .iter()
                .flat_map(|c| &c.choices)
                .find(|ch| ch.finish_reason.is_some())
                .unwrap();
            assert_eq!(finish.native_finish_reason.as_deref(), native, "{stop}");
        }
    }

    #[test]
    fn tool_calls_are_numbered_in_order_of_appearance() {
        let start = |i: u64, id: &str| {
            ev(
                "contentBlockStart",
                json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": id}}}),
            )
        };
        let args = |i: u64, p: &str| {
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": p}}}),
            )
        };
        let events = [
            ev("messageStart", json!({"role": "assistant"})),
            start(7, "a"),
            start(3, "b"),
            args(3, "[2"),
            args(7, "[1"),
            args(3, "]"),
            args(7, ""),
            args(7, "]"),
            ev(
                "contentBlockStart",
                json!({"contentBlockIndex": 4, "start": {"toolUse": {}}}),
            ),
            ev("messageStop", json!({"stopReason": "end_turn"})),
            ev(
                "metadata",
                json!({"usage": {"inputTokens": 1, "outputTokens": 2}}),
            ),
        ];
        let a = assemble(&run_ok(&events));
        assert_eq!(
            &a.calls[..2],
            &[
                ("a".into(), "a".into(), "[1]".into()),
                ("b".into(), "b".into(), "[2]".into())
            ]
        );
        assert!(a.calls[2].0.starts_with("call_"));
        assert_eq!((a.calls[2].1.as_str(), a.calls[2].2.as_str()), ("", ""));
        // end_turn with tool calls is still a tool-call finish.
        assert_eq!(a.finish, "tool_calls");
        assert_eq!(a.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn redacted_and_unclosed_reasoning_blocks() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let events = [
            ev("messageStart", json!({"role": "assistant"})),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": b64.encode("secret ")}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": b64.encode("stuff")}}}),
            ),
            ev("contentBlockStop", json!({"contentBlockIndex": 0})),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"text": "still "}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"text": "thinking"}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"signature": "AB"}}}),
            ),
            ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"signature": "CD"}}}),
            ),
            ev("messageStop", json!({"stopReason": "max_tokens"})),
            ev(
                "metadata",
                json!({"usage": {"inputTokens": 1, "outputTokens": 2}}),
            ),
        ];
        let a = assemble(&run_ok(&events));
        assert_eq!(a.reasoning, "still thinking");
        assert_eq!(
            a.thinking_blocks,
            vec![
                json!({"type": "redacted_thinking", "data": b64.encode("secret stuff")}),
                json!({"type": "thinking", "thinking": "still thinking", "signature": "ABCD"})
            ]
        );
        assert_eq!(a.finish, "length");
        assert_eq!(join_base64(&["a".into(), "!!".into()]), "a!!");
    }

    #[test]
    fn only_message_stop_and_metadata() {
        let chunks = run_ok(&[ev("messageStop", json!({})), ev("metadata", json!({}))]);
        let a = assemble(&chunks);
        assert_eq!((a.text.as_str(), a.finish.as_str()), ("", "stop"));
        assert_eq!(chunks.len(), 2);
        assert!(a.usage.is_none());
        // Empty payloads count as events without fields.
        let empty = |n: &str| SseEvent {
            event: Some(n.into()),
            data: String::new(),
            id: None,
        };
        let a = assemble(&run_ok(&[
            empty("messageStart"),
            empty("messageStop"),
            empty("metadata"),
        ]));
        assert_eq!(a.finish, "stop");
    }

    /// Every event of every capture with one field removed or of the wrong type: never a panic,
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
        for name in STREAMS {
            let events = stream_fixture(name);
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
                    // One and two levels down: start.toolUse, delta.reasoningContent, usage…
                    if let Value::Object(inner) = v {
                        for (ik, iv) in inner {
                            for w in wrong.iter().take(5) {
                                let mut changed = original.clone();
                                changed[k.as_str()][ik.as_str()] = w.clone();
                                variants.push(changed);
                                if let Value::Object(deeper) = iv {
                                    for dk in deeper.keys() {
                                        let mut changed = original.clone();
                                        changed[k.as_str()][ik.as_str()][dk.as_str()] = w.clone();
                                        variants.push(changed);
                                    }
                                }
                            }
                        }
                    }
                }
                for variant in variants {
                    let mut mutated = events.clone();
                    mutated[i].data = Value::Object(variant).to_string();
                    let (chunks, r) = run(&mutated);
                    if r.is_ok() {
                        assemble(&chunks);
                    }
                }
            }
        }
    }
}
