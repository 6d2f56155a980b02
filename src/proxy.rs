//! The flow of one call: parse → resolve → input adapter → client → output adapter.

use crate::adapters::openai::{self, Dialect};
use crate::client::http::{self, UpstreamRequest};
use crate::client::mock;
use crate::client::stream::{sse_chunks, ChunkStream};
use crate::config::{Config, OpenAiEndpoint};
use crate::error::{Error, ErrorCode, Result};
use crate::resolver::{self, ProviderKind, Route};
use crate::types::request::ChatRequest;
use crate::types::response::ChatCompletion;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

#[derive(Debug)]
pub struct Proxy {
    config: Config,
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
        match route.kind {
            ProviderKind::Mock => {
                openai::response::parse_response(&mock::response_body(req, &req.model), &req.model)
            }
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
                let (upstream, _) = self.openai_request(&route, req, false)?;
                let response = http::send(&upstream).await?;
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| http::body_error(&upstream, &e))?;
                openai::response::parse_response(&body, &route.model).map_err(|e| {
                    e.with_provider(&route.provider)
                        .scrub(&upstream.secret_refs())
                })
            }
            ProviderKind::Anthropic | ProviderKind::Bedrock => Err(not_yet(&route)),
        }
    }

    /// Returns once the provider has accepted the request (status and headers are in); the chunks
    /// follow as they arrive.
    pub async fn stream(&self, req: &ChatRequest) -> Result<ChunkStream> {
        let route = self.resolve(&req.model)?;
        match route.kind {
            ProviderKind::Mock => {
                let events = mock::stream_events(req, &req.model);
                let body = stream::iter(events.into_iter().map(Ok::<Bytes, Error>));
                Ok(sse_chunks(
                    body,
                    openai::stream::ChunkNormalizer::new(&req.model, Dialect::OpenAi),
                    "mock".into(),
                    self.config.timeout,
                ))
            }
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
                let (upstream, dialect) = self.openai_request(&route, req, true)?;
                let response = http::send(&upstream).await?;
                let provider = route.provider.clone();
                let secrets = upstream.secrets.clone();
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
                let chunks = sse_chunks(
                    body,
                    openai::stream::ChunkNormalizer::new(&route.model, dialect),
                    route.provider.clone(),
                    self.config.timeout,
                );
                // Errors reported inside the stream may echo a key, like any provider text.
                Ok(chunks
                    .map(move |item| item.map_err(|e| e.scrub(&secrets.iter().collect::<Vec<_>>())))
                    .boxed())
            }
            ProviderKind::Anthropic | ProviderKind::Bedrock => Err(not_yet(&route)),
        }
    }

    fn endpoint(&self, route: &Route) -> Result<&OpenAiEndpoint> {
        match route.kind {
            ProviderKind::Openai => Ok(&self.config.openai),
            _ => self.config.compatible.get(&route.provider).ok_or_else(|| {
                Error::internal(format!("no compatible endpoint named '{}'", route.provider))
            }),
        }
    }

    fn openai_request(
        &self,
        route: &Route,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<(UpstreamRequest, Dialect)> {
        let endpoint = self.endpoint(route)?;
        let dialect = if endpoint.is_openai {
            Dialect::OpenAi
        } else {
            Dialect::Compatible
        };
        let mut secret_headers = Vec::new();
        let mut secrets = Vec::new();
        match &endpoint.api_key {
            Some(key) => {
                secret_headers.push(("authorization", format!("Bearer {}", key.expose())));
                secrets.push(key.clone());
            }
            None if endpoint.is_openai => {
                return Err(Error::config(
                    "No OpenAI API key. Pass `new LLMProxy({ openai: { apiKey } })` or set OPENAI_API_KEY.",
                )
                .with_provider("openai"))
            }
            None => {}
        }
        let body = openai::request::build_body(req, &route.model, dialect, stream);
        let upstream = UpstreamRequest {
            provider: route.provider.clone(),
            url: endpoint.chat_completions_url(),
            headers: endpoint.headers.clone(),
            secret_headers,
            secrets,
            body: Bytes::from(
                serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?,
            ),
            timeout: self.config.timeout,
            stream,
            parse_error: crate::adapters::error_body::parse_error_body,
        };
        Ok((upstream, dialect))
    }
}

fn not_yet(route: &Route) -> Error {
    let name = match route.kind {
        ProviderKind::Anthropic => "Anthropic",
        _ => "AWS Bedrock",
    };
    Error::new(
        ErrorCode::UnsupportedModel,
        format!(
            "'{}' is served by {name}, and {name} support is not available yet in this version of llm-proxy. Use an OpenAI or OpenAI-compatible model for now.",
            route.model
        ),
    )
    .with_provider(&route.provider)
    .with_retryable(false)
}
