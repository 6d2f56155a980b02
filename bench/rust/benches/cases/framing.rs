//! Framing: bytes → events, throughput in body bytes.
//!
//! - `framing/sse/<split>`: `SseDecoder` over a synthetic OpenAI body of 1,000 chunks (modelled on
//!   the recorded `openai/sse/text-include-usage.sse`: same fields, `obfuscation` included), fed
//!   whole, in 1,460-byte reads (a TCP segment's payload) and in 64-byte reads.
//! - `framing/eventstream/<fixture>`: `EventStreamFramer` over recorded Bedrock streams, whole and
//!   in 1,460-byte reads.

use super::fixtures::{self, Framing};
use super::Case;
use criterion::Throughput;
use llm_proxy::client::sse::SseEvent;
use std::hint::black_box;
use std::rc::Rc;

/// An OpenAI `chat.completions` SSE body of `chunks` chunks: the role chunk, content chunks, the
/// finish chunk, the usage chunk, then `[DONE]`.
pub fn openai_sse_body(chunks: usize) -> Vec<u8> {
    assert!(chunks >= 3);
    #[rustfmt::skip]
    const WORDS: [&str; 12] = [
        " the", " capital", " of", " France", " is", " Paris", ",", " which", " has", " about",
        " 2.1 million", " inhabitants.\n\n",
    ];
    let head = r#"{"id":"chatcmpl-ClLAi76zCMxpauGRKQ6MTp0xe6EyS","object":"chat.completion.chunk","created":1765398836,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_11f3029f6b","choices":"#;
    let mut out = String::new();
    let mut event = |choices: &str, usage: &str, obfuscation: &str| {
        out.push_str("data: ");
        out.push_str(head);
        out.push_str(choices);
        out.push_str(&format!(
            r#","usage":{usage},"obfuscation":"{obfuscation}"}}"#
        ));
        out.push_str("\n\n");
    };
    event(
        r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        "null",
        "dILF0D7vN",
    );
    for i in 0..chunks - 3 {
        let content = serde_json::to_string(WORDS[i % WORDS.len()]).expect("a string");
        event(
            &format!(
                r#"[{{"index":0,"delta":{{"content":{content}}},"logprobs":null,"finish_reason":null}}]"#
            ),
            "null",
            &"Pg7x99fiOX"[..4 + i % 7],
        );
    }
    event(
        r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#,
        "null",
        "Xc3",
    );
    event(
        "[]",
        r#"{"prompt_tokens":21,"completion_tokens":997,"total_tokens":1018,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
        "k2Pq",
    );
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// Every event of `body`, fed in reads of `read` bytes (the whole body when `None`).
fn frame(framing: Framing, body: &[u8], read: Option<usize>) -> Vec<SseEvent> {
    let mut framer = framing.framer();
    let mut out = Vec::new();
    match read {
        None => framer.feed(body, &mut out).expect("frames"),
        Some(n) => {
            for piece in body.chunks(n) {
                framer.feed(piece, &mut out).expect("frames");
            }
        }
    }
    framer.finish(&mut out).expect("finishes");
    out
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let sse = Rc::new(openai_sse_body(1000));
    let events = fixtures::events(Framing::Sse, &sse);
    note!(
        "framing/sse: {} bytes -> {} events (1,000 chunks and [DONE])",
        sse.len(),
        events.len()
    );
    assert_eq!(events.len(), 1001);
    for (label, read) in [
        ("whole", None),
        ("reads_1460", Some(1460)),
        ("reads_64", Some(64)),
    ] {
        let sse = sse.clone();
        let bytes = Throughput::Bytes(sse.len() as u64);
        cases.push(Case::new(
            "framing",
            format!("sse/{label}"),
            bytes,
            move || {
                black_box(frame(Framing::Sse, black_box(&sse), read));
            },
        ));
    }

    for (label, rel) in [
        (
            "llama3-8b-text",
            "bedrock/invoke-stream/llama3-8b-text.eventstream.bin",
        ),
        (
            "converse-claude-tool-use",
            "bedrock/converse-stream/claude-tool-use.eventstream.bin",
        ),
    ] {
        let body = Rc::new(fixtures::read(rel));
        let events = fixtures::events(Framing::EventStream, &body);
        note!(
            "framing/eventstream/{label}: {} bytes -> {} events",
            body.len(),
            events.len()
        );
        for (split, read) in [("whole", None), ("reads_1460", Some(1460))] {
            let body = body.clone();
            let bytes = Throughput::Bytes(body.len() as u64);
            let name = format!("eventstream/{label}/{split}");
            cases.push(Case::new("framing", name, bytes, move || {
                black_box(frame(Framing::EventStream, black_box(&body), read));
            }));
        }
    }
    cases
}
