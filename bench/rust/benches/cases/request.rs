//! Request building: the 100-message conversation (see `conversation.rs`) from the JSON text the
//! binding receives to the upstream body bytes, for every provider.
//!
//! The chain is the one a call runs (`bindings.rs` → `Proxy::generate_with` →
//! `Proxy::prepare_*`): `ChatRequest::from_json`, `resolver::resolve`, the provider's
//! `build_body`, `serde_json::to_vec` of the body. `Proxy::prepare` itself is private (it also
//! builds the URL, headers and signing data), so the bench calls the same public pieces in the same
//! order.
//!
//! Cases (throughput in messages, 100 per iteration):
//! - `request/<provider>`: the whole chain, text in, body bytes out;
//! - `request/parse`: `ChatRequest::from_json` alone (the same for every provider);
//! - `request_build/<provider>`: the provider's `build_body` on the parsed request (a `Value`);
//! - `request_serialize/<provider>`: `serde_json::to_vec` of the built body.

use super::conversation::{self, MESSAGES};
use super::Case;
use criterion::Throughput;
use llm_proxy::adapters::openai::Dialect;
use llm_proxy::adapters::{anthropic, bedrock, openai};
use llm_proxy::config::Config;
use llm_proxy::resolver::{self, Route};
use llm_proxy::types::request::ChatRequest;
use llm_proxy::Result;
use serde_json::Value;
use std::hint::black_box;
use std::rc::Rc;

/// One provider's input adapter, as `Proxy::prepare` picks it for the route.
#[derive(Debug, Clone, Copy)]
enum Provider {
    OpenAi,
    Compatible,
    Anthropic,
    BedrockClaude,
    BedrockConverse,
    BedrockLlama,
}

impl Provider {
    const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Compatible,
        Provider::Anthropic,
        Provider::BedrockClaude,
        Provider::BedrockConverse,
        Provider::BedrockLlama,
    ];

    fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Compatible => "openai_compatible",
            Provider::Anthropic => "anthropic",
            Provider::BedrockClaude => "bedrock_claude",
            Provider::BedrockConverse => "bedrock_converse",
            Provider::BedrockLlama => "bedrock_llama",
        }
    }

    /// The model name a caller would write.
    fn model(self) -> &'static str {
        match self {
            Provider::OpenAi => "gpt-4o",
            Provider::Compatible => "groq/llama-3.3-70b-versatile",
            Provider::Anthropic => "claude-sonnet-4-5",
            Provider::BedrockClaude => "bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            Provider::BedrockConverse => {
                "bedrock-converse/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
            }
            Provider::BedrockLlama => "bedrock/meta.llama3-1-70b-instruct-v1:0",
        }
    }

    /// `Proxy::prepare_openai` / `prepare_anthropic` / `prepare_bedrock`, up to the body `Value`
    /// (non-streaming, as `generate` builds it).
    fn build(self, req: &ChatRequest, route: &Route) -> Result<Value> {
        let model = route.model.as_str();
        Ok(match self {
            Provider::OpenAi => openai::request::build_body(req, model, Dialect::OpenAi, false),
            Provider::Compatible => {
                openai::request::build_body(req, model, Dialect::Compatible, false)
            }
            Provider::Anthropic => anthropic::request::build_body(req, model, false)?.body,
            Provider::BedrockClaude => bedrock::claude::build_body(req, model)?.body,
            Provider::BedrockConverse => bedrock::converse::build_body(req)?,
            Provider::BedrockLlama => bedrock::llama::build_body(req)?,
        })
    }
}

/// The proxy's configuration: one compatible endpoint (for `groq/…`), nothing from the
/// environment. Resolution needs no keys.
fn config() -> Config {
    let options = serde_json::from_str(
        r#"{"compatible": {"groq": {"baseUrl": "https://api.groq.com/openai/v1"}}}"#,
    )
    .expect("options");
    Config::resolve(options, &|_| None).expect("config")
}

/// Text in, upstream body bytes out.
fn chain(provider: Provider, text: &str, config: &Config) -> Vec<u8> {
    let req = ChatRequest::from_json(text).expect("the conversation parses");
    let route = resolver::resolve(&req.model, config).expect("the model resolves");
    let body = provider.build(&req, &route).expect("the body builds");
    serde_json::to_vec(&body).expect("the body serialises")
}

pub fn cases() -> Vec<Case> {
    let config = Rc::new(config());
    let texts: Vec<(Provider, Rc<String>)> = Provider::ALL
        .iter()
        .map(|&p| (p, Rc::new(conversation::request_json(p.model()))))
        .collect();
    // `LLM_PROXY_BENCH_DUMP=dir`: write each request text and body there, to look at them.
    let dump = std::env::var_os("LLM_PROXY_BENCH_DUMP").map(std::path::PathBuf::from);
    for (p, text) in &texts {
        let body = chain(*p, text, &config);
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).expect("dump dir");
            std::fs::write(dir.join(format!("{}.request.json", p.name())), &**text).expect("dump");
            std::fs::write(dir.join(format!("{}.body.json", p.name())), &body).expect("dump");
        }
        note!(
            "request/{}: {} messages, request {} bytes -> body {} bytes",
            p.name(),
            MESSAGES,
            text.len(),
            body.len()
        );
    }
    let messages = || Throughput::Elements(MESSAGES as u64);
    let mut cases = Vec::new();

    let text = texts[0].1.clone();
    cases.push(Case::new("request", "parse", messages(), move || {
        black_box(ChatRequest::from_json(black_box(&text)).expect("parses"));
    }));
    for (p, text) in &texts {
        let (p, text, config) = (*p, text.clone(), config.clone());
        cases.push(Case::new("request", p.name(), messages(), move || {
            black_box(chain(p, black_box(&text), &config));
        }));
    }

    for (p, text) in &texts {
        let req = ChatRequest::from_json(text).expect("parses");
        let route = resolver::resolve(&req.model, &config).expect("resolves");
        let body = p.build(&req, &route).expect("builds");
        let p = *p;
        cases.push(Case::new(
            "request_build",
            p.name(),
            messages(),
            move || {
                black_box(p.build(black_box(&req), &route).expect("builds"));
            },
        ));
        cases.push(Case::new(
            "request_serialize",
            p.name(),
            messages(),
            move || {
                black_box(serde_json::to_vec(black_box(&body)).expect("serialises"));
            },
        ));
    }
    // Group order: the whole chain, then its parts.
    cases.sort_by_key(|c| match c.group {
        "request" => 0,
        "request_build" => 1,
        _ => 2,
    });
    cases
}
