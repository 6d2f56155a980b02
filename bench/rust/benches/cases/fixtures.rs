//! Recorded fixtures (`tests/fixtures/`, see its `index.json`), the framing that turns them into
//! events, and the drive loop that the stream benchmarks share.

use llm_proxy::adapters::StreamAdapter;
use llm_proxy::client::eventstream::EventStreamFramer;
use llm_proxy::client::sse::{SseDecoder, SseEvent};
use llm_proxy::client::stream::Framer;
use llm_proxy::types::response::ChatCompletionChunk;
use std::path::{Path, PathBuf};

/// The main crate's `tests/fixtures`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// How a body is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream` (OpenAI, compatible servers, Anthropic).
    Sse,
    /// `application/vnd.amazon.eventstream` (Bedrock).
    EventStream,
}

impl Framing {
    pub fn framer(self) -> Box<dyn Framer> {
        match self {
            Framing::Sse => Box::new(SseDecoder::new()),
            Framing::EventStream => Box::new(EventStreamFramer::new()),
        }
    }
}

/// Every event of a whole body; panics on a framing error (the fixtures used here are clean).
pub fn events(framing: Framing, body: &[u8]) -> Vec<SseEvent> {
    let mut framer = framing.framer();
    let mut out = Vec::new();
    framer
        .feed(body, &mut out)
        .expect("framing a clean fixture");
    framer.finish(&mut out).expect("finishing a clean fixture");
    out
}

/// Drives `adapter` as `client::stream` does (events in order until it is done, then `finish`)
/// and serialises every chunk as `feed.rs` does: `serde_json::to_string` per chunk (the
/// producer), the texts joined into one JSON array (the consumer's batch). Returns the batch
/// text and the number of chunks.
pub fn drive(adapter: &mut dyn StreamAdapter, events: &[SseEvent]) -> (String, usize) {
    let mut chunks: Vec<ChatCompletionChunk> = Vec::new();
    for event in events {
        if adapter.is_done() {
            break;
        }
        adapter
            .on_event(event, &mut chunks)
            .expect("a clean fixture adapts without error");
    }
    adapter
        .finish(&mut chunks)
        .expect("a clean fixture finishes without error");
    (batch(&chunks), chunks.len())
}

/// `feed.rs`: each chunk to JSON text, the texts in one `[…]` batch.
pub fn batch(chunks: &[ChatCompletionChunk]) -> String {
    let mut batch = String::from("[");
    for (i, chunk) in chunks.iter().enumerate() {
        let text = serde_json::to_string(chunk).expect("a chunk serialises");
        if i > 0 {
            batch.push(',');
        }
        batch.push_str(&text);
    }
    batch.push(']');
    batch
}
