//! `new LLMProxy(options)`: the options as given, and the resolved configuration with the official
//! SDKs' environment variables as defaults.

pub mod aws;
pub(crate) mod redacted;

pub use aws::BedrockEndpoint;

use crate::client::retry::RetryPolicy;

pub use crate::error::TimeoutKind;
use crate::error::{quote, Error, ErrorCode, Result};
use crate::secret::Secret;
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// A whole non-streamed attempt, and (unless `firstChunkMs` says otherwise) the wait for a stream's
/// first chunk. As the official OpenAI and Anthropic SDKs: long enough for a slow reasoning model.
pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;
/// DNS, TCP and TLS to a provider. A healthy API host answers in well under a second; ten seconds
/// rides out a lossy network (a lost SYN is resent at 1 s, 3 s and 7 s) and fails a black hole fast.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Silence in a stream that has begun. A model that is generating sends tokens, and providers send
/// keep-alive pings (Anthropic's `ping` events) while it works; CDN proxies commonly drop
/// connections silent for about 100 s anyway, so two minutes of nothing means a dead stream.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 120_000;

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
    /// The old name of `timeouts.requestMs`, still accepted.
    pub timeout_ms: Option<u64>,
    pub timeouts: Option<TimeoutOptions>,
    pub retry: Option<RetryOptions>,
    /// Requested model → the models to try, in order, when it fails in a way that retrying could
    /// have fixed.
    pub fallbacks: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutOptions {
    pub request_ms: Option<u64>,
    pub connect_ms: Option<u64>,
    pub first_chunk_ms: Option<u64>,
    pub idle_ms: Option<u64>,
}

/// The options of one call (`generate(request, options)` / `stream(request, options)`) that reach
/// the core; each replaces the proxy's own for this call.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallOptions {
    /// The models to try after the requested one (replaces the proxy's `fallbacks` entry for it;
    /// `[]` turns fallbacks off for the call).
    pub fallbacks: Option<Vec<String>>,
    /// `connectMs` is not accepted here: it belongs to the connection pool.
    pub timeouts: Option<TimeoutOptions>,
    pub retry: Option<RetryOptions>,
}

impl CallOptions {
    /// Parses the call options JSON handed over by JavaScript; a mistake is an `invalid_request`
    /// naming the field.
    pub fn from_json(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(CallOptions::default());
        }
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| Error::invalid_request(describe_json_error("call options", &e)))
    }
}

/// The time limits of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A whole non-streamed attempt: connecting, sending, waiting, reading the answer.
    pub request: Duration,
    /// Connecting (DNS, TCP, TLS); a setting of the connection pool the attempt uses.
    pub connect: Duration,
    /// From sending a stream's request to its first chunk; `None`: the same as `request`.
    pub first_chunk: Option<Duration>,
    /// Between two reads of a stream that has delivered its first chunk; `None`: 120 s, or
    /// `request` when that is shorter.
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            connect: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            first_chunk: None,
            idle: None,
        }
    }
}

impl Timeouts {
    pub fn first_chunk(&self) -> Duration {
        self.first_chunk.unwrap_or(self.request)
    }

