//! Pure translation between the canonical (OpenAI) format and each provider's wire format.
//! No I/O here: input adapters build request bodies, output adapters read responses and framed
//! stream events.

pub mod anthropic;
pub mod bedrock;
#[cfg(test)]
pub(crate) mod contract;
pub mod error_body;
pub mod openai;

use crate::client::sse::SseEvent;
use crate::error::Result;
use crate::types::response::ChatCompletionChunk;

/// An output adapter for a stream: framed events in, canonical chunks out.
pub trait StreamAdapter: Send {
    /// One event, in arrival order. Chunks it completes are appended to `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()>;
    /// The provider said the stream is complete; later bytes are not read.
    fn is_done(&self) -> bool;
    /// End of input: the closing chunks (finish, usage), or an error if the stream was cut short.
    fn finish(&mut self, out: &mut Vec<ChatCompletionChunk>) -> Result<()>;
}
