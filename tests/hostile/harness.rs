//! The fuzz targets' bodies, shared by `tests/hostile.rs` (fixed-seed mutations of the recorded
//! fixtures, on every `cargo test`) and `fuzz/fuzz_targets/*.rs` (cargo-fuzz, `.ci/fuzz`).
//!
//! Each target takes arbitrary bytes, runs one part of the library on them and panics only when an
//! invariant breaks; a panic inside the library is such a break. Beyond "no panic", the targets
//! check what must hold for any input:
//! - framing does not depend on how the bytes are split: the SSE decoder and the event-stream
//!   framer give the same events and the same error for the bytes whole, in random pieces, and one
//!   byte at a time;
//! - a stream adapter that ends without an error has kept the stream contract (one role delta,
//!   tool calls numbered 0, 1, 2… each introduced by its id and name, exactly one finish_reason (one of OpenAI's words) per
//!   choice, usage alone in the last chunk, the same id/model/created throughout);
//! - whatever comes out (chunks, completions, errors) serialises to JSON, and every error has a
//!   message.
//!
//! Split points and other choices come from a hash of the input, so a fixture file is a valid
//! seed as it is and every mutation also varies the split.

#![allow(dead_code)] // each fuzz target uses one function of this module

use base64::Engine;
use llm_proxy::adapters::anthropic::stream::AnthropicStream;
use llm_proxy::adapters::bedrock::claude::ClaudeInvokeStream;
use llm_proxy::adapters::bedrock::converse::ConverseStream;
use llm_proxy::adapters::bedrock::llama::LlamaStream;
use llm_proxy::adapters::openai::stream::ChunkNormalizer;
use llm_proxy::adapters::openai::Dialect;
use llm_proxy::adapters::{anthropic, bedrock, error_body, openai, StreamAdapter};
use llm_proxy::client::eventstream::EventStreamFramer;
use llm_proxy::client::sse::{SseDecoder, SseError, SseEvent};
use llm_proxy::client::stream::Framer;
use llm_proxy::types::request::ChatRequest;
use llm_proxy::types::response::{ChatCompletion, ChatCompletionChunk, OPENAI_FINISH_REASONS};
use llm_proxy::{Error, ErrorCode};
use serde_json::Value;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Deterministic choices
// ---------------------------------------------------------------------------------------------

/// FNV-1a: the seed of the choices made for an input.
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// xorshift64*: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// `data` cut into pieces of mixed sizes (1 byte, a few bytes, a line's worth, large), chosen by
/// `rng`. Empty pieces are included now and then: a body may deliver an empty chunk.
pub fn split<'a>(data: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let size = match rng.below(8) {
            0 => 0,
            1..=3 => 1 + rng.below(4),
            4 | 5 => 1 + rng.below(64),
            6 => 1 + rng.below(1024),
            _ => 1 + rng.below(16 * 1024),
        }
        .min(rest.len());
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// Feeds `pieces` then finishes, stopping at the first error.
fn sse_decode(pieces: &[&[u8]], limit: usize) -> (Vec<SseEvent>, Option<SseError>) {
    let mut decoder = SseDecoder::with_max_line_len(limit);
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = decoder.feed(piece, &mut out) {
            // Poisoned: the same error again, and nothing more.
            let mut more = Vec::new();
            assert_eq!(decoder.feed(b"data: x\n\n", &mut more), Err(e.clone()));
            assert_eq!(decoder.finish(&mut more), Err(e.clone()));
            assert!(more.is_empty(), "a failed decoder produced events");
            return (out, Some(e));
        }
    }
    let err = decoder.finish(&mut out).err();
    (out, err)
}

