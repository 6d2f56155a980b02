//! A realistic long conversation, as the binding receives it: the JSON text of an OpenAI-format
//! request. Deterministic (a fixed-seed generator), so every run measures the same bytes.
//!
//! 100 messages: a system prompt, then user and assistant turns in which some assistant turns call
//! tools (one or two calls, each followed by its `tool` result), some user turns are multi-part
//! (text parts, one with `cache_control`), and six function tools with JSON Schemas are offered.
//! Text only: the Llama InvokeModel adapter takes no images, and every provider must accept the
//! same request. Strings carry quotes, newlines and non-ASCII text, as real ones do, so JSON
//! escaping is exercised.

use serde_json::{json, Value};

/// Messages in the conversation.
pub const MESSAGES: usize = 100;

/// xorshift64*: deterministic text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[rustfmt::skip]
const WORDS: [&str; 48] = [
    "the", "order", "shipment", "customer", "invoice", "warehouse", "delivery", "status",
    "please", "check", "whether", "refund", "was", "issued", "for", "account", "and", "update",
    "ticket", "with", "latest", "notes", "from", "support", "team", "café", "naïve", "Zürich",
    "\"priority\"", "escalate", "tomorrow", "morning", "region", "eu-west", "report", "summary",
    "quarterly", "numbers", "are", "below", "forecast", "because", "of", "delayed", "parts",
    "—", "it's", "東京",
];

/// `words` pseudo-random words, in sentences, with an occasional line break.
fn text(rng: &mut Rng, words: usize) -> String {
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        if i > 0 {
            out.push(if i % 17 == 0 { '\n' } else { ' ' });
        }
        out.push_str(WORDS[rng.below(WORDS.len())]);
        if i % 11 == 10 {
            out.push('.');
        }
    }
    out.push('.');
    out
}

/// Between `min` and `min + spread - 1` words.
fn some_text(rng: &mut Rng, min: usize, spread: usize) -> String {
    let words = min + rng.below(spread);
    text(rng, words)
}

fn tools() -> Value {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| {
        json!({
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false
                }
            }
        })
    };
    json!([
        tool(
            "get_order",
            "Look up an order by its id and return its items, status and shipping details.",
            json!({
                "order_id": {"type": "string", "description": "The order id, e.g. ORD-12345."},
                "include_items": {"type": "boolean", "description": "Whether to list the items."}
            }),
            &["order_id"],
        ),
        tool(
            "search_docs",
            "Full-text search over the internal knowledge base; returns the best passages.",
            json!({
                "query": {"type": "string"},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 20},
                "filters": {
                    "type": "object",
                    "properties": {
                        "product": {"type": "string", "enum": ["core", "cloud", "mobile"]},
                        "updated_after": {"type": "string", "format": "date"}
                    }
                }
            }),
            &["query"],
        ),
        tool(
            "run_sql",
            "Run a read-only SQL query against the analytics warehouse.",
            json!({
                "sql": {"type": "string", "description": "A single SELECT statement."},
                "limit": {"type": "integer", "default": 100}
            }),
            &["sql"],
        ),
        tool(
            "create_ticket",
            "Open a support ticket for the customer.",
            json!({
                "title": {"type": "string"},
                "body": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            }),
            &["title", "body"],
        ),
        tool(
            "get_weather",
            "Current weather for a city.",
            json!({
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            }),
            &["city"],
        ),
        tool(
            "send_email",
            "Send an email on the customer's behalf.",
            json!({
                "to": {"type": "array", "items": {"type": "string", "format": "email"}},
                "subject": {"type": "string"},
                "body": {"type": "string"}
            }),
            &["to", "subject", "body"],
        ),
    ])
}

