'use strict'

// Shared by the test files: the package, the fixtures, an independent reading of recorded SSE, and
// the stream-contract checks.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

// The environment must not leak into tests: keys, base URLs and organisation headers are read from it
// when `new LLMProxy()` runs.
for (const name of [
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'OPENAI_ORG_ID',
  'OPENAI_PROJECT_ID',
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_BASE_URL',
]) {
  delete process.env[name]
}

const ROOT = path.join(__dirname, '..', '..')
const FIXTURES = path.join(ROOT, 'tests', 'fixtures')
const pkg = require(ROOT)

function fixture(rel) {
  return fs.readFileSync(path.join(FIXTURES, rel))
}

function fixtureJson(rel) {
  return JSON.parse(fixture(rel).toString('utf8'))
}

function listFixtures(dir, ext) {
  return fs
    .readdirSync(path.join(FIXTURES, dir))
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => `${dir}/${f}`)
}

/**
 * Reads a recorded OpenAI-format SSE body without the library: the JSON of every `data:` event, and
 * what a correct client must assemble from it.
 */
function expectedFromSse(buf) {
  // A minimal SSE reader: `data:` lines joined by "\n", dispatched at a blank line or at the end.
  const events = []
  let data = null
  const dispatch = () => {
    if (data !== null && data !== '[DONE]') events.push(JSON.parse(data))
    data = null
  }
  for (const line of buf.toString('utf8').split(/\r\n|\r|\n/)) {
    if (line === '') dispatch()
    else if (line.startsWith('data:')) {
      const value = line.slice(5).replace(/^ /, '')
      data = data === null ? value : `${data}\n${value}`
    }
  }
  dispatch()
  let content = ''
  const calls = []
  const byUpstreamIndex = new Map()
  let finishReason = null
  let usage = null
  for (const e of events) {
    if (e.usage) usage = e.usage
    for (const ch of e.choices || []) {
      const d = ch.delta || {}
      if (typeof d.content === 'string') content += d.content
      for (const t of d.tool_calls || []) {
        let call = byUpstreamIndex.get(t.index)
        if (!call) {
          call = { id: t.id, name: '', arguments: '' }
          byUpstreamIndex.set(t.index, call)
          calls.push(call)
        }
        if (t.function && t.function.name) call.name += t.function.name
        if (t.function && t.function.arguments) call.arguments += t.function.arguments
      }
      if (ch.finish_reason) finishReason = finishReason || ch.finish_reason
    }
  }
  const first = events[0]
  return {
    events,
    content,
    toolCalls: calls,
    finishReason,
    usage,
    id: first.id,
    model: first.model,
    created: first.created,
    upstreamToolIndexes: [...byUpstreamIndex.keys()],
  }
}

/**
 * Checks a list of chunks against the stream contract and returns what they assemble to:
 * `{ content, toolCalls: [{ id, name, arguments }], finishReason, usage, chunks }`.
 */
function assembleChunks(chunks) {
  assert.ok(chunks.length > 0, 'no chunks at all')
  assert.ok(chunks[0].choices.length > 0, 'the first chunk must have a choice')
  assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first delta carries role: assistant')
  let content = ''
  const toolCalls = []
  const finishes = []
  chunks.forEach((c, i) => {
    assert.equal(c.object, 'chat.completion.chunk')
    assert.equal(typeof c.id, 'string')
    assert.ok(c.id.length > 0)
    assert.equal(c.id, chunks[0].id, 'every chunk has the same id')
    assert.equal(c.model, chunks[0].model, 'every chunk has the same model')
    assert.equal(c.created, chunks[0].created, 'every chunk has the same created')
    assert.ok(Number.isInteger(c.created) && c.created > 1e9 && c.created < 1e10, `created is in seconds: ${c.created}`)
    assert.ok(!('obfuscation' in c), 'obfuscation is not passed on')
    if (c.choices.length === 0) {
      assert.equal(i, chunks.length - 1, 'only the last chunk may have no choices')
      assert.ok(c.usage, 'the chunk without choices carries usage')
    } else {
      assert.ok(c.usage === undefined || c.usage === null, `chunk ${i} has choices and usage`)
    }
    for (const ch of c.choices) {
      assert.equal(ch.index, 0)
      if (i > 0) assert.equal(ch.delta.role, undefined, `chunk ${i} repeats the role`)
      if (typeof ch.delta.content === 'string') content += ch.delta.content
      for (const t of ch.delta.tool_calls || []) {
        assert.ok(Number.isInteger(t.index), 'tool call deltas have an index')
        if (t.index === toolCalls.length) {
          assert.equal(typeof t.id, 'string', 'the first delta of a tool call has its id')
          assert.ok(t.id.length > 0)
          assert.equal(t.type, 'function')
          assert.equal(typeof t.function.name, 'string', 'the first delta of a tool call has its name')
          toolCalls.push({ id: t.id, name: '', arguments: '' })
        } else {
          assert.ok(t.index < toolCalls.length, `tool call index ${t.index} skips a number (have ${toolCalls.length})`)
          assert.equal(t.id, undefined, 'only the first delta of a tool call has an id')
        }
        if (t.function && t.function.name) toolCalls[t.index].name += t.function.name
        if (t.function && t.function.arguments) toolCalls[t.index].arguments += t.function.arguments
      }
      if (ch.finish_reason !== null && ch.finish_reason !== undefined) finishes.push(ch.finish_reason)
    }
  })
  assert.equal(finishes.length, 1, `exactly one finish_reason, got ${JSON.stringify(finishes)}`)
  const last = chunks[chunks.length - 1]
  return {
    content,
    toolCalls,
    finishReason: finishes[0],
    usage: last.choices.length === 0 ? last.usage : undefined,
    chunks,
  }
}

async function collect(iterable) {
  const out = []
  for await (const c of iterable) out.push(c)
  return out
}

/** Runs `fn` and returns what it threw (failing if it did not throw). */
async function caught(fn) {
  try {
    await fn()
  } catch (err) {
    return err
  }
  assert.fail('expected an error, but none was thrown')
}

/** Checks the shape every LLMProxyError has, plus the given fields. */
function assertProxyError(err, fields = {}) {
  assert.ok(err instanceof pkg.LLMProxyError, `not an LLMProxyError: ${err && err.stack}`)
  assert.ok(err instanceof Error)
  assert.equal(err.name, 'LLMProxyError')
  assert.ok(pkg.ERROR_CODES.includes(err.code), `unknown code ${err.code}`)
  assert.equal(typeof err.message, 'string')
  assert.ok(err.message.length > 0)
  assert.equal(typeof err.retryable, 'boolean')
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof RegExp) assert.match(String(err[k]), v, `${k}: ${err[k]}`)
    else assert.deepEqual(err[k], v, `${k} (message: ${err.message})`)
  }
  return err
}

const USER = [{ role: 'user', content: 'Tell me a joke about opentelemetry' }]

module.exports = {
  ...pkg,
  pkg,
  ROOT,
  FIXTURES,
  fixture,
  fixtureJson,
  listFixtures,
  expectedFromSse,
  assembleChunks,
  collect,
  caught,
  assertProxyError,
  USER,
}
