//! Bedrock InvokeModel Claude stream adapter on event-stream messages spelled as SSE.
//! The body is shared with `tests/hostile.rs`; see `tests/hostile/harness.rs` for the invariants.

#![no_main]

#[path = "../../tests/hostile/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run("stream_bedrock_claude", data));
