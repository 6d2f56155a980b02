//! Replays recorded provider traffic (`tests/fixtures/`) through a loopback HTTP/1.1 upstream and
//! checks the public flow end to end: `Proxy::generate` / `Proxy::stream`, the request seen
//! upstream, stream reassembly (whole and byte by byte), early delivery, cut streams, HTTP error
//! mapping, connection failures, timeouts and compatible-endpoint routing.
//!
//! The upstream is a hand-written HTTP/1.1 server on 127.0.0.1:0 that reads one request and writes
//! its response byte for byte, so every framing detail is under the test's control.

use futures_util::StreamExt;
use llm_proxy::client::stream::ChunkStream;
use llm_proxy::config::{CallOptions, Config, ProxyOptions};
use llm_proxy::error::TimeoutKind;
use llm_proxy::types::request::ChatRequest;
use llm_proxy::types::response::ChatCompletionChunk;
use llm_proxy::{Error, ErrorCode, Proxy};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// The API key configured for OpenAI in these tests. It must never show up in an error.
const KEY: &str = "sk-test";
/// No single step of a test may take longer than this (the tests must not hang).
const GUARD: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

fn fixture_json(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// Relative paths (`dir/name`) of the fixtures in `dir` whose name ends with `ext`, sorted.
fn fixtures_in(dir: &str, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join(dir))
        .unwrap_or_else(|e| panic!("fixture dir {dir}: {e}"))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(ext))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    names.sort();
    names
}

/// Every file under `dir`, as paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// SHA-256 (FIPS 180-4), small and slow, so the integrity test needs no extra crate.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Loopback upstream
// ---------------------------------------------------------------------------------------------

/// One request as the upstream received it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    /// Lower-cased names; a repeated header keeps every value.
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers.get(name)?;
        assert_eq!(values.len(), 1, "header {name} sent {} times", values.len());
        Some(values[0].as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Transfer-Encoding: chunked`, one chunk per write.
    Chunked,
    /// `Content-Length`.
    Length,
    /// No length: closing the socket ends the body.
    Close,
}

/// How the body bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// In one write.
    Whole,
    /// One byte per write (and per chunk when chunked), yielding between writes. With chunked
    /// framing the client's HTTP layer hands on every chunk as its own frame, so the SSE decoder
    /// really is fed one byte at a time; without it, reads are mostly (not always) one byte.
    Bytewise,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
    pace: Pace,
    /// Write only this many body bytes, then close: no terminating chunk, short of Content-Length.
    cut_at: Option<usize>,
    /// Write this many body bytes, then wait for the signal before writing the rest.
    pause: Option<(usize, oneshot::Receiver<()>)>,
    /// Write the status line and headers, then say nothing more (keeping the socket open).
    stall_after_head: bool,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<u8>, framing: Framing) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            framing,
            pace: Pace::Whole,
            cut_at: None,
            pause: None,
            stall_after_head: false,
        }
    }

    fn json(status: u16, body: Vec<u8>) -> Self {
        Reply::new(status, "application/json", body, Framing::Length)
    }

    fn sse(body: Vec<u8>) -> Self {
        Reply::new(
            200,
            "text/event-stream; charset=utf-8",
            body,
            Framing::Chunked,
        )
    }

    fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    fn cut_at(mut self, n: usize) -> Self {
        self.cut_at = Some(n);
        self
    }

    fn pause_at(mut self, n: usize, signal: oneshot::Receiver<()>) -> Self {
        self.pause = Some((n, signal));
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn stall_after_head(mut self) -> Self {
        self.stall_after_head = true;
        self
    }
}

enum Behaviour {
    Reply(Reply),
    /// Read the request, then never answer (the socket stays open).
    Silent,
}

struct Upstream {
    port: u16,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Upstream {
    /// `http://127.0.0.1:PORT/v1`
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The one request the upstream received.
    async fn request(&mut self) -> Seen {
        tokio::time::timeout(GUARD, self.seen.recv())
            .await
            .expect("the upstream saw no request in time")
            .expect("the upstream task ended without a request (did it panic?)")
    }
}

/// Starts an upstream that serves exactly one connection and one request.
async fn upstream(behaviour: Behaviour) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        sock.set_nodelay(true).unwrap();
        let seen = read_request(&mut sock).await;
        let _ = tx.send(seen);
        match behaviour {
            Behaviour::Silent => {
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
            Behaviour::Reply(reply) => write_reply(&mut sock, reply).await,
        }
        // Keep the listener until the end, so a second connection would not be refused silently.
        drop(listener);
    });
    Upstream { port, seen: rx }
}

async fn read_request(sock: &mut TcpStream) -> Seen {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut tmp).await.expect("read request head");
        assert!(
            n > 0,
            "the client closed before the request head was complete"
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("request head is UTF-8");
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_string();
    let path = request_line.next().unwrap().to_string();
    assert_eq!(request_line.next(), Some("HTTP/1.1"));
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line has a ':'");
        headers
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_string());
    }
    assert!(
        !headers.contains_key("transfer-encoding"),
        "this upstream expects a Content-Length request body: {headers:?}"
    );
    let len: usize = headers
        .get("content-length")
        .map(|v| v[0].parse().expect("content-length is a number"))
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.expect("read request body");
        assert!(
            n > 0,
            "the client closed before the request body was complete"
        );
        body.extend_from_slice(&tmp[..n]);
    }
    assert_eq!(body.len(), len, "the client sent more than Content-Length");
    Seen {
        method,
        path,
        headers,
        body,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        529 => "Site Is Overloaded",
        _ => "Unknown",
    }
}

/// Writes the response; write errors (the client went away) end it quietly.
async fn write_reply(sock: &mut TcpStream, reply: Reply) {
    let Reply {
        status,
        headers,
        body,
        framing,
        pace,
        cut_at,
        mut pause,
        stall_after_head,
    } = reply;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match framing {
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Length => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        Framing::Close => {}
    }
    // Never pooled: every test gets a fresh connection to its own upstream.
    head.push_str("Connection: close\r\n\r\n");
    if sock.write_all(head.as_bytes()).await.is_err() || sock.flush().await.is_err() {
        return;
    }
    if stall_after_head {
        tokio::time::sleep(Duration::from_secs(120)).await;
        return;
    }

    let end = cut_at.unwrap_or(body.len()).min(body.len());
    let mut pos = 0;
    loop {
        if pause.as_ref().is_some_and(|(at, _)| *at == pos) {
            let (_, signal) = pause.take().unwrap();
            let _ = signal.await;
        }
        if pos >= end {
            break;
        }
        let mut next = match pace {
            Pace::Whole => end,
            Pace::Bytewise => pos + 1,
        };
        if let Some((at, _)) = &pause {
            if *at > pos && *at < next {
                next = *at;
            }
        }
        let piece = &body[pos..next];
        let frame = match framing {
            Framing::Chunked => {
                let mut f = format!("{:x}\r\n", piece.len()).into_bytes();
                f.extend_from_slice(piece);
                f.extend_from_slice(b"\r\n");
                f
            }
            Framing::Length | Framing::Close => piece.to_vec(),
        };
        if sock.write_all(&frame).await.is_err() || sock.flush().await.is_err() {
            return;
        }
        if pace == Pace::Bytewise {
            tokio::task::yield_now().await;
        }
        pos = next;
    }
    if cut_at.is_none() && framing == Framing::Chunked {
        let _ = sock.write_all(b"0\r\n\r\n").await;
    }
    let _ = sock.flush().await;
    let _ = sock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Proxy helpers
// ---------------------------------------------------------------------------------------------

/// A proxy configured from options only: the environment never leaks in.
fn proxy(options: Value) -> Proxy {
    let options: ProxyOptions = serde_json::from_value(options).expect("valid options");
    Proxy::new(Config::resolve(options, &|_| None).expect("config resolves"))
}

fn openai_proxy(base_url: &str) -> Proxy {
    proxy(json!({"openai": {"apiKey": KEY, "baseUrl": base_url}}))
}

fn compatible_proxy(base_url: &str) -> Proxy {
    proxy(json!({"compatible": {"local": {"baseUrl": base_url}}}))
}

async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {GUARD:?}"))
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "The city, e.g. Boston"}},
                "required": ["location"]
            }
        }
    })
}

fn messages() -> Value {
    json!([
        {"role": "system", "content": "You are a terse weather assistant."},
        {"role": "user", "content": "What's the weather like in Boston today?"}
    ])
}

/// The request every replay sends: system + user messages, a tool, max_tokens and temperature.
fn chat_request(model: &str) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": model,
        "messages": messages(),
        "tools": [weather_tool()],
        "max_tokens": 64,
        "temperature": 0.2
    }))
    .expect("valid request")
}

/// What the upstream must receive for [`chat_request`], written out by hand.
fn expected_upstream_body(model: &str, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse weather assistant."},
            {"role": "user", "content": "What's the weather like in Boston today?"}
        ],
        "tools": [{
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "The city, e.g. Boston"}},
                    "required": ["location"]
                }
            }
        }],
        "max_tokens": 64,
        "temperature": 0.2
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Reads a stream to its end (`None`), every item kept.
async fn drain(stream: ChunkStream) -> Vec<Result<ChatCompletionChunk, Error>> {
    guard("reading the stream to its end", stream.collect::<Vec<_>>()).await
}

