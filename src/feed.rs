//! Hands a running stream's chunks to a consumer in batches of JSON text.
//!
//! A producer task drives the [`ChunkStream`] and serialises each chunk off the consumer's thread;
//! the consumer takes everything available at once (waiting for at least one chunk), which keeps
//! the number of JavaScript ↔ Rust crossings per chunk low. The producer must end with an explicit
//! `End` or `Failed`: a producer that vanishes without one (a panic) is reported as an error, so a
//! stream can never look complete when it is not.

use crate::client::stream::ChunkStream;
use crate::error::{Error, Result};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Chunks buffered ahead of a slow consumer before reading from the provider pauses.
const BUFFER: usize = 256;
/// Chunks handed over in one batch at most.
const MAX_BATCH: usize = 512;

enum Item {
    Chunk(String),
    Failed(Error),
    End,
}

pub struct Producer {
    tx: mpsc::Sender<Item>,
    reader_waiting: Arc<AtomicBool>,
    first_taken: Arc<Notify>,
}

pub struct Feed {
    rx: mpsc::Receiver<Item>,
    pending_error: Option<Error>,
    ended: bool,
    /// Set while a `next_batch` waits for the first item of its batch.
    reader_waiting: Arc<AtomicBool>,
    /// Told once, when the first batch is taken.
    first_taken: Arc<Notify>,
    taken: bool,
}

pub fn channel() -> (Producer, Feed) {
    let (tx, rx) = mpsc::channel(BUFFER);
    let reader_waiting = Arc::new(AtomicBool::new(false));
    let first_taken = Arc::new(Notify::new());
    (
        Producer {
            tx,
            reader_waiting: reader_waiting.clone(),
            first_taken: first_taken.clone(),
        },
        Feed {
            rx,
            pending_error: None,
            ended: false,
            reader_waiting,
            first_taken,
            taken: false,
        },
    )
}

impl Producer {
    /// Opens the stream with `open` and forwards its chunks until it ends, fails, or the consumer
    /// is gone.
    pub async fn run<F>(self, open: F)
    where
        F: Future<Output = Result<ChunkStream>>,
    {
        let forward = async {
            let mut chunks = open.await?;
            let mut first = true;
            while let Some(chunk) = chunks.next().await {
                let text =
                    serde_json::to_string(&chunk?).map_err(|e| Error::internal(e.to_string()))?;
                if self.tx.send(Item::Chunk(text)).await.is_err() {
                    break;
                }
                if first {
                    // The first chunk goes to JavaScript alone, as soon as it is asked for: when
                    // a whole answer arrives in one read, working through the rest first would
                    // hold it back by as long as that takes.
                    first = false;
                    tokio::select! {
                        _ = self.first_taken.notified() => {}
                        _ = self.tx.closed() => break,
                    }
                } else if self.reader_waiting.load(Ordering::Acquire) {
                    // A waiting `next_batch` was woken into this worker's LIFO slot, where it
                    // runs only once this task yields. A reader busy with its last batch is not
                    // waiting: it gets a bigger batch instead.
                    tokio::task::yield_now().await;
                }
            }
            Ok::<(), Error>(())
        };
        let last = match forward.await {
            Ok(()) => Item::End,
            Err(e) => Item::Failed(e),
        };
        let _ = self.tx.send(last).await;
    }
}

