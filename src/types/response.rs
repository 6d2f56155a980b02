//! The canonical answer: OpenAI's `chat.completion` and `chat.completion.chunk`, whatever the provider.
//! Fields a provider adds that are not modelled here are kept in `extra` and passed through.

use super::request::ToolCall;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    /// Unix time in seconds.
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ResponseMessage,
    /// One of OpenAI's words once normalised: never null in an answer llm-proxy gives.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The provider's own word for why the answer ended, when it is not `finish_reason` (see
    /// [`normalize_finish_reason`]); as an upstream sent it, if it already had one (OpenRouter does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The model's visible reasoning, where the provider returns it (DeepSeek, Claude thinking…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Claude's thinking blocks with their signatures (`{type: 'thinking', thinking, signature}` or
    /// `{type: 'redacted_thinking', data}`). Sent back on the assistant message, they restore the
    /// thinking that a tool-use continuation requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

pub(crate) fn assistant_role() -> String {
    "assistant".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

pub(crate) fn chunk_object() -> String {
    "chat.completion.chunk".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// As on [`Choice`], on the chunk that carries the finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// A completed thinking block (with its signature), sent when the block ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delta {
    /// Carries nothing a consumer could use.
    pub fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.content.is_none()
            && self.refusal.is_none()
            && self.reasoning_content.is_none()
            && self.thinking_blocks.is_none()
            && self.tool_calls.as_ref().is_none_or(|t| t.is_empty())
            && self.extra.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Upstream may omit it; the stream normaliser always sets it.
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
    /// A piece of an OpenAI custom tool call (`type: 'custom'`): its name, then its `input` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomDelta>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolCallDelta {
    /// Carries a name or a piece of the arguments or input.
    pub fn carries_something(&self) -> bool {
        self.id.is_some()
            || self.function.as_ref().is_some_and(|f| {
                f.name.is_some() || f.arguments.as_deref().is_some_and(|a| !a.is_empty())
            })
            || self.custom.as_ref().is_some_and(|c| {
                c.name.is_some() || c.input.as_deref().is_some_and(|i| !i.is_empty())
            })
            || !self.extra.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A finish reason in OpenAI's words (`stop`, `length`, `tool_calls`, `content_filter`), from the
/// words OpenAI-compatible servers and providers use, in any case. A word with no OpenAI equivalent
/// (vLLM's `abort`, a server's `error`, a stop reason newer than this release) is `stop`: the answer
/// ended without being cut by a limit or a filter. The word itself is kept as
/// `native_finish_reason` (see [`native_finish_reason`]). `function_call` (the legacy form) is
/// `tool_calls`, as llm-proxy gives legacy function calls as tool calls.
pub fn normalize_finish_reason(reason: &str) -> String {
    match reason.to_ascii_lowercase().as_str() {
        "length"
        | "max_tokens"
        | "model_length"
        | "max_length"
        | "max_output_tokens"
        | "model_context_window_exceeded" => "length",
        "tool_calls" | "tool_use" | "tool_call" | "function_call" => "tool_calls",
        "content_filter"
        | "content_filtered"
        | "safety"
        | "refusal"
        | "recitation"
        | "guardrail_intervened"
        | "blocklist"
        | "prohibited_content"
        | "spii" => "content_filter",
        // stop, end_turn, stop_sequence, eos, eos_token, end, complete, and every unknown word.
        _ => "stop",
    }
    .to_string()
}

/// The provider's word for `native_finish_reason`: `Some` when it is not the OpenAI word given.
pub fn native_finish_reason(native: &str, given: &str) -> Option<String> {
    (native != given).then(|| native.to_string())
}

/// The finish reason of an answer whose provider gave none: it ended normally.
pub fn inferred_finish_reason(has_tool_calls: bool) -> String {
    if has_tool_calls { "tool_calls" } else { "stop" }.to_string()
}

/// OpenAI's finish reasons, the only words `finish_reason` takes in what llm-proxy gives.
pub const OPENAI_FINISH_REASONS: [&str; 5] = [
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
];

/// Providers that report `created` in milliseconds are brought back to seconds.
pub fn normalize_created(created: i64) -> i64 {
    if created > 100_000_000_000 {
        created / 1000
    } else {
        created
    }
}

pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_are_mapped_to_openai_words() {
        assert_eq!(normalize_finish_reason("end_turn"), "stop");
        assert_eq!(normalize_finish_reason("max_tokens"), "length");
        assert_eq!(normalize_finish_reason("tool_use"), "tool_calls");
        assert_eq!(normalize_finish_reason("function_call"), "tool_calls");
        assert_eq!(normalize_finish_reason("content_filter"), "content_filter");
        assert_eq!(
            normalize_finish_reason("guardrail_intervened"),
            "content_filter"
        );
        assert_eq!(normalize_finish_reason("SAFETY"), "content_filter");
        assert_eq!(normalize_finish_reason("MAX_TOKENS"), "length");
        assert_eq!(normalize_finish_reason("eos"), "stop");
    }

    // Found by the types review: an unknown word was passed through, outside OpenAI's vocabulary.
    #[test]
    fn unknown_finish_reasons_are_stop_and_kept_as_native() {
        for word in ["weird", "abort", "error", "pause_turn", "other", ""] {
            let r = normalize_finish_reason(word);
            assert_eq!(r, "stop", "{word}");
            assert!(OPENAI_FINISH_REASONS.contains(&r.as_str()));
        }
        assert_eq!(
            native_finish_reason("abort", "stop").as_deref(),
            Some("abort")
        );
        assert_eq!(native_finish_reason("stop", "stop"), None);
        assert_eq!(inferred_finish_reason(true), "tool_calls");
        assert_eq!(inferred_finish_reason(false), "stop");
    }

    #[test]
    fn native_finish_reason_is_written_only_when_there_is_one() {
        let mut c: ChatCompletionChunk = serde_json::from_str(
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop","native_finish_reason":null}]}"#,
        )
        .unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert!(v["choices"][0].get("native_finish_reason").is_none(), "{v}");
        c.choices[0].native_finish_reason = Some("eos".into());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["choices"][0]["native_finish_reason"], "eos");
    }

    #[test]
    fn created_in_milliseconds_becomes_seconds() {
        assert_eq!(normalize_created(1795561959577), 1795561959);
        assert_eq!(normalize_created(1795561959), 1795561959);
    }

    #[test]
    fn null_refusal_and_logprobs_are_written_for_sdk_compatibility() {
        let c: ChatCompletion = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["choices"][0]["message"]["refusal"], Value::Null);
        assert_eq!(v["choices"][0]["logprobs"], Value::Null);
        assert!(v.get("usage").is_none());
    }
}
