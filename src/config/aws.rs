//! Bedrock's region, endpoint and credentials: explicit options, else the AWS environment
//! variables, else the shared credentials and config files (`AWS_PROFILE` picks the profile).

use super::BedrockOptions;
use crate::client::sigv4::AwsCredentials;
use crate::error::{Error, Result};
use crate::secret::Secret;
use reqwest::Url;
use std::path::PathBuf;

#[derive(Clone)]
pub struct BedrockEndpoint {
    pub region: Option<String>,
    pub credentials: Option<AwsCredentials>,
    /// Where the credentials were looked for, for the error when none were found.
    pub tried: Vec<String>,
    /// Overrides `https://bedrock-runtime.{region}.amazonaws.com`.
    pub endpoint: Option<Url>,
}

/// Without the secret, the session token, or a password in the endpoint URL.
impl std::fmt::Debug for BedrockEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let BedrockEndpoint {
            region,
            credentials,
            tried,
            endpoint,
        } = self;
        f.debug_struct("BedrockEndpoint")
            .field("region", region)
            .field("credentials", credentials)
            .field("tried", tried)
            .field("endpoint", &endpoint.as_ref().map(super::redacted::Url))
            .finish()
    }
}

impl BedrockEndpoint {
    pub fn resolve(
        options: BedrockOptions,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&PathBuf) -> Option<String>,
    ) -> Result<Self> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let home = env("HOME").or_else(|| env("USERPROFILE"));
        let credentials_file = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                home.as_ref()
                    .map(|h| PathBuf::from(h).join(".aws").join("credentials"))
            });
        let config_file = env("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| {
            home.as_ref()
                .map(|h| PathBuf::from(h).join(".aws").join("config"))
        });

        let mut tried = Vec::new();
        let credentials = if let (Some(id), Some(secret)) = (
            options.access_key_id.clone(),
            options.secret_access_key.clone(),
        ) {
            Some(credentials(id, secret, options.session_token.clone())?)
        } else {
            tried.push("the bedrock.accessKeyId/secretAccessKey options".to_string());
            if let (Some(id), Some(secret)) =
                (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
            {
                Some(credentials(id, secret, env("AWS_SESSION_TOKEN"))?)
            } else {
                tried.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string());
                let from_file = credentials_file.as_ref().and_then(|path| {
                    let text = read_file(path)?;
                    let section = ini_section(&text, &profile)?;
                    let get =
                        |k: &str| section.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    Some((
                        get("aws_access_key_id")?,
                        get("aws_secret_access_key")?,
                        get("aws_session_token"),
                    ))
                });
                match from_file {
                    Some((id, secret, token)) => Some(credentials(id, secret, token)?),
                    None => {
                        tried.push(match &credentials_file {
                            Some(p) => format!("profile '{profile}' in {}", p.display()),
                            None => "the shared credentials file (no home directory)".to_string(),
                        });
                        None
                    }
                }
            }
        };

        let region = options
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| {
                let text = read_file(config_file.as_ref()?)?;
                let name = if profile == "default" {
                    "default".to_string()
                } else {
                    format!("profile {profile}")
                };
                let section = ini_section(&text, &name)?;
                section
                    .into_iter()
                    .find(|(k, _)| k == "region")
                    .map(|(_, v)| v)
            });

        let endpoint = match options.endpoint.clone() {
            Some(url) => Some(("bedrock.endpoint".to_string(), url)),
            None => ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|var| {
                    env(var).map(|url| {
                        let field = format!(
                            "The environment variable {var} (the default of bedrock.endpoint)"
                        );
                        (field, url)
                    })
                }),
        }
        .map(|(field, url)| super::parse_url(&field, &url))
        .transpose()?;
        Ok(BedrockEndpoint {
            region,
            credentials,
            tried,
            endpoint,
        })
    }

    pub fn region(&self) -> Result<&str> {
        self.region.as_deref().ok_or_else(|| {
            Error::config(
                "No AWS region for Bedrock. Pass `new LLMProxy({ bedrock: { region: 'us-east-1' } })`, or set AWS_REGION (or AWS_DEFAULT_REGION, or region in ~/.aws/config).",
            )
            .with_provider("bedrock")
        })
    }

    pub fn credentials(&self) -> Result<&AwsCredentials> {
        self.credentials.as_ref().ok_or_else(|| {
            Error::config(format!(
                "No AWS credentials for Bedrock. Tried {}. Pass `bedrock: {{ accessKeyId, secretAccessKey }}` or set the AWS_ variables.",
                self.tried.join(", then ")
            ))
            .with_provider("bedrock")
        })
    }

    /// `{endpoint}/model/{model}/{action}`.
    pub fn url(&self, model_segment: &str, action: &str) -> Result<String> {
        let base = match &self.endpoint {
            Some(url) => url.clone(),
            None => {
                let region = self.region()?;
                super::parse_url(
                    "bedrock region",
                    &format!("https://bedrock-runtime.{region}.amazonaws.com"),
                )?
            }
        };
        Ok(super::join_path(
            &base,
            &format!("model/{model_segment}/{action}"),
        ))
    }
}

