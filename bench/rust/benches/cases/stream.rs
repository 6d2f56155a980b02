//! Stream event → chunk: each stream adapter over the events of recorded fixtures, with every
//! chunk serialised to JSON text and batched as `feed.rs` hands them to JavaScript.
//!
//! Cases:
//! - `stream/<adapter>/<fixture>`: events already framed (framing is outside the timed loop);
//!   per iteration a new adapter takes every event, finishes, and its chunks are serialised.
//!   Throughput in events, so `elem/s` is events per second.
//! - `stream_bytes/<adapter>/<fixture>`: the same from the raw body (framing included), throughput
//!   in body bytes.

use super::fixtures::{self, Framing};
use super::Case;
use criterion::Throughput;
use llm_proxy::adapters::anthropic::stream::AnthropicStream;
use llm_proxy::adapters::bedrock::claude::ClaudeInvokeStream;
use llm_proxy::adapters::bedrock::converse::ConverseStream;
use llm_proxy::adapters::bedrock::llama::LlamaStream;
use llm_proxy::adapters::openai::stream::ChunkNormalizer;
use llm_proxy::adapters::openai::Dialect;
use llm_proxy::adapters::StreamAdapter;
use std::hint::black_box;

/// The model name the call asked for (chunks carry the provider's, or this).
const MODEL: &str = "requested-model";

/// A stream adapter as `proxy::open_stream` builds it.
#[derive(Debug, Clone, Copy)]
pub enum Adapter {
    OpenAi,
    Compatible,
    Anthropic,
    BedrockClaude,
    BedrockConverse,
    /// `tools_offered: false`: the generation is the content, verbatim.
    BedrockLlama,
    /// `tools_offered: true`: the generation goes through the `<function=…>` scanner.
    BedrockLlamaTools,
}

impl Adapter {
    pub fn name(self) -> &'static str {
        match self {
            Adapter::OpenAi => "openai",
            Adapter::Compatible => "openai_compatible",
            Adapter::Anthropic => "anthropic",
            Adapter::BedrockClaude => "bedrock_claude",
            Adapter::BedrockConverse => "bedrock_converse",
            Adapter::BedrockLlama => "bedrock_llama",
            Adapter::BedrockLlamaTools => "bedrock_llama_tools",
        }
    }

    pub fn build(self) -> Box<dyn StreamAdapter> {
        match self {
            Adapter::OpenAi => Box::new(ChunkNormalizer::new(MODEL, Dialect::OpenAi)),
            Adapter::Compatible => Box::new(ChunkNormalizer::new(MODEL, Dialect::Compatible)),
            Adapter::Anthropic => Box::new(AnthropicStream::new(MODEL, None)),
            Adapter::BedrockClaude => Box::new(ClaudeInvokeStream::new(MODEL, None)),
            Adapter::BedrockConverse => Box::new(ConverseStream::new(MODEL)),
            Adapter::BedrockLlama => Box::new(LlamaStream::new(MODEL, false)),
            Adapter::BedrockLlamaTools => Box::new(LlamaStream::new(MODEL, true)),
        }
    }

    pub fn framing(self) -> Framing {
        match self {
            Adapter::OpenAi | Adapter::Compatible | Adapter::Anthropic => Framing::Sse,
            _ => Framing::EventStream,
        }
    }
}

/// A body the benches drive an adapter with.
pub struct Input {
    pub adapter: Adapter,
    /// Short name for the bench id.
    pub label: &'static str,
    pub body: Vec<u8>,
}

fn input(adapter: Adapter, label: &'static str, rel: &str) -> Input {
    Input {
        adapter,
        label,
        body: fixtures::read(rel),
    }
}

pub fn inputs() -> Vec<Input> {
    use Adapter::*;
    vec![
        input(
            OpenAi,
            "text-include-usage",
            "openai/sse/text-include-usage.sse",
        ),
        input(
            OpenAi,
            "parallel-tool-calls",
            "openai/sse/parallel-tool-call-deltas-2026.sse",
        ),
        Input {
            adapter: OpenAi,
            label: "synthetic-1000-chunks",
            body: super::framing::openai_sse_body(1000),
        },
        input(
            Compatible,
            "deepseek-usage",
            "openai-compatible/sse/deepseek-usage-in-final-choice-chunk.sse",
        ),
        input(Anthropic, "text", "anthropic/sse/text.sse"),
        input(
            Anthropic,
            "tool-use",
            "anthropic/sse/tool-use-input-json-delta.sse",
        ),
        input(Anthropic, "thinking", "anthropic/sse/thinking.sse"),
        input(
            BedrockClaude,
            "claude35-text",
            "bedrock/invoke-stream/claude35-text-max-tokens.eventstream.bin",
        ),
        input(
            BedrockConverse,
            "claude-tool-use",
            "bedrock/converse-stream/claude-tool-use.eventstream.bin",
        ),
        input(
            BedrockConverse,
            "llama-text",
            "bedrock/converse-stream/llama-text.eventstream.bin",
        ),
        input(
            BedrockLlama,
            "llama3-8b-text",
            "bedrock/invoke-stream/llama3-8b-text.eventstream.bin",
        ),
        input(
            BedrockLlamaTools,
            "llama3-8b-text",
            "bedrock/invoke-stream/llama3-8b-text.eventstream.bin",
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut from_bytes = Vec::new();
    for input in inputs() {
        let Input {
            adapter,
            label,
            body,
        } = input;
        let name = format!("{}/{label}", adapter.name());
        let events = fixtures::events(adapter.framing(), &body);
        let (text, chunks) = fixtures::drive(adapter.build().as_mut(), &events);
        note!(
            "stream/{name}: {} events -> {chunks} chunks, {} bytes of chunk JSON",
            events.len(),
            text.len()
        );
        let count = Throughput::Elements(events.len() as u64);
        cases.push(Case::new("stream", name.clone(), count, move || {
            let mut a = adapter.build();
            black_box(fixtures::drive(a.as_mut(), black_box(&events)));
        }));
        let bytes = Throughput::Bytes(body.len() as u64);
        from_bytes.push(Case::new("stream_bytes", name, bytes, move || {
            let events = fixtures::events(adapter.framing(), black_box(&body));
            let mut a = adapter.build();
            black_box(fixtures::drive(a.as_mut(), &events));
        }));
    }
    cases.extend(from_bytes);
    cases
}
