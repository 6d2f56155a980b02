//! Request JSON: ChatRequest::from_json, then every provider's body builder and the mock provider.
//! The body is shared with `tests/hostile.rs`; see `tests/hostile/harness.rs` for the invariants.

#![no_main]

#[path = "../../tests/hostile/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run("request", data));
