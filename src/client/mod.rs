//! Everything that moves bytes: HTTP, SSE framing, streams, and the in-process mock provider.

pub mod http;
pub mod mock;
pub mod sse;
pub mod stream;
