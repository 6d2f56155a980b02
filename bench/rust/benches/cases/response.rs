//! Non-stream responses: the provider's body → `ChatCompletion` → its JSON text, as
//! `Proxy::generate_model` parses it and `bindings.rs` serialises it. Throughput in body bytes.
//!
//! OpenAI-compatible servers go through the OpenAI parser (`openai::response::parse_response`),
//! Claude on Bedrock InvokeModel through the Anthropic one, as in `proxy.rs`.

use super::fixtures;
use super::Case;
use criterion::Throughput;
use llm_proxy::adapters::{anthropic, bedrock, openai};
use llm_proxy::types::response::ChatCompletion;
use llm_proxy::Result;
use std::hint::black_box;

const MODEL: &str = "requested-model";

#[derive(Debug, Clone, Copy)]
enum Parser {
    OpenAi,
    Anthropic,
    Converse,
    Llama,
}

impl Parser {
    fn parse(self, body: &[u8]) -> Result<ChatCompletion> {
        match self {
            Parser::OpenAi => openai::response::parse_response(body, MODEL),
            Parser::Anthropic => anthropic::response::parse_response(body, MODEL, None),
            Parser::Converse => bedrock::converse::parse_response(body, MODEL),
            Parser::Llama => bedrock::llama::parse_response(body, MODEL, false),
        }
    }
}

fn to_json(parser: Parser, body: &[u8]) -> String {
    let completion = parser.parse(body).expect("a recorded answer parses");
    serde_json::to_string(&completion).expect("a completion serialises")
}

pub fn cases() -> Vec<Case> {
    let inputs = [
        (
            "openai",
            "parallel-tool-calls",
            Parser::OpenAi,
            "openai/chat/parallel-tool-calls.json",
        ),
        (
            "openai",
            "text-gpt35-2026",
            Parser::OpenAi,
            "openai/chat/text-gpt35-2026.json",
        ),
        (
            "anthropic",
            "text-and-two-tool-use",
            Parser::Anthropic,
            "anthropic/messages/text-and-two-tool-use.json",
        ),
        (
            "anthropic",
            "thinking",
            Parser::Anthropic,
            "anthropic/messages/thinking.json",
        ),
        (
            "bedrock_claude",
            "claude3-messages",
            Parser::Anthropic,
            "bedrock/invoke/claude3-messages.json",
        ),
        (
            "bedrock_converse",
            "claude37-guardrail-trace",
            Parser::Converse,
            "bedrock/converse/claude37-guardrail-trace.json",
        ),
        (
            "bedrock_llama",
            "llama3-70b-generation",
            Parser::Llama,
            "bedrock/invoke/llama3-70b-generation.json",
        ),
    ];
    let mut cases = Vec::new();
    for (provider, label, parser, rel) in inputs {
        let body = fixtures::read(rel);
        let text = to_json(parser, &body);
        note!(
            "response/{provider}/{label}: {} bytes -> {} bytes of chat.completion JSON",
            body.len(),
            text.len()
        );
        let bytes = Throughput::Bytes(body.len() as u64);
        cases.push(Case::new(
            "response",
            format!("{provider}/{label}"),
            bytes,
            move || {
                black_box(to_json(parser, black_box(&body)));
            },
        ));
    }
    cases
}
