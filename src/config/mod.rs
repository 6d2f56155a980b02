//! `new LLMProxy(options)`: the options as given, and the resolved configuration with the official
//! SDKs' environment variables as defaults.

pub mod aws;

pub use aws::BedrockEndpoint;

use crate::client::retry::RetryPolicy;

use crate::error::{Error, Result};
use crate::secret::Secret;
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;

/// Names a compatible endpoint may not take: they are the built-in providers' prefixes.
pub const RESERVED_NAMES: [&str; 5] =
    ["openai", "anthropic", "bedrock", "bedrock-converse", "mock"];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyOptions {
    pub openai: Option<OpenAiOptions>,
    pub anthropic: Option<AnthropicOptions>,
    pub bedrock: Option<BedrockOptions>,
    pub compatible: Option<BTreeMap<String, CompatibleOptions>>,
    /// Model name (or `prefix*`) → `provider/model`.
    pub routes: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub retry: Option<RetryOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryOptions {
    pub max_retries: Option<u32>,
    pub initial_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenAiOptions {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnthropicOptions {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BedrockOptions {
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompatibleOptions {
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// One OpenAI-format endpoint: OpenAI itself or a compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiEndpoint {
    /// `openai` or the compatible endpoint's name.
    pub name: String,
    pub base_url: Url,
    pub api_key: Option<Secret>,
    /// Extra headers (OpenAI-Organization, OpenAI-Project, the user's own).
    pub headers: Vec<(String, String)>,
    pub is_openai: bool,
}

impl OpenAiEndpoint {
    pub fn chat_completions_url(&self) -> String {
        join_path(&self.base_url, "chat/completions")
    }
}

/// `{base}/{path}`, keeping any query string of the base URL (`?api-version=…`).
pub fn join_path(base: &Url, path: &str) -> String {
    let mut url = base.clone();
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.to_string()
}

#[derive(Debug, Clone)]
pub struct AnthropicEndpoint {
    pub base_url: Url,
    pub api_key: Option<Secret>,
    pub headers: Vec<(String, String)>,
}

impl AnthropicEndpoint {
    pub fn messages_url(&self) -> String {
        join_path(&self.base_url, "v1/messages")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub openai: OpenAiEndpoint,
    pub anthropic: AnthropicEndpoint,
    pub bedrock: BedrockEndpoint,
    pub compatible: BTreeMap<String, OpenAiEndpoint>,
    pub routes: Vec<(String, String)>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Config {
    /// Resolves options against the environment (`env` is `std::env::var` in production).
    pub fn resolve(options: ProxyOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::resolve_with_files(options, env, &|_| None)
    }

    /// As [`Config::resolve`], reading the AWS shared files through `read_file`.
    pub fn resolve_with_files(
        options: ProxyOptions,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&std::path::PathBuf) -> Option<String>,
    ) -> Result<Self> {
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());

        let o = options.openai.unwrap_or_default();
        let mut openai_headers = Vec::new();
        if let Some(org) = o.organization.or_else(|| env_nonempty("OPENAI_ORG_ID")) {
            openai_headers.push(("OpenAI-Organization".to_string(), org));
        }
        if let Some(project) = o.project.or_else(|| env_nonempty("OPENAI_PROJECT_ID")) {
            openai_headers.push(("OpenAI-Project".to_string(), project));
        }
        openai_headers.extend(o.headers.unwrap_or_default());
        let openai = OpenAiEndpoint {
            name: "openai".into(),
            base_url: parse_url(
                "openai.baseUrl",
                &o.base_url
                    .or_else(|| env_nonempty("OPENAI_BASE_URL"))
                    .unwrap_or_else(|| OPENAI_DEFAULT_BASE_URL.into()),
            )?,
            api_key: o
                .api_key
                .or_else(|| env("OPENAI_API_KEY"))
                .and_then(Secret::new),
            headers: openai_headers,
            is_openai: true,
        };

        let a = options.anthropic.unwrap_or_default();
        let anthropic = AnthropicEndpoint {
            base_url: parse_url(
                "anthropic.baseUrl",
                &a.base_url
                    .or_else(|| env_nonempty("ANTHROPIC_BASE_URL"))
                    .unwrap_or_else(|| ANTHROPIC_DEFAULT_BASE_URL.into()),
            )?,
            api_key: a
                .api_key
                .or_else(|| env("ANTHROPIC_API_KEY"))
                .and_then(Secret::new),
            headers: a.headers.unwrap_or_default().into_iter().collect(),
        };

        let bedrock =
            BedrockEndpoint::resolve(options.bedrock.unwrap_or_default(), env, read_file)?;

        let mut compatible = BTreeMap::new();
        for (name, c) in options.compatible.unwrap_or_default() {
            if name.is_empty() || name.contains('/') {
                return Err(Error::config(format!(
                    "compatible endpoint name '{name}' is not usable: names are used as the model prefix 'name/model', so they must be non-empty and contain no '/'."
                )));
            }
            if RESERVED_NAMES.contains(&name.as_str()) {
                return Err(Error::config(format!(
                    "compatible endpoint name '{name}' is taken by a built-in provider; choose another name (e.g. '{name}-compat')."
                )));
            }
            let endpoint = OpenAiEndpoint {
                base_url: parse_url(&format!("compatible.{name}.baseUrl"), &c.base_url)?,
                api_key: c.api_key.and_then(Secret::new),
                headers: c.headers.unwrap_or_default().into_iter().collect(),
                is_openai: false,
                name: name.clone(),
            };
            compatible.insert(name, endpoint);
        }

        let routes = options.routes.unwrap_or_default().into_iter().collect();
        let timeout = Duration::from_millis(match options.timeout_ms {
            Some(0) => {
                return Err(Error::config(
                    "timeoutMs must be greater than 0 (milliseconds for a whole request).",
                ))
            }
            Some(ms) => ms,
            None => DEFAULT_TIMEOUT_MS,
        });
        let retry = {
            let r = options.retry.unwrap_or_default();
            let default = RetryPolicy::default();
            RetryPolicy {
                max_retries: r.max_retries.unwrap_or(default.max_retries),
                initial_delay: r
                    .initial_delay_ms
                    .map_or(default.initial_delay, Duration::from_millis),
                max_delay: r
                    .max_delay_ms
                    .map_or(default.max_delay, Duration::from_millis),
            }
        };
        Ok(Config {
            retry,
            openai,
            anthropic,
            bedrock,
            compatible,
            routes,
            timeout,
        })
    }

    /// Parses the options JSON handed over by JavaScript and resolves it against the process
    /// environment.
    pub fn from_json(text: &str) -> Result<Self> {
        let options: ProxyOptions = if text.trim().is_empty() {
            ProxyOptions::default()
        } else {
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(|e| {
                    let at = e.path().to_string();
                    let at = if at == "." {
                        String::new()
                    } else {
                        format!(" at `{at}`")
                    };
                    // serde_json's "at line 1 column 9" points into JSON the user never wrote.
                    let detail = e.inner().to_string();
                    let detail = detail.split(" at line ").next().unwrap_or_default();
                    Error::config(format!("Invalid LLMProxy options{at}: {detail}."))
                })?
        };
        Self::resolve_with_files(options, &|k| std::env::var(k).ok(), &|path| {
            std::fs::read_to_string(path).ok()
        })
    }
}

pub(crate) fn parse_url(field: &str, value: &str) -> Result<Url> {
    // A URL may carry credentials (user:password@host); such a value is not repeated back.
    let shown = if value.contains('@') {
        String::new()
    } else {
        format!(" '{value}'")
    };
    let url = Url::parse(value).map_err(|e| {
        Error::config(format!(
            "{field}{shown} is not a valid URL ({e}); write it like 'https://api.example.com/v1'."
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "{field}{shown} must start with http:// or https://."
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_supplies_defaults() {
        let env = env_of(&[
            ("OPENAI_API_KEY", "sk-env"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("OPENAI_ORG_ID", "org-1"),
            ("ANTHROPIC_API_KEY", "ak"),
        ]);
        let c = Config::resolve(ProxyOptions::default(), &env).unwrap();
        assert_eq!(c.openai.api_key.as_ref().unwrap().expose(), "sk-env");
        assert_eq!(
            c.openai.chat_completions_url(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(
            c.openai.headers,
            vec![("OpenAI-Organization".into(), "org-1".into())]
        );
        assert_eq!(c.anthropic.api_key.as_ref().unwrap().expose(), "ak");
        let opts: ProxyOptions = serde_json::from_str(
            r#"{"compatible":{"az":{"baseUrl":"https://x.test/openai/v1/?api-version=2024-10-21"}}}"#,
        )
        .unwrap();
        let c2 = Config::resolve(opts, &env).unwrap();
        assert_eq!(
            c2.compatible["az"].chat_completions_url(),
            "https://x.test/openai/v1/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(c.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
    }

    #[test]
    fn explicit_options_win_over_the_environment() {
        let env = env_of(&[("OPENAI_API_KEY", "sk-env")]);
        let opts: ProxyOptions = serde_json::from_str(
            r#"{"openai":{"apiKey":"sk-explicit","baseUrl":"https://example.test/v1/"}}"#,
        )
        .unwrap();
        let c = Config::resolve(opts, &env).unwrap();
        assert_eq!(c.openai.api_key.unwrap().expose(), "sk-explicit");
        assert_eq!(c.openai.base_url.as_str(), "https://example.test/v1/");
    }

    #[test]
    fn bad_options_are_config_errors_that_name_the_field() {
        let e = Config::from_json(r#"{"openAI":{}}"#).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::Config);
        assert!(e.message.contains("openAI"), "{}", e.message);
        let e =
            Config::from_json(r#"{"compatible":{"groq":{"baseUrl":"not a url"}}}"#).unwrap_err();
        assert!(
            e.message.contains("compatible.groq.baseUrl"),
            "{}",
            e.message
        );
        let e =
            Config::from_json(r#"{"compatible":{"openai":{"baseUrl":"http://x"}}}"#).unwrap_err();
        assert!(
            e.message.contains("taken by a built-in provider"),
            "{}",
            e.message
        );
        let e = Config::from_json(r#"{"compatible":{"g":{"baseUrl":"ftp://user:pw@host"}}}"#)
            .unwrap_err();
        assert!(!e.message.contains("pw"), "{}", e.message);
        let e = Config::from_json(r#"{"retry":{"maxRetires":1}}"#).unwrap_err();
        assert!(e.message.contains("maxRetires"), "{}", e.message);
        let c = Config::from_json(r#"{"retry":{"maxRetries":5,"initialDelayMs":10}}"#).unwrap();
        assert_eq!(c.retry.max_retries, 5);
        assert_eq!(c.retry.initial_delay, Duration::from_millis(10));
        assert_eq!(c.retry.max_delay, RetryPolicy::default().max_delay);
        let e = Config::from_json(r#"{"timeoutMs":0}"#).unwrap_err();
        assert!(e.message.contains("timeoutMs"), "{}", e.message);
    }

    #[test]
    fn debug_output_hides_keys() {
        let opts: ProxyOptions = serde_json::from_str(
            r#"{"openai":{"apiKey":"sk-hidden-value"},"compatible":{"g":{"baseUrl":"http://x","apiKey":"gsk-secret"}}}"#,
        )
        .unwrap();
        let c = Config::resolve(opts, &|_| None).unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("sk-hidden-value") && !dbg.contains("gsk-secret"),
            "{dbg}"
        );
    }
}
