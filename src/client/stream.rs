//! Bytes of an SSE response → canonical chunks: the decoder frames events, the provider's stream
//! adapter turns them into chunks, and this drives both as a `Stream`.

use crate::adapters::StreamAdapter;
use crate::client::sse::SseDecoder;
use crate::error::{Error, ErrorCode, Result};
use crate::types::response::ChatCompletionChunk;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;

pub type ChunkStream = BoxStream<'static, Result<ChatCompletionChunk>>;

struct State<S, A> {
    body: S,
    decoder: SseDecoder,
    adapter: A,
    pending: VecDeque<ChatCompletionChunk>,
    provider: String,
    idle_timeout: Duration,
    finished: bool,
}

/// Chunks are handed on as soon as the bytes that complete them arrive; nothing is held back
/// except the usage, which comes last. A body silent for `idle_timeout` fails with `timeout`.
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
    let state = State {
        body,
        decoder: SseDecoder::new(),
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

fn on_bytes<S, A: StreamAdapter>(st: &mut State<S, A>, bytes: &[u8]) -> Result<()> {
    let mut events = Vec::new();
    let fed = st.decoder.feed(bytes, &mut events);
    let mut out = Vec::new();
    // Events completed before a framing error still count.
    for event in &events {
        st.adapter.on_event(event, &mut out)?;
    }
    st.pending.extend(out);
    fed.map_err(framing_error)
}

fn end<S, A: StreamAdapter>(st: &mut State<S, A>) -> Result<()> {
    st.finished = true;
    let mut out = Vec::new();
    if !st.adapter.is_done() {
        let mut events = Vec::new();
        let fed = st.decoder.finish(&mut events);
        for event in &events {
            st.adapter.on_event(event, &mut out)?;
        }
        fed.map_err(framing_error)?;
    }
    st.adapter.finish(&mut out)?;
    st.pending.extend(out);
    Ok(())
}

fn framing_error(e: crate::client::sse::SseError) -> Error {
    Error::new(
        ErrorCode::StreamInterrupted,
        format!("The provider's event stream is malformed ({e}); the answer may be incomplete."),
    )
}