fn all_ok(items: Vec<Result<ChatCompletionChunk, Error>>, what: &str) -> Vec<ChatCompletionChunk> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("{what}: item {i} is an error: {e:?}")))
        .collect()
}

fn to_values(chunks: &[ChatCompletionChunk]) -> Vec<Value> {
    chunks
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The error carries no trace of a credential, in any of its printed forms.
fn assert_no_key(e: &Error) {
    for text in [format!("{e:?}"), e.to_json(), e.to_string()] {
        assert!(!text.contains(KEY), "the API key leaked: {text}");
        assert!(!text.contains("sk-"), "something key-shaped leaked: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Fixture integrity
// ---------------------------------------------------------------------------------------------

#[test]
fn sha256_implementation_matches_known_answers() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // Lengths around the padding boundary (55, 56, 64 bytes) against values computed elsewhere.
    assert_eq!(
        sha256_hex(&[b'a'; 55]),
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"
    );
    assert_eq!(
        sha256_hex(&[b'a'; 56]),
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"
    );
    assert_eq!(
        sha256_hex(&[b'a'; 64]),
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
    );
}

#[test]
fn fixtures_match_their_index() {
    let index = fixture_json("index.json");
    let entries = index.as_array().expect("index.json is an array");
    assert!(!entries.is_empty());
    let shared = Path::new("/work/shared/fixtures");
    let mut listed = Vec::new();
    for entry in entries {
        let file = entry["file"].as_str().expect("entry has a file");
        let bytes = fixture(file);
        assert_eq!(
            Some(bytes.len() as u64),
            entry["bytes"].as_u64(),
            "{file}: size differs from index.json"
        );
        assert_eq!(
            Some(sha256_hex(&bytes).as_str()),
            entry["sha256"].as_str(),
            "{file}: SHA-256 differs from index.json"
        );
        for field in ["repo", "path", "commit", "license", "how"] {
            assert!(
                entry[field].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: no {field} in index.json"
            );
        }
        if shared.is_dir() {
            let original = std::fs::read(shared.join(file))
                .unwrap_or_else(|e| panic!("{file}: not in {}: {e}", shared.display()));
            assert!(
                original == bytes,
                "{file}: differs from {}",
                shared.join(file).display()
            );
        }
        listed.push(file.to_string());
    }
    // Nothing sits in tests/fixtures without provenance.
    let mut on_disk = Vec::new();
    walk(&fixtures_dir(), &fixtures_dir(), &mut on_disk);
    for file in on_disk {
        if file != "index.json" && file != "SOURCES.md" {
            assert!(listed.contains(&file), "{file} is not listed in index.json");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. generate() over the chat fixtures
// ---------------------------------------------------------------------------------------------

struct ChatExpect {
    id: &'static str,
    created: i64,
    model: &'static str,
    content: Option<&'static str>,
    /// (id, name, arguments)
    calls: &'static [(&'static str, &'static str, &'static str)],
    finish: &'static str,
    usage: (u64, u64, u64),
    /// prompt_tokens_details / completion_tokens_details are present (all zeros in these recordings).
    details: bool,
}

fn chat_expectations() -> BTreeMap<&'static str, ChatExpect> {
    BTreeMap::from([
        (
            "openai/chat/text-gpt35-2024.json",
            ChatExpect {
                id: "chatcmpl-908MD9ivBBLb6EaIjlqwFokntayQK",
                created: 1709819153,
                model: "gpt-3.5-turbo-0125",
                content: Some("Why did Opentelemetry break up with Tracing? Because it couldn't handle the baggage!"),
                calls: &[],
                finish: "stop",
                usage: (15, 19, 34),
                details: false,
            },
        ),
        (
            "openai/chat/text-gpt35-2026.json",
            ChatExpect {
                id: "chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C",
                created: 1774962775,
                model: "gpt-3.5-turbo-0125",
                content: Some("Why did the Opentelemetry developer go broke?\n\nBecause every time they tried to trace their expenses, they ended up with a 500 Internal Server Error!"),
                calls: &[],
                finish: "stop",
                usage: (15, 31, 46),
                details: true,
            },
        ),
        (
            "openai/chat/tool-call.json",
            ChatExpect {
                id: "chatcmpl-DPTDvejNjal4FLo3y89eNFsbKoI4M",
                created: 1774962907,
                model: "gpt-4-0613",
                content: None,
                calls: &[(
                    "call_nyDXQZ1Ao3rKiffJ74zhnoVP",
                    "get_current_weather",
                    "{\n  \"location\": \"Boston, MA\"\n}",
                )],
                finish: "tool_calls",
                usage: (67, 18, 85),
                details: true,
            },
        ),
        (
            "openai/chat/parallel-tool-calls.json",
            ChatExpect {
                id: "chatcmpl-DPTOrBCHCedndAglQ0w1ginYRg8my",
                created: 1774963585,
                model: "gpt-3.5-turbo-0125",
                content: None,
                calls: &[
                    (
                        "call_rU416PaA6UFgxje2GemBVAwt",
                        "get_current_weather",
                        "{\"location\": \"San Francisco\"}",
                    ),
                    (
                        "call_iqCZB6DkOW5TPjHK29vpiAFa",
                        "get_current_weather",
                        "{\"location\": \"Boston\"}",
                    ),
                ],
                finish: "tool_calls",
                usage: (70, 46, 116),
                details: true,
            },
        ),
    ])
}

/// The canonical form of a recorded completion: the recording itself, with the two fields
/// OpenAI's SDKs expect and old recordings lack (`message.refusal`, `logprobs`) as null.
fn canonical_completion(recorded: &Value) -> Value {
    let mut v = recorded.clone();
    for choice in v["choices"].as_array_mut().unwrap() {
        let choice = choice.as_object_mut().unwrap();
        choice.entry("logprobs").or_insert(Value::Null);
        let message = choice["message"].as_object_mut().unwrap();
        message.entry("refusal").or_insert(Value::Null);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_replays_every_chat_fixture() {
    let expectations = chat_expectations();
    let files = fixtures_in("openai/chat", ".json");
    for known in expectations.keys() {
        assert!(
            files.iter().any(|f| f == known),
            "fixture {known} is missing"
        );
    }
    for file in &files {
        let body = fixture(file);
        let mut up = upstream(Behaviour::Reply(Reply::json(200, body.clone()))).await;
        let proxy = openai_proxy(&up.base_url());
        let completion = guard(file, proxy.generate(&chat_request("gpt-4o-mini")))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));

        // The request as the upstream saw it.
        let seen = up.request().await;
        assert_eq!(seen.method, "POST", "{file}");
        assert_eq!(seen.path, "/v1/chat/completions", "{file}");
        assert_eq!(
            seen.header("authorization"),
            Some("Bearer sk-test"),
            "{file}"
        );
        assert_eq!(
            seen.header("content-type"),
            Some("application/json"),
            "{file}"
        );
        assert_eq!(seen.header("accept"), Some("application/json"), "{file}");
        assert_eq!(
            seen.header("content-length"),
            Some(seen.body.len().to_string().as_str()),
            "{file}"
        );
        assert!(
            seen.header("user-agent")
                .is_some_and(|ua| ua.starts_with("llm-proxy/")),
            "{file}: user-agent {:?}",
            seen.header("user-agent")
        );
        assert_eq!(
            seen.json(),
            expected_upstream_body("gpt-4o-mini", false),
            "{file}"
        );

        // Nothing lost, nothing invented: the completion is the recording in canonical form.
        let recorded: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            serde_json::to_value(&completion).unwrap(),
            canonical_completion(&recorded),
            "{file}"
        );

        // And field by field, against values written out by hand.
        let Some(x) = expectations.get(file.as_str()) else {
            continue;
        };
        assert_eq!(completion.id, x.id, "{file}");
        assert_eq!(completion.object, "chat.completion", "{file}");
        assert_eq!(completion.created, x.created, "{file}");
        assert_eq!(completion.model, x.model, "{file}");
        assert_eq!(completion.choices.len(), 1, "{file}");
        let choice = &completion.choices[0];
        assert_eq!(choice.index, 0, "{file}");
        assert_eq!(choice.message.role, "assistant", "{file}");
        assert_eq!(choice.message.content.as_deref(), x.content, "{file}");
        assert_eq!(choice.message.refusal, None, "{file}");
        assert_eq!(choice.finish_reason.as_deref(), Some(x.finish), "{file}");
        let calls: Vec<(&str, &str, &str, &str)> = choice
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.kind.as_str(),
                    c.as_function().unwrap().name.as_str(),
                    c.as_function().unwrap().arguments.as_str(),
                )
            })
            .collect();
        let expected_calls: Vec<(&str, &str, &str, &str)> = x
            .calls
            .iter()
            .map(|(id, name, args)| (*id, "function", *name, *args))
            .collect();
        assert_eq!(calls, expected_calls, "{file}");
        if x.calls.is_empty() {
            assert!(choice.message.tool_calls.is_none(), "{file}");
        }
        for c in choice.message.tool_calls.iter().flatten() {
            serde_json::from_str::<Value>(&c.as_function().unwrap().arguments)
                .unwrap_or_else(|e| panic!("{file}: arguments are not JSON: {e}"));
        }
        let usage = completion.usage.as_ref().expect("usage");
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            x.usage,
            "{file}"
        );
        if x.details {
            let prompt = usage
                .prompt_tokens_details
                .as_ref()
                .expect("prompt details");
            assert_eq!(prompt["cached_tokens"], 0, "{file}");
            assert_eq!(prompt["audio_tokens"], 0, "{file}");
            let completion_details = usage
                .completion_tokens_details
                .as_ref()
                .expect("completion details");
            for k in [
                "reasoning_tokens",
                "audio_tokens",
                "accepted_prediction_tokens",
                "rejected_prediction_tokens",
            ] {
                assert_eq!(completion_details[k], 0, "{file}: {k}");
            }
        } else {
            assert!(usage.prompt_tokens_details.is_none(), "{file}");
            assert!(usage.completion_tokens_details.is_none(), "{file}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. stream() over the SSE fixtures, whole and byte by byte
// ---------------------------------------------------------------------------------------------

/// What a recorded stream says, read straight from its `data:` lines (independently of the
/// library's SSE decoder and normaliser).
#[derive(Debug)]
struct SseExpect {
    id: String,
    model: String,
    created: i64,
    text: String,
    /// In order of first appearance: (upstream index, id, name, arguments).
    calls: Vec<(u64, String, String, String)>,
    finish: String,
    usage: Option<Value>,
    /// Byte offsets just past each event's blank line.
    event_ends: Vec<usize>,
}

fn read_sse_fixture(bytes: &[u8]) -> SseExpect {
    let text = std::str::from_utf8(bytes).expect("fixture is UTF-8");
    let mut x = SseExpect {
        id: String::new(),
        model: String::new(),
        created: 0,
        text: String::new(),
        calls: Vec::new(),
        finish: String::new(),
        usage: None,
        event_ends: text.match_indices("\n\n").map(|(i, _)| i + 2).collect(),
    };
    let mut finishes = Vec::new();
    let mut first = true;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            assert!(line.is_empty(), "unexpected line: {line}");
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if first {
            x.id = v["id"].as_str().unwrap().to_string();
            x.model = v["model"].as_str().unwrap().to_string();
            x.created = v["created"].as_i64().unwrap();
            first = false;
        }
        if !v["usage"].is_null() {
            x.usage = Some(v["usage"].clone());
        }
        for choice in v["choices"].as_array().unwrap() {
            assert_eq!(choice["index"], 0, "these recordings have one choice");
            let delta = &choice["delta"];
            x.text.push_str(delta["content"].as_str().unwrap_or(""));
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap();
                let pos = match x.calls.iter().position(|c| c.0 == index) {
                    Some(pos) => pos,
                    None => {
                        x.calls
                            .push((index, String::new(), String::new(), String::new()));
                        x.calls.len() - 1
                    }
                };
                if let Some(id) = call["id"].as_str() {
                    assert!(x.calls[pos].1.is_empty(), "two ids for one call");
                    x.calls[pos].1 = id.to_string();
                }
                x.calls[pos]
                    .2
                    .push_str(call["function"]["name"].as_str().unwrap_or(""));
                x.calls[pos]
                    .3
                    .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finishes.push(reason.to_string());
            }
        }
    }
    assert_eq!(finishes.len(), 1, "the recording has one finish_reason");
    x.finish = finishes.remove(0);
    assert!(
        x.finish == "stop" || x.finish == "tool_calls",
        "recorded finish_reason {} is already canonical",
        x.finish
    );
    x
}