impl Feed {
    /// The JSON array text of the chunks available now, waiting for at least one; `None` once the
    /// stream is complete. Chunks that arrived before a failure are handed over first, the error on
    /// the next call. `abort` firing makes a waiting call fail with `aborted`.
    pub async fn next_batch(&mut self, abort: &CancellationToken) -> Result<Option<String>> {
        if let Some(e) = self.pending_error.take() {
            self.ended = true;
            return Err(e);
        }
        if self.ended {
            return Ok(None);
        }
        self.reader_waiting.store(true, Ordering::Release);
        let next = tokio::select! {
            biased;
            _ = abort.cancelled() => {
                self.reader_waiting.store(false, Ordering::Release);
                self.ended = true;
                return Err(Error::aborted());
            }
            item = self.rx.recv() => item,
        };
        self.reader_waiting.store(false, Ordering::Release);
        if !self.taken {
            // Whatever came first (a chunk, the end, an error), the producer may go on.
            self.taken = true;
            self.first_taken.notify_one();
        }
        let mut next = next;
        let mut batch = String::from("[");
        let mut count = 0;
        loop {
            match next {
                Some(Item::Chunk(text)) => {
                    if count > 0 {
                        batch.push(',');
                    }
                    batch.push_str(&text);
                    count += 1;
                }
                Some(Item::End) => {
                    self.ended = true;
                    break;
                }
                Some(Item::Failed(e)) => {
                    self.pending_error = Some(e);
                    break;
                }
                None => {
                    self.pending_error = Some(Error::internal(
                        "The stream's worker stopped without finishing the stream.",
                    ));
                    break;
                }
            }
            if count >= MAX_BATCH {
                break;
            }
            next = match self.rx.try_recv() {
                Ok(item) => Some(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        if count == 0 {
            return match self.pending_error.take() {
                Some(e) => {
                    self.ended = true;
                    Err(e)
                }
                None => Ok(None),
            };
        }
        batch.push(']');
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::types::response::ChatCompletionChunk;
    use futures_util::stream;
    use serde_json::Value;

    fn chunk(n: usize) -> ChatCompletionChunk {
        serde_json::from_value(serde_json::json!({
            "id": format!("c{n}"), "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": n.to_string()}, "finish_reason": null}]
        }))
        .unwrap()
    }

    fn stream_of(items: Vec<Result<ChatCompletionChunk>>) -> ChunkStream {
        stream::iter(items).boxed()
    }

    async fn drain(feed: &mut Feed) -> (Vec<String>, Option<Error>) {
        let never = CancellationToken::new();
        let mut ids = Vec::new();
        loop {
            match feed.next_batch(&never).await {
                Ok(Some(text)) => {
                    let batch: Vec<Value> = serde_json::from_str(&text).unwrap();
                    ids.extend(batch.iter().map(|c| c["id"].as_str().unwrap().to_string()));
                }
                Ok(None) => return (ids, None),
                Err(e) => return (ids, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn a_waiting_reader_gets_the_first_chunk_of_a_burst_at_once() {
        let (producer, mut feed) = channel();
        let items = (0..100).map(|n| Ok(chunk(n))).collect();
        tokio::spawn(producer.run(async move { Ok(stream_of(items)) }));
        let first = feed.next_batch(&CancellationToken::new()).await.unwrap();
        let first: Vec<Value> = serde_json::from_str(&first.unwrap()).unwrap();
        assert_eq!(
            first.len(),
            1,
            "the reader was waiting: it gets the first chunk alone"
        );
        let (ids, err) = drain(&mut feed).await;
        assert!(err.is_none());
        assert_eq!(ids.len(), 99);
    }

    #[tokio::test]
    async fn a_reader_that_asks_late_still_gets_the_first_chunk_alone() {
        let (producer, mut feed) = channel();
        let items = (0..100).map(|n| Ok(chunk(n))).collect();
        tokio::spawn(producer.run(async move { Ok(stream_of(items)) }));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let first = feed.next_batch(&CancellationToken::new()).await.unwrap();
        let first: Vec<Value> = serde_json::from_str(&first.unwrap()).unwrap();
        assert_eq!(first.len(), 1);
        let (ids, err) = drain(&mut feed).await;
        assert!(err.is_none());
        assert_eq!(ids.len(), 99);
    }

    #[tokio::test]
    async fn delivers_every_chunk_in_order_then_ends() {
        let (producer, mut feed) = channel();
        let items = (0..1000).map(|n| Ok(chunk(n))).collect();
        tokio::spawn(producer.run(async move { Ok(stream_of(items)) }));
        let (ids, err) = drain(&mut feed).await;
        assert!(err.is_none());
        assert_eq!(ids, (0..1000).map(|n| format!("c{n}")).collect::<Vec<_>>());
        // Ended stays ended.
        assert_eq!(
            feed.next_batch(&CancellationToken::new()).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn chunks_before_a_failure_come_first_then_the_error() {
        let (producer, mut feed) = channel();
        let items = vec![
            Ok(chunk(0)),
            Ok(chunk(1)),
            Err(Error::new(ErrorCode::StreamInterrupted, "cut")),
        ];
        tokio::spawn(producer.run(async move { Ok(stream_of(items)) }));
        let (ids, err) = drain(&mut feed).await;
        assert_eq!(ids, vec!["c0", "c1"]);
        assert_eq!(err.unwrap().code, ErrorCode::StreamInterrupted);
    }

    #[tokio::test]
    async fn a_request_error_is_the_first_result() {
        let (producer, mut feed) = channel();
        tokio::spawn(producer.run(async { Err(Error::invalid_request("no model")) }));
        let (ids, err) = drain(&mut feed).await;
        assert!(ids.is_empty());
        assert_eq!(err.unwrap().code, ErrorCode::InvalidRequest);
    }

    #[tokio::test]
    async fn a_panicking_producer_is_an_internal_error_not_an_end() {
        let (producer, mut feed) = channel();
        let task = tokio::spawn(producer.run(async {
            let items: Vec<Result<ChatCompletionChunk>> = vec![Ok(chunk(0))];
            Ok(stream_of(items)
                .chain(stream::once(async { panic!("bug in an adapter") }))
                .boxed())
        }));
        let (ids, err) = drain(&mut feed).await;
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(ids, vec!["c0"]);
        let err = err.expect("a vanished producer must not look like a complete stream");
        assert_eq!(err.code, ErrorCode::Internal);
    }

    #[tokio::test]
    async fn abort_fails_a_waiting_call() {
        let (producer, mut feed) = channel();
        let _keep = producer; // never sends
        let abort = CancellationToken::new();
        let trigger = abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            trigger.cancel();
        });
        let e = feed.next_batch(&abort).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Aborted);
        assert_eq!(feed.next_batch(&abort).await.unwrap(), None);
    }

    #[tokio::test]
    async fn batches_are_capped() {
        let (producer, mut feed) = channel();
        let items: Vec<_> = (0..5000).map(|n| Ok(chunk(n))).collect();
        tokio::spawn(producer.run(async move { Ok(stream_of(items)) }));
        let never = CancellationToken::new();
        let mut total = 0;
        while let Some(text) = feed.next_batch(&never).await.unwrap() {
            let batch: Vec<Value> = serde_json::from_str(&text).unwrap();
            assert!(!batch.is_empty() && batch.len() <= MAX_BATCH);
            total += batch.len();
        }
        assert_eq!(total, 5000);
    }
}