fn credentials(id: String, secret: String, token: Option<String>) -> Result<AwsCredentials> {
    let secret_access_key = Secret::new(secret).ok_or_else(|| {
        Error::config("The AWS secret access key is empty.").with_provider("bedrock")
    })?;
    Ok(AwsCredentials {
        access_key_id: id.trim().to_string(),
        secret_access_key,
        session_token: token.and_then(Secret::new),
    })
}

/// The `key = value` pairs of `[name]` in an INI file (as the AWS shared files write them).
fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut in_section = false;
    let mut found = false;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = header.trim() == name;
            found |= in_section;
            continue;
        }
        if in_section {
            if let Some((k, v)) = line.split_once('=') {
                pairs.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    found.then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        options: BedrockOptions,
        vars: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> BedrockEndpoint {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), v.to_string()))
            .collect();
        BedrockEndpoint::resolve(options, &|k| vars.get(k).cloned(), &|p| {
            files.get(p).cloned()
        })
        .unwrap()
    }

    const CREDENTIALS: &str = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = secretdefault\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=secretwork\naws_session_token=tokenwork\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-1\n";

    #[test]
    fn explicit_options_come_first() {
        let e = resolve(
            BedrockOptions {
                region: Some("us-west-2".into()),
                access_key_id: Some("AKIDOPT".into()),
                secret_access_key: Some("s".into()),
                session_token: Some("t".into()),
                endpoint: None,
            },
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
                ("AWS_REGION", "eu-central-1"),
            ],
            &[],
        );
        let c = e.credentials().unwrap();
        assert_eq!(c.access_key_id, "AKIDOPT");
        assert_eq!(c.session_token.as_ref().unwrap().expose(), "t");
        assert_eq!(e.region().unwrap(), "us-west-2");
        assert_eq!(
            e.url("anthropic.claude-3-haiku-20240307-v1%3A0", "invoke").unwrap(),
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
        );
    }

    #[test]
    fn then_the_environment() {
        let e = resolve(
            BedrockOptions::default(),
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
                ("AWS_SESSION_TOKEN", "tok"),
                ("AWS_DEFAULT_REGION", "eu-central-1"),
                ("HOME", "/home/u"),
            ],
            &[("/home/u/.aws/credentials", CREDENTIALS)],
        );
        assert_eq!(e.credentials().unwrap().access_key_id, "AKIDENV");
        assert_eq!(e.region().unwrap(), "eu-central-1");
    }

    #[test]
    fn then_the_shared_files_with_aws_profile() {
        let files = [
            ("/home/u/.aws/credentials", CREDENTIALS),
            ("/home/u/.aws/config", CONFIG),
        ];
        let e = resolve(BedrockOptions::default(), &[("HOME", "/home/u")], &files);
        assert_eq!(e.credentials().unwrap().access_key_id, "AKIDDEFAULT");
        assert_eq!(e.region().unwrap(), "eu-west-1");
        let e = resolve(
            BedrockOptions::default(),
            &[("HOME", "/home/u"), ("AWS_PROFILE", "work")],
            &files,
        );
        let c = e.credentials().unwrap();
        assert_eq!(c.access_key_id, "AKIDWORK");
        assert_eq!(c.session_token.as_ref().unwrap().expose(), "tokenwork");
        assert_eq!(e.region().unwrap(), "ap-south-1");
        let e = resolve(
            BedrockOptions::default(),
            &[("AWS_SHARED_CREDENTIALS_FILE", "/elsewhere/creds")],
            &[("/elsewhere/creds", CREDENTIALS)],
        );
        assert_eq!(e.credentials().unwrap().access_key_id, "AKIDDEFAULT");
    }

    #[test]
    fn the_error_says_what_was_tried() {
        let e = resolve(
            BedrockOptions::default(),
            &[("HOME", "/home/u"), ("AWS_PROFILE", "nope")],
            &[],
        );
        let err = e.credentials().unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::Config);
        for part in [
            "bedrock.accessKeyId",
            "AWS_ACCESS_KEY_ID",
            "profile 'nope' in /home/u/.aws/credentials",
        ] {
            assert!(err.message.contains(part), "{}", err.message);
        }
        assert!(e.region().unwrap_err().message.contains("AWS_REGION"));
    }

    #[test]
    fn endpoint_override_for_vpc_endpoints_and_tests() {
        let e = resolve(
            BedrockOptions {
                endpoint: Some("http://127.0.0.1:4010".into()),
                ..Default::default()
            },
            &[],
            &[],
        );
        assert_eq!(
            e.url("m", "converse").unwrap(),
            "http://127.0.0.1:4010/model/m/converse"
        );
        let e = resolve(
            BedrockOptions::default(),
            &[("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "https://vpce.example")],
            &[],
        );
        assert_eq!(
            e.url("m", "invoke").unwrap(),
            "https://vpce.example/model/m/invoke"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let e = resolve(
            BedrockOptions {
                access_key_id: Some("AKIDOPT".into()),
                secret_access_key: Some("very-secret-value".into()),
                session_token: Some("very-secret-token".into()),
                ..Default::default()
            },
            &[],
            &[],
        );
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
    }
}