/// Holds the streamed chunks to the contract and to what the recording says.
fn check_stream(file: &str, chunks: &[ChatCompletionChunk], x: &SseExpect, window: (i64, i64)) {
    assert!(!chunks.is_empty(), "{file}: no chunks");
    let first = &chunks[0];
    assert_eq!(first.choices.len(), 1, "{file}");
    assert_eq!(first.choices[0].index, 0, "{file}");
    assert_eq!(
        first.choices[0].delta.role.as_deref(),
        Some("assistant"),
        "{file}: the first chunk carries the role"
    );

    let mut text = String::new();
    // (our index, id, name, arguments)
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finishes = Vec::new();
    let mut finish_at = None;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.object, "chat.completion.chunk", "{file} #{i}");
        assert_eq!(chunk.id, x.id, "{file} #{i}");
        assert_eq!(chunk.model, x.model, "{file} #{i}");
        if x.created > 0 {
            assert_eq!(chunk.created, x.created, "{file} #{i}");
        } else {
            // A recording without a time: the stream's own, the same on every chunk.
            assert!(
                chunk.created >= window.0 && chunk.created <= window.1,
                "{file} #{i}: created {} outside {window:?}",
                chunk.created
            );
            assert_eq!(chunk.created, first.created, "{file} #{i}");
        }
        let v = serde_json::to_value(chunk).unwrap();
        assert!(v.get("obfuscation").is_none(), "{file} #{i}: {v}");
        let is_last = i == chunks.len() - 1;
        match (&x.usage, is_last) {
            (Some(usage), true) => {
                assert!(
                    chunk.choices.is_empty(),
                    "{file}: the usage chunk has no choices"
                );
                assert_eq!(
                    serde_json::to_value(chunk.usage.as_ref().expect("usage")).unwrap(),
                    *usage,
                    "{file}: usage"
                );
            }
            _ => {
                assert!(chunk.usage.is_none(), "{file} #{i}: usage before the end");
                assert_eq!(chunk.choices.len(), 1, "{file} #{i}");
            }
        }
        if let Some(at) = finish_at {
            assert!(
                chunk.choices.is_empty(),
                "{file} #{i}: choices after the finish chunk #{at}"
            );
        }
        for choice in &chunk.choices {
            assert_eq!(choice.index, 0, "{file} #{i}");
            if i > 0 {
                assert!(choice.delta.role.is_none(), "{file} #{i}: role repeated");
            }
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            for call in choice.delta.tool_calls.iter().flatten() {
                let idx = call.index.expect("every tool-call delta has an index") as usize;
                if idx == calls.len() {
                    let id = call.id.clone().unwrap_or_else(|| {
                        panic!("{file} #{i}: first delta of call {idx} has no id")
                    });
                    assert_eq!(call.kind.as_deref(), Some("function"), "{file} #{i}");
                    calls.push((id, String::new(), String::new()));
                } else {
                    assert!(
                        idx < calls.len(),
                        "{file} #{i}: tool index {idx} skips numbers"
                    );
                    assert!(call.id.is_none(), "{file} #{i}: id repeated on call {idx}");
                    assert!(
                        call.kind.is_none(),
                        "{file} #{i}: type repeated on call {idx}"
                    );
                }
                if let Some(f) = &call.function {
                    calls[idx].1.push_str(f.name.as_deref().unwrap_or(""));
                    calls[idx].2.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            if let Some(reason) = &choice.finish_reason {
                finishes.push(reason.clone());
                finish_at = Some(i);
            }
        }
    }
    assert_eq!(text, x.text, "{file}: text");
    let expected_calls: Vec<(String, String, String)> = x
        .calls
        .iter()
        .map(|(_, id, name, args)| (id.clone(), name.clone(), args.clone()))
        .collect();
    assert_eq!(calls, expected_calls, "{file}: tool calls");
    assert_eq!(finishes, vec![x.finish.clone()], "{file}: finish reasons");
}

/// Streams `file` through `proxy` from a fresh upstream; returns the chunks and the request.
async fn stream_once(
    file: &str,
    compatible: bool,
    framing: Framing,
    pace: Pace,
) -> (Vec<ChatCompletionChunk>, Seen) {
    let reply = Reply::sse(fixture(file)).framing(framing).pace(pace);
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let (proxy, model) = if compatible {
        (compatible_proxy(&up.base_url()), "local/some-model")
    } else {
        (openai_proxy(&up.base_url()), "gpt-4o-mini")
    };
    let what = format!("{file} {framing:?} {pace:?}");
    let stream = guard(&what, proxy.stream(&chat_request(model)))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let chunks = all_ok(drain(stream).await, &what);
    (chunks, up.request().await)
}

