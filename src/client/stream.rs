//! Bytes of a streamed response → canonical chunks: a [`Framer`] cuts the bytes into events (SSE,
//! or AWS event-stream messages), the provider's [`StreamAdapter`] turns events into chunks, and
//! this drives both as a `Stream`.

use crate::adapters::StreamAdapter;
use crate::client::sse::{SseDecoder, SseEvent};
use crate::error::{Error, ErrorCode, Result};
use crate::types::response::ChatCompletionChunk;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;

pub type ChunkStream = BoxStream<'static, Result<ChatCompletionChunk>>;

/// Cuts a byte stream into events. An AWS event-stream message becomes an event whose `event` is
/// its `:event-type` and whose `data` is its payload.
pub trait Framer: Send {
    /// The next bytes, split anywhere. Events they complete are appended to `out`, even when an
    /// error follows them.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<()>;
    /// End of input: the last event, or an error if the bytes stop in the middle of one.
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<()>;
}

impl Framer for SseDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<()> {
        SseDecoder::feed(self, bytes, out).map_err(framing_error)
    }

    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        SseDecoder::finish(self, out).map_err(framing_error)
    }
}

fn framing_error(e: crate::client::sse::SseError) -> Error {
    Error::new(
        ErrorCode::StreamInterrupted,
        format!("The provider's event stream is malformed ({e}); the answer may be incomplete."),
    )
}

struct State<S, F, A> {
    body: S,
    framer: F,
    adapter: A,
    pending: VecDeque<ChatCompletionChunk>,
    provider: String,
    idle_timeout: Duration,
    finished: bool,
}

/// Chunks of an SSE body.
pub fn sse_chunks<S, A>(
    body: S,
    adapter: A,
    provider: String,
    idle_timeout: Duration,
) -> ChunkStream
where
    S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    A: StreamAdapter + 'static,
{
    chunks(body, SseDecoder::new(), adapter, provider, idle_timeout)
}

/// Chunks are handed on as soon as the bytes that complete them arrive; nothing is held back
/// except the usage, which comes last. A body silent for `idle_timeout` fails with `timeout`.
pub fn chunks<S, F, A>(
    body: S,
    framer: F,
    adapter: A,
    provider: String,
    idle_timeout: Duration,
) -> ChunkStream
where
    S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    F: Framer + 'static,
    A: StreamAdapter + 'static,
{
    let state = State {
        body,
        framer,
        adapter,
        pending: VecDeque::new(),
        provider,
        idle_timeout,
        finished: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.finished {
                return None;
            }
            let step = if st.adapter.is_done() {
                end(&mut st)
            } else {
                match tokio::time::timeout(st.idle_timeout, st.body.next()).await {
                    Ok(Some(Ok(bytes))) => on_bytes(&mut st, &bytes),
                    Ok(Some(Err(e))) => Err(e),
                    Ok(None) => end(&mut st),
                    Err(_) => Err(Error::new(
                        ErrorCode::Timeout,
                        format!(
                            "The stream from {} sent nothing for {} ms; the answer is incomplete. Raise `timeoutMs` if the model pauses longer.",
                            st.provider,
                            st.idle_timeout.as_millis()
                        ),
                    )),
                }
            };
            if let Err(mut e) = step {
                st.finished = true;
                st.pending.clear();
                if e.provider.is_none() {
                    e.provider = Some(st.provider.clone());
                }
                return Some((Err(e), st));
            }
        }
    })
    .boxed()
}

fn on_bytes<S, F: Framer, A: StreamAdapter>(st: &mut State<S, F, A>, bytes: &[u8]) -> Result<()> {
    let mut events = Vec::new();
    let fed = st.framer.feed(bytes, &mut events);
    let mut out = Vec::new();
    // Events completed before a framing error still count.
    for event in &events {
        st.adapter.on_event(event, &mut out)?;
    }
    st.pending.extend(out);
    fed
}

fn end<S, F: Framer, A: StreamAdapter>(st: &mut State<S, F, A>) -> Result<()> {
    st.finished = true;
    let mut out = Vec::new();
    if !st.adapter.is_done() {
        let mut events = Vec::new();
        let fed = st.framer.finish(&mut events);
        for event in &events {
            st.adapter.on_event(event, &mut out)?;
        }
        fed?;
    }
    st.adapter.finish(&mut out)?;
    st.pending.extend(out);
    Ok(())
}
