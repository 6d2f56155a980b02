//! Credentials and the scrubbing of text that might echo them.

use std::fmt;

/// A credential. It has no `Display` and its `Debug` shows nothing of the value, so it cannot end up
/// in an error message or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty or blank value: an empty key is treated as no key.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        if value.trim().is_empty() {
            None
        } else {
            Some(Secret(value))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

const MASK: &str = "[redacted]";

/// Removes credentials from text that came from elsewhere (a provider's error message, say): every
/// occurrence of the given secrets, and anything shaped like an API key (`sk-…`, `sk-ant-…`), which
/// providers echo back in part ("Incorrect API key provided: sk-abc***xyz").
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let s = secret.expose();
        if s.len() < 4 {
            continue;
        }
        // As written, and as it appears inside JSON text that could not be parsed (a cut or
        // non-JSON body quoting JSON): escaped, with or without `/` as `\/`. AWS secrets and
        // session tokens contain `/` and `+`.
        let escaped = serde_json::to_string(s).unwrap_or_default();
        let escaped = escaped[1..escaped.len() - 1].to_string();
        let slashes = escaped.replace('/', "\\/");
        for form in [s, &escaped, &slashes] {
            if out.contains(form) {
                out = out.replace(form, MASK);
            }
        }
    }
    redact_key_shapes(&out)
}

/// [`redact`] applied to every string (keys included) inside a JSON value.
pub fn redact_json(value: &mut serde_json::Value, secrets: &[&Secret]) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = redact(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, secrets)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                redact_json(&mut v, secrets);
                map.insert(redact(&k, secrets), v);
            }
        }
        _ => {}
    }
}

fn redact_key_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_key_start(rest) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')))
            .unwrap_or(tail.len());
        out.push_str(MASK);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Start of an `sk-` token that stands as a word of its own.
fn find_key_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("sk-").map(|i| i + from) {
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'-');
        if at_word_start {
            return Some(i);
        }
        from = i + 3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-live-123456").unwrap();
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{:?}", Some(&s)).contains("123456"));
    }

    #[test]
    fn blank_values_are_no_secret() {
        assert!(Secret::new("").is_none());
        assert!(Secret::new("  ").is_none());
    }

    #[test]
    fn removes_configured_secrets_and_key_shapes() {
        let s = Secret::new("my-private-token-42").unwrap();
        let text = "bad token my-private-token-42; Incorrect API key provided: sk-proj-ab12***xy_9. Check it.";
        let out = redact(text, &[&s]);
        assert_eq!(
            out,
            "bad token [redacted]; Incorrect API key provided: [redacted]. Check it."
        );
    }

    #[test]
    fn json_strings_are_scrubbed_after_unescaping() {
        let s = Secret::new("tok/AbCdEf0123456789+xyz").unwrap();
        // The provider escaped the '/', so the raw text does not contain the key; the value does.
        let mut v: serde_json::Value =
            serde_json::from_str(r#"{"error":{"message":"token tok\/AbCdEf0123456789+xyz revoked","tok/AbCdEf0123456789+xyz":1}}"#)
                .unwrap();
        redact_json(&mut v, &[&s]);
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "token [redacted] revoked", "[redacted]": 1}})
        );
    }

    // Found by tests/hostile.rs: a body that is not JSON (an event-stream frame read as a whole
    // answer, a cut JSON body) quoting a session token with `/` escaped as `\/` kept it.
    #[test]
    fn escaped_forms_in_unparsed_text_are_removed() {
        let s = Secret::new("IQoJ/token+abc\"q").unwrap();
        let text = r#"{"message":"token IQoJ\/token+abc\"q and IQoJ/token+abc\"q"#;
        assert_eq!(
            redact(text, &[&s]),
            r#"{"message":"token [redacted] and [redacted]"#
        );
    }

    #[test]
    fn leaves_words_that_merely_contain_sk() {
        let out = redact("task-sk-1 risk-free disk-based", &[]);
        assert_eq!(out, "task-sk-1 risk-free disk-based");
    }
}
