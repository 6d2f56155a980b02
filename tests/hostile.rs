//! Hostile input never crashes: malformed, cut, huge and deeply nested bytes from upstream, and
//! credentials that never show in errors or `Debug` output.
//!
//! The first part runs the fuzz targets (`tests/hostile/harness.rs`, shared with `fuzz/`) on every
//! recorded fixture, on each fixture cut and byte-flipped at many positions, and on thousands of
//! mutations from a fixed-seed generator: what `cargo fuzz` explores at random, `cargo test` replays
//! the same way every time. Every input runs under `catch_unwind`; a failure names the target and
//! the input, which is also written to `target/hostile-failures/` to replay with
//! `cargo fuzz run <target> <file>`.

#[path = "hostile/harness.rs"]
mod harness;

use harness::{Adapter, Parser, Rng};
use llm_proxy::client::eventstream::EventStreamFramer;
use llm_proxy::client::sse::{SseDecoder, SseError, SseEvent};
use llm_proxy::client::stream::Framer;
use llm_proxy::config::Config;
use llm_proxy::types::request::ChatRequest;
use llm_proxy::{Error, ErrorCode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Running targets under catch_unwind
// ---------------------------------------------------------------------------------------------

/// Collects the inputs on which a target panicked.
struct Failures {
    target: &'static str,
    found: Vec<String>,
    runs: usize,
}

impl Failures {
    fn new(target: &'static str) -> Self {
        Failures {
            target,
            found: Vec::new(),
            runs: 0,
        }
    }

    /// Runs the target on `data`; a panic is recorded, with `what` saying which input it was.
    fn run(&mut self, what: &dyn Fn() -> String, data: &[u8]) {
        self.runs += 1;
        let target = self.target;
        quiet_panics();
        QUIET.with(|q| q.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| harness::run(target, data)));
        QUIET.with(|q| q.set(false));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            let dir = root().join("target/hostile-failures").join(target);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{:016x}", harness::hash(data)));
            let _ = std::fs::write(&file, data);
            self.found.push(format!(
                "{target}: {} ({} bytes, saved as {}): {message}",
                what(),
                data.len(),
                file.display()
            ));
        }
    }

    fn give_up(&self) -> bool {
        self.found.len() >= 10
    }

    fn assert_none(self) {
        assert!(
            self.found.is_empty(),
            "{} of {} inputs broke the target:\n{}",
            self.found.len(),
            self.runs,
            self.found.join("\n")
        );
    }
}

thread_local! {
    /// Set while a target runs under `catch_unwind`: its panics are reported by `Failures`.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the panic hook from printing a backtrace for every caught panic (the failures are
/// listed together at the end); other panics print as usual.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
}

/// Tokens that matter to the formats under test, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"data:",
    b"event: ",
    b"event: error\n",
    b"id: \0",
    b": comment\n",
    b"data: [DONE]\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"18446744073709551616",
    b"4294967296",
    b"-9223372036854775809",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"\xe2\x82",
    b"\"index\":",
    b"\"index\":4294967295",
    b"\"type\":",
    b"\"error\":",
    b"\"choices\":[]",
    b"\"tool_calls\":[{\"index\":7}]",
    b"\"finish_reason\":\"stop\"",
    b"\"usage\":{}",
    b"\"content_block_start\"",
    b"\"message_stop\"",
    b"\"contentBlockIndex\":18446744073709551615",
    b"<function=",
    b"</function>",
    b"<|python_tag|>",
];

/// One random edit of `data` (which may be the empty input), biased to the formats' tokens.
fn mutate(data: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = data.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let len = d.len();
        let at = if len == 0 { 0 } else { rng.below(len + 1) };
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                d.drain(at.min(end)..end);
            }
            3 => d.truncate(at),
            4 if len > 0 => {
                let from = rng.below(len);
                let end = (from + 1 + rng.below(256)).min(len);
                let piece = d[from..end].to_vec();
                d.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(512)).min(other.len());
                d.splice(at..at, other[from..end].iter().copied());
            }
            6 => {
                let n = 1 + rng.below(8);
                let noise: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                d.splice(at..at, noise);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                d.splice(at..at, token.iter().copied());
            }
        }
    }
    d
}

/// Every seed as is; each cut and byte-flipped at about `positions` places; then `mutations`
/// random mutations (seeded, so the same every run).
fn exercise(target: &'static str, positions: usize, mutations: usize) -> usize {
    let seeds = harness::seeds(root(), target);
    assert!(!seeds.is_empty(), "{target} has no seeds");
    let mut f = Failures::new(target);
    f.run(&|| "the empty input".into(), b"");
    for (name, bytes) in &seeds {
        f.run(&|| format!("seed {name}"), bytes);
        let step = (bytes.len() / positions).max(1);
        for at in (0..bytes.len()).step_by(step) {
            if f.give_up() {
                break;
            }
            f.run(&|| format!("{name} cut at {at}"), &bytes[..at]);
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            f.run(&|| format!("{name} with byte {at} flipped"), &flipped);
        }
    }
    let mut rng = Rng::new(harness::hash(target.as_bytes()));
    for i in 0..mutations {
        if f.give_up() {
            break;
        }
        let (name, base) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let mut input = mutate(base, other, &mut rng);
        // Now and then a mutation of a mutation, to get further from the recordings.
        while rng.chance(3) {
            input = mutate(&input, other, &mut rng);
        }
        f.run(&|| format!("mutation {i} of {name}"), &input);
    }
    let runs = f.runs;
    f.assert_none();
    runs
}

