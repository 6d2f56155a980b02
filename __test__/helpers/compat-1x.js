'use strict'

// For the differential tests of the 1.x drop-in API (compat-1x.test.js): one loopback upstream that
// both packages talk to, the 1.17.0 reference recordings it replays, and the comparisons ("what a 1.x
// user reads is equal") with the documented differences kept out of them and asserted on their own.

const assert = require('node:assert/strict')
const { startUpstream, writeResponse, openSse, sleep, JSON_HEADERS, SSE_HEADERS } = require('./upstream')

/**
 * What llm-proxy 1.17.0 sent and returned for each case, recorded with its own SDKs
 * (/work/shared/reference/llm-proxy-1.17.0; request headers left out, the mock key is `sk-mock`).
 */
const REFERENCE = require('./compat-1x-reference.json')

/** The environment variables the SDKs of 1.x and the core of 2.x read; saved and restored per test. */
const ENV_NAMES = [
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'OPENAI_ORG_ID',
  'OPENAI_PROJECT_ID',
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'ANTHROPIC_BASE_URL',
]

function saveEnv() {
  const saved = {}
  for (const name of ENV_NAMES) saved[name] = process.env[name]
  return () => {
    for (const name of ENV_NAMES) {
      if (saved[name] === undefined) delete process.env[name]
      else process.env[name] = saved[name]
    }
  }
}

function refCase(name) {
  const c = REFERENCE.cases[name]
  assert.ok(c, `no reference recording named ${name}`)
  return c
}

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)))

/**
 * Starts the loopback provider both packages are pointed at (OPENAI_BASE_URL = `<url>/v1`,
 * ANTHROPIC_BASE_URL = `<url>`, which is what the SDKs of 1.x and the core of 2.x both read).
 *
 * `side(respond, fn)` runs `fn` while the upstream answers with `respond(req, socket, i)` (`i` counts
 * the requests of this side from 0) and returns `fn`'s result with the requests it caused.
 */
async function loopback() {
  let respond = null
  let first = 0
  const up = await startUpstream((req, socket) => {
    const i = up.requests.indexOf(req) - first
    if (!respond) throw new Error(`unexpected request ${req.method} ${req.path}`)
    return respond(req, socket, i)
  })
  process.env.OPENAI_BASE_URL = up.baseUrl
  process.env.ANTHROPIC_BASE_URL = up.url
  return {
    up,
    async side(responder, fn) {
      first = up.requests.length
      respond = responder
      try {
        const result = await fn()
        // Let a request sent at the very end (a second forced-tool attempt) be recorded.
        await sleep(5)
        return { ...result, requests: up.requests.slice(first) }
      } finally {
        respond = null
      }
    },
  }
}

/** Error responses also carry `retry-after-ms: 1`, so the retries of both packages are quick. */
function recordedHeaders(response) {
  const headers = { ...(response.sse !== undefined ? SSE_HEADERS : JSON_HEADERS), ...(response.headers || {}) }
  if (response.status >= 400) headers['retry-after-ms'] = '1'
  return headers
}

/** Writes one recorded upstream response (`{ status, headers?, body? | sse?, dropped_after_events? }`). */
async function writeRecorded(socket, response) {
  if (response.dropped_after_events !== undefined) {
    // The recording holds exactly the events sent before the connection was dropped.
    const sse = await openSse(socket, { status: response.status, headers: recordedHeaders(response) })
    await sse.send(response.sse)
    await sleep(20)
    sse.cut()
    return
  }
  const body = response.sse !== undefined ? response.sse : response.body
  await writeResponse(socket, response.status, recordedHeaders(response), body)
}

/** A responder replaying the recorded upstream responses of `name` in order. */
function replayCase(name) {
  const ups = refCase(name).upstream
  return (req, socket, i) => {
    const u = ups[Math.min(i, ups.length - 1)]
    return writeRecorded(socket, u.response)
  }
}

/** A responder answering every request with one recorded response. */
function replayResponse(response) {
  return (req, socket) => writeRecorded(socket, response)
}

/** Consumes a 1.x-style stream call (a Promise of an async generator); never throws. */
async function drainLegacy(promiseOfStream) {
  const chunks = []
  try {
    const stream = await promiseOfStream
    for await (const c of stream) chunks.push(c)
  } catch (err) {
    return { chunks, err }
  }
  return { chunks, err: undefined }
}

async function settle(promise) {
  try {
    return { result: await promise, err: undefined }
  } catch (err) {
    return { result: undefined, err }
  }
}

const join = (path, key) => (path === '' ? String(key) : `${path}.${key}`)