    /// Lowering `request` lowers the default idle limit with it: no silence outlasts a request.
    pub fn idle(&self) -> Duration {
        self.idle
            .unwrap_or_else(|| Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS).min(self.request))
    }

    /// These limits with the fields `options` sets replaced. `field` prefixes the names in
    /// messages (`timeouts`); `code` is the error code of a bad value.
    fn with(mut self, options: &TimeoutOptions, field: &str, code: ErrorCode) -> Result<Self> {
        let ms = |value: Option<u64>, name: &str| -> Result<Option<Duration>> {
            match value {
                Some(0) => Err(Error::new(
                    code,
                    format!("{field}.{name} must be greater than 0 (milliseconds)."),
                )),
                other => Ok(other.map(Duration::from_millis)),
            }
        };
        if let Some(d) = ms(options.request_ms, "requestMs")? {
            self.request = d;
        }
        if let Some(d) = ms(options.connect_ms, "connectMs")? {
            self.connect = d;
        }
        if let Some(d) = ms(options.first_chunk_ms, "firstChunkMs")? {
            self.first_chunk = Some(d);
        }
        if let Some(d) = ms(options.idle_ms, "idleMs")? {
            self.idle = Some(d);
        }
        Ok(self)
    }

    /// The limits of one call: the proxy's, with the call's `timeouts` applied.
    pub fn for_call(&self, options: Option<&TimeoutOptions>) -> Result<Self> {
        let Some(options) = options else {
            return Ok(*self);
        };
        if options.connect_ms.is_some() {
            return Err(Error::invalid_request(
                "timeouts.connectMs cannot be set per call: it is a setting of the connection pool. Set it in the LLMProxy options.",
            ));
        }
        self.with(options, "timeouts", ErrorCode::InvalidRequest)
    }
}

impl RetryPolicy {
    /// This policy with the fields `options` sets replaced.
    pub fn with_options(self, options: Option<&RetryOptions>) -> Self {
        let Some(r) = options else { return self };
        RetryPolicy {
            max_retries: r.max_retries.unwrap_or(self.max_retries),
            initial_delay: r
                .initial_delay_ms
                .map_or(self.initial_delay, Duration::from_millis),
            max_delay: r.max_delay_ms.map_or(self.max_delay, Duration::from_millis),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryOptions {
    pub max_retries: Option<u32>,
    pub initial_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenAiOptions {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnthropicOptions {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BedrockOptions {
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompatibleOptions {
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

// The options as given hold raw keys, and a base URL may carry a password: their Debug shows
// neither (see `redacted`). Each impl destructures its struct, so a field added later cannot be
// printed by accident: it fails to compile until it is listed here.

impl fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OpenAiOptions {
            api_key,
            base_url,
            organization,
            project,
            headers,
        } = self;
        f.debug_struct("OpenAiOptions")
            .field("api_key", &redacted::secret(api_key))
            .field("base_url", &base_url.as_deref().map(redacted::UrlText))
            .field("organization", organization)
            .field("project", project)
            .field(
                "headers",
                &headers.as_ref().map(|h| redacted::header_names(h.keys())),
            )
            .finish()
    }
}

impl fmt::Debug for AnthropicOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AnthropicOptions {
            api_key,
            base_url,
            headers,
        } = self;
        f.debug_struct("AnthropicOptions")
            .field("api_key", &redacted::secret(api_key))
            .field("base_url", &base_url.as_deref().map(redacted::UrlText))
            .field(
                "headers",
                &headers.as_ref().map(|h| redacted::header_names(h.keys())),
            )
            .finish()
    }
}

impl fmt::Debug for BedrockOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BedrockOptions {
            region,
            access_key_id,
            secret_access_key,
            session_token,
            endpoint,
        } = self;
        f.debug_struct("BedrockOptions")
            .field("region", region)
            // An access key id is not secret (AWS prints it in errors and consoles).
            .field("access_key_id", access_key_id)
            .field("secret_access_key", &redacted::secret(secret_access_key))
            .field("session_token", &redacted::secret(session_token))
            .field("endpoint", &endpoint.as_deref().map(redacted::UrlText))
            .finish()
    }
}

impl fmt::Debug for CompatibleOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CompatibleOptions {
            base_url,
            api_key,
            headers,
        } = self;
        f.debug_struct("CompatibleOptions")
            .field("base_url", &redacted::UrlText(base_url))
            .field("api_key", &redacted::secret(api_key))
            .field(
                "headers",
                &headers.as_ref().map(|h| redacted::header_names(h.keys())),
            )
            .finish()
    }
}

