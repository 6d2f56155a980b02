//! The flow of one call: parse → resolve → input adapter → client → output adapter.

use crate::adapters::anthropic::{self, stream::AnthropicStream};
use crate::adapters::bedrock::{
    self, claude::ClaudeInvokeStream, converse::ConverseStream, llama::LlamaStream,
};
use crate::adapters::error_body::parse_error_body;
use crate::adapters::openai::{self, stream::ChunkNormalizer, Dialect};
use crate::client::eventstream::EventStreamFramer;
use crate::client::http::{self, AwsSigning, UpstreamRequest};
use crate::client::mock;
use crate::client::retry;
use crate::client::stream::{chunks, sse_chunks, ChunkStream};
use crate::config::{Config, OpenAiEndpoint};
use crate::error::{Error, ErrorCode, Result};
use crate::resolver::{self, ProviderKind, Route};
use crate::secret::Secret;
use crate::types::request::ChatRequest;
use crate::types::response::ChatCompletion;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::Value;

#[derive(Debug)]
pub struct Proxy {
    config: Config,
}

/// A request ready to send, and how to read what comes back.
struct Prepared {
    upstream: UpstreamRequest,
    output: Output,
}

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

impl Proxy {
    pub fn new(config: Config) -> Self {
        Proxy { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn resolve(&self, model: &str) -> Result<Route> {
        resolver::resolve(model, &self.config)
    }

    pub async fn generate(&self, req: &ChatRequest) -> Result<ChatCompletion> {
        let route = self.resolve(&req.model)?;
        if route.kind == ProviderKind::Mock {
            let body = mock::response_body(req, &req.model);
            return openai::response::parse_response(&body, &req.model);
        }
        let Prepared { upstream, output } = self.prepare(&route, req, false)?;
        let body = self
            .with_retries(|| async {
                let response = http::send(&upstream).await?;
                response
                    .bytes()
                    .await
                    .map_err(|e| http::body_error(&upstream, &e))
            })
            .await?;
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
        parsed.map_err(|e| {
            e.with_provider(&route.provider)
                .scrub(&upstream.secret_refs())
        })
    }

    /// Returns once the provider has accepted the request (status and headers are in); the chunks
    /// follow as they arrive.
    pub async fn stream(&self, req: &ChatRequest) -> Result<ChunkStream> {
        let route = self.resolve(&req.model)?;
        let idle = self.config.timeout;
        if route.kind == ProviderKind::Mock {
            let events = mock::stream_events(req, &req.model);
            let body = stream::iter(events.into_iter().map(Ok::<Bytes, Error>));
            let adapter = ChunkNormalizer::new(&req.model, Dialect::OpenAi);
            return Ok(sse_chunks(body, adapter, "mock".into(), idle));
        }
        let Prepared { upstream, output } = self.prepare(&route, req, true)?;
        // Only the request is retried: once the stream has begun, nothing is replayed.
        let response = self.with_retries(|| http::send(&upstream)).await?;
        let provider = route.provider.clone();
        let body = response.bytes_stream().map(move |r| {
            r.map_err(|e| {
                Error::new(
                    ErrorCode::StreamInterrupted,
                    format!(
                        "The connection to {provider} broke in the middle of the stream ({e}); the answer is incomplete."
                    ),
                )
            })
        });
        let chunks = match output {
            Output::OpenAi(dialect) => {
                let adapter = ChunkNormalizer::new(&route.model, dialect);
                sse_chunks(body, adapter, route.provider.clone(), idle)
            }
            Output::Anthropic { json_tool } => {
                let adapter = AnthropicStream::new(&route.model, json_tool);
                sse_chunks(body, adapter, route.provider.clone(), idle)
            }
            Output::BedrockClaude { json_tool } => {
                let adapter = ClaudeInvokeStream::new(&route.model, json_tool);
                chunks(
                    body,
                    EventStreamFramer::new(),
                    adapter,
                    route.provider.clone(),
                    idle,
                )
            }
            Output::Converse => {
                let adapter = ConverseStream::new(&route.model);
                chunks(
                    body,
                    EventStreamFramer::new(),
                    adapter,
                    route.provider.clone(),
                    idle,
                )
            }
            Output::Llama { tools_offered } => {
                let adapter = LlamaStream::new(&route.model, tools_offered);
                chunks(
                    body,
                    EventStreamFramer::new(),
                    adapter,
                    route.provider.clone(),
                    idle,
                )
            }
        };
        // Errors reported inside the stream may echo a key, like any provider text.
        let secrets: Vec<Secret> = upstream.secrets.clone();
        Ok(chunks
            .map(move |item| item.map_err(|e| e.scrub(&secrets.iter().collect::<Vec<_>>())))
            .boxed())
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy gives up.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempts = 1;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => match self.config.retry.delay_before(attempts, &e) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempts += 1;
                    }
                    None => return Err(retry::note_attempts(e, attempts)),
                },
            }
        }
    }

    fn prepare(&self, route: &Route, req: &ChatRequest, stream: bool) -> Result<Prepared> {
        match route.kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
                self.prepare_openai(route, req, stream)
            }
            ProviderKind::Anthropic => self.prepare_anthropic(route, req, stream),
            ProviderKind::Bedrock => self.prepare_bedrock(route, req, stream),
            ProviderKind::Mock => Err(Error::internal("the mock provider has no upstream")),
        }
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
            timeout: self.config.timeout,
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
            timeout: self.config.timeout,
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
