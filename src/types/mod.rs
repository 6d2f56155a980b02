//! The canonical request and response: OpenAI's Chat Completions shapes.

pub mod request;
pub mod response;