/// One OpenAI-format endpoint: OpenAI itself or a compatible server.
#[derive(Clone)]
pub struct OpenAiEndpoint {
    /// `openai` or the compatible endpoint's name.
    pub name: String,
    pub base_url: Url,
    pub api_key: Option<Secret>,
    /// Extra headers (OpenAI-Organization, OpenAI-Project, the user's own).
    pub headers: Vec<(String, String)>,
    pub is_openai: bool,
}

/// Without the key, a password in the base URL, or header values (a user's header may carry a key).
impl fmt::Debug for OpenAiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OpenAiEndpoint {
            name,
            base_url,
            api_key,
            headers,
            is_openai,
        } = self;
        f.debug_struct("OpenAiEndpoint")
            .field("name", name)
            .field("base_url", &redacted::Url(base_url))
            .field("api_key", api_key)
            .field(
                "headers",
                &redacted::header_names(headers.iter().map(|(name, _)| name)),
            )
            .field("is_openai", is_openai)
            .finish()
    }
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

#[derive(Clone)]
pub struct AnthropicEndpoint {
    pub base_url: Url,
    pub api_key: Option<Secret>,
    pub headers: Vec<(String, String)>,
}

/// As [`OpenAiEndpoint`]'s.
impl fmt::Debug for AnthropicEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AnthropicEndpoint {
            base_url,
            api_key,
            headers,
        } = self;
        f.debug_struct("AnthropicEndpoint")
            .field("base_url", &redacted::Url(base_url))
            .field("api_key", api_key)
            .field(
                "headers",
                &redacted::header_names(headers.iter().map(|(name, _)| name)),
            )
            .finish()
    }
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
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// Requested model (trimmed) → the models to try after it, each checked to resolve.
    pub fallbacks: BTreeMap<String, Vec<String>>,
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
        let (field, base_url) = url_source(
            o.base_url,
            "openai.baseUrl",
            "OPENAI_BASE_URL",
            &env_nonempty,
            OPENAI_DEFAULT_BASE_URL,
        );
        let openai = OpenAiEndpoint {
            name: "openai".into(),
            base_url: parse_url(&field, &base_url)?,
            api_key: o
                .api_key
                .or_else(|| env("OPENAI_API_KEY"))
                .and_then(Secret::new),
            headers: openai_headers,
            is_openai: true,
        };

        let a = options.anthropic.unwrap_or_default();
        let (field, base_url) = url_source(
            a.base_url,
            "anthropic.baseUrl",
            "ANTHROPIC_BASE_URL",
            &env_nonempty,
            ANTHROPIC_DEFAULT_BASE_URL,
        );
        let anthropic = AnthropicEndpoint {
            base_url: parse_url(&field, &base_url)?,
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
        let timeout_options = options.timeouts.unwrap_or_default();
        let mut timeouts = Timeouts::default();
        match (options.timeout_ms, timeout_options.request_ms) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "timeoutMs is the old name of timeouts.requestMs; give only one of them.",
                ))
            }
            (Some(0), None) => {
                return Err(Error::config(
                    "timeoutMs must be greater than 0 (milliseconds for a whole request).",
                ))
            }
            (Some(ms), None) => timeouts.request = Duration::from_millis(ms),
            _ => {}
        }
        let timeouts = timeouts.with(&timeout_options, "timeouts", ErrorCode::Config)?;
        let retry = RetryPolicy::default().with_options(options.retry.as_ref());
        let mut config = Config {
            retry,
            openai,
            anthropic,
            bedrock,
            compatible,
            routes,
            timeouts,
            fallbacks: BTreeMap::new(),
        };
        config.fallbacks = check_fallbacks(options.fallbacks.unwrap_or_default(), &config)?;
        Ok(config)
    }

    /// Parses the options JSON handed over by JavaScript and resolves it against the process
    /// environment.
    pub fn from_json(text: &str) -> Result<Self> {
        let options: ProxyOptions = if text.trim().is_empty() {
            ProxyOptions::default()
        } else {
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(|e| Error::config(describe_json_error("LLMProxy options", &e)))?
        };
        Self::resolve_with_files(options, &|k| std::env::var(k).ok(), &|path| {
            std::fs::read_to_string(path).ok()
        })
    }
}

