//! The napi skin over [`Proxy`]: JSON text in and out, one shared tokio runtime, errors as JSON for
//! `index.js` to turn into `LLMProxyError`. No provider logic lives here.

use crate::config::{CallOptions, Config};
use crate::error::{Error, ErrorCode};
use crate::feed::{self, Feed};
use crate::proxy::Proxy;
use crate::types::request::ChatRequest;
use napi::bindgen_prelude::{spawn, PromiseRaw};
use napi::{Env, Status};
use napi_derive::napi;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Prefix of a native error's message whose rest is the JSON of an [`Error`]; `index.js` looks for it.
const ERROR_MARK: &str = "LLMPROXY_ERROR:";

fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("{ERROR_MARK}{}", e.to_json()),
    )
}

/// The error codes, for `index.d.ts` drift tests.
#[napi]
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// Cancels what it is handed to: `index.js` calls `cancel()` from an `AbortSignal`'s listener.
#[napi]
pub struct CancelToken {
    token: CancellationToken,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken {
            token: CancellationToken::new(),
        }
    }

    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

#[napi]
pub struct NativeProxy {
    inner: Arc<Proxy>,
}

#[napi]
impl NativeProxy {
    #[napi(constructor, catch_unwind)]
    pub fn new(options_json: String) -> napi::Result<Self> {
        let config = Config::from_json(&options_json).map_err(to_napi)?;
        Ok(NativeProxy {
            inner: Arc::new(Proxy::new(config)),
        })
    }

    /// JSON of the route a model would take.
    #[napi(catch_unwind)]
    pub fn resolve(&self, model: String) -> napi::Result<String> {
        let route = self.inner.resolve(&model).map_err(to_napi)?;
        serde_json::to_string(&route).map_err(|e| to_napi(Error::internal(e.to_string())))
    }

    /// Resolves with the JSON of a `chat.completion`. `options_json`: the call's options that the
    /// core reads (`fallbacks`, `timeouts`, `retry`), as JSON.
    #[napi(catch_unwind, ts_return_type = "Promise<string>")]
    pub fn generate<'env>(
        &self,
        env: &'env Env,
        request_json: String,
        cancel: &CancelToken,
        options_json: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let proxy = self.inner.clone();
        let token = cancel.token.clone();
        env.spawn_future(async move {
            let work = async {
                let req = ChatRequest::from_json(&request_json)?;
                let options = CallOptions::from_json(options_json.as_deref().unwrap_or(""))?;
                let completion = proxy.generate_with(&req, &options).await?;
                serde_json::to_string(&completion).map_err(|e| Error::internal(e.to_string()))
            };
            tokio::select! {
                biased;
                _ = token.cancelled() => Err(to_napi(Error::aborted())),
                r = work => r.map_err(to_napi),
            }
        })
    }

    /// Starts a stream. Request errors surface from the first `nextBatch()`. `options_json` as for
    /// `generate`.
    #[napi(catch_unwind)]
    pub fn stream(
        &self,
        request_json: String,
        cancel: &CancelToken,
        options_json: Option<String>,
    ) -> NativeStream {
        let (producer, feed) = feed::channel();
        let abort = cancel.token.clone();
        // Aborting stops the producer too; `cancel()` and drop stop only the producer.
        let stop = abort.child_token();
        let producer_stop = stop.clone();
        let proxy = self.inner.clone();
        spawn(async move {
            let open = async move {
                let req = ChatRequest::from_json(&request_json)?;
                let options = CallOptions::from_json(options_json.as_deref().unwrap_or(""))?;
                proxy.stream_with(&req, &options).await
            };
            tokio::select! {
                biased;
                _ = producer_stop.cancelled() => {}
                _ = producer.run(open) => {}
            }
        });
        NativeStream {
            feed: Mutex::new(feed),
            abort,
            stop,
        }
    }
}

/// A running stream. Dropping it (garbage collection) stops the upstream request.
#[napi]
pub struct NativeStream {
    feed: Mutex<Feed>,
    /// Fired by the caller's AbortSignal: a waiting `nextBatch` rejects with `aborted`.
    abort: CancellationToken,
    /// Fired by `cancel()` (a `break`) or drop: upstream stops quietly.
    stop: CancellationToken,
}

#[napi]
impl NativeStream {
    /// Resolves with the JSON array text of the chunks available now (waiting for at least one),
    /// or `null` once the stream is complete. Rejects when the stream failed.
    #[napi]
    pub async fn next_batch(&self) -> napi::Result<Option<String>> {
        let mut feed = self.feed.lock().await;
        feed.next_batch(&self.abort).await.map_err(to_napi)
    }

    /// Stops the stream and its upstream request (after `break`, or when the consumer is done).
    #[napi]
    pub fn cancel(&self) {
        self.stop.cancel();
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
