//! The flow of one call: parse → resolve → input adapter → client → output adapter, with retries
//! of each model and, when the call has fallbacks, the next model after a failure that another
//! model may not have.

use crate::adapters::anthropic::{self, stream::AnthropicStream};
use crate::adapters::bedrock::{
    self, claude::ClaudeInvokeStream, converse::ConverseStream, llama::LlamaStream,
};
use crate::adapters::error_body::parse_error_body;
use crate::adapters::openai::{self, stream::ChunkNormalizer, Dialect};
use crate::client::eventstream::EventStreamFramer;
use crate::client::http::{self, AwsSigning, UpstreamRequest};
use crate::client::mock;
use crate::client::retry::{self, RetryPolicy};
use crate::client::stream::{chunks, sse_chunks, ChunkStream, StreamLimits};
use crate::config::{CallOptions, Config, OpenAiEndpoint, Timeouts};
use crate::error::{Error, ErrorCode, Result, Tried};
use crate::log::{self, CallLog};
use crate::resolver::{self, ProviderKind, Route};
use crate::secret::Secret;
use crate::types::request::ChatRequest;
use crate::types::response::ChatCompletion;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// The key of the answer (and of a stream's first chunk) that says who answered a call with
/// fallbacks. OpenAI's own fields never start with this.
pub const SERVED_KEY: &str = "llm_proxy";

#[derive(Debug)]
pub struct Proxy {
    config: Config,
    /// The connection pool for this proxy's connect timeout (see [`http::pool_for`]), taken at
    /// the first request.
    client: OnceLock<reqwest::Client>,
    /// `LLM_PROXY_LOG` when the proxy was made.
    log: log::Level,
}

/// A request ready to send, and how to read what comes back.
struct Prepared {
    upstream: UpstreamRequest,
    output: Output,
}

#[derive(Clone)]
enum Output {
    OpenAi(Dialect),
    Anthropic { json_tool: Option<String> },
    BedrockClaude { json_tool: Option<String> },
    Llama { tools_offered: bool },
    Converse,
}

/// How a Bedrock model is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BedrockApi {
    /// InvokeModel with the Anthropic Messages body.
    Claude,
    /// InvokeModel with the Llama 3 prompt.
    Llama,
    /// The Converse API, which every Bedrock model speaks.
    Converse,
}

fn bedrock_api(route: &Route) -> BedrockApi {
    if route.converse {
        return BedrockApi::Converse;
    }
    let id = route.model.as_str();
    let unprefixed = id.split_once('.').map_or(id, |(head, rest)| {
        if ["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"].contains(&head) {
            rest
        } else {
            id
        }
    });
    if unprefixed.starts_with("anthropic.claude") {
        BedrockApi::Claude
    } else if unprefixed.starts_with("meta.llama3") {
        BedrockApi::Llama
    } else {
        BedrockApi::Converse
    }
}

/// What one call runs with: the proxy's settings with the call's options applied.
#[derive(Debug, Clone)]
struct Call {
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// The requested model, then its fallbacks, each once.
    models: Vec<String>,
    log: CallLog,
}

impl Call {
    fn has_fallbacks(&self) -> bool {
        self.models.len() > 1
    }
}

/// Who answered a call that has fallbacks: the answer's `llm_proxy` (a stream's first chunk's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Served {
    /// The model that answered, as named in the request or in its fallbacks.
    pub model: String,
    /// Its provider: `openai`, `anthropic`, `bedrock`, `mock`, or a compatible endpoint's name.
    pub provider: String,
    /// A fallback answered: the requested model failed first.
    pub fallback: bool,
    /// Requests sent to the model that answered, retries included.
    pub attempts: u32,
    /// The models that failed before it, in order.
    pub failed: Vec<Tried>,
}

/// How one model of a call fared.
enum Outcome<T> {
    Answered {
        value: T,
        provider: String,
        attempts: u32,
    },
    /// The model could not be used for this request (no key for its provider, a request it cannot
    /// express…); nothing was sent.
    Unusable(Error),
    /// It was asked, `attempts` times, and failed.
    Failed { error: Error, attempts: u32 },
}

