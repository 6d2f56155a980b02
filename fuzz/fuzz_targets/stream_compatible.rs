//! OpenAI stream normaliser (compatible dialect) on SSE bytes: no panic, the stream contract on success.
//! The body is shared with `tests/hostile.rs`; see `tests/hostile/harness.rs` for the invariants.

#![no_main]

#[path = "../../tests/hostile/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run("stream_compatible", data));
