//! Pure translation between the canonical (OpenAI) format and each provider's wire format.
//! No I/O here: input adapters build request bodies, output adapters read responses and framed
//! stream events.

pub mod openai;
