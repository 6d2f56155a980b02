//! llm-proxy: one OpenAI-format interface to every LLM provider.
//!
//! The flow of a call: [`types::request`] parses it, [`resolver`] picks the provider, an input
//! adapter in [`adapters`] builds the provider's request, [`client`] sends it, and an output adapter
//! turns the answer back into the OpenAI format. [`bindings`] exposes [`proxy::Proxy`] to Node.

pub mod adapters;
#[cfg(feature = "node")]
pub mod bindings;
pub mod client;
pub mod config;
pub mod error;
pub mod feed;
pub mod ids;
pub mod log;
pub mod proxy;
pub mod resolver;
pub mod secret;
pub mod types;

pub use error::{Error, ErrorCode, Result};
pub use proxy::Proxy;