/// `Invalid LLMProxy options at `retry.maxRetires`: unknown field …`.
fn describe_json_error(what: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let at = e.path().to_string();
    let at = if at == "." {
        String::new()
    } else {
        format!(" at `{at}`")
    };
    // serde_json's "at line 1 column 9" points into JSON the user never wrote.
    let detail = e.inner().to_string();
    let detail = without_quoted_value(detail.split(" at line ").next().unwrap_or_default());
    format!("Invalid {what}{at}: {detail}.")
}

/// serde repeats a misplaced value (`invalid type: string "sk-…", expected …`); an option value may
/// be a credential given in the wrong place, so it is left out.
fn without_quoted_value(detail: &str) -> String {
    match (detail.find(" \""), detail.rfind('"')) {
        (Some(start), Some(end)) if end > start + 1 => {
            format!("{}{}", &detail[..start], &detail[end + 1..])
        }
        _ => detail.to_string(),
    }
}

/// Checks that every fallback model (and every model fallbacks are given for) resolves, so that a
/// typo shows at construction rather than during an outage.
fn check_fallbacks(
    fallbacks: BTreeMap<String, Vec<String>>,
    config: &Config,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut checked = BTreeMap::new();
    for (model, list) in fallbacks {
        let key = model.trim().to_string();
        if key.is_empty() {
            return Err(Error::config(
                "fallbacks: a model name is empty; write { 'gpt-4o': ['claude-sonnet-4-5'] }.",
            ));
        }
        crate::resolver::resolve(&key, config).map_err(|e| {
            Error::config(format!(
                "fallbacks are given for {}, which cannot be routed: {}",
                quote(&key),
                e.message
            ))
        })?;
        let mut models = Vec::with_capacity(list.len());
        for (i, fallback) in list.iter().enumerate() {
            let fallback = fallback.trim();
            crate::resolver::resolve(fallback, config).map_err(|e| {
                Error::config(format!(
                    "fallbacks[{}][{i}] {} cannot be routed: {}",
                    quote(&key),
                    quote(fallback),
                    e.message
                ))
            })?;
            models.push(fallback.to_string());
        }
        if checked.insert(key.clone(), models).is_some() {
            return Err(Error::config(format!(
                "fallbacks: {} is given twice (names are compared without surrounding spaces).",
                quote(&key)
            )));
        }
    }
    Ok(checked)
}