macro_rules! fuzz_test {
    ($name:ident, $target:literal, $positions:expr, $mutations:expr) => {
        #[test]
        fn $name() {
            let start = Instant::now();
            let runs = exercise($target, $positions, $mutations);
            eprintln!(
                "{}: {runs} inputs in {:.1} s",
                $target,
                start.elapsed().as_secs_f64()
            );
        }
    };
}

fuzz_test!(fuzz_sse_decoder, "sse", 64, 1500);
fuzz_test!(fuzz_eventstream_framer, "eventstream", 64, 1500);
fuzz_test!(fuzz_openai_stream, "stream_openai", 64, 1200);
fuzz_test!(fuzz_compatible_stream, "stream_compatible", 32, 600);
fuzz_test!(fuzz_anthropic_stream, "stream_anthropic", 64, 1500);
fuzz_test!(
    fuzz_bedrock_claude_stream,
    "stream_bedrock_claude",
    96,
    2000
);
fuzz_test!(fuzz_converse_stream, "stream_converse", 96, 2000);
fuzz_test!(fuzz_llama_stream, "stream_llama", 48, 700);
fuzz_test!(fuzz_every_adapter_on_every_stream, "adapters", 8, 300);
fuzz_test!(fuzz_request_parsing_and_bodies, "request", 128, 5000);
fuzz_test!(fuzz_config, "config", 64, 1000);
fuzz_test!(fuzz_response_parsers, "response", 48, 1200);

/// `HOSTILE_SEEDS=<dir> cargo test --test hostile write_fuzz_seeds -- --ignored` writes the
/// seed corpus of every fuzz target (`.ci/fuzz` does this).
#[test]
#[ignore = "writes files; run by .ci/fuzz"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("HOSTILE_SEEDS").expect("set HOSTILE_SEEDS to the corpus directory");
    let n = harness::write_seeds(root(), Path::new(&dir)).unwrap();
    eprintln!("{n} seeds written to {}", PathBuf::from(dir).display());
}

/// The seeds are what the fuzz targets expect: every recorded stream passes its adapter target
/// unchanged (so the targets' invariants hold on real traffic), and every target has seeds.
#[test]
fn every_recorded_stream_keeps_the_contract_through_its_target() {
    for target in harness::TARGETS {
        assert!(!harness::seeds(root(), target).is_empty(), "{target}");
    }
    for (target, adapter) in [
        ("stream_openai", Adapter::OpenAi),
        ("stream_anthropic", Adapter::Anthropic),
        ("stream_bedrock_claude", Adapter::BedrockClaude),
        ("stream_converse", Adapter::Converse),
        ("stream_llama", Adapter::Llama),
    ] {
        for (name, bytes) in harness::seeds(root(), target) {
            let outcome = harness::stream_adapter(adapter, &bytes);
            // The TEST-LITERAL files are recorded error streams.
            if name.contains("error") {
                assert!(outcome.error.is_some(), "{name}");
            } else {
                assert!(outcome.error.is_none(), "{name}: {:?}", outcome.error);
                assert!(outcome.chunks.len() > 1, "{name}");
            }
        }
    }
    for (name, bytes) in harness::seeds(root(), "response") {
        let ok = Parser::ALL.iter().any(|p| p.parse(&bytes).is_ok());
        assert_eq!(ok, !name.contains("errors/"), "{name}");
    }
}

/// `HOSTILE_REPLAY=<adapter>:<file> cargo test --test hostile replay -- --ignored --nocapture`
/// prints what a stream adapter (`OpenAi`, `Anthropic`, `Converse`… as in `harness::Adapter`)
/// makes of a saved input: the events, the chunks and the error.
#[test]
#[ignore = "a debugging aid"]
fn replay() {
    let spec = std::env::var("HOSTILE_REPLAY").expect("HOSTILE_REPLAY=<adapter>:<file>");
    let (name, file) = spec.split_once(':').expect("<adapter>:<file>");
    let adapter = *Adapter::ALL
        .iter()
        .find(|a| format!("{a:?}") == name)
        .unwrap_or_else(|| panic!("no adapter {name}"));
    let data = std::fs::read(file).unwrap();
    let (events, framing) = harness::events_for(adapter, &data);
    for e in &events {
        eprintln!("event {:?} {}", e.event, e.data);
    }
    eprintln!("framing: {framing:?}");
    let mut a = adapter.build();
    let outcome = harness::drive(a.as_mut(), &events, framing);
    for c in &outcome.chunks {
        eprintln!("chunk {}", serde_json::to_string(c).unwrap());
    }
    eprintln!("error: {:?}", outcome.error);
    eprintln!("contract: {:?}", harness::check_contract(&outcome.chunks));
}

// ---------------------------------------------------------------------------------------------
// Cut and corrupted recordings: never a panic, never a cut answer returned as whole
// ---------------------------------------------------------------------------------------------

