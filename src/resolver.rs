//! Model string + configuration → which provider serves it and under which upstream model id.
//!
//! Order: an explicit `provider/model` prefix, then the configured routes, then the built-in
//! catalogue, then the only configured compatible endpoint; otherwise `unsupported_model`.

use crate::config::Config;
use crate::error::{quote, Error, ErrorCode, Result};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Bedrock,
    Mock,
}

/// How a route was found; shown by `resolve()` so users can see why a model went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    Prefix,
    Route,
    Catalogue,
    OnlyCompatible,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `openai`, `anthropic`, `bedrock`, `mock`, or the name of a compatible endpoint.
    pub provider: String,
    pub kind: ProviderKind,
    /// The model id sent upstream.
    pub model: String,
    pub matched_by: MatchedBy,
    /// Bedrock through the Converse API (`bedrock-converse/…`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub converse: bool,
}

impl Route {
    fn new(provider: &str, kind: ProviderKind, model: &str, matched_by: MatchedBy) -> Self {
        Route {
            provider: provider.to_string(),
            kind,
            model: model.to_string(),
            matched_by,
            converse: false,
        }
    }
}

pub fn resolve(model: &str, config: &Config) -> Result<Route> {
    let model = model.trim();
    if model.is_empty() {
        return Err(Error::invalid_request(
            "The model name is empty. Pass a model such as 'gpt-4o' or 'mock/echo'.",
        ));
    }
    if let Some(route) = by_prefix(model, config, MatchedBy::Prefix)? {
        return Ok(route);
    }
    if let Some(target) = configured_route(model, config) {
        return match by_prefix(target, config, MatchedBy::Route)? {
            Some(route) => Ok(route),
            None => match from_catalogue(target) {
                Some(mut route) => {
                    route.matched_by = MatchedBy::Route;
                    Ok(route)
                }
                None => Err(Error::config(format!(
                    "The route for {} points to {}, which names no provider. Write the target as 'provider/model', e.g. 'openai/gpt-4o' or 'groq/llama-3.1-70b'.",
                    quote(model),
                    quote(target)
                ))),
            },
        };
    }
    if let Some(route) = from_catalogue(model) {
        return Ok(route);
    }
    if config.compatible.len() == 1 {
        let name = config.compatible.keys().next().expect("one entry");
        return Ok(Route::new(
            name,
            ProviderKind::OpenaiCompatible,
            model,
            MatchedBy::OnlyCompatible,
        ));
    }
    // The name is quoted once (cut when huge); the ways to route it do not repeat it.
    let names: Vec<&str> = config.compatible.keys().map(String::as_str).collect();
    let compatible_hint = if names.is_empty() {
        "configure an OpenAI-compatible endpoint with `compatible: { name: { baseUrl, apiKey } }` and call it as 'name/…'".to_string()
    } else {
        format!(
            "put one of your compatible endpoints before it ({})",
            names
                .iter()
                .map(|n| format!("'{n}/…'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(Error::new(
        ErrorCode::UnsupportedModel,
        format!(
            "No provider is known for model {}. Put its provider before it ('openai/…', 'anthropic/…' or 'bedrock/…'), add it to `routes`, or {compatible_hint}.",
            quote(model)
        ),
    )
    .with_retryable(false))
}

fn by_prefix(model: &str, config: &Config, matched_by: MatchedBy) -> Result<Option<Route>> {
    let Some((prefix, rest)) = model.split_once('/') else {
        return Ok(None);
    };
    let kind = match prefix {
        "openai" => ProviderKind::Openai,
        "anthropic" => ProviderKind::Anthropic,
        "bedrock" | "bedrock-converse" => ProviderKind::Bedrock,
        "mock" => ProviderKind::Mock,
        name if config.compatible.contains_key(name) => ProviderKind::OpenaiCompatible,
        // Model ids of compatible servers contain '/' too ('meta-llama/Llama-3-70b').
        _ => return Ok(None),
    };
    if rest.trim().is_empty() && kind != ProviderKind::Mock {
        return Err(Error::invalid_request(format!(
            "The model {} names the provider '{prefix}' but no model after the '/'.",
            quote(model)
        )));
    }
    let provider = if prefix == "bedrock-converse" {
        "bedrock"
    } else {
        prefix
    };
    let mut route = Route::new(provider, kind, rest, matched_by);
    route.converse = prefix == "bedrock-converse";
    Ok(Some(route))
}

/// Exact names first, then the longest `prefix*` pattern.
fn configured_route<'a>(model: &str, config: &'a Config) -> Option<&'a str> {
    if let Some((_, target)) = config.routes.iter().find(|(k, _)| k == model) {
        return Some(target);
    }
    config
        .routes
        .iter()
        .filter_map(|(k, target)| {
            let prefix = k.strip_suffix('*')?;
            model.starts_with(prefix).then_some((prefix.len(), target))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, target)| target.as_str())
}

