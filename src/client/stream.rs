//! Bytes of a streamed response → canonical chunks: a [`Framer`] cuts the bytes into events (SSE,
//! or AWS event-stream messages), the provider's [`StreamAdapter`] turns events into chunks, and
//! this drives both as a `Stream`.

use crate::adapters::StreamAdapter;
use crate::client::http::timeout_fired;
use crate::client::sse::{SseDecoder, SseEvent};
use crate::error::{Error, ErrorCode, Result, TimeoutKind};
use crate::types::response::ChatCompletionChunk;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

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

/// How long a stream may keep its reader waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The first chunk must be produced by then (`timeouts.firstChunkMs` counted from sending the
    /// request); until it is, silence is not limited otherwise. `None`: `idle` applies from the
    /// start.
    pub first_chunk: Option<(Instant, Duration)>,
    /// Longest silence (no bytes at all; keep-alive pings count as bytes) once the first chunk is
    /// out.
    pub idle: Duration,
}

impl StreamLimits {
    /// A first chunk due `first_chunk` after `sent`, then at most `idle` between reads.
    pub fn new(sent: Instant, first_chunk: Duration, idle: Duration) -> Self {
        StreamLimits {
            first_chunk: Some((deadline(sent, first_chunk), first_chunk)),
            idle,
        }
    }
}

/// A bare duration limits every read, the first included.
impl From<Duration> for StreamLimits {
    fn from(idle: Duration) -> Self {
        StreamLimits {
            first_chunk: None,
            idle,
        }
    }
}

/// `start + after`, or a time far enough away to mean never when that does not fit.
pub fn deadline(start: Instant, after: Duration) -> Instant {
    start
        .checked_add(after)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365 * 30))
}

struct State<S, F, A> {
    body: S,
    framer: F,
    adapter: A,
    /// Events framed but not yet adapted: they are adapted one at a time, so the first chunk of a
    /// large read goes out before the rest of the read is worked on.
    events: VecDeque<SseEvent>,
    /// A framing error found after `events`: handed on once they have been adapted.
    framing_failed: Option<Error>,
    pending: VecDeque<ChatCompletionChunk>,
    provider: String,
    limits: StreamLimits,
    /// A chunk has been produced: from now on `limits.idle` applies.
    started: bool,
    /// Set when the stream failed; handed on after the chunks that came before it.
    failed: Option<Error>,
    finished: bool,
}

/// Chunks of an SSE body.
pub fn sse_chunks<S, A>(
    body: S,
    adapter: A,
    provider: String,
    limits: impl Into<StreamLimits>,
) -> ChunkStream
where
    S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    A: StreamAdapter + 'static,
{
    chunks(body, SseDecoder::new(), adapter, provider, limits)
}

/// Chunks are handed on as soon as the bytes that complete them arrive; nothing is held back
/// except the usage, which comes last. A stream whose first chunk is not out by its deadline, or
/// that is then silent for `limits.idle`, fails with `timeout` (see [`StreamLimits`]).
pub fn chunks<S, F, A>(
    body: S,
    framer: F,
    adapter: A,
    provider: String,
    limits: impl Into<StreamLimits>,
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
        events: VecDeque::new(),
        framing_failed: None,
        pending: VecDeque::new(),
        provider,
        limits: limits.into(),
        started: false,
        failed: None,
        finished: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                st.started = true;
                return Some((Ok(chunk), st));
            }
            if let Some(e) = st.failed.take() {
                return Some((Err(e), st));
            }
            if st.finished {
                return None;
            }
            let step = if let Some(event) = st.events.pop_front() {
                adapt(&mut st, std::slice::from_ref(&event))
            } else if let Some(e) = st.framing_failed.take() {
                Err(e)
            } else if st.adapter.is_done() {
                end(&mut st)
            } else {
                let (until, kind, limit) = match st.limits.first_chunk {
                    Some((due, limit)) if !st.started => (due, TimeoutKind::FirstChunk, limit),
                    _ => (
                        deadline(Instant::now(), st.limits.idle),
                        TimeoutKind::Idle,
                        st.limits.idle,
                    ),
                };
                match tokio::time::timeout_at(until, st.body.next()).await {
                    Ok(Some(Ok(bytes))) => on_bytes(&mut st, &bytes),
                    Ok(Some(Err(e))) => Err(e),
                    Ok(None) => end(&mut st),
                    Err(_) => Err(timeout_fired(&st.provider, kind, limit)),
                }
            };
            if let Err(mut e) = step {
                // Chunks that arrived before the failure are delivered first.
                st.finished = true;
                if e.provider.is_none() {
                    e.provider = Some(st.provider.clone());
                }
                st.failed = Some(e);
            }
        }
    })
    .boxed()
}

/// Frames `bytes` into `st.events`; events completed before a framing error, in the same bytes,
/// still count, so the error waits in `st.framing_failed` until they are adapted.
fn on_bytes<S, F: Framer, A: StreamAdapter>(st: &mut State<S, F, A>, bytes: &[u8]) -> Result<()> {
    let mut events = Vec::new();
    let fed = st.framer.feed(bytes, &mut events);
    st.events.extend(events);
    if let Err(e) = fed {
        st.framing_failed = Some(e);
    }
    Ok(())
}

/// Runs the adapter over `events`, keeping the chunks it made before any error.
fn adapt<S, F, A: StreamAdapter>(st: &mut State<S, F, A>, events: &[SseEvent]) -> Result<()> {
    let mut out = Vec::new();
    let result = events
        .iter()
        .try_for_each(|event| st.adapter.on_event(event, &mut out));
    st.pending.extend(out);
    result
}

