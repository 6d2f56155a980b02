//! `LLM_PROXY_LOG`: what each call did, on stderr.
//!
//! `info` writes one line per call when it ends (answered, failed, or cancelled: aborted, a stream
//! left by `break`, or dropped); `debug` also one line per attempt (where it went, how big, how it
//! went, how long it took, the wait before the next one) and one per move to a fallback model.
//! Lines look like
//!
//! ```text
//! llm-proxy debug attempt id=1 attempt=1 model=gpt-4o provider=openai upstream=gpt-4o url=https://api.openai.com/v1/chat/completions bytes=132 status=429 took=88ms result=error error=rate_limit retry_in=1000ms message="openai returned HTTP 429: …"
//! llm-proxy debug attempt id=1 attempt=2 model=gpt-4o provider=openai upstream=gpt-4o url=https://api.openai.com/v1/chat/completions bytes=132 status=200 headers=412ms took=1302ms result=ok
//! llm-proxy info  generate id=1 result=ok model=gpt-4o provider=openai upstream=gpt-4o answered=gpt-4o-2024-08-06 status=200 attempts=2 headers=412ms total=2391ms
//! ```
//!
//! `llm-proxy <level> <event>`, then `key=value` fields in a fixed order; a field appears only when
//! it has a value, and a value with spaces, quotes or `=` is quoted as a JSON string. Each line
//! goes through [`crate::secret::redact`] with the credentials of the call's requests, and URLs
//! are shown as `Debug` of options shows them (no user or password, no credential-named query
//! values); headers are never shown. Each line is one `write` to stderr, so lines of concurrent
//! calls do not interleave.
//!
//! The level is read from the environment when a [`Proxy`](crate::proxy::Proxy) is made. When it is
//! off, a call's [`CallLog`] is empty and every hook is a single `None` check.

use crate::client::http::UpstreamRequest;
use crate::client::stream::ChunkStream;
use crate::config::redacted::UrlText;
use crate::error::Error;
use crate::resolver::Route;
use crate::secret::{redact, Secret};
use crate::types::response::ChatCompletionChunk;
use futures_util::{Stream, StreamExt};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

/// The environment variable that sets the level.
pub const ENV: &str = "LLM_PROXY_LOG";

/// Error messages in log lines are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;
/// Other values (model names) are cut to this many characters.
const MAX_VALUE_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    #[default]
    Off,
    Info,
    Debug,
}

impl Level {
    /// The level `LLM_PROXY_LOG` asks for. A value that is not a level turns logging off and says
    /// so on stderr, once per process.
    pub fn from_env() -> Level {
        let value = std::env::var_os(ENV).map(|v| v.to_string_lossy().into_owned());
        match Level::parse(value.as_deref()) {
            Ok(level) => level,
            Err(unknown) => {
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    write_stderr(&unknown_level_line(&unknown));
                }
                Level::Off
            }
        }
    }

    /// `off` (or unset, or empty), `info` or `debug`, in any case; anything else is returned as the
    /// error.
    pub fn parse(value: Option<&str>) -> Result<Level, String> {
        let Some(value) = value else {
            return Ok(Level::Off);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Ok(Level::Off),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(value.to_string()),
        }
    }

    /// As it stands in a line: padded to one width, so that the events line up.
    fn label(self) -> &'static str {
        match self {
            Level::Off => "off  ",
            Level::Info => "info ",
            Level::Debug => "debug",
        }
    }
}

fn unknown_level_line(value: &str) -> String {
    let mut line = Line::new("warn ", "config", None);
    line.field(ENV, cut(value, 40));
    line.text
        .push_str(" is not one of off, info, debug: logging is off");
    redact(&line.text, &[]) + "\n"
}

/// A line being written: `llm-proxy <level> <event>` and its fields.
struct Line {
    text: String,
}

impl Line {
    fn new(level: &str, event: &str, id: Option<u64>) -> Line {
        let mut text = String::with_capacity(256);
        text.push_str("llm-proxy ");
        text.push_str(level);
        text.push(' ');
        text.push_str(event);
        let mut line = Line { text };
        if let Some(id) = id {
            line.field("id", id);
        }
        line
    }