/**
 * "What a 1.x user reads is equal": every field of `expected` (1.x's value) is in `actual` (2.x's)
 * with the same value, recursively; fields only 2.x has are allowed. `null` and `undefined` count as
 * the same (`if (x.usage)`, `x.refusal ?? …` read them alike). Paths in `skip` (e.g.
 * 'choices.0.message.content') are documented differences, asserted separately.
 */
function assertReads(actual, expected, { skip = [], path = '', what = '2.x' } = {}) {
  if (skip.includes(path)) return
  const where = path || '(top level)'
  if (expected === null || expected === undefined) {
    assert.ok(
      actual === null || actual === undefined,
      `${where}: 1.x gives ${expected}, ${what} gives ${JSON.stringify(actual)}`,
    )
    return
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: 1.x gives an array, ${what} gives ${JSON.stringify(actual)}`)
    assert.equal(
      actual.length,
      expected.length,
      `${where}: 1.x gives ${expected.length} items, ${what} ${actual.length}: ${JSON.stringify(actual)}`,
    )
    expected.forEach((e, i) => assertReads(actual[i], e, { skip, path: join(path, i), what }))
    return
  }
  if (typeof expected === 'object') {
    assert.ok(
      actual !== null && typeof actual === 'object' && !Array.isArray(actual),
      `${where}: 1.x gives an object, ${what} gives ${JSON.stringify(actual)}`,
    )
    for (const k of Object.keys(expected)) assertReads(actual[k], expected[k], { skip, path: join(path, k), what })
    return
  }
  assert.equal(actual, expected, `${where}: 1.x gives ${JSON.stringify(expected)}, ${what} gives ${JSON.stringify(actual)}`)
}

/** What a 1.x user assembles from a stream of chunks. */
function readStream(chunks) {
  let content = ''
  const finishReasons = []
  let usage
  const functionCall = { name: '', arguments: '' }
  let sawFunctionCall = false
  const toolCalls = []
  for (const c of chunks) {
    if (c.usage) usage = c.usage
    for (const ch of c.choices || []) {
      const d = ch.delta || {}
      if (typeof d.content === 'string') content += d.content
      if (d.function_call) {
        sawFunctionCall = true
        if (d.function_call.name) functionCall.name += d.function_call.name
        if (d.function_call.arguments) functionCall.arguments += d.function_call.arguments
      }
      for (const t of d.tool_calls || []) {
        const i = t.index === undefined ? 0 : t.index
        if (!toolCalls[i]) toolCalls[i] = { id: '', name: '', arguments: '' }
        if (t.id) toolCalls[i].id += t.id
        if (t.function && t.function.name) toolCalls[i].name += t.function.name
        if (t.function && t.function.arguments) toolCalls[i].arguments += t.function.arguments
      }
      if (ch.finish_reason !== null && ch.finish_reason !== undefined) finishReasons.push(ch.finish_reason)
    }
  }
  return {
    content,
    finishReasons,
    usage,
    functionCall: sawFunctionCall ? functionCall : undefined,
    toolCalls,
    ids: [...new Set(chunks.map((c) => c.id))],
    models: chunks.map((c) => c.model),
    objects: [...new Set(chunks.map((c) => c.object))],
    created: [...new Set(chunks.map((c) => c.created))],
  }
}

// Anthropic request bodies, normalized: a string `content` is the same as one text block, and a
// string `system` the same as one text block.
function blocks(content) {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  return content
}

function anthropicTurns(body) {
  return body.messages.map((m) => ({ role: m.role, content: blocks(m.content) }))
}

function anthropicSystem(body) {
  if (body.system === undefined || body.system === null || body.system === '') return []
  if (typeof body.system === 'string') return [body.system]
  return body.system.map((b) => b.text)
}

/** Every text of every block of every turn (tool_result contents included). */
function allTexts(body) {
  const out = []
  for (const m of anthropicTurns(body)) {
    for (const b of m.content) {
      if (b.type === 'text') out.push(b.text)
      if (b.type === 'tool_result') {
        for (const inner of blocks(b.content || [])) if (inner.type === 'text') out.push(inner.text)
      }
    }
  }
  return out
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

function assertSeconds(created, what) {
  assert.ok(Number.isInteger(created), `${what}: created is an integer (${created})`)
  assert.ok(Math.abs(created - nowSeconds()) < 120, `${what}: created ${created} is now, in seconds`)
}

function assertMilliseconds(created, what) {
  assert.ok(Math.abs(created - Date.now()) < 120_000, `${what}: created ${created} is now, in milliseconds`)
}

module.exports = {
  REFERENCE,
  ENV_NAMES,
  saveEnv,
  refCase,
  clone,
  loopback,
  writeRecorded,
  replayCase,
  replayResponse,
  drainLegacy,
  settle,
  assertReads,
  readStream,
  anthropicTurns,
  anthropicSystem,
  allTexts,
  blocks,
  assertSeconds,
  assertMilliseconds,
}
