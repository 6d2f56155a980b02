//! Anthropic Messages API: request body, response, and stream events.

pub mod request;
pub mod response;
pub mod stream;

/// The API version sent as `anthropic-version`.
pub const API_VERSION: &str = "2023-06-01";
