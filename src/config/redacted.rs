//! `Debug` forms of option values that may hold a credential: a key, a base URL with a password
//! (`http://user:password@host`) or a token in its query string, a header a user added for a
//! gateway's key. What they print is safe to log.

use std::fmt;

const MASK: &str = "[redacted]";

/// Query parameters whose values are not shown: names that carry a credential in practice
/// (`api-key`, `key`, `access_token`, `sig` of an Azure SAS URL, `X-Amz-Signature`…).
const CREDENTIAL_QUERY_NAMES: [&str; 9] = [
    "key",
    "token",
    "secret",
    "sig",
    "auth",
    "pass",
    "pwd",
    "credential",
    "session",
];

/// An optional credential: `Some("[redacted]")` or `None`, never the value.
pub fn secret(value: &Option<String>) -> Option<&'static str> {
    value.as_ref().map(|_| MASK)
}

/// Header names only: a header's value may be a key (`api-key`, `Authorization`).
pub fn header_names<'a>(names: impl IntoIterator<Item = &'a String>) -> HeaderNames {
    HeaderNames(names.into_iter().cloned().collect())
}

pub struct HeaderNames(Vec<String>);

impl fmt::Debug for HeaderNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|name| (name, MASK)))
            .finish()
    }
}

/// A parsed URL, shown without its user name and password and without the values of query
/// parameters named like credentials.
pub struct Url<'a>(pub &'a reqwest::Url);

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", shown(self.0))
    }
}

/// A URL as given (not yet parsed): shown as [`Url`] when it parses, else not at all, since a value
/// that is not a URL may be a key pasted into the wrong option.
pub struct UrlText<'a>(pub &'a str);

impl fmt::Debug for UrlText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match reqwest::Url::parse(self.0) {
            Ok(url) => Url(&url).fmt(f),
            Err(_) => write!(
                f,
                "[not a URL, not shown: {} characters]",
                self.0.chars().count()
            ),
        }
    }
}

fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let had_userinfo = !url.username().is_empty() || url.password().is_some();
    // Both fail only for URLs that cannot have a user (no host), which then have none.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    if let Some(query) = url.query() {
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if names_a_credential(name) => format!("{name}={MASK}"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
    }
    let mut text = url.to_string();
    if had_userinfo {
        if let Some(i) = text.find("://") {
            text.insert_str(i + 3, &format!("{MASK}@"));
        }
    }
    // And anything shaped like an API key elsewhere (a path segment, a fragment).
    crate::secret::redact(&text, &[])
}

fn names_a_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_QUERY_NAMES.iter().any(|n| name.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        format!("{:?}", UrlText(text))
    }

    #[test]
    fn urls_show_no_user_password_or_credential_parameter() {
        assert_eq!(
            show("https://user:pa55word@gw.test:8443/v1?api-version=2024-10-21&api-key=abc123#x"),
            "\"https://[redacted]@gw.test:8443/v1?api-version=2024-10-21&api-key=[redacted]#x\""
        );
        // A token given as the user name (git-style) is hidden too.
        assert_eq!(
            show("https://ghp_token1234@host.test/"),
            "\"https://[redacted]@host.test/\""
        );
        assert_eq!(
            show("http://h.test/v1?sig=s1&Token=t1&X-Amz-Signature=s2&X-Amz-Credential=c&keep=1"),
            "\"http://h.test/v1?sig=[redacted]&Token=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&keep=1\""
        );
        assert_eq!(
            show("http://h.test/keys/sk-proj-abcdef123456/v1"),
            "\"http://h.test/keys/[redacted]/v1\""
        );
        assert_eq!(
            show("https://api.openai.com/v1"),
            "\"https://api.openai.com/v1\""
        );
        assert_eq!(
            show("sk-proj-NotAUrl123"),
            "[not a URL, not shown: 18 characters]"
        );
    }

    #[test]
    fn secrets_and_header_values_are_masked() {
        assert_eq!(
            format!("{:?}", secret(&Some("k".into()))),
            "Some(\"[redacted]\")"
        );
        assert_eq!(format!("{:?}", secret(&None)), "None");
        let headers = [("api-key".to_string(), "value-123".to_string())];
        let dbg = format!("{:?}", header_names(headers.iter().map(|(name, _)| name)));
        assert_eq!(dbg, "{\"api-key\": \"[redacted]\"}");
    }
}
