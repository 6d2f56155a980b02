//! Test support shared by the stream adapters: the stream contract, checked on a chunk sequence.

use crate::types::response::{ChatCompletionChunk, Usage};
use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    pub text: String,
    pub reasoning: String,
    pub thinking_blocks: Vec<Value>,
    /// (id, name, arguments)
    pub calls: Vec<(String, String, String)>,
    pub finish: String,
    pub usage: Option<Usage>,
}

/// Checks the stream contract and returns what the chunks add up to.
pub fn assemble(chunks: &[ChatCompletionChunk]) -> Assembled {
    let first = &chunks[0];
    assert_eq!(first.choices[0].delta.role.as_deref(), Some("assistant"));
    let mut a = Assembled::default();
    let mut finishes = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.object, "chat.completion.chunk");
        assert_eq!(
            (&c.id, &c.model, c.created),
            (&first.id, &first.model, first.created)
        );
        assert!(c.extra.is_empty());
        if c.choices.is_empty() {
            assert_eq!(i, chunks.len() - 1, "usage chunk must be last");
            assert!(c.usage.is_some());
        } else {
            assert!(c.usage.is_none());
            assert_eq!(c.choices.len(), 1);
            assert!(finishes.is_empty(), "nothing after the finish but usage");
        }
        for ch in &c.choices {
            assert_eq!(ch.index, 0);
            assert!(ch.logprobs.is_none());
            assert!(!ch.delta.is_empty() || ch.finish_reason.is_some());
            if i > 0 {
                assert!(ch.delta.role.is_none());
            }
            let d = &ch.delta;
            a.text.push_str(d.content.as_deref().unwrap_or(""));
            a.reasoning
                .push_str(d.reasoning_content.as_deref().unwrap_or(""));
            a.thinking_blocks
                .extend(d.thinking_blocks.iter().flatten().cloned());
            for t in d.tool_calls.iter().flatten() {
                let idx = t.index.unwrap() as usize;
                let f = t.function.as_ref().unwrap();
                if idx == a.calls.len() {
                    assert_eq!(t.kind.as_deref(), Some("function"));
                    a.calls.push((
                        t.id.clone().expect("first delta has id"),
                        f.name.clone().expect("first delta has name"),
                        String::new(),
                    ));
                } else {
                    assert!(idx < a.calls.len(), "tool index {idx} skips numbers");
                    assert!(t.id.is_none() && t.kind.is_none() && f.name.is_none());
                    assert!(!f.arguments.as_deref().unwrap().is_empty());
                }
                a.calls[idx]
                    .2
                    .push_str(f.arguments.as_deref().unwrap_or(""));
            }
            if let Some(r) = &ch.finish_reason {
                assert!(ch.delta.is_empty());
                finishes.push(r.clone());
            }
        }
    }
    assert_eq!(finishes.len(), 1, "exactly one finish_reason");
    a.finish = finishes.remove(0);
    a.usage = chunks.last().unwrap().usage.clone();
    a
}