/// The adapter a recorded Bedrock stream is read with.
fn bedrock_adapter(rel: &str) -> Adapter {
    if rel.contains("converse-stream") {
        Adapter::Converse
    } else if rel.contains("llama") {
        Adapter::Llama
    } else {
        Adapter::BedrockClaude
    }
}

/// Bytes → event-stream framer (in `pieces`) → adapter, as a Bedrock stream is read.
fn bedrock_stream(adapter: Adapter, pieces: &[&[u8]]) -> harness::Outcome {
    let mut framer = EventStreamFramer::new();
    let mut events = Vec::new();
    let mut framing = None;
    for piece in pieces {
        if let Err(e) = framer.feed(piece, &mut events) {
            framing = Some(e);
            break;
        }
    }
    if framing.is_none() {
        framing = framer.finish(&mut events).err();
    }
    let mut a = adapter.build();
    harness::drive(a.as_mut(), &events, framing)
}

/// Every recorded Bedrock stream, cut at every byte and with every byte corrupted, through the
/// real framer and its adapter: always an error (the CRCs catch every flipped byte, and no prefix
/// is a complete answer), never a panic; the whole recording, in any split, is complete.
#[test]
fn bedrock_recordings_cut_or_corrupted_anywhere_are_errors() {
    let start = Instant::now();
    let mut checked = 0;
    for (rel, bytes) in harness::fixture_files(root(), "bedrock", ".eventstream.bin") {
        let adapter = bedrock_adapter(&rel);
        let whole = bedrock_stream(adapter, &[&bytes]);
        assert!(whole.error.is_none(), "{rel}: {:?}", whole.error);
        harness::check_contract(&whole.chunks).unwrap();
        let mut rng = Rng::new(harness::hash(&bytes));
        let pieces = harness::split(&bytes, &mut rng);
        assert_eq!(
            bedrock_stream(adapter, &pieces).chunks.len(),
            whole.chunks.len()
        );
        let step = (bytes.len() / 400).max(1);
        for at in (0..bytes.len()).step_by(step) {
            let cut = catch_unwind(|| bedrock_stream(adapter, &[&bytes[..at]]))
                .unwrap_or_else(|_| panic!("{rel} cut at {at}: panic"));
            let e = cut
                .error
                .unwrap_or_else(|| panic!("{rel} cut at {at} passed as complete"));
            assert_eq!(
                e.code,
                ErrorCode::StreamInterrupted,
                "{rel} cut at {at}: {e:?}"
            );
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << (at % 8);
            let bad = catch_unwind(|| bedrock_stream(adapter, &[&flipped]))
                .unwrap_or_else(|_| panic!("{rel} with byte {at} flipped: panic"));
            assert!(bad.error.is_some(), "{rel} with byte {at} flipped passed");
            checked += 2;
        }
    }
    eprintln!(
        "{checked} cut/corrupted Bedrock streams in {:?}",
        start.elapsed()
    );
}

