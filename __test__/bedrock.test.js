'use strict'

// The AWS Bedrock provider end to end, against a loopback Bedrock Runtime that checks the SigV4
// signature of every request with an independent verifier (helpers/sigv4.js, itself checked against
// AWS's SigV4 test suite here): Claude, Llama 3.1 and the Converse API, answers and binary event
// streams replayed byte for byte (whole, one byte per write, and in 1–7-byte pieces), the exact
// paths and bodies sent, AWS error types, exceptions inside streams, cut and corrupt streams, the
// credential chain, and that credentials never appear in errors. Expected values are read from the
// fixtures here, with an event-stream decoder of this file's own, independently of the library.

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

// No AWS setting of the machine running the tests may leak in: the AWS_ variables are cleared and
// HOME points at an empty directory (no ~/.aws/credentials, no ~/.aws/config). This must happen
// before any LLMProxy is constructed (the configuration is read then).
for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name]
const EMPTY_HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-bedrock-home-'))
process.env.HOME = EMPTY_HOME
delete process.env.USERPROFILE
process.on('exit', () => fs.rmSync(EMPTY_HOME, { recursive: true, force: true }))

const { startUpstream, writeResponse, within } = require('./helpers/upstream')
const { LLMProxy, FIXTURES, fixture, fixtureJson, listFixtures, assembleChunks, collect, caught, assertProxyError, USER } = require('./helpers/common')
const { verifySigV4, computeSignature, canonicalUri, uriEncode, amzDateMs } = require('./helpers/sigv4')

const KEY_ID = 'AKIDEXAMPLE'
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
const REGION = 'us-east-1'
const USER_TEXT = USER[0].content
const SYSTEM_TEXT = 'You are a comedian.'
const EVENTSTREAM = 'application/vnd.amazon.eventstream'
const INVALID_SIGNATURE_MESSAGE =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.'

const CLAUDE3 = 'anthropic.claude-3-sonnet-20240229-v1:0'
const CLAUDE35 = 'anthropic.claude-3-5-sonnet-20240620-v1:0'
const LLAMA31 = 'meta.llama3-1-70b-instruct-v1:0'

/** The model id in a path as AWS SDKs send it: every byte but A–Z a–z 0–9 - _ . ~ as %XX. */
const segment = (id) => uriEncode(id)

function bedrockProxy(upstream, extra = {}, top = {}) {
  // One attempt: these tests look at each answer as the provider sent it.
  return new LLMProxy({ bedrock: { region: REGION, accessKeyId: KEY_ID, secretAccessKey: SECRET, endpoint: upstream.url, ...extra }, retry: { maxRetries: 0 }, ...top })
}

/** Consumes a stream; returns the chunks that arrived and the error it ended with. */
async function drain(iterable) {
  const chunks = []
  try {
    for await (const c of iterable) chunks.push(c)
  } catch (err) {
    return { chunks, err }
  }
  return { chunks, err: undefined }
}

/** A deterministic list of piece sizes between 1 and 7 bytes (mulberry32). */
function pieceSizes(seed, n = 97) {
  let a = seed >>> 0
  const out = []
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out.push(1 + (((t ^ (t >>> 14)) >>> 0) % 7))
  }
  return out
}

const STREAM_MODES = [
  ['whole', 'whole'],
  ['bytewise', 'bytewise'],
  ['1–7-byte pieces', { sizes: pieceSizes(20240229) }],
]

// ---------------------------------------------------------------------------------------------
// The AWS event stream, read and written here without the library.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[i] = c >>> 0
  }
  return table
})()

/** CRC-32 (IEEE 802.3), the checksum of the event-stream prelude and message. */
function crc32(buf) {
  let c = 0xffffffff
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/**
 * Every frame of an event stream: `{ start, end, headers, payload }`. Both CRCs are checked; bytes
 * after the last complete frame are returned as `rest`.
 */
function decodeFrames(buf) {
  const frames = []
  let pos = 0
  while (buf.length - pos >= 16) {
    const total = buf.readUInt32BE(pos)
    const headersLength = buf.readUInt32BE(pos + 4)
    if (buf.length - pos < total) break
    assert.equal(buf.readUInt32BE(pos + 8), crc32(buf.subarray(pos, pos + 8)), `prelude CRC of the frame at ${pos}`)
    assert.equal(buf.readUInt32BE(pos + total - 4), crc32(buf.subarray(pos, pos + total - 4)), `message CRC of the frame at ${pos}`)
    const headers = {}
    let h = pos + 12
    const headersEnd = h + headersLength
    while (h < headersEnd) {
      const nameLength = buf[h]
      const name = buf.subarray(h + 1, h + 1 + nameLength).toString('utf8')
      h += 1 + nameLength
      const type = buf[h++]
      const fixed = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 }
      if (type === 6 || type === 7) {
        const length = buf.readUInt16BE(h)
        const value = buf.subarray(h + 2, h + 2 + length)
        headers[name] = type === 7 ? value.toString('utf8') : value
        h += 2 + length
      } else if (type in fixed) {
        headers[name] = type === 0 ? true : type === 1 ? false : buf.subarray(h, h + fixed[type])
        h += fixed[type]
      } else {
        assert.fail(`unknown header type ${type}`)
      }
    }
    frames.push({ start: pos, end: pos + total, headers, payload: buf.subarray(headersEnd, pos + total - 4) })
    pos += total
  }
  return { frames, rest: buf.subarray(pos) }
}

/** One event-stream frame with string headers (`[[name, value], …]`). */
function encodeFrame(headers, payload) {
  const headerBytes = Buffer.concat(
    headers.map(([name, value]) => {
      const n = Buffer.from(name, 'utf8')
      const v = Buffer.from(value, 'utf8')
      const b = Buffer.alloc(4 + n.length + v.length)
      b[0] = n.length
      n.copy(b, 1)
      b[1 + n.length] = 7
      b.writeUInt16BE(v.length, 2 + n.length)
      v.copy(b, 4 + n.length)
      return b
    }),
  )
  const body = Buffer.from(payload)
  const total = 12 + headerBytes.length + body.length + 4
  const prelude = Buffer.alloc(12)
  prelude.writeUInt32BE(total, 0)
  prelude.writeUInt32BE(headerBytes.length, 4)
  prelude.writeUInt32BE(crc32(prelude.subarray(0, 8)), 8)
  const message = Buffer.concat([prelude, headerBytes, body])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(message), 0)
  return Buffer.concat([message, crc])
}