/// SSE decoder: any bytes, any split, two line limits. Same events and error however split; no
/// CR or LF inside an event's fields (LF only between data lines).
pub fn sse(data: &[u8]) {
    let mut rng = Rng::new(hash(data));
    // A small limit so that `LineTooLong` is reached, and the production default.
    for limit in [1 + rng.below(256), 16 * 1024 * 1024] {
        let whole = sse_decode(&[data], limit);
        let pieces = split(data, &mut rng);
        assert_eq!(
            sse_decode(&pieces, limit),
            whole,
            "SSE decoding depends on the split (limit {limit})"
        );
        if data.len() <= 2048 {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                sse_decode(&bytes, limit),
                whole,
                "SSE decoding byte by byte differs (limit {limit})"
            );
        }
        for e in &whole.0 {
            assert!(!e.data.contains('\r'), "CR inside data: {e:?}");
            for field in [&e.event, &e.id].into_iter().flatten() {
                assert!(
                    !field.contains(['\r', '\n']),
                    "line break inside a field: {e:?}"
                );
            }
            assert_ne!(e.event.as_deref(), Some(""), "an empty event type is None");
        }
    }
}

/// Feeds `pieces` to an event-stream framer then finishes, stopping at the first error.
fn es_decode(pieces: &[&[u8]], max_frame: usize) -> (Vec<SseEvent>, Option<Error>) {
    let mut framer = EventStreamFramer::with_max_frame_len(max_frame);
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = framer.feed(piece, &mut out) {
            check_error(&e);
            let mut more = Vec::new();
            assert_eq!(framer.feed(&[0; 16], &mut more).err(), Some(e.clone()));
            assert_eq!(framer.finish(&mut more).err(), Some(e.clone()));
            assert!(more.is_empty(), "a failed framer produced events");
            return (out, Some(e));
        }
    }
    let err = framer.finish(&mut out).err();
    if let Some(e) = &err {
        check_error(e);
    }
    (out, err)
}

