//! OpenAI Chat Completions, also spoken by OpenAI-compatible servers.

pub mod request;
pub mod response;
pub mod stream;

pub use request::Dialect;