const BEDROCK_REGION_PREFIXES: [&str; 8] = [
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
];
const BEDROCK_VENDORS: [&str; 12] = [
    "anthropic.",
    "meta.",
    "amazon.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "qwen.",
    "openai.",
    "writer.",
    "twelvelabs.",
    "stability.",
];

fn from_catalogue(model: &str) -> Option<Route> {
    let catalogue = |kind, provider| Some(Route::new(provider, kind, model, MatchedBy::Catalogue));
    if is_openai_model(model) {
        return catalogue(ProviderKind::Openai, "openai");
    }
    if model.starts_with("claude-") {
        return catalogue(ProviderKind::Anthropic, "anthropic");
    }
    if model.starts_with("arn:aws:bedrock:") || model.starts_with("arn:aws-us-gov:bedrock:") {
        return catalogue(ProviderKind::Bedrock, "bedrock");
    }
    let unprefixed = BEDROCK_REGION_PREFIXES
        .iter()
        .find_map(|p| model.strip_prefix(p))
        .unwrap_or(model);
    if BEDROCK_VENDORS.iter().any(|v| unprefixed.starts_with(v)) {
        return catalogue(ProviderKind::Bedrock, "bedrock");
    }
    None
}

/// OpenAI's own model families: `gpt-*`, `chatgpt-*`, and the reasoning series `o1`, `o3`, `o4-mini`…
pub fn is_openai_model(model: &str) -> bool {
    model.starts_with("gpt-") || model.starts_with("chatgpt-") || is_o_series(model)
}

fn is_o_series(model: &str) -> bool {
    let b = model.as_bytes();
    b.len() >= 2 && b[0] == b'o' && b[1].is_ascii_digit() && (b.len() == 2 || b[2] == b'-')
}

