//! Ids for what a provider left without one (OpenAI-style prefixes, random enough to be unique).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_suffix() -> String {
    // RandomState is seeded from the OS once per process and varied per instance; mixing in a
    // counter and the time keeps ids distinct across calls.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut h2 = RandomState::new().build_hasher();
    h2.write_u64(h.finish());
    format!("{:016x}{:08x}", h.finish(), h2.finish() as u32)
}

pub fn completion_id() -> String {
    format!("chatcmpl-{}", random_suffix())
}

pub fn tool_call_id() -> String {
    format!("call_{}", random_suffix())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::completion_id();
        let b = super::completion_id();
        assert!(a.starts_with("chatcmpl-") && a.len() == 33);
        assert_ne!(a, b);
        assert!(super::tool_call_id().starts_with("call_"));
    }
}