/// Every recorded SSE stream cut at many places through its adapter: complete only when the
/// provider's end marker is in what arrived (OpenAI's `[DONE]`, Anthropic's `message_stop`);
/// compatible servers may end without `[DONE]`, but not before a finish_reason.
#[test]
fn sse_recordings_cut_anywhere_are_never_complete_before_their_end() {
    let cases = [
        ("openai", Adapter::OpenAi, "[DONE]"),
        (
            "openai-compatible",
            Adapter::Compatible,
            "finish_reason\":\"",
        ),
        ("anthropic", Adapter::Anthropic, "message_stop"),
    ];
    for (dir, adapter, marker) in cases {
        for (rel, bytes) in harness::fixture_files(root(), dir, ".sse") {
            let step = (bytes.len() / 300).max(1);
            for at in (0..bytes.len()).step_by(step) {
                let cut = &bytes[..at];
                let outcome = catch_unwind(|| harness::stream_adapter(adapter, cut))
                    .unwrap_or_else(|_| panic!("{rel} cut at {at}: panic"));
                if outcome.error.is_none() {
                    let text = String::from_utf8_lossy(cut);
                    assert!(
                        text.contains(marker),
                        "{rel} cut at {at} passed as complete"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Huge payloads
// ---------------------------------------------------------------------------------------------

const MB: usize = 1 << 20;

/// A 10 MB line fails as soon as it passes the decoder's limit, whether it comes in one piece or
/// in 64 KiB reads: the decoder never buffers past its limit. (The limit of `SseDecoder::new`,
/// which the streams use, is 16 MiB: a 10 MB line is accepted there, a 17 MiB one fails.)
#[test]
fn an_sse_line_past_the_limit_is_line_too_long_without_buffering_it() {
    let limit = MB;
    let mut body = b"data: ".to_vec();
    body.resize(10 * MB, b'a');
    let mut out = Vec::new();
    assert_eq!(
        SseDecoder::with_max_line_len(limit).feed(&body, &mut out),
        Err(SseError::LineTooLong { limit })
    );
    let mut decoder = SseDecoder::with_max_line_len(limit);
    let mut fed = 0;
    let err = body
        .chunks(64 * 1024)
        .find_map(|piece| {
            fed += piece.len();
            decoder.feed(piece, &mut out).err()
        })
        .expect("the line is refused");
    assert_eq!(err, SseError::LineTooLong { limit });
    assert!(fed <= limit + 64 * 1024, "refused only after {fed} bytes");
    assert!(out.is_empty());

    // The production decoder: 10 MB passes, 17 MiB is a framing error on the stream.
    let mut decoder = SseDecoder::new();
    decoder.feed(&body, &mut out).unwrap();
    decoder.feed(b"\n\n", &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data.len(), 10 * MB - 6);
    body.resize(17 * MB, b'a');
    let mut decoder = SseDecoder::new();
    let e = Framer::feed(&mut decoder, &body, &mut Vec::new()).unwrap_err();
    assert_eq!(e.code, ErrorCode::StreamInterrupted);
    assert!(e.message.contains("exceeded the limit"), "{}", e.message);
}

/// An event that never ends (`data:` lines and no blank line) is refused once its data passes
/// the limit, instead of growing until memory runs out.
#[test]
fn an_sse_event_that_never_ends_is_refused_at_the_limit() {
    let limit = MB;
    let mut decoder = SseDecoder::with_max_line_len(limit);
    let piece =
        b"data: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n".repeat(1000);
    let mut fed = 0;
    let err = loop {
        match decoder.feed(&piece, &mut Vec::new()) {
            Ok(()) => fed += piece.len(),
            Err(e) => break e,
        }
        assert!(fed < 10 * limit, "still buffering after {fed} bytes");
    };
    assert_eq!(err, SseError::EventTooLong { limit });
    let e = Framer::feed(
        &mut SseDecoder::with_max_line_len(limit),
        &piece.repeat(20),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::StreamInterrupted);
}

/// CRC-32/IEEE, for hand-made event-stream preludes.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A prelude with a correct checksum claiming `total` bytes.
fn prelude(total: u32, headers: u32) -> Vec<u8> {
    let mut p = total.to_be_bytes().to_vec();
    p.extend_from_slice(&headers.to_be_bytes());
    let crc = crc32(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    p
}

/// A frame claiming 2 GB (or 4 GB) is refused as soon as its 12-byte prelude is in, even fed a
/// byte at a time: nothing waits for, or reserves, the bytes it claims.
#[test]
fn an_event_stream_frame_claiming_gigabytes_is_refused_at_its_prelude() {
    for total in [0x8000_0000u32, u32::MAX, 16 * MB as u32 + 1] {
        let p = prelude(total, 0);
        let mut framer = EventStreamFramer::new();
        let mut out = Vec::new();
        for (i, b) in p.iter().enumerate() {
            let r = framer.feed(std::slice::from_ref(b), &mut out);
            if i < 11 {
                r.unwrap();
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.code, ErrorCode::StreamInterrupted);
                assert!(e.message.contains("exceeds the limit"), "{}", e.message);
            }
        }
    }
    // Headers longer than the frame, a frame below the minimum, a bad prelude checksum.
    for (p, says) in [
        (prelude(64, 60), "does not fit"),
        (prelude(8, 0), "below the 16-byte minimum"),
        ([&prelude(64, 0)[..8], &[0, 0, 0, 0]].concat(), "checksum"),
    ] {
        let e = EventStreamFramer::new()
            .feed(&p, &mut Vec::new())
            .unwrap_err();
        assert!(e.message.contains(says), "{}", e.message);
    }
}

/// A 12 MB text delta (under the 16 MiB limits) goes through each stream adapter whole.
#[test]
fn a_large_delta_passes_through_the_stream_adapters() {
    let text = "x".repeat(12 * MB);
    let openai = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let out = harness::stream_adapter(Adapter::OpenAi, openai.as_bytes());
    assert!(out.error.is_none(), "{:?}", out.error);
    let got: usize = out
        .chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_ref())
        .map(String::len)
        .sum();
    assert_eq!(got, text.len());
}

// ---------------------------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------------------------

fn deep(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Runs `f` on a thread with the stack of a tokio worker (2 MiB), where the addon parses JSON.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * MB)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no stack overflow, no panic")
}

/// 100,000 levels of `[` in a request, in the options, in a response body and in a stream event:
/// an error each time (serde_json stops at 128 levels), never a stack overflow.
#[test]
fn json_nested_100k_deep_is_an_error_everywhere() {
    on_small_stack(|| {
        let d = deep(100_000);
        let e = ChatRequest::from_json(&d).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        let req = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"metadata":{d}}}"#
        );
        let e = ChatRequest::from_json(&req).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let req = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":{d}}}]}}"#);
        assert!(ChatRequest::from_json(&req).is_err());

        let e = Config::from_json(&format!(r#"{{"openai":{d}}}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Config);

        let body = format!(r#"{{"choices":[{{"message":{{"content":"a","x":{d}}}}}]}}"#);
        for p in Parser::ALL {
            assert!(p.parse(body.as_bytes()).is_err(), "{p:?}");
            assert!(p.parse(d.as_bytes()).is_err(), "{p:?}");
        }

        for a in Adapter::ALL {
            let events = [
                format!("data: {d}\n\n"),
                format!("event: chunk\ndata: {d}\n\n"),
                format!("event: messageStart\ndata: {d}\n\n"),
                format!("event: error\ndata: {d}\n\n"),
            ];
            for e in events {
                let out = harness::stream_adapter(a, e.as_bytes());
                assert!(out.error.is_some(), "{a:?}: {e:.40}");
            }
        }
        // Just under the limit is fine and goes everywhere.
        let ok = deep(120);
        let req = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"metadata":{ok}}}"#
        );
        harness::request(req.as_bytes());
    });
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8, split anywhere
// ---------------------------------------------------------------------------------------------

/// Text whose characters are split between reads at every byte arrives whole; invalid UTF-8 is a
/// `stream_interrupted` error wherever the split falls.
#[test]
fn utf8_split_across_reads_is_joined_and_invalid_utf8_is_an_error() {
    let text = "café 😀 ✓ Ω";
    let body = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let bytes = body.as_bytes();
    for at in 0..bytes.len() {
        let (events, err) = decode(&[&bytes[..at], &bytes[at..]]);
        assert!(err.is_none(), "split at {at}");
        assert!(events[0].data.contains(text), "split at {at}");
    }
    for bad in [
        &b"\xc3\x28"[..],    // a lead byte without its continuation
        b"\xed\xa0\x80",     // a UTF-16 surrogate
        b"\xc0\xaf",         // an overlong '/'
        b"\xf4\x90\x80\x80", // past U+10FFFF
        b"\xf0\x9f\x98",     // an emoji cut short
        b"\xff",             // never valid
    ] {
        let body = [
            &b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a"[..],
            bad,
            b"\"}}]}\n\n",
        ]
        .concat();
        for at in 0..body.len() {
            let (_, err) = decode(&[&body[..at], &body[at..]]);
            assert_eq!(err, Some(SseError::InvalidUtf8), "{bad:?} split at {at}");
        }
        let mut decoder = SseDecoder::new();
        let e = Framer::feed(&mut decoder, &body, &mut Vec::new()).unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
    }
}

fn decode(pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>) {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        if let Err(e) = decoder.feed(p, &mut out) {
            return (out, Some(e));
        }
    }
    let err = decoder.finish(&mut out).err();
    (out, err)
}

/// One event-stream `event` message.
fn es_event(event_type: &'static str, payload: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(payload.to_vec())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}

/// The same for event-stream payloads: split anywhere they arrive whole; invalid UTF-8 in a
/// payload is a `stream_interrupted` error.
#[test]
fn event_stream_payloads_split_anywhere_and_invalid_utf8() {
    let payload = r#"{"contentBlockIndex":0,"delta":{"text":"café 😀"}}"#;
    let frame = es_event("contentBlockDelta", payload.as_bytes());
    for at in 0..frame.len() {
        let mut framer = EventStreamFramer::new();
        let mut out = Vec::new();
        framer.feed(&frame[..at], &mut out).unwrap();
        framer.feed(&frame[at..], &mut out).unwrap();
        framer.finish(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, payload);
    }
    let frame = es_event("contentBlockDelta", b"{\"delta\":{\"text\":\"\xc3\x28\"}}");
    let e = EventStreamFramer::new()
        .feed(&frame, &mut Vec::new())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::StreamInterrupted);
    assert!(e.message.contains("UTF-8"), "{}", e.message);
}

// ---------------------------------------------------------------------------------------------
// Secrets: never in errors or Debug output
// ---------------------------------------------------------------------------------------------

use futures_util::StreamExt;
use llm_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// Distinct enough that no 12 characters of one are in another.
const OPENAI_KEY: &str = "sk-proj-OpenAiSecretKey4f9a1c7e2b";
const ANTHROPIC_KEY: &str = "AnthropicSecretKey-77d3e0a8c5f1";
const COMPAT_KEY: &str = "CompatibleServerKey_9b2e4d6f8a0c";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYAwsSecret";
const AWS_TOKEN: &str = "IQoJb3JpZ2luX2VjEAwsSessionToken/3f7b+c1d9e==";
const URL_PASSWORD: &str = "UrlPassword-e5c3a1f7d9b2";

const SECRETS: [&str; 5] = [OPENAI_KEY, ANTHROPIC_KEY, COMPAT_KEY, AWS_SECRET, AWS_TOKEN];

/// Fails if any configured credential (or a recognisable part of one) is in `text`.
fn assert_no_secret(what: &str, text: &str) {
    assert_none_of(what, text, &[]);
}

/// [`assert_no_secret`], and none of `more` (what the upstream received: keys, signatures).
fn assert_none_of(what: &str, text: &str, more: &[String]) {
    let configured = SECRETS.iter().chain([&URL_PASSWORD]).map(|s| s.to_string());
    for s in configured.chain(more.iter().cloned()) {
        // A secret cut short still gives it away: no 12 characters of one may appear.
        for part in s.as_bytes().windows(12) {
            let part = std::str::from_utf8(part).unwrap();
            assert!(
                !text.contains(part),
                "{what} shows {part:?} of a secret:\n{text}"
            );
        }
    }
}

/// Every form of an error a caller or a log may see.
fn assert_error_clean(what: &str, e: &Error) {
    assert_error_shows_none_of(what, e, &[]);
}

fn assert_error_shows_none_of(what: &str, e: &Error, more: &[String]) {
    assert_none_of(&format!("{what} (message)"), &e.message, more);
    assert_none_of(&format!("{what} (Display)"), &e.to_string(), more);
    assert_none_of(&format!("{what} (Debug)"), &format!("{e:?}"), more);
    assert_none_of(&format!("{what} (JSON for JavaScript)"), &e.to_json(), more);
}

fn options(openai_base: &str, anthropic_base: &str, bedrock_base: &str) -> String {
    serde_json::json!({
        "openai": { "apiKey": OPENAI_KEY, "baseUrl": openai_base },
        "anthropic": { "apiKey": ANTHROPIC_KEY, "baseUrl": anthropic_base },
        "compatible": { "local": { "baseUrl": openai_base, "apiKey": COMPAT_KEY } },
        "bedrock": {
            "region": "us-east-1",
            "accessKeyId": "AKIDEXAMPLE",
            "secretAccessKey": AWS_SECRET,
            "sessionToken": AWS_TOKEN,
            "endpoint": bedrock_base,
        },
        "retry": { "maxRetries": 0 },
    })
    .to_string()
}

#[test]
fn debug_output_of_the_configuration_and_the_proxy_shows_no_credential() {
    let config = Config::from_json(&options(
        "http://127.0.0.1:9/v1",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    ))
    .unwrap();
    assert_no_secret("Config {:?}", &format!("{config:?}"));
    assert_no_secret("Config {:#?}", &format!("{config:#?}"));
    let proxy = Proxy::new(config);
    assert_no_secret("Proxy {:?}", &format!("{proxy:?}"));
    for model in [
        "gpt-4o",
        "claude-sonnet-4-5",
        "local/m",
        "bedrock/meta.llama3-8b",
    ] {
        let route = proxy.resolve(model).unwrap();
        assert_no_secret("Route", &format!("{route:?}"));
    }
    // The pieces an upstream request is made of.
    let secret = llm_proxy::secret::Secret::new(AWS_SECRET).unwrap();
    let credentials = llm_proxy::client::sigv4::AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: secret.clone(),
        session_token: llm_proxy::secret::Secret::new(AWS_TOKEN),
    };
    assert_no_secret(
        "AwsCredentials",
        &format!("{credentials:?} {credentials:#?}"),
    );
    assert_no_secret(
        "Vec<Secret>",
        &format!("{:?}", vec![secret.clone(), secret]),
    );
}