/// Reasoning models take `max_completion_tokens` and reject sampling parameters.
pub fn is_openai_reasoning_model(model: &str) -> bool {
    is_o_series(model) || (model.starts_with("gpt-5") && !model.starts_with("gpt-5-chat"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyOptions;

    fn config(json: &str) -> Config {
        let opts: ProxyOptions = serde_json::from_str(json).unwrap();
        Config::resolve(opts, &|_| None).unwrap()
    }

    fn route(model: &str, cfg: &Config) -> (String, ProviderKind, String, MatchedBy) {
        let r = resolve(model, cfg).unwrap();
        (r.provider, r.kind, r.model, r.matched_by)
    }

    #[test]
    fn catalogue_knows_the_built_in_families() {
        let c = config("{}");
        for m in [
            "gpt-4o",
            "gpt-5-mini",
            "o1",
            "o3-mini",
            "o4-mini",
            "chatgpt-4o-latest",
        ] {
            assert_eq!(route(m, &c).1, ProviderKind::Openai, "{m}");
        }
        for m in ["claude-sonnet-4-5", "claude-3-5-haiku-20241022"] {
            assert_eq!(route(m, &c).1, ProviderKind::Anthropic, "{m}");
        }
        for m in [
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "meta.llama3-1-70b-instruct-v1:0",
            "amazon.nova-pro-v1:0",
            "mistral.mistral-large-2402-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x",
        ] {
            assert_eq!(route(m, &c).1, ProviderKind::Bedrock, "{m}");
        }
        assert!(resolve("omni-model", &c).is_err());
        assert!(resolve("o", &c).is_err());
    }

    #[test]
    fn explicit_prefix_wins_and_is_stripped() {
        let c = config(r#"{"compatible":{"groq":{"baseUrl":"http://127.0.0.1:1/v1"}}}"#);
        assert_eq!(
            route("groq/llama-3.1-70b", &c),
            (
                "groq".into(),
                ProviderKind::OpenaiCompatible,
                "llama-3.1-70b".into(),
                MatchedBy::Prefix
            )
        );
        assert_eq!(
            route("openai/gpt-4o", &c),
            (
                "openai".into(),
                ProviderKind::Openai,
                "gpt-4o".into(),
                MatchedBy::Prefix
            )
        );
        assert_eq!(route("anthropic/claude-x", &c).1, ProviderKind::Anthropic);
        let r = resolve("bedrock-converse/anthropic.claude-3-haiku", &c).unwrap();
        assert!(r.converse && r.provider == "bedrock");
        assert_eq!(route("mock/echo", &c).1, ProviderKind::Mock);
        // A model id with a slash that is not a provider goes to the only compatible endpoint whole.
        assert_eq!(
            route("meta-llama/Llama-3-70b", &c),
            (
                "groq".into(),
                ProviderKind::OpenaiCompatible,
                "meta-llama/Llama-3-70b".into(),
                MatchedBy::OnlyCompatible
            )
        );
    }

    #[test]
    fn routes_apply_before_the_catalogue() {
        let c = config(
            r#"{"compatible":{"a":{"baseUrl":"http://x"},"b":{"baseUrl":"http://y"}},
                "routes":{"gpt-4o":"a/my-gpt","llama*":"b/llama-hosted","llama-3*":"a/llama3","fast":"claude-haiku-4-5"}}"#,
        );
        assert_eq!(
            route("gpt-4o", &c),
            (
                "a".into(),
                ProviderKind::OpenaiCompatible,
                "my-gpt".into(),
                MatchedBy::Route
            )
        );
        assert_eq!(route("llama-2", &c).0, "b");
        assert_eq!(route("llama-3.1", &c).0, "a");
        assert_eq!(
            route("fast", &c),
            (
                "anthropic".into(),
                ProviderKind::Anthropic,
                "claude-haiku-4-5".into(),
                MatchedBy::Route
            )
        );
        // Two compatible endpoints: an unknown model is not guessed.
        let e = resolve("mystery", &c).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedModel);
        assert!(
            e.message.contains("'a/…'") && e.message.contains("'b/…'"),
            "{}",
            e.message
        );
        assert_eq!(e.message.matches("mystery").count(), 1, "{}", e.message);
    }

    #[test]
    fn unknown_model_error_says_how_to_route_it() {
        let e = resolve("my-model", &config("{}")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedModel);
        assert!(!e.retryable);
        assert!(e.message.contains("'my-model'"), "{}", e.message);
        assert!(e.message.contains("'openai/…'"), "{}", e.message);
        assert!(e.message.contains("routes"));
        assert!(e.message.contains("compatible"));
    }

    #[test]
    fn an_unknown_model_is_named_once_and_a_huge_name_is_cut() {
        let c = config(r#"{"compatible":{"a":{"baseUrl":"http://x"},"b":{"baseUrl":"http://y"}}}"#);
        let e = resolve("my-model", &c).unwrap_err();
        assert_eq!(e.message.matches("my-model").count(), 1, "{}", e.message);

        let huge = format!("{}{}", "é".repeat(150), "z".repeat(1_000_000));
        let e = resolve(&huge, &c).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedModel);
        let shown = format!(
            "'{}{}…' (1000150 characters)",
            "é".repeat(150),
            "z".repeat(50)
        );
        assert!(e.message.contains(&shown), "{}", e.message);
        assert_eq!(e.message.matches(&"z".repeat(50)).count(), 1, "once");
        assert!(e.message.len() < 1000, "{} bytes", e.message.len());

        // A name of exactly the limit is quoted whole.
        let limit = "m".repeat(crate::error::MAX_QUOTED_CHARS);
        let e = resolve(&limit, &c).unwrap_err();
        assert!(e.message.contains(&format!("'{limit}'")), "{}", e.message);

        // The other errors that quote a model name cut it the same way.
        let c = config(r#"{"routes":{"z*":"nowhere"}}"#);
        let e = resolve(&huge[300..], &c).unwrap_err();
        assert!(e.message.contains("characters)"), "{}", e.message);
        assert!(e.message.len() < 1000, "{} bytes", e.message.len());
        let e = resolve(&format!("openai/{}", "z".repeat(10_000)), &c);
        assert!(
            e.is_ok(),
            "a long name after a provider is the provider's to judge"
        );
    }

    #[test]
    fn reasoning_models() {
        for m in [
            "o1",
            "o1-mini",
            "o3",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.1",
        ] {
            assert!(is_openai_reasoning_model(m), "{m}");
        }
        for m in ["gpt-4o", "gpt-4.1", "gpt-5-chat-latest", "omni"] {
            assert!(!is_openai_reasoning_model(m), "{m}");
        }
    }
}