/// Parses a URL option. The value is never repeated in the error: a URL may carry a password
/// (`user:password@host`), and a value that is no URL at all may well be a key pasted into the
/// wrong option. The error names the option (`field`), what is wrong, and what a URL looks like.
pub(crate) fn parse_url(field: &str, value: &str) -> Result<Url> {
    const EXAMPLE: &str = "write it like 'https://api.example.com/v1'";
    const NOT_REPEATED: &str =
        "(The value is not repeated here, in case it is a key given in the wrong place.)";
    let url = Url::parse(value).map_err(|e| {
        let why = if value.contains("://") {
            format!("{e}")
        } else {
            format!("{e}: it does not start with http:// or https://")
        };
        Error::config(format!(
            "{field} is not a valid URL ({why}); {EXAMPLE}. {NOT_REPEATED}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        // Only a scheme that is a known one is named: any other may be the start of a key
        // (`abc:…` parses as a URL of scheme `abc`).
        const KNOWN: [&str; 12] = [
            "ftp", "ftps", "ws", "wss", "file", "grpc", "grpcs", "unix", "tcp", "socks5", "data",
            "mailto",
        ];
        let scheme = if KNOWN.contains(&url.scheme()) {
            format!(", not {}:", url.scheme())
        } else {
            String::new()
        };
        return Err(Error::config(format!(
            "{field} must start with http:// or https://{scheme}; {EXAMPLE}. {NOT_REPEATED}"
        )));
    }
    Ok(url)
}

/// The value of a URL option: the option, else the environment variable that defaults it, else
/// `default`; with how an error names its source.
fn url_source(
    option: Option<String>,
    field: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
    default: &str,
) -> (String, String) {
    match (option, env(var)) {
        (Some(value), _) => (field.to_string(), value),
        (None, Some(value)) => (
            format!("The environment variable {var} (the default of {field})"),
            value,
        ),
        (None, None) => (field.to_string(), default.to_string()),
    }
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
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(
            c.timeouts.request,
            Duration::from_millis(DEFAULT_TIMEOUT_MS)
        );
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
    fn timeouts_have_production_defaults_and_each_can_be_set() {
        let c = Config::from_json("{}").unwrap();
        let t = c.timeouts;
        assert_eq!(t.request, Duration::from_secs(600));
        assert_eq!(t.connect, Duration::from_secs(10));
        assert_eq!(t.first_chunk(), Duration::from_secs(600), "the request's");
        assert_eq!(t.idle(), Duration::from_secs(120));

        let c = Config::from_json(
            r#"{"timeouts":{"requestMs":1000,"connectMs":200,"firstChunkMs":300,"idleMs":400}}"#,
        )
        .unwrap();
        let t = c.timeouts;
        assert_eq!(
            (t.request, t.connect, t.first_chunk(), t.idle()),
            (
                Duration::from_millis(1000),
                Duration::from_millis(200),
                Duration::from_millis(300),
                Duration::from_millis(400)
            )
        );

        // timeoutMs is requestMs by its old name; a lower request limit lowers the defaults of
        // the first-chunk and idle limits with it.
        for json in [
            r#"{"timeoutMs":5000}"#,
            r#"{"timeouts":{"requestMs":5000}}"#,
        ] {
            let t = Config::from_json(json).unwrap().timeouts;
            assert_eq!(t.request, Duration::from_secs(5), "{json}");
            assert_eq!(t.first_chunk(), Duration::from_secs(5), "{json}");
            assert_eq!(t.idle(), Duration::from_secs(5), "{json}");
            assert_eq!(t.connect, Duration::from_secs(10), "{json}");
        }
        let t = Config::from_json(r#"{"timeouts":{"requestMs":900000}}"#)
            .unwrap()
            .timeouts;
        assert_eq!(
            t.idle(),
            Duration::from_secs(120),
            "not raised above its default"
        );
    }

    #[test]
    fn bad_timeouts_are_config_errors_that_name_the_limit() {
        for (json, says) in [
            (
                r#"{"timeouts":{"idleMs":0}}"#,
                "timeouts.idleMs must be greater than 0",
            ),
            (r#"{"timeouts":{"connectMs":0}}"#, "timeouts.connectMs"),
            (
                r#"{"timeouts":{"firstChunkMs":-5}}"#,
                "timeouts.firstChunkMs",
            ),
            (r#"{"timeouts":{"requestMs":"10"}}"#, "timeouts.requestMs"),
            (r#"{"timeouts":{"idle":10}}"#, "idle"),
            (
                r#"{"timeoutMs":10,"timeouts":{"requestMs":10}}"#,
                "old name of timeouts.requestMs",
            ),
        ] {
            let e = Config::from_json(json).unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{json}");
            assert!(e.message.contains(says), "{json}: {}", e.message);
        }
    }

    #[test]
    fn a_call_replaces_timeouts_and_retry_field_by_field_but_not_the_connect_limit() {
        let c = Config::from_json(
            r#"{"timeouts":{"requestMs":60000,"idleMs":9000},"retry":{"maxRetries":4}}"#,
        )
        .unwrap();
        let call = CallOptions::from_json(
            r#"{"timeouts":{"requestMs":2000},"retry":{"initialDelayMs":1}}"#,
        )
        .unwrap();
        let t = c.timeouts.for_call(call.timeouts.as_ref()).unwrap();
        assert_eq!(t.request, Duration::from_secs(2));
        assert_eq!(
            t.first_chunk(),
            Duration::from_secs(2),
            "follows the call's request"
        );
        assert_eq!(t.idle(), Duration::from_secs(9), "the proxy's, explicit");
        let r = c.retry.with_options(call.retry.as_ref());
        assert_eq!(r.max_retries, 4);
        assert_eq!(r.initial_delay, Duration::from_millis(1));
        assert_eq!(c.timeouts.for_call(None).unwrap(), c.timeouts);

        let call = CallOptions::from_json(r#"{"timeouts":{"connectMs":5}}"#).unwrap();
        let e = c.timeouts.for_call(call.timeouts.as_ref()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(
            e.message.contains("connectMs cannot be set per call"),
            "{}",
            e.message
        );
        let call = CallOptions::from_json(r#"{"timeouts":{"idleMs":0}}"#).unwrap();
        let e = c.timeouts.for_call(call.timeouts.as_ref()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);

        for (json, says) in [
            (r#"{"fallbacks":"gpt-4o"}"#, "at `fallbacks`"),
            (r#"{"fallbacks":[1]}"#, "at `fallbacks[0]`"),
            (r#"{"signal":{}}"#, "signal"),
        ] {
            let e = CallOptions::from_json(json).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{json}");
            assert!(
                e.message.starts_with("Invalid call options"),
                "{}",
                e.message
            );
            assert!(e.message.contains(says), "{json}: {}", e.message);
        }
        assert!(CallOptions::from_json("").unwrap().fallbacks.is_none());
    }

    #[test]
    fn fallbacks_are_checked_when_the_proxy_is_made() {
        let c = Config::from_json(
            r#"{"compatible":{"groq":{"baseUrl":"http://x"}},"fallbacks":{" gpt-4o ":[" claude-sonnet-4-5","groq/llama","mock/echo"]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.fallbacks["gpt-4o"],
            vec!["claude-sonnet-4-5", "groq/llama", "mock/echo"],
            "names are kept trimmed"
        );
        for (json, says) in [
            (
                r#"{"fallbacks":{"gpt-4o":["claud-sonet"]}}"#,
                "fallbacks['gpt-4o'][0] 'claud-sonet' cannot be routed",
            ),
            (r#"{"fallbacks":{"gpt-4o":[""]}}"#, "fallbacks['gpt-4o'][0]"),
            (
                r#"{"fallbacks":{"gtp-4o":["gpt-4o"]}}"#,
                "'gtp-4o', which cannot be routed",
            ),
            (r#"{"fallbacks":{"":["gpt-4o"]}}"#, "a model name is empty"),
            (
                r#"{"fallbacks":{"gpt-4o":["mock/a"],"gpt-4o ":["mock/b"]}}"#,
                "given twice",
            ),
            (
                r#"{"fallbacks":{"gpt-4o":"claude-sonnet-4-5"}}"#,
                "fallbacks.gpt-4o",
            ),
        ] {
            let e = Config::from_json(json).unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{json}");
            assert!(e.message.contains(says), "{json}: {}", e.message);
        }
    }

    #[test]
    fn a_credential_in_the_wrong_place_is_not_repeated() {
        for json in [
            r#"{"openai":"sk-proj-SecretValue123"}"#,
            r#"{"bedrock":"AwsSecretValue123"}"#,
            r#"{"compatible":{"x":"CompatSecret123"}}"#,
        ] {
            let e = Config::from_json(json).unwrap_err();
            assert!(!e.message.contains("Secret"), "{}", e.message);
            assert!(
                e.message.contains("invalid type: string, expected"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_bad_url_option_is_named_but_its_value_is_not_repeated() {
        for (json, field) in [
            (
                r#"{"openai":{"baseUrl":"sk-proj-PastedKey12345"}}"#,
                "openai.baseUrl",
            ),
            (
                r#"{"anthropic":{"baseUrl":"PastedKey12345/with+slash"}}"#,
                "anthropic.baseUrl",
            ),
            (
                r#"{"compatible":{"g":{"baseUrl":"PastedKey12345:abc"}}}"#,
                "compatible.g.baseUrl",
            ),
            (
                r#"{"bedrock":{"endpoint":"http://[PastedKey12345"}}"#,
                "bedrock.endpoint",
            ),
        ] {
            let e = Config::from_json(json).unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{json}");
            assert!(e.message.starts_with(field), "{json}: {}", e.message);
            assert!(!e.message.contains("PastedKey"), "{json}: {}", e.message);
            assert!(
                e.message.contains("'https://api.example.com/v1'"),
                "{json}: {}",
                e.message
            );
        }
        let e = Config::from_json(r#"{"openai":{"baseUrl":"api.example.com/v1"}}"#).unwrap_err();
        assert!(
            e.message
                .contains("it does not start with http:// or https://"),
            "{}",
            e.message
        );
        // A well-known scheme is named; any other might be the start of a key.
        let e = Config::from_json(r#"{"openai":{"baseUrl":"wss://h.test/v1"}}"#).unwrap_err();
        assert!(
            e.message
                .contains("must start with http:// or https://, not wss:"),
            "{}",
            e.message
        );
        let e = Config::from_json(r#"{"openai":{"baseUrl":"PastedKey12345:x@y"}}"#).unwrap_err();
        assert!(!e.message.contains("PastedKey"), "{}", e.message);

        // A value from the environment names its variable.
        let env = env_of(&[("OPENAI_BASE_URL", "sk-FromTheEnvironment1")]);
        let e = Config::resolve(ProxyOptions::default(), &env).unwrap_err();
        assert!(
            e.message.starts_with(
                "The environment variable OPENAI_BASE_URL (the default of openai.baseUrl)"
            ),
            "{}",
            e.message
        );
        assert!(!e.message.contains("FromTheEnvironment"), "{}", e.message);
        let env = env_of(&[("AWS_ENDPOINT_URL", "ftp://x")]);
        let e = Config::resolve(ProxyOptions::default(), &env).unwrap_err();
        assert!(
            e.message
                .starts_with("The environment variable AWS_ENDPOINT_URL (the default of bedrock.endpoint) must start with http:// or https://, not ftp:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn debug_output_of_the_options_hides_keys_url_passwords_and_header_values() {
        let opts: ProxyOptions = serde_json::from_str(
            r#"{"openai":{"apiKey":"sk-hidden-1","baseUrl":"https://u:pw-hidden-2@h.test/v1","organization":"org-shown","headers":{"api-key":"hidden-3"}},
                "anthropic":{"apiKey":"hidden-4","baseUrl":"hidden-5-not-a-url"},
                "compatible":{"g":{"baseUrl":"http://h.test/v1?api-key=hidden-6&api-version=shown-7","apiKey":"hidden-8"}},
                "bedrock":{"accessKeyId":"AKIDSHOWN","secretAccessKey":"hidden-9","sessionToken":"hidden-10","endpoint":"http://x:hidden-11@h.test"}}"#,
        )
        .unwrap();
        for dbg in [format!("{opts:?}"), format!("{opts:#?}")] {
            assert!(!dbg.contains("hidden"), "{dbg}");
            for shown in ["org-shown", "shown-7", "AKIDSHOWN", "api-key", "h.test"] {
                assert!(dbg.contains(shown), "{shown}: {dbg}");
            }
        }
        let mut opts = opts;
        opts.anthropic.as_mut().unwrap().base_url = None;
        let c = Config::resolve(opts, &|_| None).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hidden"), "{dbg}");
        assert!(dbg.contains("[redacted]@h.test"), "{dbg}");
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