/// A password in a base URL (`http://user:password@host`) is a credential too.
#[test]
fn debug_output_shows_no_password_of_a_base_url() {
    let base = format!("http://user:{URL_PASSWORD}@127.0.0.1:9/v1");
    let config = Config::from_json(&options(&base, &base, &base)).unwrap();
    assert_no_secret("Config {:?}", &format!("{config:?}"));
}

/// The options as given hold the raw keys; their Debug must hide them like `Config`'s does.
#[test]
fn debug_output_of_the_options_shows_no_credential() {
    let opts: llm_proxy::config::ProxyOptions =
        serde_json::from_str(&options("http://a", "http://a", "http://a")).unwrap();
    assert_no_secret("ProxyOptions {:?}", &format!("{opts:?}"));
}

/// Options with a credential where it does not belong: the error must not repeat it.
#[test]
fn config_errors_do_not_repeat_a_misplaced_credential() {
    for text in [
        format!(r#"{{"openai":"{OPENAI_KEY}"}}"#),
        format!(r#"{{"anthropic":"{ANTHROPIC_KEY}"}}"#),
        format!(r#"{{"bedrock":"{AWS_SECRET}"}}"#),
        format!(r#"{{"compatible":{{"x":"{COMPAT_KEY}"}}}}"#),
        format!(r#"{{"timeoutMs":"{AWS_TOKEN}"}}"#),
        format!(r#"{{"routes":{{"a":["{ANTHROPIC_KEY}"]}}}}"#),
        format!(r#"{{"openai":{{"apiKey":"{OPENAI_KEY}","headers":["{COMPAT_KEY}"]}}}}"#),
    ] {
        let e = Config::from_json(&text).unwrap_err();
        assert_error_clean(&text, &e);
    }
}

/// A key pasted into a URL option is repeated in the "is not a valid URL" error.
#[test]
fn a_credential_given_as_a_url_is_not_repeated() {
    for text in [
        format!(r#"{{"openai":{{"apiKey":"{OPENAI_KEY}","baseUrl":"{OPENAI_KEY}"}}}}"#),
        format!(r#"{{"bedrock":{{"endpoint":"{AWS_SECRET}"}}}}"#),
    ] {
        let e = Config::from_json(&text).unwrap_err();
        assert_error_clean(&text, &e);
    }
}

#[test]
fn config_errors_show_no_credential() {
    let base = format!("htp://user:{URL_PASSWORD}@127.0.0.1:9/v1");
    for text in [
        options(&base, "http://a", "http://a"),
        options("http://a", &base, "http://a"),
        options("http://a", "http://a", &base),
        options(
            &format!("http://user:{URL_PASSWORD}@[::1"),
            "http://a",
            "http://a",
        ),
        format!(r#"{{"openai":{{"apiKey":"{OPENAI_KEY}","bogus":1}}}}"#),
        format!(
            r#"{{"bedrock":{{"secretAccessKey":"{AWS_SECRET}","sessionToken":"{AWS_TOKEN}","x":1}}}}"#
        ),
        format!(r#"{{"openai":{{"apiKey":["{OPENAI_KEY}"]}}}}"#),
    ] {
        let e = Config::from_json(&text).unwrap_err();
        assert_eq!(e.code, ErrorCode::Config, "{}", e.message);
        assert_error_clean(&text, &e);
    }
}

/// The credentials a request carried: the bearer token, `x-api-key`, the AWS session token and
/// the SigV4 signature (when `signature`).
fn credentials_in(head: &str, signature: bool) -> Vec<String> {
    let mut found = Vec::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => match value.split_once("Signature=") {
                Some((_, sig)) if signature => found.push(sig.to_string()),
                Some(_) => {}
                None => found.push(value.trim_start_matches("Bearer ").to_string()),
            },
            "x-api-key" | "x-amz-security-token" => found.push(value.to_string()),
            _ => {}
        }
    }
    found
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A loopback server that answers every request with `reply(echo)`, a whole raw HTTP response,
/// where `echo` is the credentials the request carried, as a provider echoes them. Those
/// credentials are also collected in the returned list.
async fn upstream(reply: fn(&str) -> Vec<u8>, signature: bool) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                // The head, then Content-Length bytes of body.
                let head = loop {
                    let Ok(n) = sock.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buf.len() >= end + 4 + length {
                        break head;
                    }
                };
                let creds = credentials_in(&head, signature);
                seen.lock().unwrap().extend(creds.iter().cloned());
                let _ = sock.write_all(&reply(&creds.join(" "))).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, received)
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// An exception message of an event stream.
fn es_exception(kind: &'static str, payload: &str) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(payload.as_bytes().to_vec())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(kind.into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}

/// Runs a call (whole or streamed) and returns its error.
async fn call_error(proxy: &Proxy, model: &str, stream: bool) -> Error {
    let req = ChatRequest::from_json(&format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
    ))
    .unwrap();
    let fut = async {
        if !stream {
            return proxy.generate(&req).await.err();
        }
        match proxy.stream(&req).await {
            Err(e) => Some(e),
            Ok(mut s) => {
                while let Some(item) = s.next().await {
                    if let Err(e) = item {
                        return Some(e);
                    }
                }
                None
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), fut)
        .await
        .expect("the call ends")
        .unwrap_or_else(|| panic!("{model} (stream: {stream}) succeeded"))
}

/// Providers echo keys in their errors, whole, escaped, or cut; none of it reaches the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_upstream_that_echo_credentials_show_none() {
    echoed_credentials_show_nowhere(false, echo_cases()).await;
}

/// The same with the SigV4 signature of each Bedrock request echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_upstream_that_echo_the_signature_show_none() {
    echoed_credentials_show_nowhere(true, echo_cases()).await;
}

/// A name, and the raw HTTP response that echoes `echo` (the credentials a request carried).
type EchoCase = (&'static str, fn(&str) -> Vec<u8>);

/// Error responses that echo `echo` (the credentials a request carried) in various ways.
fn echo_cases() -> Vec<EchoCase> {
    vec![
        ("401 JSON", |echo| {
            http(
                "401 Unauthorized",
                "application/json",
                format!(r#"{{"error":{{"message":"Incorrect API key provided: {echo}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#).as_bytes(),
            )
        }),
        ("403 JSON with escaped slashes", |echo| {
            let escaped = echo.replace('/', "\\/");
            http(
                "403 Forbidden",
                "application/json",
                format!(r#"{{"message":"The security token {escaped} is invalid"}}"#).as_bytes(),
            )
        }),
        ("500 text", |echo| {
            http("500 Internal Server Error", "text/plain", echo.as_bytes())
        }),
        // A text body is quoted up to 300 characters in the message: a key that straddles the
        // cut must not show in part.
        (
            "400 text with the key across the 300 characters quoted",
            |echo| {
                // 16 characters of the key fall within the 300 quoted.
                let filler = "x".repeat(284);
                let last = echo.rsplit(' ').next().unwrap();
                http(
                    "400 Bad Request",
                    "text/plain",
                    format!("{filler}{last}").as_bytes(),
                )
            },
        ),
        ("200 SSE error event", |echo| {
            http(
                "200 OK",
                "text/event-stream",
                format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}}}}]}}\n\nevent: error\ndata: {{\"error\":{{\"message\":\"bad key {echo}\",\"type\":\"authentication_error\"}}}}\n\n").as_bytes(),
            )
        }),
        ("200 SSE garbage with the key", |echo| {
            http(
                "200 OK",
                "text/event-stream",
                format!("data: {{{echo}\n\n").as_bytes(),
            )
        }),
        ("200 JSON that is not an answer", |echo| {
            http(
                "200 OK",
                "application/json",
                format!(r#"{{"detail":"{echo}"}}"#).as_bytes(),
            )
        }),
        ("200 event-stream exception", |echo| {
            http(
                "200 OK",
                "application/vnd.amazon.eventstream",
                &es_exception(
                    "throttlingException",
                    &format!(
                        r#"{{"message":"token {} throttled"}}"#,
                        echo.replace('/', "\\/")
                    ),
                ),
            )
        }),
    ]
}

async fn echoed_credentials_show_nowhere(signature: bool, cases: Vec<EchoCase>) {
    let mut failures = Vec::new();
    for (what, reply) in cases {
        let (url, received) = upstream(reply, signature).await;
        let proxy =
            Proxy::new(Config::from_json(&options(&format!("{url}/v1"), &url, &url)).unwrap());
        for model in [
            "gpt-4o",
            "local/m",
            "claude-sonnet-4-5",
            "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock-converse/meta.llama3-8b",
        ] {
            for stream in [false, true] {
                let e = call_error(&proxy, model, stream).await;
                let sent = received.lock().unwrap().clone();
                let what = format!("{what} via {model} (stream: {stream})");
                if let Err(p) = catch_unwind(|| assert_error_shows_none_of(&what, &e, &sent)) {
                    failures.push(p.downcast_ref::<String>().cloned().unwrap_or_default());
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Connection failures to a base URL with a password, and a closed port: nothing of the
/// credentials or the password in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_show_no_credential() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let base = format!("http://user:{URL_PASSWORD}@127.0.0.1:{port}");
    let proxy =
        Proxy::new(Config::from_json(&options(&format!("{base}/v1"), &base, &base)).unwrap());
    for model in [
        "gpt-4o",
        "local/m",
        "claude-sonnet-4-5",
        "bedrock/meta.llama3-8b",
    ] {
        for stream in [false, true] {
            let e = call_error(&proxy, model, stream).await;
            assert_eq!(e.code, ErrorCode::Connection, "{}", e.message);
            assert_error_clean(&format!("connection refused via {model}"), &e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Answers too large to read
// ---------------------------------------------------------------------------------------------

/// A loopback server that answers every request with a 200 JSON head and then body bytes until
/// the client closes the connection: declared as `Content-Length` past the cap (`declared`), or
/// chunked without end. For each connection it reports the body bytes it wrote before a write
/// failed (the client closed), or `None` if it wrote `give_up` bytes without one; and counts the
/// connections.
async fn huge_upstream(
    declared: bool,
    give_up: u64,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<Option<u64>>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (report, reports) = tokio::sync::mpsc::unbounded_channel();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let report = report.clone();
            tokio::spawn(async move {
                // The request: its head, then Content-Length bytes of body.
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                loop {
                    match sock.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buf.len() >= end + 4 + length {
                        break;
                    }
                }
                let cap = llm_proxy::client::http::MAX_RESPONSE_BODY as u64;
                let head = if declared {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", cap + 1)
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    let _ = report.send(Some(0));
                    return;
                }
                // JSON whitespace, as a valid answer could begin.
                let piece = vec![b' '; 64 * 1024];
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(&piece);
                framed.extend_from_slice(b"\r\n");
                let mut written = 0u64;
                while written < give_up {
                    let bytes = if declared { &piece } else { &framed };
                    if sock.write_all(bytes).await.is_err() {
                        let _ = report.send(Some(written));
                        return;
                    }
                    written += piece.len() as u64;
                }
                let _ = report.send(None);
            });
        }
    });
    (url, reports, connections)
}

/// A non-streamed answer larger than the cap (64 MiB) is refused with `server_error`, not retried,
/// and its connection is closed: declared so by its `Content-Length` (refused before reading), or
/// found so while reading a chunked body (refused at the cap, having held no more than it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_streamed_answer_larger_than_the_cap_is_refused_and_its_connection_closed() {
    let cap = llm_proxy::client::http::MAX_RESPONSE_BODY as u64;
    assert_eq!(cap, 64 * 1024 * 1024, "the cap README.md documents");
    for declared in [true, false] {
        let (url, mut reports, connections) = huge_upstream(declared, 4 * cap).await;
        // Retries on (the default): the refusal must not be retried.
        let options = serde_json::json!({
            "openai": { "apiKey": OPENAI_KEY, "baseUrl": format!("{url}/v1") },
            "retry": { "initialDelayMs": 1, "maxDelayMs": 1 },
        });
        let proxy = Proxy::new(Config::from_json(&options.to_string()).unwrap());
        let started = Instant::now();
        let e = call_error(&proxy, "gpt-4o", false).await;
        let what = if declared {
            "Content-Length"
        } else {
            "chunked"
        };
        assert_eq!(e.code, ErrorCode::ServerError, "{what}: {}", e.message);
        assert!(!e.retryable, "{what}");
        assert_eq!(e.status, Some(200), "{what}");
        assert_eq!(e.provider.as_deref(), Some("openai"), "{what}");
        assert!(
            e.message.contains("larger than 64 MiB") && e.message.contains("base URL"),
            "{what}: {}",
            e.message
        );
        assert!(
            !e.message.contains("attempts"),
            "{what}: retried: {}",
            e.message
        );
        assert_error_clean(what, &e);

        // The server's writes fail: the connection was closed, not drained or kept.
        let written = tokio::time::timeout(std::time::Duration::from_secs(30), reports.recv())
            .await
            .expect("the server's writes end")
            .expect("a report");
        let written = written
            .unwrap_or_else(|| panic!("{what}: the client read {} bytes without closing", 4 * cap));
        // What the socket buffers absorbed after the client stopped reading, and no more.
        let slack = 16 * 1024 * 1024;
        if declared {
            assert!(written < slack, "{what}: {written} bytes written");
        } else {
            assert!(
                (cap - slack..cap + slack).contains(&written),
                "{what}: {written} bytes written"
            );
        }
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{what}: one connection, no retry"
        );
        eprintln!("{what}: refused in {:?}", started.elapsed());
    }
}