    /// ` key=value`; the value quoted as a JSON string when it is empty or holds whitespace, a
    /// quote, `=` or a control character, so a line splits on spaces unambiguously.
    fn field(&mut self, key: &str, value: impl fmt::Display) {
        let value = value.to_string();
        self.text.push(' ');
        self.text.push_str(key);
        self.text.push('=');
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
        if plain {
            self.text.push_str(&value);
        } else {
            self.text
                .push_str(&serde_json::to_string(&value).unwrap_or_default());
        }
    }

    fn opt(&mut self, key: &str, value: Option<impl fmt::Display>) {
        if let Some(value) = value {
            self.field(key, value);
        }
    }

    fn ms(&mut self, key: &str, value: Option<Duration>) {
        if let Some(d) = value {
            self.field(key, format_args!("{}ms", d.as_millis()));
        }
    }

    /// The error's code, which time limit fired, the wait before the next attempt, and the
    /// message (cut).
    fn error(&mut self, e: &Error, retry_in: Option<Duration>) {
        self.field("error", e.code);
        self.opt(
            "timeout",
            e.timeout
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
        );
        if !e.tried.is_empty() {
            self.field("tried", e.tried.len());
        }
        self.ms("retry_in", retry_in);
        self.field("message", cut(&e.message, MAX_MESSAGE_CHARS));
    }

    /// The finished line: credentials removed, newline added.
    fn finish(self, secrets: &[Secret]) -> String {
        let refs: Vec<&Secret> = secrets.iter().collect();
        let mut text = redact(&self.text, &refs);
        text.push('\n');
        text
    }
}