fn end<S, F: Framer, A: StreamAdapter>(st: &mut State<S, F, A>) -> Result<()> {
    st.finished = true;
    if !st.adapter.is_done() {
        let mut events = Vec::new();
        let fed = st.framer.finish(&mut events);
        adapt(st, &events)?;
        fed?;
    }
    let mut out = Vec::new();
    let result = st.adapter.finish(&mut out);
    st.pending.extend(out);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::openai::{stream::ChunkNormalizer, Dialect};
    use crate::error::ErrorCode;

    async fn collect(bodies: Vec<&'static [u8]>) -> (Vec<String>, Option<Error>) {
        let body = stream::iter(bodies.into_iter().map(|b| Ok(Bytes::from_static(b))));
        let mut s = sse_chunks(
            body,
            ChunkNormalizer::new("m", Dialect::Compatible),
            "p".into(),
            Duration::from_secs(5),
        );
        let mut texts = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => texts.push(
                    c.choices
                        .first()
                        .and_then(|c| c.delta.content.clone())
                        .unwrap_or_default(),
                ),
                Err(e) => {
                    assert!(s.next().await.is_none(), "nothing after the error");
                    return (texts, Some(e));
                }
            }
        }
        (texts, None)
    }

    const TWO_THEN_ERROR: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\nevent: error\ndata: {\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";

    #[tokio::test]
    async fn chunks_read_together_with_an_error_are_delivered_before_it() {
        let (texts, err) = collect(vec![TWO_THEN_ERROR]).await;
        assert_eq!(texts, vec!["a", "b"]);
        let err = err.unwrap();
        assert_eq!(err.code, ErrorCode::Overloaded);
        assert_eq!(err.provider.as_deref(), Some("p"));
    }

    #[tokio::test]
    async fn chunks_before_a_framing_error_are_delivered_before_it() {
        let (texts, err) = collect(vec![
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: \xff\n\n",
        ])
        .await;
        assert_eq!(texts, vec!["a"]);
        assert_eq!(err.unwrap().code, ErrorCode::StreamInterrupted);
    }

    #[tokio::test]
    async fn a_cut_stream_delivers_what_came_then_fails() {
        let (texts, err) = collect(vec![
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
            b"data: {\"choi",
        ])
        .await;
        assert_eq!(texts, vec!["a"]);
        assert_eq!(err.unwrap().code, ErrorCode::StreamInterrupted);
    }

    const ONE_CHUNK: &[u8] =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";

    /// `first`, then silence forever.
    fn then_silence(first: &'static [u8]) -> impl Stream<Item = Result<Bytes>> + Send + Unpin {
        stream::iter(vec![Ok(Bytes::from_static(first))]).chain(stream::pending())
    }

    fn normalizer() -> ChunkNormalizer {
        ChunkNormalizer::new("m", Dialect::Compatible)
    }

    #[tokio::test]
    async fn before_the_first_chunk_only_the_first_chunk_limit_applies() {
        // A keep-alive comment is bytes but no chunk; the idle limit (20 ms) does not apply yet.
        let limits = StreamLimits::new(
            Instant::now(),
            Duration::from_millis(150),
            Duration::from_millis(20),
        );
        let t = Instant::now();
        let mut s = sse_chunks(
            then_silence(b": ping\n\n"),
            normalizer(),
            "p".into(),
            limits,
        );
        let e = s.next().await.unwrap().unwrap_err();
        assert!(
            t.elapsed() >= Duration::from_millis(145),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e.code, ErrorCode::Timeout);
        assert_eq!(e.timeout, Some(TimeoutKind::FirstChunk));
        assert_eq!(e.provider.as_deref(), Some("p"));
        assert!(e.message.contains("150 ms"), "{}", e.message);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn after_the_first_chunk_the_idle_limit_applies() {
        let limits = StreamLimits::new(
            Instant::now(),
            Duration::from_secs(5),
            Duration::from_millis(60),
        );
        let mut s = sse_chunks(then_silence(ONE_CHUNK), normalizer(), "p".into(), limits);
        s.next().await.unwrap().unwrap();
        let t = Instant::now();
        let e = s.next().await.unwrap().unwrap_err();
        assert!(
            t.elapsed() >= Duration::from_millis(55),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e.timeout, Some(TimeoutKind::Idle));
        assert!(
            e.message.contains("60 ms") && e.message.contains("incomplete"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_bare_duration_limits_every_read() {
        let mut s = sse_chunks(
            stream::pending::<Result<Bytes>>(),
            normalizer(),
            "p".into(),
            Duration::from_millis(30),
        );
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.timeout, Some(TimeoutKind::Idle));
    }

    #[test]
    fn a_deadline_too_far_to_represent_means_never() {
        let now = Instant::now();
        assert!(deadline(now, Duration::from_millis(u64::MAX)) > now + Duration::from_secs(86_400));
        assert_eq!(
            deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    /// Counts the events it is given; each makes one chunk.
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl StreamAdapter for Counting {
        fn on_event(&mut self, _: &SseEvent, out: &mut Vec<ChatCompletionChunk>) -> Result<()> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            out.push(serde_json::from_str(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}"#).unwrap());
            Ok(())
        }
        fn is_done(&self) -> bool {
            false
        }
        fn finish(&mut self, _: &mut Vec<ChatCompletionChunk>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_first_chunk_of_a_large_read_goes_out_before_the_rest_of_the_read_is_adapted() {
        let body: Vec<u8> = b"data: {}\n\n".repeat(1000);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut s = sse_chunks(
            stream::iter([Ok(Bytes::from(body))]),
            Counting(seen.clone()),
            "p".into(),
            Duration::from_secs(5),
        );
        assert!(s.next().await.unwrap().is_ok());
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut n = 1;
        while let Some(item) = s.next().await {
            item.unwrap();
            n += 1;
        }
        assert_eq!(n, 1000);
    }
}