/// Event-stream framer: any bytes, any split. Same events and error however split.
pub fn eventstream(data: &[u8]) {
    let mut rng = Rng::new(hash(data));
    for max_frame in [16 + rng.below(512), 16 * 1024 * 1024] {
        let whole = es_decode(&[data], max_frame);
        let pieces = split(data, &mut rng);
        assert_eq!(
            es_decode(&pieces, max_frame),
            whole,
            "event-stream framing depends on the split (max frame {max_frame})"
        );
        if data.len() <= 2048 {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                es_decode(&bytes, max_frame),
                whole,
                "event-stream framing byte by byte differs (max frame {max_frame})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stream adapters
// ---------------------------------------------------------------------------------------------

/// The stream adapters, each as it is built for a real call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    OpenAi,
    Compatible,
    Anthropic,
    /// Anthropic with the `response_format` tool (its input is the answer).
    AnthropicJsonTool,
    BedrockClaude,
    Converse,
    Llama,
    LlamaTools,
}

impl Adapter {
    pub const ALL: [Adapter; 8] = [
        Adapter::OpenAi,
        Adapter::Compatible,
        Adapter::Anthropic,
        Adapter::AnthropicJsonTool,
        Adapter::BedrockClaude,
        Adapter::Converse,
        Adapter::Llama,
        Adapter::LlamaTools,
    ];

    pub fn build(self) -> Box<dyn StreamAdapter> {
        const MODEL: &str = "requested-model";
        match self {
            Adapter::OpenAi => Box::new(ChunkNormalizer::new(MODEL, Dialect::OpenAi)),
            Adapter::Compatible => Box::new(ChunkNormalizer::new(MODEL, Dialect::Compatible)),
            Adapter::Anthropic => Box::new(AnthropicStream::new(MODEL, None)),
            Adapter::AnthropicJsonTool => {
                Box::new(AnthropicStream::new(MODEL, Some("json_response".into())))
            }
            Adapter::BedrockClaude => Box::new(ClaudeInvokeStream::new(MODEL, None)),
            Adapter::Converse => Box::new(ConverseStream::new(MODEL)),
            Adapter::Llama => Box::new(LlamaStream::new(MODEL, false)),
            Adapter::LlamaTools => Box::new(LlamaStream::new(MODEL, true)),
        }
    }

    /// Bedrock InvokeModel streams wrap the model's JSON in `{"bytes": "<base64>"}`.
    fn wraps_chunks(self) -> bool {
        matches!(
            self,
            Adapter::BedrockClaude | Adapter::Llama | Adapter::LlamaTools
        )
    }
}

/// What a stream adapter made of some events.
#[derive(Debug)]
pub struct Outcome {
    pub chunks: Vec<ChatCompletionChunk>,
    pub error: Option<Error>,
}

/// Drives `adapter` as `client::stream` does: events in order until the adapter is done or fails,
/// then `finish` (unless it failed, or framing failed).
pub fn drive(
    adapter: &mut dyn StreamAdapter,
    events: &[SseEvent],
    framing: Option<Error>,
) -> Outcome {
    let mut chunks = Vec::new();
    for event in events {
        if adapter.is_done() {
            break;
        }
        if let Err(e) = adapter.on_event(event, &mut chunks) {
            return Outcome {
                chunks,
                error: Some(e),
            };
        }
    }
    if framing.is_some() && !adapter.is_done() {
        return Outcome {
            chunks,
            error: framing,
        };
    }
    let error = adapter.finish(&mut chunks).err();
    Outcome { chunks, error }
}

/// Events for `adapter` from SSE-shaped bytes. For the Bedrock adapters the bytes spell the
/// event-stream messages as SSE (`event:` the `:event-type`, `data:` the payload) so that a fuzzer
/// can mutate the JSON without breaking checksums; an InvokeModel `chunk` whose data is not
/// already a `{"bytes": …}` wrapper is wrapped as Bedrock would.
pub fn events_for(adapter: Adapter, data: &[u8]) -> (Vec<SseEvent>, Option<Error>) {
    let (mut events, err) = sse_decode(&[data], 16 * 1024 * 1024);
    if adapter.wraps_chunks() {
        for e in &mut events {
            if e.event.as_deref() == Some("chunk") && !e.data.trim_start().starts_with("{\"bytes\"")
            {
                let b64 = base64::engine::general_purpose::STANDARD.encode(e.data.as_bytes());
                e.data = format!("{{\"bytes\":\"{b64}\"}}");
            }
        }
    }
    let err = err.map(|e| Error::new(ErrorCode::StreamInterrupted, format!("malformed SSE ({e})")));
    (events, err)
}

/// One stream adapter over any bytes: no panic, JSON-serialisable output, and the stream contract
/// whenever the stream ends without an error.
pub fn stream_adapter(adapter: Adapter, data: &[u8]) -> Outcome {
    let (events, framing) = events_for(adapter, data);
    let mut a = adapter.build();
    let outcome = drive(a.as_mut(), &events, framing);
    for c in &outcome.chunks {
        serde_json::to_string(c).expect("a chunk serialises");
    }
    match &outcome.error {
        Some(e) => check_error(e),
        None => check_contract(&outcome.chunks)
            .unwrap_or_else(|why| panic!("{adapter:?}: stream contract broken: {why}")),
    }
    // A second finish changes nothing and does not panic.
    let mut more = Vec::new();
    let _ = a.finish(&mut more);
    outcome
}

/// The stream contract of `client::stream` (see `src/adapters/contract.rs`), per choice.
pub fn check_contract(chunks: &[ChatCompletionChunk]) -> Result<(), String> {
    let Some(first) = chunks.first() else {
        return Err("a complete stream without any chunk".into());
    };
    #[derive(Default)]
    struct ChoiceSeen {
        role: bool,
        finishes: usize,
        tools: usize,
    }
    let mut seen: BTreeMap<u32, ChoiceSeen> = BTreeMap::new();
    for (i, c) in chunks.iter().enumerate() {
        if c.object != "chat.completion.chunk" {
            return Err(format!("chunk {i}: object {:?}", c.object));
        }
        if (&c.id, &c.model, c.created) != (&first.id, &first.model, first.created) {
            return Err(format!("chunk {i}: id/model/created differ from chunk 0"));
        }
        if c.choices.is_empty() {
            if i != chunks.len() - 1 || c.usage.is_none() {
                return Err(format!(
                    "chunk {i}: a chunk without choices must be the last and carry usage"
                ));
            }
            continue;
        }
        if c.usage.is_some() {
            return Err(format!("chunk {i}: usage on a chunk with choices"));
        }
        for ch in &c.choices {
            let s = seen.entry(ch.index).or_default();
            if s.finishes > 0 {
                return Err(format!("chunk {i}: choice {} after its finish", ch.index));
            }
            if ch.delta.is_empty() && ch.finish_reason.is_none() {
                return Err(format!("chunk {i}: an empty delta"));
            }
            match (&ch.delta.role, s.role) {
                (Some(r), false) if r == "assistant" => s.role = true,
                (Some(r), _) => return Err(format!("chunk {i}: role {r:?} (again?)")),
                (None, false) => {
                    return Err(format!(
                        "chunk {i}: choice {} starts without its role",
                        ch.index
                    ))
                }
                (None, true) => {}
            }
            for t in ch.delta.tool_calls.iter().flatten() {
                let idx = t
                    .index
                    .ok_or(format!("chunk {i}: tool call without index"))?
                    as usize;
                // The name is not checked: upstream may not give one (the adapters do not make
                // one up), and names are concatenated like arguments.
                let typed = match t.kind.as_deref() {
                    Some("function") => t.function.is_some(),
                    Some("custom") => t.custom.is_some(),
                    _ => false,
                };
                if idx == s.tools {
                    if t.id.as_deref().is_none_or(str::is_empty) || !typed {
                        return Err(format!(
                            "chunk {i}: the first delta of tool call {idx} lacks its id, type or function"
                        ));
                    }
                    s.tools += 1;
                } else if idx > s.tools {
                    return Err(format!(
                        "chunk {i}: tool call index {idx} skips numbers (have {})",
                        s.tools
                    ));
                } else if t.id.is_some() || t.kind.is_some() {
                    return Err(format!("chunk {i}: tool call {idx} introduced twice"));
                }
            }
            if let Some(r) = &ch.finish_reason {
                if !OPENAI_FINISH_REASONS.contains(&r.as_str()) {
                    return Err(format!("chunk {i}: finish_reason {r:?} is not OpenAI's"));
                }
                s.finishes += 1;
            } else if ch.native_finish_reason.is_some() {
                return Err(format!("chunk {i}: native_finish_reason without a finish"));
            }
        }
    }
    for (index, s) in &seen {
        if s.finishes != 1 {
            return Err(format!("choice {index}: {} finish_reasons", s.finishes));
        }
    }
    if seen.is_empty() {
        return Err("no choice in a complete stream".into());
    }
    Ok(())
}

/// Every error is JSON for the JavaScript side and has something to say.
pub fn check_error(e: &Error) {
    assert!(!e.message.trim().is_empty(), "an error without a message");
    let json: Value = serde_json::from_str(&e.to_json()).expect("an error serialises");
    assert_eq!(json["code"], e.code.as_str());
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Request JSON: `ChatRequest::from_json`, then every provider's body builder (both dialects,
/// streaming or not) and the mock provider.
pub fn request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let req = match ChatRequest::from_json(text) {
        Ok(req) => req,
        Err(e) => {
            check_error(&e);
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{}", e.message);
            return;
        }
    };
    let model = req.model.clone();
    for stream in [false, true] {
        for dialect in [Dialect::OpenAi, Dialect::Compatible] {
            let body = openai::request::build_body(&req, &model, dialect, stream);
            serde_json::to_vec(&body).expect("an OpenAI body serialises");
            // Reasoning models take another path through the builder.
            openai::request::build_body(&req, "o3-mini", dialect, stream);
        }
        built(anthropic::request::build_body(&req, &model, stream).map(|b| b.body));
    }
    built(bedrock::claude::build_body(&req, &model).map(|b| b.body));
    built(bedrock::converse::build_body(&req));
    built(bedrock::llama::build_body(&req));
    if let Err(e) = bedrock::llama::prompt(&req) {
        check_error(&e);
    }
    llm_proxy::client::mock::response_body(&req, &model);
    llm_proxy::client::mock::stream_events(&req, &model);
    let _ = req.max_output_tokens();
}

fn built(body: llm_proxy::Result<Value>) {
    match body {
        Ok(body) => {
            serde_json::to_vec(&body).expect("a request body serialises");
        }
        Err(e) => check_error(&e),
    }
}

/// `LLMProxy` options JSON: `Config::from_json`, then routing a few model names.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match llm_proxy::config::Config::from_json(text) {
        Ok(config) => {
            let proxy = llm_proxy::Proxy::new(config);
            for model in [
                "gpt-4o",
                "claude-sonnet-4-5",
                "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
                "bedrock-converse/meta.llama3-8b",
                "mock/echo",
                "x/y",
                "",
            ] {
                match proxy.resolve(model) {
                    Ok(route) => {
                        serde_json::to_string(&route).expect("a route serialises");
                    }
                    Err(e) => check_error(&e),
                }
            }
        }
        Err(e) => check_error(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// The non-streaming response parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    OpenAi,
    Anthropic,
    AnthropicJsonTool,
    Converse,
    Llama,
    LlamaTools,
}

impl Parser {
    pub const ALL: [Parser; 6] = [
        Parser::OpenAi,
        Parser::Anthropic,
        Parser::AnthropicJsonTool,
        Parser::Converse,
        Parser::Llama,
        Parser::LlamaTools,
    ];

    pub fn parse(self, body: &[u8]) -> llm_proxy::Result<ChatCompletion> {
        const MODEL: &str = "requested-model";
        match self {
            Parser::OpenAi => openai::response::parse_response(body, MODEL),
            Parser::Anthropic => anthropic::response::parse_response(body, MODEL, None),
            Parser::AnthropicJsonTool => {
                anthropic::response::parse_response(body, MODEL, Some("json_response"))
            }
            Parser::Converse => bedrock::converse::parse_response(body, MODEL),
            Parser::Llama => bedrock::llama::parse_response(body, MODEL, false),
            Parser::LlamaTools => bedrock::llama::parse_response(body, MODEL, true),
        }
    }
}

/// One response body through every parser and the error-body reader.
pub fn response(data: &[u8]) {
    for parser in Parser::ALL {
        match parser.parse(data) {
            Ok(c) => {
                serde_json::to_string(&c).expect("a completion serialises");
                // A completed answer says why it ended, in OpenAI's words.
                for ch in &c.choices {
                    let r = ch.finish_reason.as_deref();
                    assert!(
                        r.is_some_and(|r| OPENAI_FINISH_REASONS.contains(&r)),
                        "{parser:?}: finish_reason {r:?}"
                    );
                }
            }
            Err(e) => check_error(&e),
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = error_body::parse_error_body(&v);
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

/// The fuzz targets, by name (as in `fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 12] = [
    "sse",
    "eventstream",
    "stream_openai",
    "stream_compatible",
    "stream_anthropic",
    "stream_bedrock_claude",
    "stream_converse",
    "stream_llama",
    "request",
    "config",
    "response",
    "adapters",
];

/// Runs the target called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "sse" => sse(data),
        "eventstream" => eventstream(data),
        "stream_openai" => drop(stream_adapter(Adapter::OpenAi, data)),
        "stream_compatible" => drop(stream_adapter(Adapter::Compatible, data)),
        "stream_anthropic" => {
            stream_adapter(Adapter::Anthropic, data);
            stream_adapter(Adapter::AnthropicJsonTool, data);
        }
        "stream_bedrock_claude" => drop(stream_adapter(Adapter::BedrockClaude, data)),
        "stream_converse" => drop(stream_adapter(Adapter::Converse, data)),
        "stream_llama" => {
            stream_adapter(Adapter::Llama, data);
            stream_adapter(Adapter::LlamaTools, data);
        }
        "request" => request(data),
        "config" => config(data),
        "response" => response(data),
        "adapters" => adapters(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// Every stream adapter on the same bytes: the first byte picks nothing, all are run.
pub fn adapters(data: &[u8]) {
    for a in Adapter::ALL {
        stream_adapter(a, data);
    }
}

/// The fixture files in `tests/fixtures/<dir>` (recursively) whose names end with `suffix`, sorted.
pub fn fixture_files(root: &std::path::Path, dir: &str, suffix: &str) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let base = root.join("tests/fixtures").join(dir);
    let mut paths = Vec::new();
    walk(&base, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            let rel = p
                .strip_prefix(root.join("tests/fixtures"))
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}

/// A recorded Bedrock event stream spelled as SSE, the input of the Bedrock adapter targets: one
/// `event:`/`data:` pair per message, the InvokeModel `chunk`s unwrapped to the model's JSON.
pub fn eventstream_as_sse(bytes: &[u8], unwrap_chunks: bool) -> Vec<u8> {
    let mut framer = EventStreamFramer::new();
    let mut events = Vec::new();
    framer
        .feed(bytes, &mut events)
        .expect("a recorded stream frames");
    framer
        .finish(&mut events)
        .expect("a recorded stream ends cleanly");
    let mut out = String::new();
    for e in events {
        let data = if unwrap_chunks && e.event.as_deref() == Some("chunk") {
            bedrock::chunk_payload(&e)
                .expect("a recorded chunk unwraps")
                .to_string()
        } else {
            e.data
        };
        if let Some(name) = &e.event {
            out.push_str(&format!("event: {name}\n"));
        }
        for line in data.split('\n') {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Requests that reach every corner of the builders: seeds for `request`.
pub const REQUEST_SEEDS: [&str; 8] = [
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}"#,
    r#"{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":"No lists."},{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}],"max_tokens":2048,"temperature":0.2,"top_p":0.9,"stop":["\n\n","END"],"thinking":{"type":"enabled","budget_tokens":1024}}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Give JSON"}],"response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object","properties":{"a":{"type":"number"}}}}},"seed":7,"user":"u1","max_completion_tokens":100,"reasoning_effort":"low"}"#,
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"JSON please"}],"response_format":{"type":"json_object"},"stream":true,"stream_options":{"include_usage":true},"n":2,"logprobs":true}"#,
    r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"},{"role":"assistant","function_call":{"name":"lookup","arguments":"{}"}},{"role":"function","name":"lookup","content":"found"}],"functions":[{"name":"lookup","parameters":{"type":"object"}}],"function_call":"auto"}"#,
    r#"{"model":"meta.llama3-70b","messages":[{"role":"system","content":"sys"},{"role":"user","content":"call a tool"},{"role":"assistant","content":"ok","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"not json"}}]},{"role":"tool","tool_call_id":"t1","content":[{"type":"text","text":"result"}]}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","stop":"STOP"}"#,
    r#"{"model":"mock/echo","messages":[{"role":"user","content":"a b c"}],"mock_response":"x y z","max_tokens":0,"temperature":2}"#,
];

/// Options that reach every part of `Config`: seeds for `config`.
pub const CONFIG_SEEDS: [&str; 4] = [
    r#"{}"#,
    r#"{"openai":{"apiKey":"sk-seed","baseUrl":"https://example.com/v1?api-version=1","organization":"org","project":"p","headers":{"x-a":"b"}},"anthropic":{"apiKey":"k","baseUrl":"http://127.0.0.1:1"},"timeoutMs":1000,"retry":{"maxRetries":1,"initialDelayMs":1,"maxDelayMs":2}}"#,
    r#"{"bedrock":{"region":"us-east-1","accessKeyId":"AKID","secretAccessKey":"secret","sessionToken":"token","endpoint":"http://127.0.0.1:9"}}"#,
    r#"{"compatible":{"local":{"baseUrl":"http://localhost:8080/v1","apiKey":"k","headers":{"x":"y"}}},"routes":{"fast":"local/llama","gpt-*":"openai/gpt-4o"}}"#,
];

/// The seed inputs of the target `name`, from the fixtures under `root` (the repository), as
/// (name, bytes).
pub fn seeds(root: &std::path::Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let named = |list: &[&str], prefix: &str| -> Vec<(String, Vec<u8>)> {
        list.iter()
            .enumerate()
            .map(|(i, s)| (format!("{prefix}-{i}"), s.as_bytes().to_vec()))
            .collect()
    };
    let bedrock_sse = |dir: &str, prefix: &str, unwrap: bool| -> Vec<(String, Vec<u8>)> {
        fixture_files(root, dir, ".eventstream.bin")
            .into_iter()
            .filter(|(rel, _)| rel.contains(prefix))
            .map(|(rel, bytes)| (rel, eventstream_as_sse(&bytes, unwrap)))
            .collect()
    };
    match name {
        "sse" => {
            let mut s = fixture_files(root, "openai", ".sse");
            s.extend(fixture_files(root, "openai-compatible", ".sse"));
            s.extend(fixture_files(root, "anthropic", ".sse"));
            s
        }
        "eventstream" => {
            let mut s = fixture_files(root, "bedrock", ".eventstream.bin");
            s.extend(fixture_files(root, "eventstream/aws-sdk-go/encoded", ""));
            s.extend(fixture_files(root, "eventstream/botocore", ".bin"));
            s.extend(fixture_files(root, "eventstream/smithy-rs", ""));
            s
        }
        "stream_openai" | "stream_compatible" => {
            let mut s = fixture_files(root, "openai", ".sse");
            s.extend(fixture_files(root, "openai-compatible", ".sse"));
            s
        }
        "stream_anthropic" => fixture_files(root, "anthropic", ".sse"),
        "stream_bedrock_claude" => bedrock_sse("bedrock/invoke-stream", "claude", true),
        "stream_converse" => bedrock_sse("bedrock/converse-stream", "", false),
        "stream_llama" => bedrock_sse("bedrock/invoke-stream", "llama", true),
        "adapters" => {
            let mut s = seeds(root, "stream_openai");
            s.extend(seeds(root, "stream_anthropic"));
            s.extend(seeds(root, "stream_bedrock_claude"));
            s.extend(seeds(root, "stream_converse"));
            s.extend(seeds(root, "stream_llama"));
            s
        }
        "request" => named(&REQUEST_SEEDS, "request"),
        "config" => named(&CONFIG_SEEDS, "config"),
        "response" => {
            let mut s = Vec::new();
            for dir in [
                "openai/chat",
                "openai/errors",
                "anthropic/messages",
                "anthropic/errors",
                "bedrock/converse",
                "bedrock/invoke",
                "bedrock/errors",
            ] {
                s.extend(fixture_files(root, dir, ".json"));
            }
            s
        }
        other => panic!("no fuzz target {other}"),
    }
}

/// Writes every target's seeds to `<dir>/<target>/` (the layout of `cargo fuzz`'s corpus).
pub fn write_seeds(root: &std::path::Path, dir: &std::path::Path) -> std::io::Result<usize> {
    let mut n = 0;
    for target in TARGETS {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for (name, bytes) in seeds(root, target) {
            let file = format!("seed-{:016x}-{}", hash(&bytes), name.replace('/', "_"));
            std::fs::write(target_dir.join(file), bytes)?;
            n += 1;
        }
    }
    Ok(n)
}