const EVENT_HEADERS = (type) => [
  [':event-type', type],
  [':content-type', 'application/json'],
  [':message-type', 'event'],
]
/** An InvokeModelWithResponseStream `chunk`: the model's JSON, base64 in `bytes`, with padding. */
const chunkFrame = (obj) =>
  encodeFrame(EVENT_HEADERS('chunk'), JSON.stringify({ bytes: Buffer.from(JSON.stringify(obj), 'utf8').toString('base64'), p: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ' }))
/** A ConverseStream event: plain JSON with padding. */
const converseFrame = (type, obj) => encodeFrame(EVENT_HEADERS(type), JSON.stringify({ ...obj, p: 'abcdefghijklmn' }))
/** An exception message, as Bedrock ends a failed stream. */
const exceptionFrame = (type, obj) =>
  encodeFrame(
    [
      [':exception-type', type],
      [':content-type', 'application/json'],
      [':message-type', 'exception'],
    ],
    JSON.stringify(obj),
  )

/** The model JSON of every `chunk` frame of an InvokeModel stream. */
function invokeChunks(buf) {
  const { frames, rest } = decodeFrames(buf)
  assert.equal(rest.length, 0, 'the recording ends on a frame boundary')
  return frames.map((f) => {
    assert.equal(f.headers[':message-type'], 'event')
    assert.equal(f.headers[':event-type'], 'chunk')
    const wrapper = JSON.parse(f.payload.toString('utf8'))
    return JSON.parse(Buffer.from(wrapper.bytes, 'base64').toString('utf8'))
  })
}

/** What a Claude InvokeModel stream must assemble to. */
function expectedClaudeStream(buf) {
  const want = { id: null, text: '', stopReason: null, input: 0, output: 0, metrics: null, complete: false }
  for (const e of invokeChunks(buf)) {
    if (e.type === 'message_start') {
      want.id = e.message.id
      want.input = e.message.usage.input_tokens
      want.output = e.message.usage.output_tokens
    } else if (e.type === 'content_block_start' && e.content_block.type === 'text') want.text += e.content_block.text
    else if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') want.text += e.delta.text
    else if (e.type === 'message_delta') {
      want.stopReason = e.delta.stop_reason
      if (e.usage && e.usage.output_tokens !== undefined) want.output = e.usage.output_tokens
    } else if (e.type === 'message_stop') {
      want.complete = true
      want.metrics = e['amazon-bedrock-invocationMetrics']
    }
  }
  return want
}

/** What a Llama InvokeModel stream must assemble to. */
function expectedLlamaStream(buf) {
  const want = { text: '', stopReason: null, metrics: null }
  for (const e of invokeChunks(buf)) {
    want.text += e.generation
    if (e.stop_reason) want.stopReason = e.stop_reason
    if (e['amazon-bedrock-invocationMetrics']) want.metrics = e['amazon-bedrock-invocationMetrics']
  }
  return want
}

/** What a ConverseStream must assemble to. */
function expectedConverseStream(buf) {
  const { frames, rest } = decodeFrames(buf)
  assert.equal(rest.length, 0)
  const want = { text: '', reasoning: '', signature: '', toolCalls: [], stopReason: null, usage: null, events: [] }
  const tools = new Map()
  for (const f of frames) {
    assert.equal(f.headers[':message-type'], 'event')
    const name = f.headers[':event-type']
    const e = JSON.parse(f.payload.toString('utf8'))
    want.events.push(name)
    if (name === 'contentBlockStart' && e.start && e.start.toolUse) {
      const call = { id: e.start.toolUse.toolUseId, name: e.start.toolUse.name, arguments: '' }
      tools.set(e.contentBlockIndex, call)
      want.toolCalls.push(call)
    } else if (name === 'contentBlockDelta') {
      const d = e.delta
      if (typeof d.text === 'string') want.text += d.text
      if (d.toolUse) tools.get(e.contentBlockIndex).arguments += d.toolUse.input
      if (d.reasoningContent) {
        want.reasoning += d.reasoningContent.text || ''
        want.signature += d.reasoningContent.signature || ''
      }
    } else if (name === 'messageStop') want.stopReason = e.stopReason
    else if (name === 'metadata') want.usage = e.usage
  }
  return want
}

const CONVERSE_FINISH = { end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls', guardrail_intervened: 'content_filter', content_filtered: 'content_filter' }
const ANTHROPIC_FINISH = { end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls' }
const LLAMA_FINISH = { stop: 'stop', length: 'length' }

function assertUsage(usage, prompt, completion, cached = 0) {
  assert.ok(usage, 'usage is present')
  assert.equal(usage.prompt_tokens, prompt, 'prompt_tokens')
  assert.equal(usage.completion_tokens, completion, 'completion_tokens')
  assert.equal(usage.total_tokens, prompt + completion, 'total_tokens')
  if (usage.prompt_tokens_details) assert.equal(usage.prompt_tokens_details.cached_tokens, cached)
}

/** Reasoning text and thinking blocks carried by stream chunks. */
function reasoningOf(chunks) {
  let reasoning = ''
  const thinkingBlocks = []
  for (const c of chunks) {
    for (const ch of c.choices) {
      if (typeof ch.delta.reasoning_content === 'string') reasoning += ch.delta.reasoning_content
      if (ch.delta.thinking_blocks) thinkingBlocks.push(...ch.delta.thinking_blocks)
    }
  }
  return { reasoning, thinkingBlocks }
}

// ---------------------------------------------------------------------------------------------
// The loopback Bedrock Runtime.

const STREAM_HEADERS = Object.freeze({ 'Content-Type': EVENTSTREAM, 'x-amzn-RequestId': 'a5b6c7d8-0000-4000-8000-000000000001', 'X-Amzn-Bedrock-Content-Type': 'application/json' })
const BEDROCK_JSON_HEADERS = Object.freeze({ 'Content-Type': 'application/json', 'x-amzn-RequestId': 'a5b6c7d8-0000-4000-8000-000000000002' })

function awsErrorHeaders(type, status) {
  return { 'Content-Type': 'application/json', 'x-amzn-RequestId': `req-${status}`, 'x-amzn-ErrorType': type }
}

/**
 * Starts a loopback Bedrock Runtime. Every request's SigV4 signature is verified (`req.sig`, the
 * verifier's report) against the credentials it expects (`expect`: accessKeyId, secretAccessKey,
 * sessionToken, region; AKIDEXAMPLE / us-east-1 by default); a request that fails the check is
 * answered 403 InvalidSignatureException as AWS does, others by `respond(req, socket)`.
 */
async function startBedrock(respond, expect = {}) {
  const expected = { accessKeyId: KEY_ID, secretAccessKey: SECRET, region: REGION, service: 'bedrock', ...expect }
  const upstream = await startUpstream((req, socket) => {
    const sig = verifySigV4(req, expected)
    Object.defineProperty(req, 'sig', { value: sig, enumerable: false })
    if (!sig.ok) {
      return writeResponse(
        socket,
        403,
        awsErrorHeaders('InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/', 403),
        { message: INVALID_SIGNATURE_MESSAGE },
      )
    }
    return respond(req, socket)
  })
  /** Every request so far carried a correct signature. */
  upstream.assertSigned = () => {
    assert.ok(upstream.requests.length > 0, 'a request reached Bedrock')
    for (const r of upstream.requests) assert.deepEqual(r.sig.problems, [], `SigV4 of ${r.method} ${r.path}`)
  }
  return upstream
}

const replayBedrock = (status, headers, body, options = {}, expect = {}) =>
  startBedrock((req, socket) => writeResponse(socket, status, headers, body, options), expect)

/** The request line, headers and signature every Bedrock call must have. */
function assertBedrockRequest(req, { path: wantPath, stream }) {
  assert.equal(req.method, 'POST')
  assert.equal(req.path, wantPath, 'the exact raw path')
  assert.match(req.headers['content-type'], /^application\/json\b/)
  assert.equal(req.headers.accept, stream ? EVENTSTREAM : 'application/json')
  assert.equal(req.headers['x-api-key'], undefined)
  assert.deepEqual(req.sig.problems, [], 'the SigV4 signature verifies')
  assert.equal(req.sig.credential.accessKeyId, KEY_ID)
  assert.equal(req.sig.credential.region, REGION)
  assert.equal(req.sig.credential.service, 'bedrock')
  assert.ok(req.sig.signedHeaders.includes('host'), 'host is signed')
  assert.equal(req.headers['x-amz-security-token'], undefined, 'no session token configured, none sent')
}

// ---------------------------------------------------------------------------------------------

describe('the SigV4 verifier of the tests (helpers/sigv4.js) reproduces the AWS SigV4 test suite', () => {
  const SUITE = path.join(FIXTURES, 'sigv4', 'aws4_testsuite')
  // The suite's fixed parameters (tests/fixtures/SOURCES.md).
  const SUITE_TIME = Date.UTC(2015, 7, 30, 12, 36, 0)

  /** A `.req` file: request line, `Name:value` header lines (a line starting with a space continues a value), blank line, body. */
  function parseReq(text) {
    const split = text.indexOf('\n\n')
    const head = split < 0 ? text : text.slice(0, split)
    const body = split < 0 ? '' : text.slice(split + 2)
    const [requestLine, ...lines] = head.split('\n')
    const m = /^(\S+) (.*) HTTP\/1\.1$/.exec(requestLine)
    const headers = {}
    let last = null
    for (const line of lines) {
      if (/^\s/.test(line) && last) {
        headers[last].push(line.trim())
        continue
      }
      const colon = line.indexOf(':')
      last = line.slice(0, colon).toLowerCase()
      ;(headers[last] = headers[last] || []).push(line.slice(colon + 1))
    }
    const flat = {}
    for (const [k, v] of Object.entries(headers)) flat[k] = v.length === 1 ? v[0] : v
    return { method: m[1], path: m[2], headers: flat, body }
  }

  const read = (name, ext) => fs.readFileSync(path.join(SUITE, name, `${name}.${ext}`), 'utf8')

  for (const name of ['get-vanilla', 'post-vanilla', 'post-x-www-form-urlencoded', 'get-vanilla-with-session-token', 'post-vanilla-query', 'get-vanilla-query-order-key-case']) {
    test(name, () => {
      const req = parseReq(read(name, 'req'))
      const authz = read(name, 'authz').trim()
      const creq = read(name, 'creq')
      const sts = read(name, 'sts')
      const signedHeaders = /SignedHeaders=([^,]+)/.exec(authz)[1].split(';')
      const token = /^x-amz-security-token:(.*)$/m.exec(creq)
      if (token) req.headers['x-amz-security-token'] = token[1]
      // These paths have no character to escape: double encoding changes nothing.
      assert.equal(canonicalUri(req.path.split('?')[0]), canonicalUri(req.path.split('?')[0], { doubleEncode: false }))

      const got = computeSignature({
        ...req,
        signedHeaders,
        amzDate: req.headers['x-amz-date'],
        region: 'us-east-1',
        service: 'service',
        secretAccessKey: SECRET,
      })
      assert.equal(got.canonicalRequest, creq, 'canonical request = .creq')
      assert.equal(got.stringToSign, sts, 'string to sign = .sts')
      assert.equal(`AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${got.scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${got.signature}`, authz, '.authz')

      // The verifier accepts the suite's signed request, and refuses it with any one thing changed.
      const signed = { ...req, headers: { ...req.headers, authorization: authz } }
      const expect = { accessKeyId: KEY_ID, secretAccessKey: SECRET, region: 'us-east-1', service: 'service', sessionToken: token ? token[1] : undefined, now: SUITE_TIME }
      const ok = verifySigV4(signed, expect)
      assert.deepEqual(ok.problems, [])
      assert.equal(ok.ok, true)
      const refused = (r, e, what) => {
        const v = verifySigV4(r, { ...expect, ...e })
        assert.equal(v.ok, false, what)
        return v
      }
      assert.deepEqual(refused(signed, { secretAccessKey: SECRET.replace('K7', 'K8') }).problems, ['the signature does not match the one computed from the request'])
      refused({ ...signed, body: `${signed.body}x` }, {}, 'body')
      refused({ ...signed, path: `${signed.path.split('?')[0]}x` }, {}, 'path')
      refused({ ...signed, method: signed.method === 'GET' ? 'POST' : 'GET' }, {}, 'method')
      refused({ ...signed, headers: { ...signed.headers, host: 'example2.amazonaws.com' } }, {}, 'host')
      refused(signed, { region: 'us-west-2' }, 'region')
      refused(signed, { now: SUITE_TIME + 10 * 60 * 1000 }, 'clock skew')
      refused(signed, { accessKeyId: 'AKIDOTHER' }, 'access key id')
      if (token) refused(signed, { sessionToken: undefined }, 'unexpected token')
      else refused(signed, { sessionToken: 'a-token' }, 'missing token')
    })
  }

  test('double encoding: an escape in the path is encoded again in the canonical URI', () => {
    assert.equal(canonicalUri('/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke'), '/model/anthropic.claude-3-sonnet-20240229-v1%253A0/invoke')
    assert.equal(canonicalUri('/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse'), '/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A1%253Ainference-profile%252Fus.x/converse')
    assert.equal(canonicalUri('/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke', { doubleEncode: false }), '/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke')
    assert.equal(uriEncode('a:b/c d~'), 'a%3Ab%2Fc%20d~')
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock: every request is signed (SigV4), checked by the loopback upstream', () => {
  test('the signature verifies: Credential AKIDEXAMPLE/<date>/us-east-1/bedrock/aws4_request, x-amz-date now, host signed, double-encoded path', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture('bedrock/invoke/claude3-messages.json'))
    t.after(() => upstream.close())
    const before = Date.now()
    await bedrockProxy(upstream).generate({ model: CLAUDE3, messages: USER, max_tokens: 100 })
    const req = upstream.requests[0]
    upstream.assertSigned()
    const m = /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/(\d{8})\/us-east-1\/bedrock\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(req.headers.authorization)
    assert.ok(m, `Authorization: ${req.headers.authorization}`)
    assert.match(req.headers['x-amz-date'], /^\d{8}T\d{6}Z$/)
    assert.equal(m[1], req.headers['x-amz-date'].slice(0, 8))
    const signedAt = amzDateMs(req.headers['x-amz-date'])
    assert.ok(Math.abs(signedAt - before) < 60_000, `x-amz-date ${req.headers['x-amz-date']} is now`)
    const signed = m[2].split(';')
    assert.ok(signed.includes('host') && signed.includes('x-amz-date'), m[2])
    assert.ok(!signed.includes('authorization') && !signed.includes('user-agent'), m[2])
    // The canonical request the upstream computed has the path encoded twice (`%3A` → `%253A`).
    assert.equal(req.sig.canonicalRequest.split('\n')[1], '/model/anthropic.claude-3-sonnet-20240229-v1%253A0/invoke')
    assert.equal(req.sig.canonicalRequest.split('\n').at(-1), require('node:crypto').createHash('sha256').update(req.bodyBytes).digest('hex'))
  })

  test('the verifier refuses the same request with any one thing changed', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture('bedrock/invoke/claude3-messages.json'))
    t.after(() => upstream.close())
    await bedrockProxy(upstream).generate({ model: CLAUDE3, messages: USER, max_tokens: 100 })
    const req = upstream.requests[0]
    const expect = { accessKeyId: KEY_ID, secretAccessKey: SECRET, region: REGION, service: 'bedrock' }
    const base = { method: req.method, path: req.path, headers: { ...req.headers }, body: req.body }
    assert.equal(verifySigV4(base, expect).ok, true)
    const changed = {
      'one byte of the body': { ...base, body: req.body.replace('"max_tokens":100', '"max_tokens":101') },
      'the path with ":" instead of "%3A"': { ...base, path: req.path.replace('%3A', ':') },
      'the host': { ...base, headers: { ...base.headers, host: base.headers.host.replace('127.0.0.1', 'localhost') } },
      'x-amz-date by one second': { ...base, headers: { ...base.headers, 'x-amz-date': base.headers['x-amz-date'].replace(/(\d)Z$/, (_, d) => `${(+d + 1) % 10}Z`) } },
    }
    for (const [what, r] of Object.entries(changed)) assert.equal(verifySigV4(r, expect).ok, false, what)
    assert.equal(verifySigV4(base, { ...expect, doubleEncode: false }).ok, false, 'single encoding of the path is not what was signed')
    assert.equal(verifySigV4(base, { ...expect, region: 'us-west-2' }).ok, false, 'region')
    assert.equal(verifySigV4(base, { ...expect, secretAccessKey: 'x' }).ok, false, 'secret')
    assert.equal(verifySigV4(base, { ...expect, now: Date.now() + 15 * 60 * 1000 }).ok, false, 'clock')
  })

  test('a wrong secret key → the upstream refuses the signature (403 InvalidSignatureException) → authentication', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture('bedrock/invoke/claude3-messages.json'))
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream, { secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY' })
    for (const via of ['generate', 'stream']) {
      const err = await caught(() => (via === 'generate' ? proxy.generate({ model: CLAUDE3, messages: USER }) : collect(proxy.stream({ model: CLAUDE3, messages: USER }))))
      assertProxyError(err, { code: 'authentication', provider: 'bedrock', status: 403, retryable: false })
      assert.match(err.message, /InvalidSignatureException/)
      assert.ok(err.message.includes('The request signature we calculated does not match'), err.message)
      assert.ok(!err.message.includes('WRONGKEY') && !JSON.stringify(err).includes('WRONGKEY'), 'the secret is not shown')
    }
    assert.equal(upstream.requests.length, 2)
    for (const r of upstream.requests) {
      // Well-formed, right key id, scope and time: only the signature itself is wrong.
      assert.deepEqual(r.sig.problems, ['the signature does not match the one computed from the request'])
    }
  })

  test('the region option is the signing region', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture('bedrock/invoke/claude3-messages.json'), {}, { region: 'eu-west-3' })
    t.after(() => upstream.close())
    await bedrockProxy(upstream, { region: 'eu-west-3' }).generate({ model: CLAUDE3, messages: USER })
    upstream.assertSigned()
    assert.match(upstream.requests[0].headers.authorization, /\/eu-west-3\/bedrock\/aws4_request/)
  })

  test('a session token is sent as x-amz-security-token and signed', async (t) => {
    const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQD='
    const upstream = await startBedrock(
      (req, socket) =>
        req.path.endsWith('/invoke')
          ? writeResponse(socket, 200, BEDROCK_JSON_HEADERS, fixture('bedrock/invoke/claude3-messages.json'))
          : writeResponse(socket, 200, STREAM_HEADERS, fixture('bedrock/invoke-stream/claude3-text.eventstream.bin'), { framing: 'chunked' }),
      { sessionToken: TOKEN },
    )
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream, { sessionToken: TOKEN })
    await proxy.generate({ model: CLAUDE3, messages: USER })
    assert.equal(assembleChunks(await collect(proxy.stream({ model: CLAUDE3, messages: USER }))).finishReason, 'stop')
    assert.equal(upstream.requests.length, 2)
    upstream.assertSigned()
    for (const r of upstream.requests) {
      assert.equal(r.headers['x-amz-security-token'], TOKEN)
      assert.ok(r.sig.signedHeaders.includes('x-amz-security-token'), r.headers.authorization)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock Claude on InvokeModel: generate()', () => {
  const FILE = 'bedrock/invoke/claude3-messages.json'

  for (const mode of ['whole', 'bytewise']) {
    test(`${FILE} (${mode}): path, headers, body, and every field of the answer`, async (t) => {
      const body = fixture(FILE)
      const recorded = JSON.parse(body.toString('utf8'))
      const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, body, { mode })
      t.after(() => upstream.close())
      const before = Math.floor(Date.now() / 1000)
      const res = await bedrockProxy(upstream).generate({
        model: CLAUDE3,
        messages: [{ role: 'system', content: SYSTEM_TEXT }, ...USER],
        max_tokens: 300,
        temperature: 0.5,
        top_p: 0.9,
        stop: ['END'],
        user: 'user-1',
      })
      const afterT = Math.ceil(Date.now() / 1000)

      assert.equal(upstream.requests.length, 1)
      const req = upstream.requests[0]
      assertBedrockRequest(req, { path: '/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke', stream: false })
      assert.deepStrictEqual(req.json, {
        anthropic_version: 'bedrock-2023-05-31',
        system: SYSTEM_TEXT,
        messages: [{ role: 'user', content: USER_TEXT }],
        max_tokens: 300,
        temperature: 0.5,
        top_p: 0.9,
        stop_sequences: ['END'],
      })
      for (const k of ['model', 'stream', 'metadata']) assert.ok(!(k in req.json), `no ${k} in an InvokeModel body`)

      assert.equal(res.id, recorded.id)
      assert.equal(res.object, 'chat.completion')
      assert.ok(Number.isInteger(res.created) && res.created >= before - 1 && res.created <= afterT + 1, `created: ${res.created}`)
      assert.ok([recorded.model, CLAUDE3].includes(res.model), `model: ${res.model}`)
      assert.equal(res.choices.length, 1)
      const choice = res.choices[0]
      assert.equal(choice.index, 0)
      assert.equal(choice.message.role, 'assistant')
      assert.equal(choice.message.content, recorded.content[0].text)
      assert.equal(choice.message.refusal, null)
      assert.equal(choice.message.tool_calls ?? null, null)
      assert.equal(choice.logprobs, null)
      assert.equal(choice.finish_reason, 'stop')
      assertUsage(res.usage, recorded.usage.input_tokens, recorded.usage.output_tokens)
    })
  }

  test('without max_tokens: the Claude 3 default (4096), since Anthropic requires one', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture(FILE))
    t.after(() => upstream.close())
    await bedrockProxy(upstream).generate({ model: CLAUDE3, messages: USER })
    assert.deepStrictEqual(upstream.requests[0].json, {
      anthropic_version: 'bedrock-2023-05-31',
      messages: [{ role: 'user', content: USER_TEXT }],
      max_tokens: 4096,
    })
  })

  test('tools, tool calls and tool results in the Anthropic format; a tool_use answer → tool_calls', async (t) => {
    const answer = {
      id: 'msg_bdrk_tools',
      type: 'message',
      role: 'assistant',
      model: 'claude-3-5-sonnet-20240620',
      content: [
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'toolu_bdrk_01', name: 'get_weather', input: { city: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 300, output_tokens: 40 },
    }
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer)
    t.after(() => upstream.close())
    const tool = { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }
    const res = await bedrockProxy(upstream).generate({
      model: CLAUDE35,
      messages: [
        { role: 'user', content: 'Weather in Rome?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_prev', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_prev', content: '21°C' },
        { role: 'user', content: 'And in Paris?' },
      ],
      tools: [tool],
      max_tokens: 200,
    })
    const req = upstream.requests[0]
    assertBedrockRequest(req, { path: '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke', stream: false })
    assert.equal(req.json.anthropic_version, 'bedrock-2023-05-31')
    assert.deepStrictEqual(req.json.tools, [{ name: 'get_weather', description: 'Weather of a city', input_schema: tool.function.parameters }])
    assert.deepStrictEqual(req.json.messages[1], { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_prev', name: 'get_weather', input: { city: 'Rome' } }] })
    assert.equal(req.json.messages[2].role, 'user')
    assert.deepStrictEqual(req.json.messages[2].content[0], { type: 'tool_result', tool_use_id: 'toolu_prev', content: '21°C' })

    const m = res.choices[0].message
    assert.equal(m.content, 'Let me check.')
    assert.deepStrictEqual(m.tool_calls, [{ id: 'toolu_bdrk_01', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }])
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
    assertUsage(res.usage, 300, 40)
  })

  test('images: a data URI is sent inline (base64); an image URL is refused before anything is sent', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture(FILE))
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
    await proxy.generate({
      model: CLAUDE3,
      max_tokens: 50,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
    })
    assert.deepStrictEqual(upstream.requests[0].json.messages[0].content[1], { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } })
    const err = await caught(() =>
      proxy.generate({ model: CLAUDE3, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] }),
    )
    assertProxyError(err, { code: 'invalid_request', retryable: false })
    assert.match(err.message, /base64/)
    assert.equal(upstream.requests.length, 1, 'nothing sent for the refused request')
  })

  const CROSS_REGION = [
    'us.anthropic.claude-3-5-sonnet-20240620-v1:0',
    'eu.anthropic.claude-3-7-sonnet-20250219-v1:0',
    'apac.anthropic.claude-sonnet-4-20250514-v1:0',
    'global.anthropic.claude-sonnet-4-5-20250929-v1:0',
  ]
  test('cross-region ids (us./eu./apac./global.) and bedrock/… go to InvokeModel with the full id in the path', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture(FILE))
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    const cases = [...CROSS_REGION.map((id) => [id, id]), [`bedrock/${CLAUDE3}`, CLAUDE3], ['bedrock/us.anthropic.claude-3-haiku-20240307-v1:0', 'us.anthropic.claude-3-haiku-20240307-v1:0']]
    for (const [model, id] of cases) {
      const res = await proxy.generate({ model, messages: USER, max_tokens: 10 })
      const req = upstream.requests.at(-1)
      assertBedrockRequest(req, { path: `/model/${id.replace(/:/g, '%3A')}/invoke`, stream: false })
      assert.equal(req.json.anthropic_version, 'bedrock-2023-05-31', model)
      assert.ok(!('model' in req.json), model)
      assert.equal(res.choices[0].message.content, fixtureJson(FILE).content[0].text)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock Claude on InvokeModel: stream() over the recorded event streams', () => {
  const FILES = listFixtures('bedrock/invoke-stream', '.eventstream.bin').filter((f) => f.includes('/claude'))

  test('the recordings are all there, with correct CRCs', () => {
    assert.deepEqual(FILES, ['bedrock/invoke-stream/claude3-text.eventstream.bin', 'bedrock/invoke-stream/claude35-text-max-tokens.eventstream.bin'])
    assert.equal(decodeFrames(fixture(FILES[0])).frames.length, 23)
    assert.equal(decodeFrames(fixture(FILES[1])).frames.length, 26)
  })

  const MODEL_OF = { 'claude3-text': [CLAUDE3, 4096], 'claude35-text-max-tokens': [CLAUDE35, 8192] }
  for (const file of FILES) {
    const [model, defaultMax] = MODEL_OF[path.basename(file, '.eventstream.bin')]
    for (const [label, mode] of STREAM_MODES) {
      test(`${file} (${label})`, async (t) => {
        const body = fixture(file)
        const want = expectedClaudeStream(body)
        assert.ok(want.complete)
        const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode, framing: 'chunked' })
        t.after(() => upstream.close())
        const chunks = await collect(bedrockProxy(upstream).stream({ model, messages: USER }))

        assert.equal(upstream.requests.length, 1)
        const req = upstream.requests[0]
        assertBedrockRequest(req, { path: `/model/${segment(model)}/invoke-with-response-stream`, stream: true })
        assert.deepStrictEqual(req.json, { anthropic_version: 'bedrock-2023-05-31', messages: [{ role: 'user', content: USER_TEXT }], max_tokens: defaultMax })

        const got = assembleChunks(chunks)
        assert.equal(got.content, want.text, 'content = the text_deltas joined')
        assert.deepEqual(got.toolCalls, [])
        assert.equal(got.finishReason, ANTHROPIC_FINISH[want.stopReason])
        assertUsage(got.usage, want.input, want.output)
        // Bedrock's own count agrees.
        assert.equal(got.usage.prompt_tokens, want.metrics.inputTokenCount)
        assert.equal(got.usage.completion_tokens, want.metrics.outputTokenCount)
      })
    }
  }

  test('claude35-text-max-tokens ends with finish_reason length', async (t) => {
    const body = fixture('bedrock/invoke-stream/claude35-text-max-tokens.eventstream.bin')
    assert.equal(expectedClaudeStream(body).stopReason, 'max_tokens')
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'length' })
    t.after(() => upstream.close())
    const got = assembleChunks(await collect(bedrockProxy(upstream).stream({ model: CLAUDE35, messages: USER, max_tokens: 100 })))
    assert.equal(got.finishReason, 'length')
    assert.equal(upstream.requests[0].json.max_tokens, 100)
  })

  test('a cross-region id streams from /model/<full id>/invoke-with-response-stream', async (t) => {
    const upstream = await replayBedrock(200, STREAM_HEADERS, fixture('bedrock/invoke-stream/claude3-text.eventstream.bin'), { framing: 'chunked' })
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    for (const id of ['us.anthropic.claude-3-5-sonnet-20240620-v1:0', 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0', 'global.anthropic.claude-sonnet-4-5-20250929-v1:0']) {
      const got = assembleChunks(await collect(proxy.stream({ model: id, messages: USER, max_tokens: 50 })))
      assert.equal(got.content, expectedClaudeStream(fixture('bedrock/invoke-stream/claude3-text.eventstream.bin')).text)
      assertBedrockRequest(upstream.requests.at(-1), { path: `/model/${segment(id)}/invoke-with-response-stream`, stream: true })
      assert.equal(upstream.requests.at(-1).json.anthropic_version, 'bedrock-2023-05-31')
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock errors: HTTP status, x-amzn-ErrorType and {"message"} → codes', () => {
  const ERRORS = [
    [429, 'ThrottlingException', 'Too many requests, please wait before trying again.', 'rate_limit', true],
    [400, 'ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'The provided model identifier is invalid.', 'invalid_request', false],
    [403, 'AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/', "You don't have access to the model with the specified model ID.", 'permission', false],
    [403, 'UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/', 'The security token included in the request is invalid.', 'authentication', false],
    [404, 'ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'Could not resolve the foundation model from the provided model identifier.', 'not_found', false],
    [429, 'ModelNotReadyException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'Model is not ready for inference. Wait and try your request again.', 'overloaded', true],
    [503, 'ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'Bedrock is unable to process your request.', 'overloaded', true],
    [408, 'ModelTimeoutException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'Model has timed out in processing the request. Try your request again.', 'timeout', true],
  ]

  test('the recorded 400 ValidationException (invoke-with-response-stream) → invalid_request', async (t) => {
    const body = fixture('bedrock/errors/400-validation-exception-invoke-stream.json')
    const upstream = await replayBedrock(400, awsErrorHeaders('ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/', 400), body)
    t.after(() => upstream.close())
    const err = await caught(() => collect(bedrockProxy(upstream).stream({ model: 'bedrock/anthropic.claude-invalid-streaming-model-id', messages: USER })))
    assertProxyError(err, { code: 'invalid_request', provider: 'bedrock', status: 400, retryable: false })
    assert.match(err.message, /ValidationException/)
    assert.ok(err.message.includes('The provided model identifier is invalid.'), err.message)
    assert.ok(!err.message.includes('http://internal.amazon.com'), 'the type without its namespace URL')
    assert.deepEqual(err.body, { message: 'The provided model identifier is invalid.' })
    assert.equal(upstream.requests[0].path, '/model/anthropic.claude-invalid-streaming-model-id/invoke-with-response-stream')
  })

  for (const [status, type, message, code, retryable] of ERRORS) {
    const name = type.split(':')[0]
    test(`${status} ${name} → ${code}${retryable ? ', retryable' : ''}`, async (t) => {
      const upstream = await replayBedrock(status, awsErrorHeaders(type, status), { message })
      t.after(() => upstream.close())
      const proxy = bedrockProxy(upstream)
      for (const via of ['generate', 'stream']) {
        const err = await caught(() => (via === 'generate' ? proxy.generate({ model: CLAUDE3, messages: USER }) : collect(proxy.stream({ model: CLAUDE3, messages: USER }))))
        assertProxyError(err, { code, provider: 'bedrock', status, retryable })
        assert.ok(err.message.includes(name), `${via}: the message names ${name}: ${err.message}`)
        assert.ok(err.message.includes(message), `${via}: the message has AWS's text: ${err.message}`)
        assert.deepEqual(err.body, { message })
      }
      upstream.assertSigned()
    })
  }

  test('AWS\'s {"Message": …} form of the body is read too', async (t) => {
    const upstream = await replayBedrock(403, awsErrorHeaders('UnrecognizedClientException', 403), { Message: 'The security token included in the request is invalid.' })
    t.after(() => upstream.close())
    const err = await caught(() => bedrockProxy(upstream).generate({ model: CLAUDE3, messages: USER }))
    assertProxyError(err, { code: 'authentication', provider: 'bedrock', status: 403 })
    assert.ok(err.message.includes('The security token included in the request is invalid.'), err.message)
  })

  test('a ThrottlingException exception frame inside a 200 stream, after two chunks → the chunks, then rate_limit', async (t) => {
    const body = Buffer.concat([
      chunkFrame({ type: 'message_start', message: { id: 'msg_bdrk_exc', type: 'message', role: 'assistant', model: 'claude-3-sonnet-20240229', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
      chunkFrame({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      chunkFrame({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
      chunkFrame({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' there' } }),
      exceptionFrame('ThrottlingException', { message: 'Too many requests' }),
    ])
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'chunked' })
    t.after(() => upstream.close())
    const { chunks, err } = await drain(bedrockProxy(upstream).stream({ model: CLAUDE3, messages: USER }))
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Hello there', 'the text before the exception arrives first')
    assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)), 'no finish_reason: the answer is not complete')
    assertProxyError(err, { code: 'rate_limit', provider: 'bedrock', retryable: true })
    assert.match(err.message, /ThrottlingException/)
    assert.match(err.message, /Too many requests/)
  })

  // In a real stream `:exception-type` is the member name of the event-stream union, lowerCamel
  // (botocore and @aws-sdk/client-bedrock-runtime key the exception by it: `throttlingException`).
  for (const [type, code, retryable] of [
    ['throttlingException', 'rate_limit', true],
    ['modelStreamErrorException', 'stream_interrupted', true],
    ['validationException', 'invalid_request', false],
    ['modelTimeoutException', 'timeout', true],
    ['serviceUnavailableException', 'overloaded', true],
    ['internalServerException', 'server_error', true],
  ]) {
    test(`an exception frame with :exception-type ${type} (as Bedrock sends it) → ${code}`, async (t) => {
      const body = Buffer.concat([
        chunkFrame({ type: 'message_start', message: { id: 'msg_bdrk_exc2', type: 'message', role: 'assistant', model: 'claude-3-sonnet-20240229', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
        chunkFrame({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
        chunkFrame({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } }),
        exceptionFrame(type, { message: `${type} happened` }),
      ])
      const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'chunked' })
      t.after(() => upstream.close())
      const { chunks, err } = await drain(bedrockProxy(upstream).stream({ model: CLAUDE3, messages: USER }))
      assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Hi')
      assertProxyError(err, { code, provider: 'bedrock', retryable })
      assert.ok(err.message.includes(`${type} happened`), err.message)
    })
  }

  test('an error message frame (:message-type error) inside a stream → an error with its code and text', async (t) => {
    const body = Buffer.concat([
      chunkFrame({ type: 'message_start', message: { id: 'msg_bdrk_err', type: 'message', role: 'assistant', model: 'claude-3-sonnet-20240229', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
      encodeFrame(
        [
          [':error-code', 'InternalFailure'],
          [':error-message', 'An internal error occurred.'],
          [':message-type', 'error'],
        ],
        '',
      ),
    ])
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'chunked' })
    t.after(() => upstream.close())
    const { err } = await drain(bedrockProxy(upstream).stream({ model: CLAUDE3, messages: USER }))
    assertProxyError(err, { code: 'server_error', provider: 'bedrock', retryable: true })
    assert.match(err.message, /InternalFailure/)
    assert.match(err.message, /An internal error occurred\./)
  })

  const CUT_FILE = 'bedrock/invoke-stream/claude3-text.eventstream.bin'
  for (const [what, at] of [
    ['in the middle of a frame’s payload', (frames) => frames[6].start + 40],
    ['in the middle of a frame’s prelude', (frames) => frames[6].start + 5],
    ['one byte before the end of the last frame', (frames) => frames.at(-1).end - 1],
    ['on a frame boundary, before message_stop', (frames) => frames.at(-1).start],
  ]) {
    test(`a stream cut ${what} → the complete frames’ chunks, then stream_interrupted`, async (t) => {
      const body = fixture(CUT_FILE)
      const { frames } = decodeFrames(body)
      const cutAt = at(frames)
      // What the complete frames before the cut say.
      const before = expectedClaudeStream(Buffer.concat(frames.filter((f) => f.end <= cutAt).map((f) => body.subarray(f.start, f.end))))
      assert.ok(!before.complete)
      const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode: { cutAt }, framing: 'chunked' })
      t.after(() => upstream.close())
      const { chunks, err } = await within(10_000, drain(bedrockProxy(upstream).stream({ model: CLAUDE3, messages: USER })), 'the end of the cut stream')
      assertProxyError(err, { code: 'stream_interrupted', provider: 'bedrock', retryable: true })
      assert.equal(chunks[0].choices[0].delta.role, 'assistant')
      assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), before.text)
      // A finish_reason only if the complete frames carried message_delta's stop_reason (as for
      // Anthropic's own API); never a usage chunk, which would say the answer is complete.
      if (!before.stopReason) assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)), 'no finish_reason')
      assert.ok(chunks.every((c) => c.usage == null), 'no usage on an incomplete answer')
    })
  }

  test('a frame with a wrong message CRC → stream_interrupted', async (t) => {
    const body = Buffer.from(fixture(CUT_FILE))
    const { frames } = decodeFrames(body)
    body[frames[4].end - 1] ^= 0xff
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'chunked' })
    t.after(() => upstream.close())
    const { err } = await drain(bedrockProxy(upstream).stream({ model: CLAUDE3, messages: USER }))
    assertProxyError(err, { code: 'stream_interrupted', provider: 'bedrock' })
    assert.match(err.message, /checksum|CRC/i)
  })

  // A corrupt prelude must fail as soon as its 12 bytes are in, not wait for bytes that never come.
  for (const [what, prelude] of [
    [
      'declares a 2 GB frame (prelude CRC correct)',
      () => {
        const p = Buffer.alloc(12)
        p.writeUInt32BE(0x7ffffff0, 0)
        p.writeUInt32BE(0x40, 4)
        p.writeUInt32BE(crc32(p.subarray(0, 8)), 8)
        return p
      },
    ],
    [
      'has a wrong prelude CRC',
      () => {
        const p = Buffer.from(fixture(CUT_FILE).subarray(0, 12))
        p[0] ^= 0x10 // the length changes, the CRC no longer matches
        return p
      },
    ],
  ]) {
    test(`a frame whose prelude ${what} → stream_interrupted at once, while the connection stays open`, async (t) => {
      const first = decodeFrames(fixture(CUT_FILE)).frames[0]
      const upstream = await startBedrock(async (req, socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${EVENTSTREAM}\r\nTransfer-Encoding: chunked\r\n\r\n`)
        const bytes = Buffer.concat([fixture(CUT_FILE).subarray(first.start, first.end), prelude()])
        socket.write(`${bytes.length.toString(16)}\r\n`)
        socket.write(bytes)
        socket.write('\r\n')
        // …and nothing more: the connection stays open until the test ends.
      })
      t.after(() => upstream.close())
      const proxy = bedrockProxy(upstream, {}, { timeoutMs: 8000 })
      const { err } = await within(3000, drain(proxy.stream({ model: CLAUDE3, messages: USER })), 'the stream failing')
      assertProxyError(err, { code: 'stream_interrupted', provider: 'bedrock' })
    })
  }

  test('the secret key and session token never appear in errors, even when the server echoes them', async (t) => {
    const TOKEN = 'FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue0123456789'
    const echo = `Signature calculated with key ${SECRET} and token ${TOKEN} does not match`
    const upstream = await startBedrock(
      (req, socket) =>
        req.path.endsWith('/invoke')
          ? writeResponse(socket, 403, awsErrorHeaders('UnrecognizedClientException', 403), { message: echo, details: { secret: SECRET, token: TOKEN } })
          : writeResponse(
              socket,
              200,
              STREAM_HEADERS,
              Buffer.concat([
                chunkFrame({ type: 'message_start', message: { id: 'msg_x', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } } }),
                exceptionFrame('ValidationException', { message: echo }),
              ]),
              { framing: 'chunked' },
            ),
      { sessionToken: TOKEN },
    )
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream, { sessionToken: TOKEN })
    const errors = [await caught(() => proxy.generate({ model: CLAUDE3, messages: USER })), (await drain(proxy.stream({ model: CLAUDE3, messages: USER }))).err]
    upstream.assertSigned()
    for (const err of errors) {
      assertProxyError(err, { provider: 'bedrock' })
      for (const text of [err.message, JSON.stringify(err), JSON.stringify(err.body ?? null), String(err.stack)]) {
        assert.ok(!text.includes(SECRET), `the secret key leaked: ${text}`)
        assert.ok(!text.includes(TOKEN), `the session token leaked: ${text}`)
        assert.ok(!text.includes('EXAMPLEKEY') && !text.includes('SESSIONTOKENvalue'), `part of a credential leaked: ${text}`)
      }
      assert.ok(err.message.includes('does not match'), 'the rest of the message is kept')
    }
  })

  test('errors from Converse and Llama models carry the same codes', async (t) => {
    const upstream = await replayBedrock(429, awsErrorHeaders('ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/', 429), { message: 'Too many tokens, please wait before trying again.' })
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    for (const model of ['amazon.nova-pro-v1:0', LLAMA31]) {
      for (const via of ['generate', 'stream']) {
        const err = await caught(() => (via === 'generate' ? proxy.generate({ model, messages: USER }) : collect(proxy.stream({ model, messages: USER }))))
        assertProxyError(err, { code: 'rate_limit', provider: 'bedrock', status: 429, retryable: true })
        assert.match(err.message, /ThrottlingException/)
      }
    }
    upstream.assertSigned()
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock credentials, region and endpoint: options, AWS_ variables, shared files', () => {
  /** Sets environment variables for one test (undefined deletes) and restores them after it. */
  function withEnv(t, vars) {
    const saved = {}
    for (const [k, v] of Object.entries(vars)) {
      saved[k] = process.env[k]
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    t.after(() => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    })
  }

  function tempDir(t) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-aws-'))
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    return dir
  }

  const answer = () => fixture('bedrock/invoke/claude3-messages.json')

  test('no credentials anywhere → config, naming every place tried, and nothing is sent', async (t) => {
    assert.deepEqual(Object.keys(process.env).filter((k) => k.startsWith('AWS_')), [])
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ bedrock: { region: REGION, endpoint: upstream.url } })
    for (const via of ['generate', 'stream']) {
      const err = await caught(() => (via === 'generate' ? proxy.generate({ model: CLAUDE3, messages: USER }) : proxy.stream({ model: CLAUDE3, messages: USER }).next()))
      assertProxyError(err, { code: 'config', provider: 'bedrock', retryable: false })
      assert.ok(err.message.includes('bedrock.accessKeyId'), err.message)
      assert.ok(err.message.includes('AWS_ACCESS_KEY_ID'), err.message)
      assert.ok(err.message.includes(`profile 'default' in ${path.join(EMPTY_HOME, '.aws', 'credentials')}`), err.message)
    }
    // An access key id without its secret is no credential either.
    const half = new LLMProxy({ bedrock: { region: REGION, endpoint: upstream.url, accessKeyId: KEY_ID } })
    assertProxyError(await caught(() => half.generate({ model: CLAUDE3, messages: USER })), { code: 'config', provider: 'bedrock' })
    assert.equal(upstream.requests.length, 0, 'no request was sent')
  })

  test('AWS_PROFILE naming a profile the credentials file lacks → config naming that profile and file', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, 'creds')
    fs.writeFileSync(file, '[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = secretdefault\n')
    withEnv(t, { AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'nope' })
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    t.after(() => upstream.close())
    const err = await caught(() => new LLMProxy({ bedrock: { region: REGION, endpoint: upstream.url } }).generate({ model: CLAUDE3, messages: USER }))
    assertProxyError(err, { code: 'config', provider: 'bedrock' })
    assert.ok(err.message.includes(`profile 'nope' in ${file}`), err.message)
    assert.equal(upstream.requests.length, 0)
  })

  test('AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN / AWS_REGION are used when no options are given', async (t) => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIDENVEXAMPLE', AWS_SECRET_ACCESS_KEY: 'envSecretKeyExample/0123456789', AWS_SESSION_TOKEN: 'envSessionTokenExample', AWS_REGION: 'eu-west-1' }
    withEnv(t, env)
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN, region: 'eu-west-1' })
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ bedrock: { endpoint: upstream.url } })
    await proxy.generate({ model: CLAUDE3, messages: USER })
    upstream.assertSigned()
    const req = upstream.requests[0]
    assert.equal(req.sig.credential.accessKeyId, 'AKIDENVEXAMPLE')
    assert.equal(req.sig.credential.region, 'eu-west-1')
    assert.equal(req.headers['x-amz-security-token'], 'envSessionTokenExample')
  })

  test('options come before the AWS_ variables', async (t) => {
    withEnv(t, { AWS_ACCESS_KEY_ID: 'AKIDENVEXAMPLE', AWS_SECRET_ACCESS_KEY: 'envSecret', AWS_SESSION_TOKEN: 'envToken', AWS_REGION: 'eu-west-1' })
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    t.after(() => upstream.close())
    await bedrockProxy(upstream).generate({ model: CLAUDE3, messages: USER })
    upstream.assertSigned()
    assert.equal(upstream.requests[0].sig.credential.accessKeyId, KEY_ID)
    assert.equal(upstream.requests[0].sig.credential.region, REGION)
    assert.equal(upstream.requests[0].headers['x-amz-security-token'], undefined, "the environment's token does not go with the options' key")
  })

  test('AWS_DEFAULT_REGION when AWS_REGION is not set; AWS_REGION wins over it', async (t) => {
    withEnv(t, { AWS_DEFAULT_REGION: 'ap-northeast-1' })
    const tokyo = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { region: 'ap-northeast-1' })
    t.after(() => tokyo.close())
    await new LLMProxy({ bedrock: { accessKeyId: KEY_ID, secretAccessKey: SECRET, endpoint: tokyo.url } }).generate({ model: CLAUDE3, messages: USER })
    tokyo.assertSigned()
    process.env.AWS_REGION = 'ca-central-1'
    t.after(() => delete process.env.AWS_REGION)
    const canada = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { region: 'ca-central-1' })
    t.after(() => canada.close())
    await new LLMProxy({ bedrock: { accessKeyId: KEY_ID, secretAccessKey: SECRET, endpoint: canada.url } }).generate({ model: CLAUDE3, messages: USER })
    canada.assertSigned()
  })

  test('a shared credentials file (AWS_SHARED_CREDENTIALS_FILE) with two profiles: default, and the one AWS_PROFILE selects', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, 'credentials')
    fs.writeFileSync(
      file,
      [
        '# two profiles',
        '[default]',
        'aws_access_key_id = AKIDDEFAULTPROFILE',
        'aws_secret_access_key = defaultProfileSecret/abc',
        '',
        '[work]',
        'aws_access_key_id=AKIDWORKPROFILE',
        'aws_secret_access_key=workProfileSecret+xyz',
        'aws_session_token=workProfileToken',
        '',
      ].join('\n'),
    )
    withEnv(t, { AWS_SHARED_CREDENTIALS_FILE: file })

    const def = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { accessKeyId: 'AKIDDEFAULTPROFILE', secretAccessKey: 'defaultProfileSecret/abc' })
    t.after(() => def.close())
    await new LLMProxy({ bedrock: { region: REGION, endpoint: def.url } }).generate({ model: CLAUDE3, messages: USER })
    def.assertSigned()
    assert.equal(def.requests[0].sig.credential.accessKeyId, 'AKIDDEFAULTPROFILE')

    process.env.AWS_PROFILE = 'work'
    t.after(() => delete process.env.AWS_PROFILE)
    const work = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { accessKeyId: 'AKIDWORKPROFILE', secretAccessKey: 'workProfileSecret+xyz', sessionToken: 'workProfileToken' })
    t.after(() => work.close())
    await new LLMProxy({ bedrock: { region: REGION, endpoint: work.url } }).generate({ model: CLAUDE3, messages: USER })
    work.assertSigned()
    assert.equal(work.requests[0].sig.credential.accessKeyId, 'AKIDWORKPROFILE')
    assert.equal(work.requests[0].headers['x-amz-security-token'], 'workProfileToken')
  })

  test('~/.aws/credentials and ~/.aws/config under HOME: credentials and the profile’s region', async (t) => {
    const home = tempDir(t)
    fs.mkdirSync(path.join(home, '.aws'))
    fs.writeFileSync(path.join(home, '.aws', 'credentials'), '[default]\naws_access_key_id = AKIDHOMEEXAMPLE\naws_secret_access_key = homeSecret\n[dev]\naws_access_key_id = AKIDDEVEXAMPLE\naws_secret_access_key = devSecret\n')
    fs.writeFileSync(path.join(home, '.aws', 'config'), '[default]\nregion = eu-north-1\n[profile dev]\nregion = sa-east-1\n')
    withEnv(t, { HOME: home })
    const a = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { accessKeyId: 'AKIDHOMEEXAMPLE', secretAccessKey: 'homeSecret', region: 'eu-north-1' })
    t.after(() => a.close())
    await new LLMProxy({ bedrock: { endpoint: a.url } }).generate({ model: CLAUDE3, messages: USER })
    a.assertSigned()

    process.env.AWS_PROFILE = 'dev'
    t.after(() => delete process.env.AWS_PROFILE)
    const b = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer(), {}, { accessKeyId: 'AKIDDEVEXAMPLE', secretAccessKey: 'devSecret', region: 'sa-east-1' })
    t.after(() => b.close())
    await new LLMProxy({ bedrock: { endpoint: b.url } }).generate({ model: CLAUDE3, messages: USER })
    b.assertSigned()
  })

  test('a session token in the options → x-amz-security-token sent and signed', async (t) => {
    const TOKEN = 'optionsSessionToken/EXAMPLE=='
    const upstream = await replayBedrock(200, STREAM_HEADERS, fixture('bedrock/invoke-stream/claude3-text.eventstream.bin'), { framing: 'chunked' }, { sessionToken: TOKEN })
    t.after(() => upstream.close())
    const got = assembleChunks(await collect(bedrockProxy(upstream, { sessionToken: TOKEN }).stream({ model: CLAUDE3, messages: USER })))
    assert.equal(got.finishReason, 'stop')
    upstream.assertSigned()
    assert.equal(upstream.requests[0].headers['x-amz-security-token'], TOKEN)
    assert.ok(upstream.requests[0].sig.signedHeaders.includes('x-amz-security-token'))
  })

  test('no region anywhere → config naming AWS_REGION, and nothing is sent', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ bedrock: { accessKeyId: KEY_ID, secretAccessKey: SECRET, endpoint: upstream.url } })
    for (const via of ['generate', 'stream']) {
      const err = await caught(() => (via === 'generate' ? proxy.generate({ model: CLAUDE3, messages: USER }) : proxy.stream({ model: CLAUDE3, messages: USER }).next()))
      assertProxyError(err, { code: 'config', provider: 'bedrock', retryable: false })
      assert.match(err.message, /AWS_REGION/)
    }
    assert.equal(upstream.requests.length, 0)
  })

  test('the endpoint from AWS_ENDPOINT_URL_BEDROCK_RUNTIME, else AWS_ENDPOINT_URL', async (t) => {
    const specific = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    const general = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer())
    t.after(() => Promise.all([specific.close(), general.close()]))
    withEnv(t, { AWS_ENDPOINT_URL_BEDROCK_RUNTIME: specific.url, AWS_ENDPOINT_URL: general.url })
    await new LLMProxy({ bedrock: { region: REGION, accessKeyId: KEY_ID, secretAccessKey: SECRET } }).generate({ model: CLAUDE3, messages: USER })
    assert.equal(specific.requests.length, 1)
    assert.equal(general.requests.length, 0)
    specific.assertSigned()
    delete process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME
    await new LLMProxy({ bedrock: { region: REGION, accessKeyId: KEY_ID, secretAccessKey: SECRET } }).generate({ model: CLAUDE3, messages: USER })
    assert.equal(general.requests.length, 1)
    general.assertSigned()
  })
})

// ---------------------------------------------------------------------------------------------

const LLAMA_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Current weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}

/** The Llama 3 chat prompt for `turns` ([role, text]…), ending with the assistant header. */
function llamaPrompt(turns) {
  let p = '<|begin_of_text|>'
  for (const [role, text] of turns) p += `<|start_header_id|>${role}<|end_header_id|>\n\n${text}<|eot_id|>`
  return `${p}<|start_header_id|>assistant<|end_header_id|>\n\n`
}

describe('Bedrock Llama 3.1 on InvokeModel (meta.llama3…)', () => {
  const FILE = 'bedrock/invoke/llama3-70b-generation.json'

  for (const mode of ['whole', 'bytewise']) {
    test(`generate over ${FILE} (${mode}): the Llama 3 chat prompt, max_gen_len, and the answer`, async (t) => {
      const body = fixture(FILE)
      const recorded = JSON.parse(body.toString('utf8'))
      const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, body, { mode })
      t.after(() => upstream.close())
      const res = await bedrockProxy(upstream).generate({
        model: LLAMA31,
        messages: [{ role: 'system', content: SYSTEM_TEXT }, ...USER],
        max_tokens: 256,
        temperature: 0.5,
        top_p: 0.9,
      })
      const req = upstream.requests[0]
      assertBedrockRequest(req, { path: '/model/meta.llama3-1-70b-instruct-v1%3A0/invoke', stream: false })
      // Meta's InvokeModel body: prompt, max_gen_len, temperature, top_p — nothing else (Bedrock refuses extraneous keys).
      assert.deepStrictEqual(req.json, {
        prompt: llamaPrompt([
          ['system', SYSTEM_TEXT],
          ['user', USER_TEXT],
        ]),
        max_gen_len: 256,
        temperature: 0.5,
        top_p: 0.9,
      })

      assert.equal(res.object, 'chat.completion')
      assert.equal(typeof res.id, 'string')
      assert.ok(res.id.length > 0)
      assert.ok(Number.isInteger(res.created))
      assert.equal(res.choices.length, 1)
      const m = res.choices[0].message
      assert.equal(m.role, 'assistant')
      assert.ok(m.content === recorded.generation || m.content === recorded.generation.trimStart(), `content: ${JSON.stringify(m.content)}`)
      assert.equal(m.tool_calls ?? null, null)
      assert.equal(res.choices[0].finish_reason, LLAMA_FINISH[recorded.stop_reason])
      assertUsage(res.usage, recorded.prompt_token_count, recorded.generation_token_count)
    })
  }

  test('a conversation becomes the Llama 3 prompt turn by turn, without a system turn when there is none', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture(FILE))
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    await proxy.generate({
      model: LLAMA31,
      max_tokens: 64,
      messages: [
        { role: 'user', content: 'Hi.' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'How are you?' },
      ],
    })
    assert.equal(
      upstream.requests[0].json.prompt,
      llamaPrompt([
        ['user', 'Hi.'],
        ['assistant', 'Hello.'],
        ['user', 'How are you?'],
      ]),
    )
    assert.equal(upstream.requests[0].json.max_gen_len, 64)
  })

  test('other Llama 3 ids (us.meta.llama3-2-…, bedrock/meta.llama3-…) go to InvokeModel too', async (t) => {
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, fixture(FILE))
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    for (const [model, id] of [
      ['us.meta.llama3-2-90b-instruct-v1:0', 'us.meta.llama3-2-90b-instruct-v1:0'],
      ['meta.llama3-3-70b-instruct-v1:0', 'meta.llama3-3-70b-instruct-v1:0'],
      ['bedrock/meta.llama3-1-8b-instruct-v1:0', 'meta.llama3-1-8b-instruct-v1:0'],
    ]) {
      await proxy.generate({ model, messages: USER, max_tokens: 20 })
      const req = upstream.requests.at(-1)
      assertBedrockRequest(req, { path: `/model/${segment(id)}/invoke`, stream: false })
      assert.equal(typeof req.json.prompt, 'string', model)
    }
  })

  test('tools are described in the system turn; a <function=…> reply → tool_calls', async (t) => {
    const reply = { generation: '<function=get_weather>{"city":"Paris"}</function>', prompt_token_count: 210, generation_token_count: 14, stop_reason: 'stop' }
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, reply)
    t.after(() => upstream.close())
    const res = await bedrockProxy(upstream).generate({ model: LLAMA31, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [LLAMA_TOOL], max_tokens: 100 })
    const prompt = upstream.requests[0].json.prompt
    assert.ok(prompt.startsWith('<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n'), prompt)
    const system = prompt.slice(0, prompt.indexOf('<|eot_id|>'))
    assert.ok(system.includes('get_weather') && system.includes('Current weather of a city'), `the tool is described in the system turn: ${system}`)
    assert.ok(prompt.endsWith('<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'), prompt)

    const choice = res.choices[0]
    assert.equal(choice.finish_reason, 'tool_calls')
    assert.equal(choice.message.tool_calls.length, 1)
    const call = choice.message.tool_calls[0]
    assert.equal(call.type, 'function')
    assert.equal(typeof call.id, 'string')
    assert.ok(call.id.length > 0)
    assert.equal(call.function.name, 'get_weather')
    assert.deepStrictEqual(JSON.parse(call.function.arguments), { city: 'Paris' })
    assert.ok(!(choice.message.content || '').includes('<function'), `the raw call is not left in content: ${choice.message.content}`)
    assertUsage(res.usage, 210, 14)
  })

  const STREAM_FILE = 'bedrock/invoke-stream/llama3-8b-text.eventstream.bin'
  for (const [label, mode] of STREAM_MODES) {
    test(`stream over ${STREAM_FILE} (${label}): text, finish_reason length, usage from amazon-bedrock-invocationMetrics`, async (t) => {
      const body = fixture(STREAM_FILE)
      const want = expectedLlamaStream(body)
      assert.equal(want.stopReason, 'length')
      const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode, framing: 'chunked' })
      t.after(() => upstream.close())
      const model = 'meta.llama3-8b-instruct-v1:0'
      const chunks = await collect(bedrockProxy(upstream).stream({ model, messages: USER, max_tokens: 120 }))
      const req = upstream.requests[0]
      assertBedrockRequest(req, { path: '/model/meta.llama3-8b-instruct-v1%3A0/invoke-with-response-stream', stream: true })
      assert.deepStrictEqual(req.json, { prompt: llamaPrompt([['user', USER_TEXT]]), max_gen_len: 120 })

      const got = assembleChunks(chunks)
      assert.ok(got.content === want.text || got.content === want.text.trimStart(), `content: ${JSON.stringify(got.content.slice(0, 80))}`)
      assert.equal(got.finishReason, 'length')
      assertUsage(got.usage, want.metrics.inputTokenCount, want.metrics.outputTokenCount)
    })
  }

  test('a streamed <function=…> reply → tool_call deltas, finish_reason tool_calls', async (t) => {
    const pieces = ['<function=', 'get_weather>', '{"city":', ' "Paris"}', '</function>']
    const body = Buffer.concat(
      pieces.map((generation, i) =>
        chunkFrame({
          generation,
          prompt_token_count: i === 0 ? 210 : null,
          generation_token_count: i + 1,
          stop_reason: i === pieces.length - 1 ? 'stop' : null,
          ...(i === pieces.length - 1 ? { 'amazon-bedrock-invocationMetrics': { inputTokenCount: 210, outputTokenCount: 5, invocationLatency: 300, firstByteLatency: 100 } } : {}),
        }),
      ),
    )
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode: 'bytewise', framing: 'chunked' })
    t.after(() => upstream.close())
    const got = assembleChunks(await collect(bedrockProxy(upstream).stream({ model: LLAMA31, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [LLAMA_TOOL] })))
    assert.equal(got.toolCalls.length, 1)
    assert.equal(got.toolCalls[0].name, 'get_weather')
    assert.deepStrictEqual(JSON.parse(got.toolCalls[0].arguments), { city: 'Paris' })
    assert.ok(!got.content.includes('<function'), `the raw call is not streamed as content: ${got.content}`)
    assert.equal(got.finishReason, 'tool_calls')
    assertUsage(got.usage, 210, 5)
  })

  test('a Llama stream cut in the middle of a frame → stream_interrupted', async (t) => {
    const body = fixture(STREAM_FILE)
    const { frames } = decodeFrames(body)
    const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode: { cutAt: frames[50].start + 30 }, framing: 'chunked' })
    t.after(() => upstream.close())
    const { chunks, err } = await drain(bedrockProxy(upstream).stream({ model: LLAMA31, messages: USER }))
    assertProxyError(err, { code: 'stream_interrupted', provider: 'bedrock' })
    assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)))
  })
})

// ---------------------------------------------------------------------------------------------

describe('Bedrock Converse (every other model, or bedrock-converse/<id>)', () => {
  const GENERATE = [
    // [fixture, model as called, id in the recorded path]
    ['bedrock/converse/llama32-text.json', 'bedrock-converse/meta.llama3-2-1b-instruct-v1:0', 'meta.llama3-2-1b-instruct-v1:0'],
    ['bedrock/converse/claude37-guardrail-trace.json', 'arn:aws:bedrock:us-east-1:012345678901:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0', 'arn:aws:bedrock:us-east-1:012345678901:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0'],
  ]

  test('the recordings are all there', () => {
    assert.deepEqual(listFixtures('bedrock/converse', '.json'), GENERATE.map((g) => g[0]).sort())
  })

  const RECORDED_PATH = {
    'bedrock/converse/llama32-text.json': '/model/meta.llama3-2-1b-instruct-v1%3A0/converse',
    'bedrock/converse/claude37-guardrail-trace.json': '/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A012345678901%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse',
  }

  for (const [file, model, id] of GENERATE) {
    for (const mode of ['whole', 'bytewise']) {
      test(`generate over ${file} (${mode})`, async (t) => {
        const body = fixture(file)
        const recorded = JSON.parse(body.toString('utf8'))
        const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, body, { mode })
        t.after(() => upstream.close())
        const res = await bedrockProxy(upstream).generate({ model, messages: [{ role: 'system', content: SYSTEM_TEXT }, ...USER], max_tokens: 256, temperature: 0.5, top_p: 0.9, stop: ['END'] })

        const req = upstream.requests[0]
        // The path the SDK that made the recording sent (the ARN's ':' and '/' escaped).
        assert.equal(RECORDED_PATH[file], `/model/${segment(id)}/converse`)
        assertBedrockRequest(req, { path: RECORDED_PATH[file], stream: false })
        assert.deepStrictEqual(req.json, {
          messages: [{ role: 'user', content: [{ text: USER_TEXT }] }],
          system: [{ text: SYSTEM_TEXT }],
          inferenceConfig: { maxTokens: 256, temperature: 0.5, topP: 0.9, stopSequences: ['END'] },
        })

        assert.equal(res.object, 'chat.completion')
        assert.equal(typeof res.id, 'string')
        assert.ok(res.id.length > 0)
        assert.ok(Number.isInteger(res.created))
        assert.ok([model, id].includes(res.model), `model: ${res.model}`)
        const choice = res.choices[0]
        assert.equal(choice.message.role, 'assistant')
        assert.equal(choice.message.content, recorded.output.message.content.map((b) => b.text).join(''))
        assert.equal(choice.message.tool_calls ?? null, null)
        assert.equal(choice.finish_reason, CONVERSE_FINISH[recorded.stopReason])
        const u = recorded.usage
        assertUsage(res.usage, u.inputTokens + (u.cacheReadInputTokens || 0) + (u.cacheWriteInputTokens || 0), u.outputTokens, u.cacheReadInputTokens || 0)
        assert.equal(res.usage.total_tokens, u.totalTokens)
      })
    }
  }

  test('amazon.nova…, mistral.…, meta.llama4…, us.amazon.nova… and bedrock-converse/anthropic.claude-… all go to /converse', async (t) => {
    const body = fixture('bedrock/converse/llama32-text.json')
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, body)
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    for (const [model, id] of [
      ['amazon.nova-pro-v1:0', 'amazon.nova-pro-v1:0'],
      ['us.amazon.nova-lite-v1:0', 'us.amazon.nova-lite-v1:0'],
      ['mistral.mistral-large-2407-v1:0', 'mistral.mistral-large-2407-v1:0'],
      ['meta.llama4-maverick-17b-instruct-v1:0', 'meta.llama4-maverick-17b-instruct-v1:0'],
      ['us.meta.llama4-scout-17b-instruct-v1:0', 'us.meta.llama4-scout-17b-instruct-v1:0'],
      ['bedrock-converse/anthropic.claude-3-5-sonnet-20240620-v1:0', 'anthropic.claude-3-5-sonnet-20240620-v1:0'],
      ['bedrock-converse/us.anthropic.claude-sonnet-4-20250514-v1:0', 'us.anthropic.claude-sonnet-4-20250514-v1:0'],
      ['bedrock/cohere.command-r-plus-v1:0', 'cohere.command-r-plus-v1:0'],
    ]) {
      const res = await proxy.generate({ model, messages: USER, max_tokens: 30 })
      const req = upstream.requests.at(-1)
      assertBedrockRequest(req, { path: `/model/${segment(id)}/converse`, stream: false })
      assert.deepStrictEqual(req.json, { messages: [{ role: 'user', content: [{ text: USER_TEXT }] }], inferenceConfig: { maxTokens: 30 } }, model)
      assert.equal(res.choices[0].message.content, fixtureJson('bedrock/converse/llama32-text.json').output.message.content[0].text)
    }
  })

  test('toolConfig, toolUse and toolResult blocks; a toolUse answer → tool_calls', async (t) => {
    const answer = {
      metrics: { latencyMs: 900 },
      output: {
        message: {
          role: 'assistant',
          content: [
            { text: 'Checking the weather.' },
            { toolUse: { toolUseId: 'tooluse_abc123', name: 'get_weather', input: { city: 'Paris' } } },
          ],
        },
      },
      stopReason: 'tool_use',
      usage: { inputTokens: 400, outputTokens: 50, totalTokens: 450 },
    }
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer)
    t.after(() => upstream.close())
    const proxy = bedrockProxy(upstream)
    const res = await proxy.generate({
      model: 'amazon.nova-pro-v1:0',
      messages: [
        { role: 'user', content: 'Weather in Rome, then Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'tooluse_prev', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
        { role: 'tool', tool_call_id: 'tooluse_prev', content: '21°C' },
      ],
      tools: [LLAMA_TOOL],
      tool_choice: 'required',
    })
    assert.deepStrictEqual(upstream.requests[0].json, {
      messages: [
        { role: 'user', content: [{ text: 'Weather in Rome, then Paris?' }] },
        { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_prev', name: 'get_weather', input: { city: 'Rome' } } }] },
        { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_prev', content: [{ text: '21°C' }] } }] },
      ],
      toolConfig: {
        tools: [{ toolSpec: { name: 'get_weather', description: 'Current weather of a city', inputSchema: { json: LLAMA_TOOL.function.parameters } } }],
        toolChoice: { any: {} },
      },
    })
    const m = res.choices[0].message
    assert.equal(m.content, 'Checking the weather.')
    assert.deepStrictEqual(m.tool_calls, [{ id: 'tooluse_abc123', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }])
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
    assertUsage(res.usage, 400, 50)

    await proxy.generate({ model: 'amazon.nova-pro-v1:0', messages: USER, tools: [LLAMA_TOOL], tool_choice: { type: 'function', function: { name: 'get_weather' } } })
    assert.deepStrictEqual(upstream.requests[1].json.toolConfig.toolChoice, { tool: { name: 'get_weather' } })
  })

  test('a reasoningContent answer → reasoning_content and the signed thinking block', async (t) => {
    const answer = {
      output: {
        message: {
          role: 'assistant',
          content: [{ reasoningContent: { reasoningText: { text: 'The user greets me.', signature: 'EqQBCkYIBxgCKkBsig==' } } }, { text: 'Hello!' }],
        },
      },
      stopReason: 'end_turn',
      usage: { inputTokens: 36, outputTokens: 73, totalTokens: 109, cacheReadInputTokens: 10, cacheWriteInputTokens: 0 },
    }
    const upstream = await replayBedrock(200, BEDROCK_JSON_HEADERS, answer)
    t.after(() => upstream.close())
    const res = await bedrockProxy(upstream).generate({ model: 'bedrock-converse/us.anthropic.claude-sonnet-4-20250514-v1:0', messages: USER })
    const m = res.choices[0].message
    assert.equal(m.content, 'Hello!')
    assert.equal(m.reasoning_content, 'The user greets me.')
    assert.deepStrictEqual(m.thinking_blocks, [{ type: 'thinking', thinking: 'The user greets me.', signature: 'EqQBCkYIBxgCKkBsig==' }])
    assert.equal(res.choices[0].finish_reason, 'stop')
    assertUsage(res.usage, 46, 73, 10)
  })

  const STREAMS = [
    ['bedrock/converse-stream/claude-tool-use.eventstream.bin', 'bedrock-converse/anthropic.claude-3-sonnet-20240229-v1:0', '/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse-stream'],
    ['bedrock/converse-stream/claude4-reasoning.eventstream.bin', 'bedrock-converse/us.anthropic.claude-sonnet-4-20250514-v1:0', '/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream'],
    ['bedrock/converse-stream/llama-text.eventstream.bin', 'bedrock-converse/meta.llama3-2-1b-instruct-v1:0', '/model/meta.llama3-2-1b-instruct-v1%3A0/converse-stream'],
  ]

  test('the stream recordings are all there, with correct CRCs', () => {
    assert.deepEqual(listFixtures('bedrock/converse-stream', '.eventstream.bin'), STREAMS.map((s) => s[0]).sort())
    assert.deepEqual(
      STREAMS.map(([f]) => decodeFrames(fixture(f)).frames.length),
      [25, 25, 40],
    )
  })

  for (const [file, model, wantPath] of STREAMS) {
    for (const [label, mode] of STREAM_MODES) {
      test(`stream over ${file} (${label})`, async (t) => {
        const body = fixture(file)
        const want = expectedConverseStream(body)
        const upstream = await replayBedrock(200, STREAM_HEADERS, body, { mode, framing: 'chunked' })
        t.after(() => upstream.close())
        const tools = file.includes('tool-use') ? [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a location', parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } } }] : undefined
        const chunks = await collect(bedrockProxy(upstream).stream({ model, messages: USER, max_tokens: 1000, tools }))

        const req = upstream.requests[0]
        assertBedrockRequest(req, { path: wantPath, stream: true })
        const wantBody = { messages: [{ role: 'user', content: [{ text: USER_TEXT }] }], inferenceConfig: { maxTokens: 1000 } }
        if (tools) wantBody.toolConfig = { tools: [{ toolSpec: { name: 'get_weather', description: 'Weather of a location', inputSchema: { json: tools[0].function.parameters } } }] }
        assert.deepStrictEqual(req.json, wantBody)

        const got = assembleChunks(chunks)
        assert.equal(got.content, want.text, 'content = the text deltas joined')
        assert.deepStrictEqual(got.toolCalls, want.toolCalls, 'tool calls: toolUseId, name, input pieces joined')
        for (const call of got.toolCalls) JSON.parse(call.arguments)
        assert.equal(got.finishReason, CONVERSE_FINISH[want.stopReason])
        assertUsage(got.usage, want.usage.inputTokens, want.usage.outputTokens)
        const r = reasoningOf(chunks)
        assert.equal(r.reasoning, want.reasoning, 'reasoning_content = the reasoning text deltas joined')
        if (want.signature) {
          assert.deepStrictEqual(r.thinkingBlocks, [{ type: 'thinking', thinking: want.reasoning, signature: want.signature }])
        } else {
          assert.deepStrictEqual(r.thinkingBlocks, [])
        }
      })
    }
  }

  test('claude-tool-use: the text, then one tool call get_weather {"location": "Barcelona"}, finish tool_calls', async (t) => {
    const upstream = await replayBedrock(200, STREAM_HEADERS, fixture(STREAMS[0][0]), { framing: 'chunked' })
    t.after(() => upstream.close())
    const got = assembleChunks(await collect(bedrockProxy(upstream).stream({ model: STREAMS[0][1], messages: USER })))
    assert.equal(got.content, 'Okay, let me check the weather for Barcelona using the available tool:')
    assert.deepStrictEqual(
      got.toolCalls.map((c) => [c.id, c.name, JSON.parse(c.arguments)]),
      [['tooluse_yypYDr71TwCwByoyao4-Vg', 'get_weather', { location: 'Barcelona' }]],
    )
    assert.equal(got.finishReason, 'tool_calls')
    assertUsage(got.usage, 236, 58)
  })

  // `ThrottlingException` as the brief of these tests writes it, `throttlingException` as AWS sends it.
  for (const type of ['ThrottlingException', 'throttlingException']) {
    test(`an exception frame (${type}) inside a ConverseStream after two text deltas → the text, then rate_limit`, async (t) => {
      const body = Buffer.concat([
        converseFrame('messageStart', { role: 'assistant' }),
        converseFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hello' } }),
        converseFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: ' there' } }),
        exceptionFrame(type, { message: 'Too many requests' }),
      ])
      const upstream = await replayBedrock(200, STREAM_HEADERS, body, { framing: 'chunked' })
      t.after(() => upstream.close())
      const { chunks, err } = await drain(bedrockProxy(upstream).stream({ model: 'amazon.nova-pro-v1:0', messages: USER }))
      assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Hello there')
      assertProxyError(err, { code: 'rate_limit', provider: 'bedrock', retryable: true })
      assert.match(err.message, /Too many requests/)
      assertBedrockRequest(upstream.requests[0], { path: '/model/amazon.nova-pro-v1%3A0/converse-stream', stream: true })
    })
  }

  test('a ConverseStream that stops after messageStop, before metadata → stream_interrupted', async (t) => {
    const body = fixture(STREAMS[2][0])
    const { frames } = decodeFrames(body)
    const upstream = await replayBedrock(200, STREAM_HEADERS, body.subarray(0, frames.at(-1).start), { framing: 'chunked' })
    t.after(() => upstream.close())
    const { err } = await drain(bedrockProxy(upstream).stream({ model: STREAMS[2][1], messages: USER }))
    assertProxyError(err, { code: 'stream_interrupted', provider: 'bedrock' })
  })
})
