'use strict'

// What the mock upstream answers and what every peer must hand back, shared by bench/upstream.js
// (which builds the responses from it) and bench/peer.js (which checks every call against it).
// The text is deliberately not plain ASCII: a multi-byte character split across two TCP reads, an
// escaped quote or newline must survive every peer's decoding, or the call fails verification.

const OPENAI_KEY = 'sk-bench-0000000000000000'
const ANTHROPIC_KEY = 'sk-ant-bench-0000000000000000'
const OPENAI_MODEL = 'gpt-4o-mini'
const OPENAI_MODEL_SERVED = 'gpt-4o-mini-2024-07-18'
const ANTHROPIC_MODEL = 'claude-sonnet-4-5-20250929'

// The answer of a non-streamed call (about 1 KB of JSON with the envelope).
const ANSWER =
  'Distributed tracing follows one request as it crosses services: each hop records a span with ' +
  'its start, its duration and the span that caused it, and the spans of one request share a trace ' +
  'id. Put together, they show where the time went — the naïve guess ("the database is slow") is ' +
  'often wrong, and the trace shows the retry loop or the queue that really was.\n\n' +
  'Metrics answer a different question: not what happened to this request, but how often and how ' +
  'fast things happen overall. Both are cheap to collect once the instrumentation is in place. 🔭'

const ANSWER_TOKENS = ANSWER.split(/\s+/).length

// The pieces a streamed answer is made of, in turn: the n-th content chunk is PIECES[n % length]
// (with a leading space after the first), so a stream of any length has a known text.
const PIECES = ANSWER.replace(/\n/g, ' \n').split(/ +/).filter(Boolean)

function streamPiece(i) {
  const word = PIECES[i % PIECES.length]
  return i === 0 ? word : ` ${word}`
}

function streamText(chunks) {
  let text = ''
  for (let i = 0; i < chunks; i++) text += streamPiece(i)
  return text
}

// The request every peer sends (translated by the peer into its own API's terms).
const SYSTEM = 'You are a concise assistant.'
const USER = 'In one short paragraph: what do traces show that metrics do not?'

module.exports = {
  OPENAI_KEY,
  ANTHROPIC_KEY,
  OPENAI_MODEL,
  OPENAI_MODEL_SERVED,
  ANTHROPIC_MODEL,
  ANSWER,
  ANSWER_TOKENS,
  streamPiece,
  streamText,
  SYSTEM,
  USER,
}