/// `text` up to `max` characters, with `…` when cut; newlines and tabs become spaces.
fn cut(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Writes a whole line with one `write` (a line under the pipe buffer size, 4 KiB, is then never
/// mixed with another process's or thread's output). A full non-blocking pipe is waited for a
/// little; a line that cannot be written is dropped rather than failing the call.
fn write_stderr(line: &str) {
    use std::io::{ErrorKind, Write};
    let mut err = std::io::stderr().lock();
    let mut rest = line.as_bytes();
    let mut waits = 0;
    while !rest.is_empty() {
        match err.write(rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock && waits < 100 => {
                waits += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return,
        }
    }
}

enum Sink {
    Stderr,
    #[cfg(test)]
    Memory(Arc<Mutex<Vec<String>>>),
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The log of one call: empty when logging is off. Clones share the call.
#[derive(Clone, Default)]
pub struct CallLog(Option<Arc<Inner>>);

impl fmt::Debug for CallLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("CallLog(off)"),
            Some(inner) => write!(f, "CallLog(id={})", inner.id),
        }
    }
}

struct Inner {
    level: Level,
    sink: Sink,
    id: u64,
    /// `generate` or `stream`.
    kind: &'static str,
    requested: String,
    started: Instant,
    state: Mutex<State>,
}

/// What is known so far; the model fields are of the model being tried.
#[derive(Default)]
struct State {
    model: Option<String>,
    provider: Option<String>,
    upstream: Option<String>,
    url: Option<String>,
    bytes: Option<usize>,
    /// The credentials of every request of the call, removed from each line.
    secrets: Vec<Secret>,
    /// Attempts on the model being tried.
    attempts: u32,
    attempt_started: Option<Instant>,
    status: Option<u16>,
    headers: Option<Duration>,
    first_chunk: Option<Duration>,
    /// The model the answer names (`gpt-4o-2024-08-06` for `gpt-4o`).
    answered: Option<String>,
    chunks: u64,
    ended: bool,
}

impl CallLog {
    /// The log of a call of `kind` (`generate` or `stream`) for `model`; empty when `level` is off.
    pub fn start(level: Level, kind: &'static str, model: &str) -> CallLog {
        if level == Level::Off {
            return CallLog(None);
        }
        CallLog::with_sink(level, kind, model, Sink::Stderr)
    }

    fn with_sink(level: Level, kind: &'static str, model: &str, sink: Sink) -> CallLog {
        CallLog(Some(Arc::new(Inner {
            level,
            sink,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            requested: model.trim().to_string(),
            started: Instant::now(),
            state: Mutex::new(State::default()),
        })))
    }

    /// A model of the call is about to be asked: `request` is what will be sent (`None` for the
    /// in-process mock, which answers in one attempt).
    pub fn model(&self, model: &str, route: &Route, request: Option<&UpstreamRequest>) {
        let Some(inner) = &self.0 else { return };
        let mut st = inner.lock();
        st.model = Some(model.to_string());
        st.provider = Some(route.provider.clone());
        st.upstream = Some(route.model.clone());
        st.url = request.map(|r| {
            format!("{:?}", UrlText(&r.url))
                .trim_matches('"')
                .to_string()
        });
        st.bytes = request.map(|r| r.body.len());
        if let Some(r) = request {
            st.secrets.extend(r.secrets.iter().cloned());
            // An `Authorization: Bearer <key>` value holds the key itself, already listed; the
            // whole header value is removed too in case a provider echoes it.
            st.secrets
                .extend(r.secret_headers.iter().filter_map(|(_, v)| Secret::new(v)));
        }
        st.attempts = u32::from(request.is_none());
        st.attempt_started = None;
        st.status = None;
        st.headers = None;
        st.first_chunk = None;
    }

    /// Attempt `attempt` (1-based) of the model is being sent.
    pub fn attempt_started(&self, attempt: u32) {
        let Some(inner) = &self.0 else { return };
        let mut st = inner.lock();
        st.attempts = attempt;
        st.attempt_started = Some(Instant::now());
        st.status = None;
        st.headers = None;
        st.first_chunk = None;
    }

    /// The attempt's response head arrived with a success status.
    pub fn headers(&self, status: u16) {
        let Some(inner) = &self.0 else { return };
        let mut st = inner.lock();
        st.status = Some(status);
        st.headers = st.attempt_started.map(|t| t.elapsed());
    }

    /// The attempt's stream produced its first chunk.
    pub fn first_chunk(&self) {
        let Some(inner) = &self.0 else { return };
        let mut st = inner.lock();
        st.first_chunk = st.attempt_started.map(|t| t.elapsed());
    }

    /// The attempt ended, with `error` if it failed; `retry_in` is the wait before the next
    /// attempt, when there is one. A `debug` line.
    pub fn attempt_ended(&self, error: Option<&Error>, retry_in: Option<Duration>) {
        let Some(inner) = &self.0 else { return };
        if inner.level < Level::Debug {
            return;
        }
        let st = inner.lock();
        let mut line = inner.line(Level::Debug, "attempt");
        line.field("attempt", st.attempts);
        line.opt(
            "model",
            st.model.as_deref().map(|m| cut(m, MAX_VALUE_CHARS)),
        );
        line.opt("provider", st.provider.as_deref());
        line.opt(
            "upstream",
            st.upstream.as_deref().map(|m| cut(m, MAX_VALUE_CHARS)),
        );
        line.opt("url", st.url.as_deref());
        line.opt("bytes", st.bytes);
        line.opt("status", st.status.or(error.and_then(|e| e.status)));
        line.ms("headers", st.headers);
        line.ms("first_chunk", st.first_chunk);
        line.ms("took", st.attempt_started.map(|t| t.elapsed()));
        match error {
            None => line.field("result", "ok"),
            Some(e) => {
                line.field("result", "error");
                line.error(e, retry_in);
            }
        }
        inner.emit(line, &st.secrets);
    }

    /// The call moves on from `from`, which failed with `error` after `attempts` attempts (0: it
    /// could not be used), to the fallback `to`. A `debug` line.
    pub fn fallback(&self, from: &str, to: &str, error: &Error, attempts: u32) {
        let Some(inner) = &self.0 else { return };
        if inner.level < Level::Debug {
            return;
        }
        let st = inner.lock();
        let mut line = inner.line(Level::Debug, "fallback");
        line.field("from", cut(from, MAX_VALUE_CHARS));
        line.field("to", cut(to, MAX_VALUE_CHARS));
        line.field("attempts", attempts);
        line.error(error, None);
        inner.emit(line, &st.secrets);
    }

    /// The call answered; `answered_model` is the model the answer names. The `info` line.
    pub fn answered(&self, answered_model: &str) {
        let Some(inner) = &self.0 else { return };
        let mut st = inner.lock();
        st.answered = Some(answered_model.to_string());
        inner.end(&mut st, None);
    }

    /// The call failed with `error`, which is handed back. The `info` line.
    pub fn failed(&self, error: Error) -> Error {
        if let Some(inner) = &self.0 {
            inner.end(&mut inner.lock(), Some(&error));
        }
        error
    }

    /// `chunks`, counted; the `info` line is written when the stream ends or fails, or when it is
    /// dropped before (`result=cancelled`). Returned as it is when logging is off.
    pub fn watch(&self, chunks: ChunkStream) -> ChunkStream {
        match &self.0 {
            None => chunks,
            Some(inner) => Watched {
                chunks,
                log: inner.clone(),
            }
            .boxed(),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn line(&self, level: Level, event: &str) -> Line {
        Line::new(level.label(), event, Some(self.id))
    }

    fn emit(&self, line: Line, secrets: &[Secret]) {
        let text = line.finish(secrets);
        match &self.sink {
            Sink::Stderr => write_stderr(&text),
            #[cfg(test)]
            Sink::Memory(lines) => lines.lock().unwrap().push(text),
        }
    }

    /// The `info` line, once: `error` is `None` for an answer.
    fn end(&self, st: &mut State, error: Option<&Error>) {
        if st.ended {
            return;
        }
        st.ended = true;
        let result = match error {
            None => "ok",
            Some(_) => "error",
        };
        let line = self.end_line(st, result, error);
        self.emit(line, &st.secrets);
    }

    fn end_line(&self, st: &State, result: &str, error: Option<&Error>) -> Line {
        let mut line = self.line(Level::Info, self.kind);
        line.field("result", result);
        line.field("model", cut(&self.requested, MAX_VALUE_CHARS));
        if let Some(model) = st.model.as_deref().filter(|m| *m != self.requested) {
            line.field("fallback", cut(model, MAX_VALUE_CHARS));
        }
        let provider = error
            .and_then(|e| e.provider.as_deref())
            .or(st.provider.as_deref());
        line.opt("provider", provider);
        line.opt(
            "upstream",
            st.upstream.as_deref().map(|m| cut(m, MAX_VALUE_CHARS)),
        );
        if let Some(answered) = st
            .answered
            .as_deref()
            .filter(|a| Some(*a) != st.upstream.as_deref())
        {
            line.field("answered", cut(answered, MAX_VALUE_CHARS));
        }
        line.opt("status", st.status.or(error.and_then(|e| e.status)));
        if st.attempts > 0 {
            line.field("attempts", st.attempts);
        }
        line.ms("headers", st.headers);
        if self.kind == "stream" {
            line.ms("first_chunk", st.first_chunk);
            line.field("chunks", st.chunks);
        }
        line.ms("total", Some(self.started.elapsed()));
        if let Some(e) = error {
            line.error(e, None);
        }
        line
    }
}

impl Drop for Inner {
    /// A call whose end was not logged was dropped before it ended: aborted, or a stream left
    /// before its end.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if st.ended {
            return;
        }
        st.ended = true;
        let st = std::mem::take(st);
        let line = self.end_line(&st, "cancelled", None);
        self.emit(line, &st.secrets);
    }
}

/// A stream that reports its end to the call's log.
struct Watched {
    chunks: ChunkStream,
    log: Arc<Inner>,
}

impl Stream for Watched {
    type Item = crate::error::Result<ChatCompletionChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.chunks.poll_next_unpin(cx));
        let log = &self.log;
        let mut st = log.lock();
        match &item {
            Some(Ok(chunk)) => {
                if st.chunks == 0 {
                    st.answered = Some(chunk.model.clone());
                    if st.first_chunk.is_none() {
                        // The mock's stream, which has no attempt: from the call's start.
                        let since = st.attempt_started.unwrap_or(log.started);
                        st.first_chunk = Some(since.elapsed());
                    }
                }
                st.chunks += 1;
            }
            Some(Err(e)) => log.end(&mut st, Some(e)),
            None => log.end(&mut st, None),
        }
        drop(st);
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::http::UpstreamRequest;
    use crate::config::Timeouts;
    use crate::error::{ErrorCode, TimeoutKind};
    use crate::resolver::{MatchedBy, ProviderKind};
    use bytes::Bytes;

    fn capture(
        level: Level,
        kind: &'static str,
        model: &str,
    ) -> (CallLog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = CallLog::with_sink(level, kind, model, Sink::Memory(lines.clone()));
        (log, lines)
    }

    fn taken(lines: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        std::mem::take(&mut *lines.lock().unwrap())
    }

    fn route(provider: &str, model: &str) -> Route {
        Route {
            provider: provider.into(),
            kind: ProviderKind::OpenaiCompatible,
            model: model.into(),
            matched_by: MatchedBy::Prefix,
            converse: false,
        }
    }

    const KEY: &str = "gw-SECRET-key-0123456789";

    fn request(url: &str) -> UpstreamRequest {
        let key = Secret::new(KEY).unwrap();
        UpstreamRequest {
            provider: "gw".into(),
            url: url.into(),
            headers: vec![],
            secret_headers: vec![("authorization", format!("Bearer {KEY}"))],
            secrets: vec![key],
            body: Bytes::from_static(b"{\"model\":\"m\"}"),
            timeouts: Timeouts::default(),
            stream: false,
            accept: "application/json",
            aws: None,
            parse_error: crate::adapters::error_body::parse_error_body,
        }
    }

    /// `key=value` fields of a line (values unquoted); bare words are skipped.
    fn fields(line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = line.trim_end();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                return out;
            }
            let word_end = rest.find(' ').unwrap_or(rest.len());
            match rest[..word_end].split_once('=') {
                None => rest = &rest[word_end..],
                Some((key, _)) => {
                    let after = &rest[key.len() + 1..];
                    if after.starts_with('"') {
                        let mut de =
                            serde_json::Deserializer::from_str(after).into_iter::<String>();
                        out.push((key.to_string(), de.next().unwrap().unwrap()));
                        rest = &after[de.byte_offset()..];
                    } else {
                        let end = after.find(' ').unwrap_or(after.len());
                        out.push((key.to_string(), after[..end].to_string()));
                        rest = &after[end..];
                    }
                }
            }
        }
    }

    fn field(line: &str, key: &str) -> Option<String> {
        fields(line)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn levels_parse_in_any_case_and_anything_else_is_refused() {
        assert_eq!(Level::parse(None), Ok(Level::Off));
        for (text, level) in [
            ("", Level::Off),
            ("off", Level::Off),
            (" OFF ", Level::Off),
            ("info", Level::Info),
            ("Info", Level::Info),
            ("debug", Level::Debug),
            ("DEBUG\n", Level::Debug),
        ] {
            assert_eq!(Level::parse(Some(text)), Ok(level), "{text:?}");
        }
        assert_eq!(Level::parse(Some("verbose")), Err("verbose".into()));
        assert_eq!(Level::parse(Some("1")), Err("1".into()));
        assert!(Level::Debug > Level::Info && Level::Info > Level::Off);
        assert_eq!(
            unknown_level_line("trace"),
            "llm-proxy warn  config LLM_PROXY_LOG=trace is not one of off, info, debug: logging is off\n"
        );
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let mut line = Line::new("info ", "generate", Some(7));
        line.field("model", "gpt-4o");
        line.field("empty", "");
        line.field("message", "two words \"quoted\"\nnext");
        line.field("eq", "a=b");
        line.ms("total", Some(Duration::from_micros(12_700)));
        line.opt("none", None::<&str>);
        assert_eq!(
            line.finish(&[]),
            "llm-proxy info  generate id=7 model=gpt-4o empty=\"\" message=\"two words \\\"quoted\\\"\\nnext\" eq=\"a=b\" total=12ms\n"
        );
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("a\nb", 10), "a b");
    }

    #[test]
    fn off_is_empty_and_its_hooks_do_nothing() {
        let log = CallLog::start(Level::Off, "generate", "mock/x");
        assert!(log.0.is_none());
        log.attempt_started(1);
        log.headers(200);
        log.attempt_ended(None, None);
        log.answered("x");
        let e = log.failed(Error::new(ErrorCode::Timeout, "t"));
        assert_eq!(e.code, ErrorCode::Timeout);
        assert_eq!(format!("{log:?}"), "CallLog(off)");
    }

    #[test]
    fn a_retried_call_logs_each_attempt_at_debug_and_one_line_at_the_end() {
        let (log, lines) = capture(Level::Debug, "generate", " gw/m ");
        let url = "http://user:pa55word@gw.test/v1/chat/completions?api-key=qqq123&v=2";
        log.model("gw/m", &route("gw", "m"), Some(&request(url)));
        log.attempt_started(1);
        let e429 = Error::new(
            ErrorCode::RateLimit,
            format!("Slow down, {KEY} and sk-proj-abcdef123456"),
        )
        .with_provider("gw")
        .with_status(429);
        log.attempt_ended(Some(&e429), Some(Duration::from_millis(250)));
        log.attempt_started(2);
        log.headers(200);
        log.attempt_ended(None, None);
        log.answered("m-2024");
        drop(log);
        let lines = taken(&lines);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        for line in &lines {
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert!(!line.contains("SECRET") && !line.contains("pa55word"));
            assert!(
                !line.contains("qqq123") && !line.contains("sk-proj"),
                "{line}"
            );
        }
        let first = &lines[0];
        assert!(first.starts_with("llm-proxy debug attempt id="), "{first}");
        assert_eq!(field(first, "attempt").as_deref(), Some("1"));
        assert_eq!(field(first, "model").as_deref(), Some("gw/m"));
        assert_eq!(field(first, "provider").as_deref(), Some("gw"));
        assert_eq!(
            field(first, "url").as_deref(),
            Some("http://[redacted]@gw.test/v1/chat/completions?api-key=[redacted]&v=2")
        );
        assert_eq!(field(first, "bytes").as_deref(), Some("13"));
        assert_eq!(field(first, "status").as_deref(), Some("429"));
        assert_eq!(field(first, "result").as_deref(), Some("error"));
        assert_eq!(field(first, "error").as_deref(), Some("rate_limit"));
        assert_eq!(field(first, "retry_in").as_deref(), Some("250ms"));
        assert_eq!(
            field(first, "message").as_deref(),
            Some("Slow down, [redacted] and [redacted]")
        );
        let second = &lines[1];
        assert_eq!(field(second, "attempt").as_deref(), Some("2"));
        assert_eq!(field(second, "status").as_deref(), Some("200"));
        assert_eq!(field(second, "result").as_deref(), Some("ok"));
        assert!(field(second, "headers").unwrap().ends_with("ms"));
        assert_eq!(field(second, "retry_in"), None);

        let end = &lines[2];
        assert!(end.starts_with("llm-proxy info  generate id="), "{end}");
        let keys: Vec<String> = fields(end).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "id", "result", "model", "provider", "upstream", "answered", "status", "attempts",
                "headers", "total"
            ]
        );
        assert_eq!(field(end, "result").as_deref(), Some("ok"));
        assert_eq!(field(end, "model").as_deref(), Some("gw/m"));
        assert_eq!(field(end, "upstream").as_deref(), Some("m"));
        assert_eq!(field(end, "answered").as_deref(), Some("m-2024"));
        assert_eq!(field(end, "attempts").as_deref(), Some("2"));
        // Every line of a call has its id.
        let ids: Vec<_> = lines.iter().map(|l| field(l, "id")).collect();
        assert!(ids.iter().all(|id| id == &ids[0]));
    }

    #[test]
    fn info_writes_only_the_end_line_and_errors_say_what_failed() {
        let (log, lines) = capture(Level::Info, "generate", "gw/m");
        log.model(
            "gw/m",
            &route("gw", "m"),
            Some(&request("http://gw.test/v1")),
        );
        log.attempt_started(1);
        let timeout = Error::new(ErrorCode::Timeout, "gw did not answer within 10 ms")
            .with_provider("gw")
            .with_timeout(TimeoutKind::Request);
        log.attempt_ended(Some(&timeout), None);
        log.fallback("gw/m", "mock/b", &timeout, 1);
        let e = log.failed(timeout.clone());
        assert_eq!(e, timeout);
        // Ended once: a second end, or the drop, writes nothing more.
        log.failed(timeout);
        drop(log);
        let lines = taken(&lines);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let line = &lines[0];
        assert!(line.starts_with("llm-proxy info  generate "), "{line}");
        assert_eq!(field(line, "result").as_deref(), Some("error"));
        assert_eq!(field(line, "error").as_deref(), Some("timeout"));
        assert_eq!(field(line, "timeout").as_deref(), Some("request"));
        assert_eq!(field(line, "attempts").as_deref(), Some("1"));
        assert_eq!(
            field(line, "message").as_deref(),
            Some("gw did not answer within 10 ms")
        );
        assert_eq!(field(line, "status"), None);
    }

    #[test]
    fn fallbacks_are_named_and_a_dropped_call_is_cancelled() {
        let (log, lines) = capture(Level::Debug, "generate", "gw/m");
        log.model(
            "gw/m",
            &route("gw", "m"),
            Some(&request("http://gw.test/v1")),
        );
        let down = Error::new(ErrorCode::Overloaded, "busy").with_status(503);
        log.fallback("gw/m", "mock/b", &down, 3);
        log.model("mock/b", &route("mock", "b"), None);
        drop(log);
        let lines = taken(&lines);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("llm-proxy debug fallback "));
        assert_eq!(field(&lines[0], "from").as_deref(), Some("gw/m"));
        assert_eq!(field(&lines[0], "to").as_deref(), Some("mock/b"));
        assert_eq!(field(&lines[0], "attempts").as_deref(), Some("3"));
        assert_eq!(field(&lines[0], "error").as_deref(), Some("overloaded"));
        let end = &lines[1];
        assert_eq!(field(end, "result").as_deref(), Some("cancelled"));
        assert_eq!(field(end, "fallback").as_deref(), Some("mock/b"));
        assert_eq!(field(end, "provider").as_deref(), Some("mock"));
        assert_eq!(field(end, "attempts").as_deref(), Some("1"));
        assert_eq!(field(end, "error"), None);
    }

    #[tokio::test]
    async fn a_watched_stream_counts_its_chunks_and_logs_its_end() {
        use crate::client::mock;
        use crate::types::request::ChatRequest;

        let req = ChatRequest::from_value(serde_json::json!({
            "model": "mock/x", "messages": [{"role": "user", "content": "one two three"}]
        }))
        .unwrap();
        let stream_of = || {
            let events = mock::stream_events(&req, "mock/x");
            let body = futures_util::stream::iter(events.into_iter().map(Ok::<Bytes, Error>));
            crate::client::stream::sse_chunks(
                body,
                crate::adapters::openai::stream::ChunkNormalizer::new(
                    "mock/x",
                    crate::adapters::openai::Dialect::OpenAi,
                ),
                "mock".into(),
                Duration::from_secs(5),
            )
        };

        let (log, lines) = capture(Level::Info, "stream", "mock/x");
        log.model("mock/x", &route("mock", "x"), None);
        let all: Vec<_> = log.watch(stream_of()).collect().await;
        // role, three words, finish, usage
        assert_eq!(all.len(), 6);
        drop(log);
        let lines = taken(&lines);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let line = &lines[0];
        assert!(line.starts_with("llm-proxy info  stream "), "{line}");
        assert_eq!(field(line, "result").as_deref(), Some("ok"));
        assert_eq!(field(line, "chunks").as_deref(), Some("6"));
        assert_eq!(field(line, "answered").as_deref(), Some("mock/x"));

        // Left after two chunks.
        let (log, lines) = capture(Level::Info, "stream", "mock/x");
        log.model("mock/x", &route("mock", "x"), None);
        let mut watched = log.watch(stream_of());
        drop(log);
        watched.next().await.unwrap().unwrap();
        watched.next().await.unwrap().unwrap();
        assert!(taken(&lines).is_empty(), "nothing before the end");
        drop(watched);
        let lines = taken(&lines);
        assert_eq!(lines.len(), 1);
        assert_eq!(field(&lines[0], "result").as_deref(), Some("cancelled"));
        assert_eq!(field(&lines[0], "chunks").as_deref(), Some("2"));
    }
}