/// A tool call: its id, name and arguments (JSON text, as OpenAI sends them).
fn call(rng: &mut Rng, n: usize) -> (String, &'static str, String) {
    let id = format!("call_{n:04}_{:016x}", rng.next());
    let (name, args) = match rng.below(4) {
        0 => (
            "get_order",
            json!({"order_id": format!("ORD-{}", 10_000 + rng.below(90_000)), "include_items": true}),
        ),
        1 => (
            "search_docs",
            json!({"query": text(rng, 6), "top_k": 5, "filters": {"product": "cloud"}}),
        ),
        2 => (
            "run_sql",
            json!({"sql": "SELECT region, SUM(total) AS revenue FROM orders WHERE created_at >= '2025-01-01' GROUP BY region ORDER BY revenue DESC", "limit": 50}),
        ),
        _ => (
            "create_ticket",
            json!({"title": text(rng, 5), "body": text(rng, 30), "priority": "high", "tags": ["billing", "refund"]}),
        ),
    };
    (id, name, args.to_string())
}

/// What a tool returned: JSON text, as applications usually pass it.
fn tool_result(rng: &mut Rng, name: &str) -> String {
    const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "sa-east"];
    json!({
        "tool": name,
        "ok": true,
        "rows": (0..4).map(|i| json!({
            "id": i,
            "region": REGIONS[i],
            "revenue": 1000 + rng.below(100_000),
            "note": text(rng, 8),
        })).collect::<Vec<_>>(),
        "elapsed_ms": rng.below(500),
    })
    .to_string()
}

/// The messages: the system prompt, then turns until there are [`MESSAGES`], ending on a user turn.
fn messages() -> Vec<Value> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = vec![json!({
        "role": "system",
        "content": format!(
            "You are a support assistant for an online shop. Answer briefly and cite order ids.\n\
             Use the tools when you need data; never invent order details.\n\n{}",
            text(&mut rng, 180)
        )
    })];
    let mut turn = 0usize;
    let mut calls = 0usize;
    // Room for the turn's messages and the final user message.
    while out.len() < MESSAGES - 1 {
        let room = MESSAGES - 1 - out.len();
        let user = if turn % 3 == 1 {
            // Multi-part: text parts, the second marked for prompt caching.
            json!({"role": "user", "content": [
                {"type": "text", "text": text(&mut rng, 25)},
                {"type": "text", "text": text(&mut rng, 60), "cache_control": {"type": "ephemeral"}}
            ]})
        } else {
            json!({"role": "user", "content": some_text(&mut rng, 20, 40)})
        };
        // Tool turns: user, assistant with calls, one result per call, the assistant's answer.
        let n_calls = match turn % 4 {
            1 => 2,
            3 => 1,
            _ => 0,
        };
        if n_calls > 0 && room >= 3 + n_calls {
            out.push(user);
            let mut tool_calls = Vec::new();
            let mut results = Vec::new();
            for _ in 0..n_calls {
                let (id, name, arguments) = call(&mut rng, calls);
                calls += 1;
                tool_calls.push(json!({
                    "id": id, "type": "function",
                    "function": {"name": name, "arguments": arguments}
                }));
                results.push(json!({
                    "role": "tool", "tool_call_id": id, "content": tool_result(&mut rng, name)
                }));
            }
            // One with text before its calls, one without (content null), as models answer.
            let content = if n_calls == 2 {
                Value::String(text(&mut rng, 12))
            } else {
                Value::Null
            };
            out.push(json!({"role": "assistant", "content": content, "tool_calls": tool_calls}));
            out.extend(results);
            out.push(json!({"role": "assistant", "content": some_text(&mut rng, 40, 80)}));
        } else if room >= 2 {
            out.push(user);
            out.push(json!({"role": "assistant", "content": some_text(&mut rng, 30, 90)}));
        } else {
            // One slot left before the final user message: a short assistant follow-up.
            out.push(json!({"role": "assistant", "content": text(&mut rng, 10)}));
        }
        turn += 1;
    }
    out.push(json!({"role": "user", "content": text(&mut rng, 30)}));
    assert_eq!(out.len(), MESSAGES);
    out
}

/// The request's JSON text for `model`, as `JSON.stringify` would hand it over.
pub fn request_json(model: &str) -> String {
    json!({
        "model": model,
        "messages": messages(),
        "tools": tools(),
        "tool_choice": "auto",
        "max_tokens": 1024,
        "temperature": 0.7,
        "top_p": 0.95,
        "user": "user-1234"
    })
    .to_string()
}