/// Whether a model's failure sends the call on to the next model: the failures retrying is for
/// (overloads, 5xx, timeouts, broken connections…), and an exhausted quota, which a model of
/// another account or provider does not share. A 400, 401, 403 or 404 is an answer about the
/// request or the account, not an outage, and ends the call.
fn moves_on(e: &Error) -> bool {
    e.code != ErrorCode::Aborted && (e.retryable || e.code == ErrorCode::RateLimit)
}

fn tried(model: &str, e: &Error, attempts: u32) -> Tried {
    Tried {
        model: model.to_string(),
        provider: e.provider.clone(),
        code: e.code,
        status: e.status,
        attempts,
        message: e.message.clone(),
    }
}

/// The error of a call that tried more than one model: the last asked model's, with every model
/// tried listed in its message and in `tried`.
fn chain_error(mut e: Error, tried_before: Vec<Tried>, last: Tried, untried: &[String]) -> Error {
    if tried_before.is_empty() {
        return e;
    }
    let mut all = tried_before;
    all.push(last);
    let list: Vec<String> = all
        .iter()
        .map(|t| match t.attempts {
            0 => format!("{} ({}, not sent)", t.model, t.code),
            1 => format!("{} ({}, 1 attempt)", t.model, t.code),
            n => format!("{} ({}, {n} attempts)", t.model, t.code),
        })
        .collect();
    e.message = format!(
        "{} [Models tried, in order: {}.",
        e.message.trim_end(),
        list.join(", ")
    );
    if !untried.is_empty() {
        e.message.push_str(&format!(
            " Not tried: {} (this error is not one another model would fix).",
            untried.join(", ")
        ));
    }
    e.message.push(']');
    e.tried = all;
    e
}

/// Runs `attempt` until it succeeds, fails for good, or `policy` gives up; returns the result and
/// the number of attempts made.
async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    log: &CallLog,
    mut attempt: F,
) -> (Result<T>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempts = 1;
    loop {
        log.attempt_started(attempts);
        match attempt().await {
            Ok(value) => {
                log.attempt_ended(None, None);
                return (Ok(value), attempts);
            }
            Err(e) => {
                let wait = policy.delay_before(attempts, &e);
                log.attempt_ended(Some(&e), wait);
                match wait {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempts += 1;
                    }
                    None => return (Err(retry::note_attempts(e, attempts)), attempts),
                }
            }
        }
    }
}