async fn replay_sse_dir(dir: &str, compatible: bool) {
    let files = fixtures_in(dir, ".sse");
    assert!(!files.is_empty(), "no fixtures in {dir}");
    for file in &files {
        let x = read_sse_fixture(&fixture(file));
        let start = now_secs();
        let mut runs = Vec::new();
        for (framing, pace) in [
            (Framing::Chunked, Pace::Whole),
            (Framing::Chunked, Pace::Bytewise),
            (Framing::Close, Pace::Whole),
            (Framing::Close, Pace::Bytewise),
        ] {
            let (chunks, seen) = stream_once(file, compatible, framing, pace).await;
            let what = format!("{file} {framing:?} {pace:?}");
            check_stream(&what, &chunks, &x, (start, now_secs()));

            assert_eq!(seen.method, "POST", "{what}");
            assert_eq!(seen.path, "/v1/chat/completions", "{what}");
            assert_eq!(seen.header("accept"), Some("text/event-stream"), "{what}");
            assert_eq!(
                seen.header("content-type"),
                Some("application/json"),
                "{what}"
            );
            if compatible {
                assert_eq!(seen.header("authorization"), None, "{what}");
            } else {
                assert_eq!(
                    seen.header("authorization"),
                    Some("Bearer sk-test"),
                    "{what}"
                );
            }
            let model = if compatible {
                "some-model"
            } else {
                "gpt-4o-mini"
            };
            assert_eq!(seen.json(), expected_upstream_body(model, true), "{what}");
            runs.push((what, to_values(&chunks)));
        }
        // However the bytes arrive, the chunks are the same. A recording without `created` gets
        // the stream's own time, which may fall in a different second from run to run.
        let mask = |mut values: Vec<Value>| {
            if x.created <= 0 {
                for v in &mut values {
                    v["created"] = json!(0);
                }
            }
            values
        };
        let (first_what, first) = &runs[0];
        for (what, values) in &runs[1..] {
            assert_eq!(
                mask(values.clone()),
                mask(first.clone()),
                "{what} differs from {first_what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_replays_openai_sse_fixtures() {
    replay_sse_dir("openai/sse", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_replays_compatible_sse_fixtures() {
    replay_sse_dir("openai-compatible/sse", true).await;
}

/// Anchors for the independent reading of the recordings, so a wrong reader cannot make the
/// replay tests pass vacuously.
#[test]
fn sse_fixture_reader_sees_what_the_recordings_say() {
    let x = read_sse_fixture(&fixture("openai/sse/text-include-usage.sse"));
    assert!(
        x.text.starts_with("I now can give a great answer"),
        "{}",
        x.text
    );
    assert!(x.text.ends_with("illuminated streets and landmarks."));
    assert_eq!(x.finish, "stop");
    assert_eq!(x.usage.as_ref().unwrap()["prompt_tokens"], 168);
    assert_eq!(x.usage.as_ref().unwrap()["completion_tokens"], 137);
    assert_eq!(x.usage.as_ref().unwrap()["total_tokens"], 305);
    assert_eq!(x.event_ends.len(), 141);

    let x = read_sse_fixture(&fixture(
        "openai-compatible/sse/gateway-tool-call-index-1.sse",
    ));
    assert_eq!(x.text, "Reading it.");
    assert_eq!(
        x.calls,
        vec![(
            1,
            "toolu_sanitized".to_string(),
            "read_file".to_string(),
            "{\"path\": \"a.txt\"}".to_string()
        )]
    );
    assert_eq!(x.created, 0);

    let x = read_sse_fixture(&fixture("openai/sse/parallel-tool-call-deltas-2024.sse"));
    assert_eq!(x.calls.len(), 2);
    assert_eq!(x.calls[0].1, "call_cCPjAyfwTzboEKjVlqFrArNF");
    assert_eq!(x.calls[0].3, "{\"location\": \"San Francisco\"}");
    assert_eq!(x.calls[1].1, "call_Zi4He1Ns0mozwT6f85nW1BOW");
    assert_eq!(x.calls[1].3, "{\"location\": \"Boston\"}");
    assert_eq!(x.finish, "tool_calls");
    assert!(x.usage.is_none());

    let x = read_sse_fixture(&fixture(
        "openai-compatible/sse/deepseek-usage-in-final-choice-chunk.sse",
    ));
    assert!(x.text.ends_with(" 😄"));
    assert_eq!(x.usage.as_ref().unwrap()["total_tokens"], 101);
    assert_eq!(x.usage.as_ref().unwrap()["prompt_cache_miss_tokens"], 12);
}

// ---------------------------------------------------------------------------------------------
// 4. Chunks are delivered before the body ends
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_chunks_before_the_body_ends() {
    let file = "openai/sse/text-include-usage.sse";
    let body = fixture(file);
    let x = read_sse_fixture(&body);
    for framing in [Framing::Chunked, Framing::Close] {
        let what = format!("{file} {framing:?}");
        let (release, signal) = oneshot::channel();
        let reply = Reply::sse(body.clone())
            .framing(framing)
            .pause_at(x.event_ends[2], signal);
        let mut up = upstream(Behaviour::Reply(reply)).await;
        let proxy = openai_proxy(&up.base_url());
        let mut stream = guard(&what, proxy.stream(&chat_request("gpt-4o-mini")))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));

        // Three events are on the wire; their three chunks must come out now.
        let mut early = Vec::new();
        for i in 0..3 {
            let item = tokio::time::timeout(Duration::from_secs(3), stream.next())
                .await
                .unwrap_or_else(|_| panic!("{what}: chunk {i} held back until the body ends"))
                .unwrap_or_else(|| panic!("{what}: the stream ended early"))
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
            early.push(item);
        }
        assert_eq!(
            early[0].choices[0].delta.role.as_deref(),
            Some("assistant"),
            "{what}"
        );
        let early_text: String = early
            .iter()
            .filter_map(|c| c.choices[0].delta.content.clone())
            .collect();
        assert_eq!(early_text, "I now", "{what}");
        // The upstream really is holding the rest back.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stream.next())
                .await
                .is_err(),
            "{what}: a fourth chunk arrived while the upstream was paused"
        );

        release.send(()).unwrap();
        let mut chunks = early;
        chunks.extend(all_ok(drain(stream).await, &what));
        check_stream(&what, &chunks, &x, (0, 0));
        up.request().await;
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Cut streams
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_streams_end_with_stream_interrupted() {
    let file = "openai/sse/text-include-usage.sse";
    let body = fixture(file);
    let x = read_sse_fixture(&body);
    let after_third = x.event_ends[2];
    let mid_fourth = after_third + 40;
    assert!(mid_fourth < x.event_ends[3]);
    for (cut, label) in [
        (mid_fourth, "in the middle of the 4th event"),
        (after_third, "after the 3rd complete event"),
    ] {
        for framing in [Framing::Chunked, Framing::Length, Framing::Close] {
            for pace in [Pace::Whole, Pace::Bytewise] {
                let what = format!("cut {label}, {framing:?} {pace:?}");
                let reply = Reply::sse(body.clone())
                    .framing(framing)
                    .pace(pace)
                    .cut_at(cut);
                let up = upstream(Behaviour::Reply(reply)).await;
                let proxy = openai_proxy(&up.base_url());
                let stream = guard(&what, proxy.stream(&chat_request("gpt-4o-mini")))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                let mut items = drain(stream).await;

                // What arrived, then one error, then the end.
                let last = items.pop().unwrap_or_else(|| panic!("{what}: no items"));
                let e = last.expect_err(&format!("{what}: the last item is not an error"));
                let chunks = all_ok(items, &what);
                assert_eq!(chunks.len(), 3, "{what}: {:?}", to_values(&chunks));
                assert_eq!(
                    chunks[0].choices[0].delta.role.as_deref(),
                    Some("assistant"),
                    "{what}"
                );
                let text: String = chunks
                    .iter()
                    .filter_map(|c| c.choices[0].delta.content.clone())
                    .collect();
                assert_eq!(text, "I now", "{what}");
                assert!(
                    chunks
                        .iter()
                        .all(|c| c.choices[0].finish_reason.is_none() && c.usage.is_none()),
                    "{what}"
                );
                assert_eq!(e.code, ErrorCode::StreamInterrupted, "{what}: {e:?}");
                assert_eq!(e.provider.as_deref(), Some("openai"), "{what}");
                assert!(e.retryable, "{what}");
                assert_eq!(e.status, None, "{what}");
                assert_no_key(&e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. HTTP errors
// ---------------------------------------------------------------------------------------------

struct HttpErrorCase {
    name: &'static str,
    reply: fn() -> Reply,
    code: ErrorCode,
    status: u16,
    retryable: bool,
    retry_after_ms: Option<u64>,
    body: fn() -> Value,
    message_has: &'static str,
}

fn http_error_cases() -> Vec<HttpErrorCase> {
    vec![
        HttpErrorCase {
            name: "400 fixture",
            reply: || Reply::json(400, fixture("openai/errors/400-unsupported-parameter.json")),
            code: ErrorCode::InvalidRequest,
            status: 400,
            retryable: false,
            retry_after_ms: None,
            body: || fixture_json("openai/errors/400-unsupported-parameter.json"),
            message_has: "Unsupported parameter: 'max_tokens' is not supported with this model.",
        },
        HttpErrorCase {
            name: "401 fixture",
            reply: || Reply::json(401, fixture("openai/errors/401-invalid-api-key.json")),
            code: ErrorCode::Authentication,
            status: 401,
            retryable: false,
            retry_after_ms: None,
            // The partial key the recording echoes ("sk-") is masked in the kept body too.
            body: || {
                json!({"error": {
                    "message": "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": null,
                    "code": "invalid_api_key"
                }})
            },
            message_has: "Incorrect API key provided: [redacted].",
        },
        HttpErrorCase {
            name: "429 with retry-after: 3, echoing the key",
            reply: || {
                Reply::json(
                    429,
                    br#"{"error":{"message":"Rate limit reached for sk-test on requests per min (RPM): Limit 3, Used 3.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#.to_vec(),
                )
                .header("retry-after", "3")
            },
            code: ErrorCode::RateLimit,
            status: 429,
            retryable: true,
            retry_after_ms: Some(3000),
            body: || {
                json!({"error": {
                    "message": "Rate limit reached for [redacted] on requests per min (RPM): Limit 3, Used 3.",
                    "type": "requests",
                    "param": null,
                    "code": "rate_limit_exceeded"
                }})
            },
            message_has: "Rate limit reached for [redacted]",
        },
        HttpErrorCase {
            name: "503 with a text body echoing the key",
            reply: || {
                Reply::new(
                    503,
                    "text/plain",
                    b"upstream connect error (Authorization: Bearer sk-test)".to_vec(),
                    Framing::Length,
                )
            },
            code: ErrorCode::Overloaded,
            status: 503,
            retryable: true,
            retry_after_ms: None,
            body: || json!("upstream connect error (Authorization: Bearer [redacted])"),
            message_has: "upstream connect error",
        },
        HttpErrorCase {
            name: "529 overloaded",
            reply: || {
                Reply::json(
                    529,
                    br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                        .to_vec(),
                )
            },
            code: ErrorCode::Overloaded,
            status: 529,
            retryable: true,
            retry_after_ms: None,
            body: || json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            message_has: "Overloaded",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_carry_code_status_retry_and_body_without_the_key() {
    for case in http_error_cases() {
        for streaming in [false, true] {
            let what = format!(
                "{} ({})",
                case.name,
                if streaming { "stream" } else { "generate" }
            );
            let mut up = upstream(Behaviour::Reply((case.reply)())).await;
            // One reply per upstream: retries are tested on their own below.
            let proxy = proxy(json!({
                "openai": {"apiKey": KEY, "baseUrl": up.base_url()},
                "retry": {"maxRetries": 0}
            }));
            let req = chat_request("gpt-4o-mini");
            let e = if streaming {
                match guard(&what, proxy.stream(&req)).await {
                    Ok(_) => panic!("{what}: stream() succeeded"),
                    Err(e) => e,
                }
            } else {
                guard(&what, proxy.generate(&req))
                    .await
                    .expect_err(&format!("{what}: generate() succeeded"))
            };
            assert_eq!(e.code, case.code, "{what}: {e:?}");
            assert_eq!(e.status, Some(case.status), "{what}");
            assert_eq!(e.retryable, case.retryable, "{what}");
            assert_eq!(e.retry_after_ms, case.retry_after_ms, "{what}");
            assert_eq!(e.provider.as_deref(), Some("openai"), "{what}");
            assert_eq!(e.body.as_deref(), Some(&(case.body)()), "{what}");
            assert!(
                e.message
                    .starts_with(&format!("openai returned HTTP {}", case.status)),
                "{what}: {}",
                e.message
            );
            assert!(
                e.message.contains(case.message_has),
                "{what}: {}",
                e.message
            );
            let j: Value = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(j["code"], e.code.as_str(), "{what}");
            assert_eq!(j["status"], case.status, "{what}");
            assert_eq!(j["retryable"], case.retryable, "{what}");
            assert_eq!(
                j.get("retryAfterMs").and_then(Value::as_u64),
                case.retry_after_ms,
                "{what}"
            );
            assert_no_key(&e);
            let seen = up.request().await;
            assert_eq!(seen.header("authorization"), Some("Bearer sk-test"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Connection refused
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connection_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let proxy = openai_proxy(&format!("http://127.0.0.1:{port}/v1"));
    let req = chat_request("gpt-4o-mini");
    let e = guard("generate", proxy.generate(&req))
        .await
        .expect_err("generate() reached a closed port");
    let s = match guard("stream", proxy.stream(&req)).await {
        Ok(_) => panic!("stream() reached a closed port"),
        Err(e) => e,
    };
    for (what, e) in [("generate", e), ("stream", s)] {
        assert_eq!(e.code, ErrorCode::Connection, "{what}: {e:?}");
        assert_eq!(e.provider.as_deref(), Some("openai"), "{what}");
        assert_eq!(e.status, None, "{what}");
        assert!(e.retryable, "{what}");
        assert_eq!(e.body, None, "{what}");
        assert_no_key(&e);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Timeouts
// ---------------------------------------------------------------------------------------------

fn timeout_proxy(base_url: &str) -> Proxy {
    // One attempt: a retried timeout would take several times as long.
    proxy(
        json!({"openai": {"apiKey": KEY, "baseUrl": base_url}, "timeoutMs": 200, "retry": {"maxRetries": 0}}),
    )
}

fn assert_timeout(what: &str, e: &Error, elapsed: Duration) {
    assert_eq!(e.code, ErrorCode::Timeout, "{what}: {e:?}");
    assert!(e.timeout.is_some(), "{what}: which limit fired is not said");
    assert_eq!(e.provider.as_deref(), Some("openai"), "{what}");
    assert!(e.retryable, "{what}");
    assert!(e.message.contains("200 ms"), "{what}: {}", e.message);
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(2),
        "{what}: took {elapsed:?}"
    );
    assert_no_key(e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_times_out() {
    let req = chat_request("gpt-4o-mini");

    let mut up = upstream(Behaviour::Silent).await;
    let proxy = timeout_proxy(&up.base_url());
    let t = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(3), proxy.generate(&req))
        .await
        .expect("generate() did not time out by itself")
        .expect_err("generate() succeeded");
    assert_timeout("generate", &e, t.elapsed());
    assert_eq!(e.timeout, Some(TimeoutKind::Request));
    assert!(e.message.contains("the request timeout"), "{}", e.message);
    up.request().await;

    let mut up = upstream(Behaviour::Silent).await;
    let proxy = timeout_proxy(&up.base_url());
    let t = Instant::now();
    let e = match tokio::time::timeout(Duration::from_secs(3), proxy.stream(&req))
        .await
        .expect("stream() did not time out by itself")
    {
        Ok(_) => panic!("stream() succeeded"),
        Err(e) => e,
    };
    assert_timeout("stream", &e, t.elapsed());
    // For a stream, timeoutMs (timeouts.requestMs) is the default of the first-chunk limit.
    assert_eq!(e.timeout, Some(TimeoutKind::FirstChunk));
    assert!(
        e.message.contains("the first-chunk timeout"),
        "{}",
        e.message
    );
    up.request().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_times_out_when_the_body_stalls_after_the_headers() {
    // timeoutMs covers the whole request for generate(): headers that arrive in time do not
    // excuse a body that never does.
    let reply = Reply::json(200, fixture("openai/chat/text-gpt35-2026.json")).stall_after_head();
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let proxy = timeout_proxy(&up.base_url());
    let t = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(3),
        proxy.generate(&chat_request("gpt-4o-mini")),
    )
    .await
    .expect("generate() did not time out by itself")
    .expect_err("generate() succeeded");
    assert_timeout("generate, stalled body", &e, t.elapsed());
    assert_eq!(e.timeout, Some(TimeoutKind::Request));
    up.request().await;
}

/// A proxy for the OpenAI endpoint `base_url` with these `timeouts`, one attempt per request.
fn proxy_with_timeouts(base_url: &str, timeouts: Value) -> Proxy {
    proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": base_url},
        "timeouts": timeouts,
        "retry": {"maxRetries": 0}
    }))
}

fn assert_took(what: &str, elapsed: Duration, at_least_ms: u64) {
    assert!(
        elapsed >= Duration::from_millis(at_least_ms - 10) && elapsed < Duration::from_secs(3),
        "{what}: took {elapsed:?}, expected about {at_least_ms} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_limit_runs_from_sending_to_the_first_chunk() {
    let req = chat_request("gpt-4o-mini");
    // Headers, then nothing. The idle limit (100 ms) does not apply before the first chunk: a
    // model may think silently for a long time before it answers.
    let reply = Reply::sse(fixture("openai/sse/text-include-usage.sse")).stall_after_head();
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let p = proxy_with_timeouts(&up.base_url(), json!({"firstChunkMs": 400, "idleMs": 100}));
    let t = Instant::now();
    let e = match guard("stream", p.stream(&req)).await {
        Ok(_) => panic!("stream() opened without a chunk"),
        Err(e) => e,
    };
    assert_took("headers then silence", t.elapsed(), 400);
    assert_eq!(e.code, ErrorCode::Timeout, "{e:?}");
    assert_eq!(e.timeout, Some(TimeoutKind::FirstChunk));
    assert!(
        e.message.contains("400 ms") && e.message.contains("first-chunk timeout"),
        "{}",
        e.message
    );
    assert_eq!(e.provider.as_deref(), Some("openai"));
    assert!(e.retryable);
    up.request().await;

    // A keep-alive comment is bytes, not a chunk: the first-chunk limit still fires.
    let (release, signal) = oneshot::channel();
    let pings = b": keep-alive\n\n".to_vec();
    let mut body = pings.clone();
    body.extend_from_slice(&fixture("openai/sse/text-include-usage.sse"));
    let reply = Reply::sse(body).pause_at(pings.len(), signal);
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let p = proxy_with_timeouts(&up.base_url(), json!({"firstChunkMs": 300, "idleMs": 100}));
    let t = Instant::now();
    let e = match guard("stream", p.stream(&req)).await {
        Ok(_) => panic!("stream() opened without a chunk"),
        Err(e) => e,
    };
    assert_took("a ping then silence", t.elapsed(), 300);
    assert_eq!(e.timeout, Some(TimeoutKind::FirstChunk), "{e:?}");
    up.request().await;
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_silent_after_its_first_chunks_fails_with_the_idle_limit() {
    let body = fixture("openai/sse/text-include-usage.sse");
    let x = read_sse_fixture(&body);
    let (release, signal) = oneshot::channel();
    let reply = Reply::sse(body).pause_at(x.event_ends[2], signal);
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let p = proxy_with_timeouts(&up.base_url(), json!({"firstChunkMs": 5000, "idleMs": 300}));
    let s = guard("stream", p.stream(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let t = Instant::now();
    let mut items = drain(s).await;
    let e = items
        .pop()
        .unwrap()
        .expect_err("the stream ended without an error");
    assert_took("idle", t.elapsed(), 300);
    let chunks = all_ok(items, "idle");
    assert_eq!(chunks.len(), 3, "what came before the silence is delivered");
    assert_eq!(e.code, ErrorCode::Timeout, "{e:?}");
    assert_eq!(e.timeout, Some(TimeoutKind::Idle));
    assert!(
        e.message.contains("300 ms") && e.message.contains("idle timeout"),
        "{}",
        e.message
    );
    assert!(e.message.contains("incomplete"), "{}", e.message);
    up.request().await;
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_limit_does_not_cut_a_stream_that_keeps_talking() {
    // requestMs 200 limits a non-streamed attempt as a whole; a stream that sends its first chunk
    // in time and never falls silent for idleMs may take longer.
    let body = fixture("openai/sse/text-include-usage.sse");
    let x = read_sse_fixture(&body);
    let (release, signal) = oneshot::channel();
    let reply = Reply::sse(body).pause_at(x.event_ends[2], signal);
    let mut up = upstream(Behaviour::Reply(reply)).await;
    let p = proxy_with_timeouts(&up.base_url(), json!({"requestMs": 200, "idleMs": 2000}));
    let s = guard("stream", p.stream(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = release.send(());
    });
    let t = Instant::now();
    let chunks = all_ok(drain(s).await, "a long stream");
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    check_stream("a long stream", &chunks, &x, (0, 0));
    up.request().await;
}

/// A listener whose accept queue is full, so that the kernel drops further SYNs and a connect
/// hangs: the nearest loopback gets to a black-holed address. `None` where the system refuses or
/// accepts such connections instead (then the connect timeout cannot be shown on loopback).
async fn full_backlog_listener() -> Option<(tokio::net::TcpListener, Vec<TcpStream>)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(_)) => return None,
            Err(_) => return Some((listener, held)),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_hangs_fails_with_the_connect_limit() {
    let Some((listener, _held)) = full_backlog_listener().await else {
        eprintln!("skipped: this system does not leave connects to a full backlog hanging");
        return;
    };
    let base = format!(
        "http://127.0.0.1:{}/v1",
        listener.local_addr().unwrap().port()
    );
    let p = proxy_with_timeouts(&base, json!({"connectMs": 300, "requestMs": 10000}));
    let req = chat_request("gpt-4o-mini");
    let t = Instant::now();
    let e = guard("generate", p.generate(&req)).await.unwrap_err();
    assert_took("generate", t.elapsed(), 300);
    let t = Instant::now();
    let s = match guard("stream", p.stream(&req)).await {
        Ok(_) => panic!("stream() connected"),
        Err(e) => e,
    };
    assert_took("stream", t.elapsed(), 300);
    for (what, e) in [("generate", e), ("stream", s)] {
        assert_eq!(e.code, ErrorCode::Timeout, "{what}: {e:?}");
        assert_eq!(e.timeout, Some(TimeoutKind::Connect), "{what}: {e:?}");
        assert!(
            e.message.contains("300 ms") && e.message.contains("connect timeout"),
            "{what}: {}",
            e.message
        );
        assert!(e.retryable, "{what}");
        assert_no_key(&e);
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Compatible endpoints
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_prefix_routes_to_the_compatible_base_url_without_auth() {
    let file = "openai/chat/text-gpt35-2026.json";
    let mut up = upstream(Behaviour::Reply(Reply::json(200, fixture(file)))).await;
    // No OpenAI key anywhere: the compatible endpoint must not need one.
    let base = format!("http://127.0.0.1:{}/compat/v1", up.port);
    let proxy = proxy(json!({"compatible": {"local": {"baseUrl": base}}}));
    let completion = guard(
        "generate",
        proxy.generate(&chat_request("local/some-model")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let seen = up.request().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/compat/v1/chat/completions");
    assert_eq!(seen.header("authorization"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.json(), expected_upstream_body("some-model", false));
    assert_eq!(completion.id, "chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C");
    assert_eq!(completion.model, "gpt-3.5-turbo-0125");
    assert_eq!(completion.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_endpoint_sends_its_own_key_and_headers() {
    let file = "openai/chat/tool-call.json";
    let mut up = upstream(Behaviour::Reply(Reply::json(200, fixture(file)))).await;
    let proxy = proxy(json!({
        "openai": {"apiKey": KEY},
        "compatible": {"local": {
            "baseUrl": up.base_url(),
            "apiKey": "local-secret-token",
            "headers": {"X-Tenant": "team-a"}
        }}
    }));
    let completion = guard(
        "generate",
        proxy.generate(&chat_request("local/some-model")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let seen = up.request().await;
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer local-secret-token"),
        "the compatible endpoint's key, not OpenAI's"
    );
    assert_eq!(seen.header("x-tenant"), Some("team-a"));
    assert_eq!(seen.json()["model"], "some-model");
    let calls = completion.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "call_nyDXQZ1Ao3rKiffJ74zhnoVP");
}

/// Serves `replies` in order, one per request, on as many connections as the client opens.
async fn upstream_sequence(replies: Vec<Reply>) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for reply in replies {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let seen = read_request(&mut sock).await;
            let _ = tx.send(seen);
            write_reply(&mut sock, reply.header("Connection", "close")).await;
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_ride_out_rate_limits_and_overloads_then_give_up() {
    let ok = fixture("openai/chat/text-gpt35-2026.json");
    let limited = || {
        Reply::json(429, br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.to_vec())
            .header("retry-after-ms", "10")
    };
    let overloaded = || {
        Reply::json(
            503,
            br#"{"error":{"message":"busy","type":"server_error"}}"#.to_vec(),
        )
    };

    // 429, 503, then the answer: three requests, one success.
    let (base, mut seen) =
        upstream_sequence(vec![limited(), overloaded(), Reply::json(200, ok.clone())]).await;
    let p = proxy(
        json!({"openai": {"apiKey": KEY, "baseUrl": base}, "retry": {"maxRetries": 2, "initialDelayMs": 5}}),
    );
    let c = guard("retry to success", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap();
    assert_eq!(c.id, "chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C");
    let mut bodies = Vec::new();
    while let Ok(s) = seen.try_recv() {
        bodies.push(s.body);
    }
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every attempt sends the same body"
    );

    // Three 503s with two retries allowed: the error says how many attempts were made.
    let (base, _seen) = upstream_sequence(vec![overloaded(), overloaded(), overloaded()]).await;
    let p = proxy(
        json!({"openai": {"apiKey": KEY, "baseUrl": base}, "retry": {"maxRetries": 2, "initialDelayMs": 5}}),
    );
    let e = guard("retries spent", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Overloaded);
    assert!(
        e.message.ends_with("(gave up after 3 attempts)"),
        "{}",
        e.message
    );

    // A 400 is never retried: the second reply is never asked for.
    let (base, mut seen) = upstream_sequence(vec![
        Reply::json(400, fixture("openai/errors/400-unsupported-parameter.json")),
        Reply::json(200, ok.clone()),
    ])
    .await;
    let p = proxy(
        json!({"openai": {"apiKey": KEY, "baseUrl": base}, "retry": {"maxRetries": 2, "initialDelayMs": 5}}),
    );
    let e = guard("400", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(!e.message.contains("attempts"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(std::iter::from_fn(|| seen.try_recv().ok()).count(), 1);

    // A stream is retried before it starts.
    let (base, _seen) = upstream_sequence(vec![
        limited(),
        Reply::sse(fixture("openai/sse/text-include-usage.sse")),
    ])
    .await;
    let p = proxy(
        json!({"openai": {"apiKey": KEY, "baseUrl": base}, "retry": {"maxRetries": 1, "initialDelayMs": 5}}),
    );
    let mut s = guard("stream retry", p.stream(&chat_request("gpt-4o-mini")))
        .await
        .unwrap();
    let mut n = 0;
    while let Some(item) = guard("stream chunk", s.next()).await {
        item.unwrap();
        n += 1;
    }
    assert_eq!(n, 140);
}

/// `file` (a recording) with its first choice's `finish_reason` set to `reason` (removed for None).
fn with_finish_reason(file: &str, reason: Option<Value>) -> Vec<u8> {
    let mut v = fixture_json(file);
    let choice = v["choices"][0].as_object_mut().unwrap();
    match reason {
        Some(r) => choice.insert("finish_reason".into(), r),
        None => choice.remove("finish_reason"),
    };
    serde_json::to_vec(&v).unwrap()
}

// Found by the types review: a compatible server's answer without a finish_reason kept null, and
// a word OpenAI does not have was passed through; OpenAI's ChatCompletion allows neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_finish_reasons_are_openai_words_with_the_server_word_kept() {
    let text = "openai/chat/text-gpt35-2026.json";
    let call = "openai/chat/tool-call.json";
    for (file, given, want, native) in [
        (text, None, "stop", None),
        (text, Some(Value::Null), "stop", None),
        (text, Some(json!("abort")), "stop", Some("abort")),
        (text, Some(json!("eos")), "stop", Some("eos")),
        (
            text,
            Some(json!("max_tokens")),
            "length",
            Some("max_tokens"),
        ),
        (call, None, "tool_calls", None),
        (call, Some(json!("stop")), "tool_calls", Some("stop")),
    ] {
        let what = format!("{file} with finish_reason {given:?}");
        let body = with_finish_reason(file, given);
        let mut up = upstream(Behaviour::Reply(Reply::json(200, body))).await;
        let completion = guard(
            &what,
            compatible_proxy(&up.base_url()).generate(&chat_request("local/some-model")),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        up.request().await;
        let choice = &completion.choices[0];
        assert_eq!(choice.finish_reason.as_deref(), Some(want), "{what}");
        assert_eq!(choice.native_finish_reason.as_deref(), native, "{what}");
        // Everything else is the recording.
        let mut expected = canonical_completion(&fixture_json(file));
        expected["choices"][0]["finish_reason"] = json!(want);
        if let Some(native) = native {
            expected["choices"][0]["native_finish_reason"] = json!(native);
        }
        assert_eq!(
            serde_json::to_value(&completion).unwrap(),
            expected,
            "{what}"
        );
    }

    // Streams: the recording with its finish word replaced, or removed (then the finish chunk
    // comes at `[DONE]`).
    let file = "openai-compatible/sse/deepseek-usage-in-final-choice-chunk.sse";
    let recorded = String::from_utf8(fixture(file)).unwrap();
    for (replacement, want, native) in [
        ("\"finish_reason\":\"eos\"", "stop", Some("eos")),
        ("\"finish_reason\":\"abort\"", "stop", Some("abort")),
        ("\"finish_reason\":null", "stop", None),
    ] {
        let body = recorded.replace("\"finish_reason\":\"stop\"", replacement);
        assert_ne!(body, recorded);
        let mut up = upstream(Behaviour::Reply(Reply::sse(body.into_bytes()))).await;
        let stream = guard(
            replacement,
            compatible_proxy(&up.base_url()).stream(&chat_request("local/some-model")),
        )
        .await
        .unwrap();
        let chunks = all_ok(drain(stream).await, replacement);
        up.request().await;
        let finishes: Vec<(String, Option<String>)> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|ch| {
                ch.finish_reason
                    .clone()
                    .map(|r| (r, ch.native_finish_reason.clone()))
            })
            .collect();
        assert_eq!(
            finishes,
            vec![(want.to_string(), native.map(str::to_string))],
            "{replacement}"
        );
        assert!(chunks.last().unwrap().usage.is_some(), "{replacement}");
    }
}

// Found by the types review: `function` was required of every tool call, so an answer holding an
// OpenAI custom tool call was a server_error, and the same call sent back was invalid_request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_tool_calls_come_back_and_go_back_to_openai_unchanged() {
    let custom = json!({"id": "call_nyDXQZ1Ao3rKiffJ74zhnoVP", "type": "custom",
        "custom": {"name": "weather_query", "input": "Boston, MA"}});
    let mut recorded = fixture_json("openai/chat/tool-call.json");
    recorded["choices"][0]["message"]["tool_calls"] = json!([custom]);
    let mut up = upstream(Behaviour::Reply(Reply::json(
        200,
        serde_json::to_vec(&recorded).unwrap(),
    )))
    .await;
    let proxy = openai_proxy(&up.base_url());
    let completion = guard("custom call", proxy.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    up.request().await;
    assert_eq!(
        serde_json::to_value(&completion).unwrap(),
        canonical_completion(&recorded)
    );

    // The answer's message, sent back with the call's result.
    let message = serde_json::to_value(&completion.choices[0].message).unwrap();
    let mut history = messages();
    let history_list = history.as_array_mut().unwrap();
    history_list.push(message.clone());
    history_list.push(json!({"role": "tool", "tool_call_id": custom["id"], "content": "20C"}));
    let request = ChatRequest::from_value(json!({"model": "gpt-4o-mini", "messages": history}))
        .expect("the history is valid");
    let mut up = upstream(Behaviour::Reply(Reply::json(
        200,
        fixture("openai/chat/text-gpt35-2026.json"),
    )))
    .await;
    guard(
        "custom call sent back",
        openai_proxy(&up.base_url()).generate(&request),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let sent = up.request().await.json();
    assert_eq!(sent["messages"][2]["tool_calls"], json!([custom]));
    assert_eq!(sent["messages"][3]["tool_call_id"], custom["id"]);
}

// ---------------------------------------------------------------------------------------------
// 11. Fallbacks
// ---------------------------------------------------------------------------------------------

fn overloaded() -> Reply {
    Reply::json(
        503,
        br#"{"error":{"message":"busy","type":"server_error"}}"#.to_vec(),
    )
}

/// The requests an upstream has received so far (after a moment for stragglers).
async fn count_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> usize {
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::iter::from_fn(|| seen.try_recv().ok()).count()
}

fn call_options(options: Value) -> CallOptions {
    serde_json::from_value(options).expect("valid call options")
}

/// `llm_proxy` of an answer or chunk.
fn served(extra: &serde_json::Map<String, Value>) -> &Value {
    extra
        .get("llm_proxy")
        .unwrap_or_else(|| panic!("no llm_proxy in {extra:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_moves_to_the_fallback_once_retries_are_spent() {
    let (primary, mut seen_primary) =
        upstream_sequence(vec![overloaded(), overloaded(), overloaded()]).await;
    let (backup, mut seen_backup) = upstream_sequence(vec![Reply::json(
        200,
        fixture("openai/chat/text-gpt35-2026.json"),
    )])
    .await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": primary},
        "compatible": {"backup": {"baseUrl": backup}},
        "retry": {"maxRetries": 2, "initialDelayMs": 5},
        "fallbacks": {"gpt-4o-mini": ["backup/some-model"]}
    }));
    let c = guard("generate", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.id, "chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C");
    assert_eq!(
        c.model, "gpt-3.5-turbo-0125",
        "`model` stays the provider's"
    );
    let s = served(&c.extra);
    assert_eq!(s["model"], "backup/some-model");
    assert_eq!(s["provider"], "backup");
    assert_eq!(s["fallback"], true);
    assert_eq!(s["attempts"], 1);
    let failed = s["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["model"], "gpt-4o-mini");
    assert_eq!(failed[0]["provider"], "openai");
    assert_eq!(failed[0]["code"], "overloaded");
    assert_eq!(failed[0]["status"], 503);
    assert_eq!(failed[0]["attempts"], 3);
    assert!(failed[0]["message"]
        .as_str()
        .unwrap()
        .ends_with("(gave up after 3 attempts)"));
    // It is in the answer as serialised for JavaScript.
    assert_eq!(serde_json::to_value(&c).unwrap()["llm_proxy"], *s);

    assert_eq!(count_seen(&mut seen_primary).await, 3);
    let asked = seen_backup.try_recv().expect("the fallback was asked");
    // The same request, the model replaced.
    assert_eq!(asked.json(), expected_upstream_body("some-model", false));
    assert_eq!(asked.header("authorization"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_failure_never_moves_to_the_fallback() {
    for (status, body, code) in [
        (
            400,
            fixture("openai/errors/400-unsupported-parameter.json"),
            ErrorCode::InvalidRequest,
        ),
        (
            401,
            fixture("openai/errors/401-invalid-api-key.json"),
            ErrorCode::Authentication,
        ),
    ] {
        let (primary, mut seen_primary) = upstream_sequence(vec![Reply::json(status, body)]).await;
        let (backup, mut seen_backup) = upstream_sequence(vec![Reply::json(
            200,
            fixture("openai/chat/text-gpt35-2026.json"),
        )])
        .await;
        let p = proxy(json!({
            "openai": {"apiKey": KEY, "baseUrl": primary},
            "compatible": {"backup": {"baseUrl": backup}},
            "retry": {"maxRetries": 2, "initialDelayMs": 5},
            "fallbacks": {"gpt-4o-mini": ["backup/some-model"]}
        }));
        let req = chat_request("gpt-4o-mini");
        let e = guard("generate", p.generate(&req)).await.unwrap_err();
        assert_eq!(e.code, code, "{status}: {e:?}");
        assert_eq!(e.status, Some(status));
        assert!(e.tried.is_empty(), "{status}: {:?}", e.tried);
        assert!(!e.message.contains("Models tried"), "{}", e.message);
        assert_eq!(count_seen(&mut seen_primary).await, 1, "{status}");
        assert_eq!(
            count_seen(&mut seen_backup).await,
            0,
            "{status}: the fallback was asked"
        );
        assert_no_key(&e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moves_to_the_fallback_when_it_fails_before_its_first_chunk() {
    let file = "openai/sse/text-include-usage.sse";
    let x = read_sse_fixture(&fixture(file));
    let error_event =
        b"event: error\ndata: {\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
    let cases: Vec<(&str, Reply, &str)> = vec![
        ("503", overloaded(), "overloaded"),
        (
            "headers, then the connection drops",
            Reply::sse(fixture(file)).cut_at(0),
            "connection",
        ),
        (
            "an error event before any chunk",
            Reply::sse(error_event.to_vec()),
            "overloaded",
        ),
        (
            "headers, then silence",
            Reply::sse(fixture(file)).stall_after_head(),
            "timeout",
        ),
    ];
    for (what, reply, code) in cases {
        let (primary, mut seen_primary) = upstream_sequence(vec![reply]).await;
        let (backup, mut seen_backup) = upstream_sequence(vec![Reply::sse(fixture(file))]).await;
        let p = proxy(json!({
            "openai": {"apiKey": KEY, "baseUrl": primary},
            "compatible": {"backup": {"baseUrl": backup}},
            "retry": {"maxRetries": 0},
            "timeouts": {"firstChunkMs": 300},
            "fallbacks": {"gpt-4o-mini": ["backup/some-model"]}
        }));
        let s = guard(what, p.stream(&chat_request("gpt-4o-mini")))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let chunks = all_ok(drain(s).await, what);
        check_stream(what, &chunks, &x, (0, 0));
        let s = served(&chunks[0].extra);
        assert_eq!(s["model"], "backup/some-model", "{what}");
        assert_eq!(s["fallback"], true, "{what}");
        assert_eq!(s["failed"][0]["code"], code, "{what}: {s}");
        assert_eq!(s["failed"][0]["attempts"], 1, "{what}");
        assert!(
            chunks[1..]
                .iter()
                .all(|c| !c.extra.contains_key("llm_proxy")),
            "{what}: only the first chunk says who answered"
        );
        assert_eq!(count_seen(&mut seen_primary).await, 1, "{what}");
        let asked = seen_backup.try_recv().expect("the fallback was asked");
        assert_eq!(
            asked.json(),
            expected_upstream_body("some-model", true),
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_after_its_first_chunk_does_not_fall_back() {
    let file = "openai/sse/text-include-usage.sse";
    let x = read_sse_fixture(&fixture(file));
    let (primary, _seen_primary) =
        upstream_sequence(vec![Reply::sse(fixture(file)).cut_at(x.event_ends[2])]).await;
    let (backup, mut seen_backup) = upstream_sequence(vec![Reply::sse(fixture(file))]).await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": primary},
        "compatible": {"backup": {"baseUrl": backup}},
        "retry": {"maxRetries": 2, "initialDelayMs": 5},
        "fallbacks": {"gpt-4o-mini": ["backup/some-model"]}
    }));
    let s = guard("stream", p.stream(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut items = drain(s).await;
    let e = items.pop().unwrap().expect_err("the cut stream ended well");
    let chunks = all_ok(items, "cut");
    assert_eq!(chunks.len(), 3);
    assert_eq!(e.code, ErrorCode::StreamInterrupted, "{e:?}");
    assert!(e.tried.is_empty());
    let s = served(&chunks[0].extra);
    assert_eq!(
        *s,
        json!({"model": "gpt-4o-mini", "provider": "openai", "fallback": false, "attempts": 1, "failed": []})
    );
    assert_eq!(
        count_seen(&mut seen_backup).await,
        0,
        "the fallback was asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_fallbacks_replace_the_proxys() {
    let ok = || Reply::json(200, fixture("openai/chat/text-gpt35-2026.json"));
    let (primary, _p) = upstream_sequence(vec![overloaded(), overloaded()]).await;
    let (a, mut seen_a) = upstream_sequence(vec![ok()]).await;
    let (b, mut seen_b) = upstream_sequence(vec![ok()]).await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": primary},
        "compatible": {"a": {"baseUrl": a}, "b": {"baseUrl": b}},
        "retry": {"maxRetries": 0},
        "fallbacks": {"gpt-4o-mini": ["a/m"]}
    }));
    let req = chat_request("gpt-4o-mini");
    let c = guard(
        "per-call fallbacks",
        p.generate_with(&req, &call_options(json!({"fallbacks": ["b/m"]}))),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(served(&c.extra)["model"], "b/m");
    assert_eq!(count_seen(&mut seen_b).await, 1);
    assert_eq!(count_seen(&mut seen_a).await, 0);

    // `[]`: no fallback for this call, and so no llm_proxy either.
    let e = guard(
        "no fallbacks",
        p.generate_with(&req, &call_options(json!({"fallbacks": []}))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Overloaded);
    assert!(e.tried.is_empty());
    assert_eq!(count_seen(&mut seen_a).await, 0);

    // A fallback that cannot be routed fails the call before anything is sent.
    let (primary, mut seen_primary) = upstream_sequence(vec![ok()]).await;
    let p = openai_proxy(&primary);
    let e = guard(
        "unroutable",
        p.generate_with(&req, &call_options(json!({"fallbacks": ["no-such-model"]}))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedModel, "{e:?}");
    assert!(
        e.message.starts_with("fallbacks[0] 'no-such-model': "),
        "{}",
        e.message
    );
    assert_eq!(count_seen(&mut seen_primary).await, 0);

    // Without fallbacks the answer is as it always was.
    let c = guard("plain", p.generate(&req)).await.unwrap();
    assert!(!c.extra.contains_key("llm_proxy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_error_lists_every_model_tried() {
    // gpt-4o-mini: 503 twice; claude-sonnet-4-5: no Anthropic key, skipped; backup: 503 twice.
    let (primary, _p) = upstream_sequence(vec![overloaded(), overloaded()]).await;
    let (backup, _b) = upstream_sequence(vec![overloaded(), overloaded()]).await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": primary},
        "compatible": {"backup": {"baseUrl": backup}},
        "retry": {"maxRetries": 1, "initialDelayMs": 5},
        "fallbacks": {"gpt-4o-mini": ["claude-sonnet-4-5", "backup/some-model"]}
    }));
    let e = guard("all fail", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Overloaded, "{e:?}");
    assert_eq!(
        e.provider.as_deref(),
        Some("backup"),
        "the last model's error"
    );
    let tried: Vec<(String, ErrorCode, u32)> = e
        .tried
        .iter()
        .map(|t| (t.model.clone(), t.code, t.attempts))
        .collect();
    assert_eq!(
        tried,
        vec![
            ("gpt-4o-mini".to_string(), ErrorCode::Overloaded, 2),
            ("claude-sonnet-4-5".to_string(), ErrorCode::Config, 0),
            ("backup/some-model".to_string(), ErrorCode::Overloaded, 2),
        ]
    );
    assert!(
        e.message.contains(
            "[Models tried, in order: gpt-4o-mini (overloaded, 2 attempts), claude-sonnet-4-5 (config, not sent), backup/some-model (overloaded, 2 attempts).]"
        ),
        "{}",
        e.message
    );
    assert!(
        e.tried[1].message.contains("ANTHROPIC_API_KEY"),
        "{:?}",
        e.tried[1]
    );
    let j: Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(j["tried"].as_array().unwrap().len(), 3);
    assert_no_key(&e);

    // A fallback's non-retryable error ends the call: the models after it are not tried.
    let (primary, _p) = upstream_sequence(vec![overloaded()]).await;
    let (a, _a) = upstream_sequence(vec![Reply::json(
        401,
        fixture("openai/errors/401-invalid-api-key.json"),
    )])
    .await;
    let (b, mut seen_b) = upstream_sequence(vec![overloaded()]).await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": primary},
        "compatible": {"a": {"baseUrl": a}, "b": {"baseUrl": b}},
        "retry": {"maxRetries": 0},
        "fallbacks": {"gpt-4o-mini": ["a/m", "b/m"]}
    }));
    let e = guard("stops", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Authentication);
    assert_eq!(e.tried.len(), 2);
    assert!(e.message.contains("Not tried: b/m"), "{}", e.message);
    assert_eq!(count_seen(&mut seen_b).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_moves_to_the_fallback() {
    let mut up = upstream(Behaviour::Silent).await;
    let p = proxy(json!({
        "openai": {"apiKey": KEY, "baseUrl": up.base_url()},
        "timeouts": {"requestMs": 200},
        "retry": {"maxRetries": 0},
        "fallbacks": {"gpt-4o-mini": ["mock/echo"]}
    }));
    let c = guard("generate", p.generate(&chat_request("gpt-4o-mini")))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        c.choices[0].message.content.as_deref(),
        Some("What's the weather like in Boston today?")
    );
    let s = served(&c.extra);
    assert_eq!(s["provider"], "mock");
    assert_eq!(s["failed"][0]["code"], "timeout");
    up.request().await;
}
