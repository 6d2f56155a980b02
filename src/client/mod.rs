//! Everything that moves bytes: HTTP, SSE framing, streams, and the in-process mock provider.

pub mod eventstream;
pub mod http;
pub mod mock;
pub mod retry;
pub mod sigv4;
pub mod sse;
pub mod stream;