impl Proxy {
    pub fn new(config: Config) -> Self {
        Proxy {
            config,
            client: OnceLock::new(),
            log: log::Level::from_env(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn resolve(&self, model: &str) -> Result<Route> {
        resolver::resolve(model, &self.config)
    }

    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = http::pool_for(self.config.timeouts.connect)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The settings of one call: the proxy's, with `options` applied. Fallbacks given for the
    /// call must resolve: a typo fails the call before anything is sent.
    fn call(&self, req: &ChatRequest, options: &CallOptions, log: &CallLog) -> Result<Call> {
        let timeouts = self.config.timeouts.for_call(options.timeouts.as_ref())?;
        let retry = self.config.retry.with_options(options.retry.as_ref());
        let requested = req.model.trim();
        let fallbacks: Vec<String> = match &options.fallbacks {
            Some(list) => {
                let mut checked = Vec::with_capacity(list.len());
                for (i, model) in list.iter().enumerate() {
                    let model = model.trim();
                    self.resolve(model).map_err(|mut e| {
                        e.message = format!(
                            "fallbacks[{i}] {}: {}",
                            crate::error::quote(model),
                            e.message
                        );
                        e
                    })?;
                    checked.push(model.to_string());
                }
                checked
            }
            None => self
                .config
                .fallbacks
                .get(requested)
                .cloned()
                .unwrap_or_default(),
        };
        let mut models = vec![requested.to_string()];
        for model in fallbacks {
            if !models.contains(&model) {
                models.push(model);
            }
        }
        Ok(Call {
            retry,
            timeouts,
            models,
            log: log.clone(),
        })
    }

    /// Tries the call's models in turn until one answers (see [`moves_on`]). A model that cannot
    /// be used for the request is skipped when it is a fallback; when it is the requested model
    /// the call fails at once.
    async fn run_models<'a, T, F, Fut>(
        &self,
        call: &'a Call,
        mut run: F,
    ) -> Result<(T, Option<Served>)>
    where
        F: FnMut(&'a str) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let mut failed: Vec<Tried> = Vec::new();
        // The error of the last model that was asked: the call's error when the models after it
        // could not be used.
        let mut last_error: Option<Error> = None;
        let count = call.models.len();
        for (i, model) in call.models.iter().enumerate() {
            let last = i + 1 == count;
            match run(model).await {
                Outcome::Answered {
                    value,
                    provider,
                    attempts,
                } => {
                    let served = call.has_fallbacks().then(|| Served {
                        model: model.clone(),
                        provider,
                        fallback: i > 0,
                        attempts,
                        failed,
                    });
                    return Ok((value, served));
                }
                Outcome::Unusable(e) => {
                    let this = tried(model, &e, 0);
                    if i == 0 {
                        return Err(e);
                    }
                    if last {
                        let e = last_error.take().unwrap_or(e);
                        return Err(chain_error(e, failed, this, &[]));
                    }
                    call.log.fallback(model, &call.models[i + 1], &e, 0);
                    failed.push(this);
                }
                Outcome::Failed { error, attempts } => {
                    let this = tried(model, &error, attempts);
                    if last || !moves_on(&error) {
                        return Err(chain_error(error, failed, this, &call.models[i + 1..]));
                    }
                    call.log
                        .fallback(model, &call.models[i + 1], &error, attempts);
                    failed.push(this);
                    last_error = Some(error);
                }
            }
        }
        Err(Error::internal("a call without a model"))
    }

    /// The answer to `req`, with the proxy's own options.
    pub async fn generate(&self, req: &ChatRequest) -> Result<ChatCompletion> {
        self.generate_with(req, &CallOptions::default()).await
    }

    /// [`Proxy::generate`] with the call's own options (fallbacks, timeouts, retry).
    pub async fn generate_with(
        &self,
        req: &ChatRequest,
        options: &CallOptions,
    ) -> Result<ChatCompletion> {
        let log = CallLog::start(self.log, "generate", &req.model);
        let call = self.call(req, options, &log).map_err(|e| log.failed(e))?;
        let (mut completion, served) = self
            .run_models(&call, |model| self.generate_model(model, req, &call))
            .await
            .map_err(|e| log.failed(e))?;
        log.answered(&completion.model);
        if let Some(served) = served {
            completion.extra.insert(
                SERVED_KEY.into(),
                serde_json::to_value(served).unwrap_or_default(),
            );
        }
        Ok(completion)
    }

    async fn generate_model(
        &self,
        model: &str,
        req: &ChatRequest,
        call: &Call,
    ) -> Outcome<ChatCompletion> {
        let route = match self.resolve(model) {
            Ok(route) => route,
            Err(e) => return Outcome::Unusable(e),
        };
        if route.kind == ProviderKind::Mock {
            call.log.model(model, &route, None);
            let body = mock::response_body(req, model);
            return match openai::response::parse_response(&body, model) {
                Ok(value) => Outcome::Answered {
                    value,
                    provider: route.provider,
                    attempts: 1,
                },
                Err(error) => Outcome::Failed { error, attempts: 1 },
            };
        }
        let Prepared { upstream, output } = match self.prepare(&route, req, false, call.timeouts) {
            Ok(prepared) => prepared,
            Err(e) => return Outcome::Unusable(e),
        };
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => return Outcome::Failed { error, attempts: 0 },
        };
        call.log.model(model, &route, Some(&upstream));
        let (read, attempts) = with_retries(&call.retry, &call.log, || async {
            let sent = http::send(client, &upstream).await?;
            call.log.headers(sent.response.status().as_u16());
            // Read as it arrives, up to http::MAX_RESPONSE_BODY, and still within reqwest's
            // timeout of the request (timeouts.request).
            let body = http::read_body(sent.response, &upstream).await?;
            Ok((body, sent.secrets))
        })
        .await;
        let (body, secrets) = match read {
            Ok(read) => read,
            Err(error) => return Outcome::Failed { error, attempts },
        };
        let parsed = match &output {
            Output::OpenAi(_) => openai::response::parse_response(&body, &route.model),
            Output::Anthropic { json_tool } | Output::BedrockClaude { json_tool } => {
                anthropic::response::parse_response(&body, &route.model, json_tool.as_deref())
            }
            Output::Converse => bedrock::converse::parse_response(&body, &route.model),
            Output::Llama { tools_offered } => {
                bedrock::llama::parse_response(&body, &route.model, *tools_offered)
            }
        };
        match parsed {
            Ok(value) => Outcome::Answered {
                value,
                provider: route.provider,
                attempts,
            },
            Err(e) => Outcome::Failed {
                // The answer may echo a key or the request's signature.
                error: e
                    .with_provider(&route.provider)
                    .scrub(&secrets.iter().collect::<Vec<_>>()),
                attempts,
            },
        }
    }

    /// The answer to `req` as a stream, with the proxy's own options (see [`Proxy::stream_with`]).
    pub async fn stream(&self, req: &ChatRequest) -> Result<ChunkStream> {
        self.stream_with(req, &CallOptions::default()).await
    }

    /// Returns once the stream's first chunk is in (the chunks then follow as they arrive), so
    /// that everything before it — the request, the response head, the bytes up to the first
    /// chunk — is retried, and moved to a fallback, as a whole. Once a chunk has been delivered
    /// nothing is replayed: a later failure ends the stream with an error.
    pub async fn stream_with(
        &self,
        req: &ChatRequest,
        options: &CallOptions,
    ) -> Result<ChunkStream> {
        let log = CallLog::start(self.log, "stream", &req.model);
        let call = self.call(req, options, &log).map_err(|e| log.failed(e))?;
        let (chunks, served) = self
            .run_models(&call, |model| self.stream_model(model, req, &call))
            .await
            .map_err(|e| log.failed(e))?;
        let Some(served) = served else {
            return Ok(log.watch(chunks));
        };
        let mut served = Some(serde_json::to_value(served).unwrap_or_default());
        let chunks = chunks
            .map(move |item| {
                item.map(|mut chunk| {
                    if let Some(value) = served.take() {
                        chunk.extra.insert(SERVED_KEY.into(), value);
                    }
                    chunk
                })
            })
            .boxed();
        Ok(log.watch(chunks))
    }

    async fn stream_model(
        &self,
        model: &str,
        req: &ChatRequest,
        call: &Call,
    ) -> Outcome<ChunkStream> {
        let route = match self.resolve(model) {
            Ok(route) => route,
            Err(e) => return Outcome::Unusable(e),
        };
        if route.kind == ProviderKind::Mock {
            call.log.model(model, &route, None);
            let events = mock::stream_events(req, model);
            let body = stream::iter(events.into_iter().map(Ok::<Bytes, Error>));
            let adapter = ChunkNormalizer::new(model, Dialect::OpenAi);
            let limits = StreamLimits::new(
                Instant::now(),
                call.timeouts.first_chunk(),
                call.timeouts.idle(),
            );
            return Outcome::Answered {
                value: sse_chunks(body, adapter, route.provider.clone(), limits),
                provider: route.provider,
                attempts: 1,
            };
        }
        let Prepared { upstream, output } = match self.prepare(&route, req, true, call.timeouts) {
            Ok(prepared) => prepared,
            Err(e) => return Outcome::Unusable(e),
        };
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => return Outcome::Failed { error, attempts: 0 },
        };
        call.log.model(model, &route, Some(&upstream));
        let (opened, attempts) = with_retries(&call.retry, &call.log, || {
            open_stream(
                client,
                &route,
                &upstream,
                output.clone(),
                call.timeouts,
                &call.log,
            )
        })
        .await;
        match opened {
            Ok(value) => Outcome::Answered {
                value,
                provider: route.provider,
                attempts,
            },
            Err(error) => Outcome::Failed { error, attempts },
        }
    }

    fn prepare(
        &self,
        route: &Route,
        req: &ChatRequest,
        stream: bool,
        timeouts: Timeouts,
    ) -> Result<Prepared> {
        let mut prepared = match route.kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
                self.prepare_openai(route, req, stream)
            }
            ProviderKind::Anthropic => self.prepare_anthropic(route, req, stream),
            ProviderKind::Bedrock => self.prepare_bedrock(route, req, stream),
            ProviderKind::Mock => Err(Error::internal("the mock provider has no upstream")),
        }?;
        // The call's limits, which may differ from the proxy's.
        prepared.upstream.timeouts = timeouts;
        Ok(prepared)
    }

    fn upstream(
        &self,
        route: &Route,
        url: String,
        headers: Vec<(String, String)>,
        auth: Option<(&'static str, String, &Secret)>,
        body: &Value,
        stream: bool,
    ) -> Result<UpstreamRequest> {
        let (secret_headers, secrets) = match auth {
            Some((name, value, secret)) => (vec![(name, value)], vec![secret.clone()]),
            None => (Vec::new(), Vec::new()),
        };
        Ok(UpstreamRequest {
            provider: route.provider.clone(),
            url,
            headers,
            secret_headers,
            secrets,
            body: Bytes::from(
                serde_json::to_vec(body).map_err(|e| Error::internal(e.to_string()))?,
            ),
            timeouts: self.config.timeouts,
            stream,
            accept: if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
            aws: None,
            parse_error: parse_error_body,
        })
    }

    fn openai_endpoint(&self, route: &Route) -> Result<&OpenAiEndpoint> {
        match route.kind {
            ProviderKind::Openai => Ok(&self.config.openai),
            _ => self.config.compatible.get(&route.provider).ok_or_else(|| {
                Error::internal(format!("no compatible endpoint named '{}'", route.provider))
            }),
        }
    }

    fn prepare_openai(&self, route: &Route, req: &ChatRequest, stream: bool) -> Result<Prepared> {
        let endpoint = self.openai_endpoint(route)?;
        let dialect = if endpoint.is_openai {
            Dialect::OpenAi
        } else {
            Dialect::Compatible
        };
        if endpoint.is_openai && endpoint.api_key.is_none() {
            return Err(Error::config(
                "No OpenAI API key. Pass `new LLMProxy({ openai: { apiKey } })` or set OPENAI_API_KEY.",
            )
            .with_provider("openai"));
        }
        let auth = endpoint
            .api_key
            .as_ref()
            .map(|key| ("authorization", format!("Bearer {}", key.expose()), key));
        let body = openai::request::build_body(req, &route.model, dialect, stream);
        let upstream = self.upstream(
            route,
            endpoint.chat_completions_url(),
            endpoint.headers.clone(),
            auth,
            &body,
            stream,
        )?;
        Ok(Prepared {
            upstream,
            output: Output::OpenAi(dialect),
        })
    }

    fn prepare_anthropic(
        &self,
        route: &Route,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<Prepared> {
        let endpoint = &self.config.anthropic;
        let Some(key) = &endpoint.api_key else {
            return Err(Error::config(
                "No Anthropic API key. Pass `new LLMProxy({ anthropic: { apiKey } })` or set ANTHROPIC_API_KEY.",
            )
            .with_provider("anthropic"));
        };
        let built = anthropic::request::build_body(req, &route.model, stream)?;
        let mut headers = vec![(
            "anthropic-version".to_string(),
            anthropic::API_VERSION.to_string(),
        )];
        headers.extend(endpoint.headers.iter().cloned());
        let upstream = self.upstream(
            route,
            endpoint.messages_url(),
            headers,
            Some(("x-api-key", key.expose().to_string(), key)),
            &built.body,
            stream,
        )?;
        Ok(Prepared {
            upstream,
            output: Output::Anthropic {
                json_tool: built.json_tool,
            },
        })
    }
}

impl Proxy {
    fn prepare_bedrock(&self, route: &Route, req: &ChatRequest, stream: bool) -> Result<Prepared> {
        let endpoint = &self.config.bedrock;
        let credentials = endpoint.credentials()?.clone();
        let region = endpoint.region()?.to_string();
        let segment = bedrock::model_path_segment(&route.model);
        let api = bedrock_api(route);
        let (action, body, output) = match api {
            BedrockApi::Claude => {
                let built = bedrock::claude::build_body(req, &route.model)?;
                let action = if stream {
                    "invoke-with-response-stream"
                } else {
                    "invoke"
                };
                (
                    action,
                    built.body,
                    Output::BedrockClaude {
                        json_tool: built.json_tool,
                    },
                )
            }
            BedrockApi::Converse => {
                let body = bedrock::converse::build_body(req)?;
                let action = if stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                (action, body, Output::Converse)
            }
            BedrockApi::Llama => {
                let body = bedrock::llama::build_body(req)?;
                let action = if stream {
                    "invoke-with-response-stream"
                } else {
                    "invoke"
                };
                let tools_offered = req.tools.as_ref().is_some_and(|t| !t.is_empty());
                (action, body, Output::Llama { tools_offered })
            }
        };
        let mut secrets = vec![credentials.secret_access_key.clone()];
        secrets.extend(credentials.session_token.clone());
        let upstream = UpstreamRequest {
            provider: route.provider.clone(),
            url: endpoint.url(&segment, action)?,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            secrets,
            body: Bytes::from(
                serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?,
            ),
            timeouts: self.config.timeouts,
            stream,
            accept: if stream {
                "application/vnd.amazon.eventstream"
            } else {
                "application/json"
            },
            aws: Some(AwsSigning {
                credentials,
                region,
                service: "bedrock",
            }),
            parse_error: parse_error_body,
        };
        Ok(Prepared { upstream, output })
    }
}

/// One attempt of a stream: sends the request and reads up to the first chunk, all within
/// `timeouts.first_chunk` of sending. A connection that breaks before the first chunk is a
/// `connection` error (retried, nothing having been delivered); after it, `stream_interrupted`.
async fn open_stream(
    client: &reqwest::Client,
    route: &Route,
    upstream: &UpstreamRequest,
    output: Output,
    timeouts: Timeouts,
    log: &CallLog,
) -> Result<ChunkStream> {
    let sent_at = Instant::now();
    let http::Sent { response, secrets } = http::send(client, upstream).await?;
    log.headers(response.status().as_u16());
    let provider = route.provider.clone();
    let delivered = Arc::new(AtomicBool::new(false));
    let body = {
        let delivered = delivered.clone();
        response.bytes_stream().map(move |r| {
            r.map_err(|e| {
                if delivered.load(Ordering::Acquire) {
                    Error::new(
                        ErrorCode::StreamInterrupted,
                        format!(
                            "The connection to {provider} broke in the middle of the stream ({e}); the answer is incomplete."
                        ),
                    )
                } else {
                    Error::new(
                        ErrorCode::Connection,
                        format!(
                            "The connection to {provider} broke before the stream's first chunk ({e}); nothing was delivered."
                        ),
                    )
                }
            })
        })
    };
    let limits = StreamLimits::new(sent_at, timeouts.first_chunk(), timeouts.idle());
    let provider = route.provider.clone();
    let mut chunks = match output {
        Output::OpenAi(dialect) => {
            let adapter = ChunkNormalizer::new(&route.model, dialect);
            sse_chunks(body, adapter, provider, limits)
        }
        Output::Anthropic { json_tool } => {
            let adapter = AnthropicStream::new(&route.model, json_tool);
            sse_chunks(body, adapter, provider, limits)
        }
        Output::BedrockClaude { json_tool } => {
            let adapter = ClaudeInvokeStream::new(&route.model, json_tool);
            chunks(body, EventStreamFramer::new(), adapter, provider, limits)
        }
        Output::Converse => {
            let adapter = ConverseStream::new(&route.model);
            chunks(body, EventStreamFramer::new(), adapter, provider, limits)
        }
        Output::Llama { tools_offered } => {
            let adapter = LlamaStream::new(&route.model, tools_offered);
            chunks(body, EventStreamFramer::new(), adapter, provider, limits)
        }
    };
    // Errors reported inside the stream may echo a key or the request's signature, like any
    // provider text.
    let scrub = move |e: Error| e.scrub(&secrets.iter().collect::<Vec<_>>());
    match chunks.next().await {
        Some(Ok(first)) => {
            delivered.store(true, Ordering::Release);
            log.first_chunk();
            Ok(stream::once(async move { Ok(first) })
                .chain(chunks)
                .map(move |item| item.map_err(&scrub))
                .boxed())
        }
        Some(Err(e)) => Err(scrub(e)),
        None => Ok(stream::empty().boxed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyOptions;
    use std::collections::HashMap;

    fn proxy() -> Proxy {
        Proxy::new(Config::resolve(ProxyOptions::default(), &|_| None).unwrap())
    }

    fn call(models: &[&str]) -> Call {
        Call {
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            models: models.iter().map(|m| m.to_string()).collect(),
            log: CallLog::default(),
        }
    }

    fn failed(code: ErrorCode, attempts: u32) -> Outcome<&'static str> {
        Outcome::Failed {
            error: Error::new(code, format!("{code} happened")).with_provider("p"),
            attempts,
        }
    }

    fn answered(value: &'static str) -> Outcome<&'static str> {
        Outcome::Answered {
            value,
            provider: "p".into(),
            attempts: 1,
        }
    }

    /// Runs the call's models with the outcomes given per model; returns the result and the
    /// models asked, in order.
    async fn run(
        models: &[&str],
        mut outcomes: HashMap<&'static str, Outcome<&'static str>>,
    ) -> (Result<(&'static str, Option<Served>)>, Vec<String>) {
        let p = proxy();
        let c = call(models);
        let mut asked = Vec::new();
        let result = p
            .run_models(&c, |model| {
                asked.push(model.to_string());
                let outcome = outcomes.remove(model).expect("asked once");
                async move { outcome }
            })
            .await;
        (result, asked)
    }

    #[tokio::test]
    async fn the_requested_model_answering_says_so_only_when_there_are_fallbacks() {
        let (r, _) = run(&["a"], HashMap::from([("a", answered("A"))])).await;
        assert_eq!(r.unwrap(), ("A", None));
        let (r, asked) = run(&["a", "b"], HashMap::from([("a", answered("A"))])).await;
        let (value, served) = r.unwrap();
        assert_eq!(value, "A");
        assert_eq!(
            served.unwrap(),
            Served {
                model: "a".into(),
                provider: "p".into(),
                fallback: false,
                attempts: 1,
                failed: vec![]
            }
        );
        assert_eq!(asked, ["a"]);
    }

    #[tokio::test]
    async fn failures_retrying_is_for_move_on_and_others_stop() {
        for code in [
            ErrorCode::Overloaded,
            ErrorCode::ServerError,
            ErrorCode::Timeout,
            ErrorCode::Connection,
            ErrorCode::RateLimit,
            ErrorCode::StreamInterrupted,
        ] {
            let (r, asked) = run(
                &["a", "b"],
                HashMap::from([("a", failed(code, 3)), ("b", answered("B"))]),
            )
            .await;
            let (value, served) = r.unwrap_or_else(|e| panic!("{code}: {e:?}"));
            assert_eq!(value, "B", "{code}");
            let served = served.unwrap();
            assert!(served.fallback);
            assert_eq!(served.failed.len(), 1);
            assert_eq!(
                (served.failed[0].code, served.failed[0].attempts),
                (code, 3)
            );
            assert_eq!(asked, ["a", "b"]);
        }
        // An exhausted quota is not retryable, but another model may well have quota.
        let quota = Outcome::Failed {
            error: Error::new(ErrorCode::RateLimit, "quota").with_retryable(false),
            attempts: 1,
        };
        let (r, _) = run(
            &["a", "b"],
            HashMap::from([("a", quota), ("b", answered("B"))]),
        )
        .await;
        assert_eq!(r.unwrap().0, "B");

        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::Authentication,
            ErrorCode::Permission,
            ErrorCode::NotFound,
            ErrorCode::Aborted,
            ErrorCode::Internal,
        ] {
            let (r, asked) = run(&["a", "b"], HashMap::from([("a", failed(code, 1))])).await;
            let e = r.unwrap_err();
            assert_eq!(e.code, code);
            assert!(e.tried.is_empty(), "{code}");
            assert_eq!(e.message, format!("{code} happened"), "unchanged");
            assert_eq!(asked, ["a"], "{code}");
        }
    }

    #[tokio::test]
    async fn an_unusable_model_stops_the_call_when_requested_and_is_skipped_as_a_fallback() {
        let unusable = || Outcome::Unusable(Error::config("no key").with_provider("q"));
        let (r, asked) = run(&["a", "b"], HashMap::from([("a", unusable())])).await;
        let e = r.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Config, "no key"));
        assert!(e.tried.is_empty());
        assert_eq!(asked, ["a"]);

        let (r, asked) = run(
            &["a", "b", "c"],
            HashMap::from([
                ("a", failed(ErrorCode::Overloaded, 2)),
                ("b", unusable()),
                ("c", answered("C")),
            ]),
        )
        .await;
        let served = r.unwrap().1.unwrap();
        assert_eq!(served.model, "c");
        let failed_models: Vec<_> = served
            .failed
            .iter()
            .map(|t| (t.model.as_str(), t.code, t.attempts))
            .collect();
        assert_eq!(
            failed_models,
            [("a", ErrorCode::Overloaded, 2), ("b", ErrorCode::Config, 0)]
        );
        assert_eq!(asked, ["a", "b", "c"]);

        // The last fallback unusable: the error is the last asked model's, listing all.
        let (r, _) = run(
            &["a", "b"],
            HashMap::from([("a", failed(ErrorCode::Overloaded, 2)), ("b", unusable())]),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert_eq!(
            e.message,
            "overloaded happened [Models tried, in order: a (overloaded, 2 attempts), b (config, not sent).]"
        );
        assert_eq!(e.tried.len(), 2);
    }

    #[tokio::test]
    async fn the_final_error_lists_the_models_tried_and_those_not_tried() {
        let (r, _) = run(
            &["a", "b", "c"],
            HashMap::from([
                ("a", failed(ErrorCode::Timeout, 1)),
                ("b", failed(ErrorCode::Authentication, 1)),
            ]),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::Authentication);
        assert_eq!(
            e.message,
            "authentication happened [Models tried, in order: a (timeout, 1 attempt), b (authentication, 1 attempt). Not tried: c (this error is not one another model would fix).]"
        );
        assert_eq!(
            e.tried.iter().map(|t| t.model.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let json: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["tried"][0]["code"], "timeout");
        assert_eq!(json["tried"][1]["provider"], "p");
    }

    #[test]
    fn a_calls_models_are_the_requested_one_then_its_fallbacks_once_each() {
        let p = Proxy::new(
            Config::from_json(r#"{"fallbacks":{"mock/a":["mock/b","mock/a","mock/b","mock/c"]}}"#)
                .unwrap(),
        );
        let req = |model: &str| {
            ChatRequest::from_value(
                serde_json::json!({"model": model, "messages": [{"role": "user", "content": "x"}]}),
            )
            .unwrap()
        };
        let off = CallLog::default();
        let c = p
            .call(&req(" mock/a "), &CallOptions::default(), &off)
            .unwrap();
        assert_eq!(c.models, ["mock/a", "mock/b", "mock/c"]);
        let c = p
            .call(&req("mock/z"), &CallOptions::default(), &off)
            .unwrap();
        assert_eq!(c.models, ["mock/z"]);
        let per_call = CallOptions::from_json(r#"{"fallbacks":["mock/y"]}"#).unwrap();
        assert_eq!(
            p.call(&req("mock/a"), &per_call, &off).unwrap().models,
            ["mock/a", "mock/y"]
        );
        let none = CallOptions::from_json(r#"{"fallbacks":[]}"#).unwrap();
        assert_eq!(
            p.call(&req("mock/a"), &none, &off).unwrap().models,
            ["mock/a"]
        );
    }
}
