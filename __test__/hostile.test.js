'use strict'

// Hostile input never crashes the process: wrong JavaScript types from the caller, garbage from the
// upstream (noise, huge, cut, invalid UTF-8, nested 100,000 deep) — each is an LLMProxyError, never
// a crash, a hang or an unhandled rejection. And credentials (API keys, the AWS secret and session
// token, a password in a base URL) never show in any form of an error or of the proxy.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const { startUpstream, writeResponse, closedPort, within, SSE_HEADERS, JSON_HEADERS } = require('./helpers/upstream')
const { LLMProxy, LLMProxyError, fixture, assertProxyError, USER } = require('./helpers/common')

// Anything that escapes as an unhandled rejection or exception fails the file.
const escaped = []
const onRejection = (err) => escaped.push(['unhandledRejection', err])
const onException = (err) => escaped.push(['uncaughtException', err])
before(() => {
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
})
after(async () => {
  // Let stray promises settle before looking.
  await new Promise((resolve) => setTimeout(resolve, 50))
  process.off('unhandledRejection', onRejection)
  process.off('uncaughtException', onException)
  assert.deepEqual(
    escaped.map(([kind, err]) => `${kind}: ${err && err.stack}`),
    [],
    'nothing escapes as an unhandled rejection or exception',
  )
})

/** Runs `fn`, which must throw (or reject with) an LLMProxyError; returns it. */
async function rejects(fn, fields = {}) {
  let err
  try {
    await within(10_000, Promise.resolve().then(fn), 'the call')
  } catch (e) {
    err = e
  }
  assert.ok(err, 'expected an error')
  assertProxyError(err, fields)
  return err
}

/** Consumes a stream, which must end with an LLMProxyError; returns it. */
async function streamRejects(iterable, fields = {}) {
  return rejects(async () => {
    for await (const _ of iterable) {
      // drain
    }
  }, fields)
}

const REQ = { model: 'mock/echo', messages: USER }

function deepArray(depth) {
  let v = []
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

describe('wrong JavaScript types from the caller', () => {
  const proxy = new LLMProxy()

  test('new LLMProxy(options) with options that are not options', async () => {
    const circular = {}
    circular.self = circular
    const cases = [
      null,
      42,
      'sk-not-options',
      true,
      [],
      () => {},
      Symbol('s'),
      10n,
      { openai: 42 },
      { openai: { apiKey: 42 } },
      { openai: { apiKey: 'k', baseUrl: 42 } },
      { openai: { headers: { 'x-a': 1 } } },
      { openai: { baseUrl: 'not a url' } },
      { timeoutMs: 'soon' },
      { timeoutMs: -1 },
      { timeoutMs: 1e300 },
      { retry: 'often' },
      { retry: { maxRetries: -1 } },
      { retry: { maxRetries: 1.5 } },
      { routes: [] },
      { routes: { fast: 42 } },
      { compatible: { openai: { baseUrl: 'http://x' } } },
      { compatible: { local: {} } },
      { bedrock: { region: ['us-east-1'] } },
      { unknownOption: true },
      { retryOnFuturePromise: 'yes' },
      { openai: { apiKey: 10n } },
      circular,
      { nested: deepArray(10_000) },
    ]
    for (const options of cases) {
      const err = await rejects(() => new LLMProxy(options), { code: 'config' })
      assert.ok(err.message.length < 2000, `a short message: ${err.message.slice(0, 200)}`)
    }
  })

  test('generate(request) with a request that is not a request', async () => {
    const circular = { model: 'mock/echo', messages: USER }
    circular.self = circular
    const cases = [
      undefined,
      null,
      42,
      'hello',
      true,
      Symbol('s'),
      10n,
      () => {},
      [],
      [REQ],
      new Map([['model', 'mock/echo']]),
      new Date(),
      {},
      { model: undefined, messages: USER },
      { model: 42, messages: USER },
      { model: { name: 'mock/echo' }, messages: USER },
      { model: '', messages: USER },
      { model: '   ', messages: USER },
      { model: Symbol('m'), messages: USER },
      { model: () => 'mock/echo', messages: USER },
      { model: 'mock/echo' },
      { model: 'mock/echo', messages: 42 },
      { model: 'mock/echo', messages: 'hello' },
      { model: 'mock/echo', messages: { role: 'user', content: 'hi' } },
      { model: 'mock/echo', messages: [] },
      { model: 'mock/echo', messages: [42] },
      { model: 'mock/echo', messages: [null] },
      { model: 'mock/echo', messages: [{ role: 'user' }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: Symbol('c') }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: () => 'hi' }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: 42 }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: 10n }] },
      { model: 'mock/echo', messages: [{ role: 42, content: 'hi' }] },
      { model: 'mock/echo', messages: [{ role: 'wizard', content: 'hi' }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: [{ type: 'text' }] }] },
      { model: 'mock/echo', messages: USER, tools: 'all' },
      { model: 'mock/echo', messages: USER, tools: [{ type: 'function' }] },
      { model: 'mock/echo', messages: USER, tool_choice: 42 },
      { model: 'mock/echo', messages: USER, max_tokens: 'many' },
      { model: 'mock/echo', messages: USER, max_tokens: -5 },
      { model: 'mock/echo', messages: USER, temperature: 'hot' },
      { model: 'mock/echo', messages: USER, stop: 42 },
      { model: 'mock/echo', messages: USER, seed: 1.5 },
      circular,
      { model: 'mock/echo', messages: [{ role: 'user', content: 'hi', extra: deepArray(10_000) }] },
      { model: 'mock/echo', messages: [{ role: 'user', content: 'hi', extra: deepArray(200) }] },
      { model: 'mock/echo', messages: USER, metadata: deepArray(100_000) },
      { model: 'no-such-model-anywhere', messages: USER },
    ]
    for (const request of cases) {
      const err = await rejects(() => proxy.generate(request))
      assert.ok(['invalid_request', 'unsupported_model', 'config'].includes(err.code), `${err.code}: ${err.message}`)
      assert.doesNotMatch(err.message, /internal|bug in llm-proxy/i)
      // The same through stream(): the error comes from the iteration.
      const serr = await streamRejects(proxy.stream(request))
      assert.equal(serr.code, err.code, serr.message)
    }
  })

  test('nesting past the limit says so', async () => {
    // 2,000 levels: JSON.stringify copes (at 10,000 it throws a RangeError, reported as
    // invalid_request above), the core stops at 128.
    const err = await rejects(() =>
      proxy.generate({ model: 'mock/echo', messages: [{ role: 'user', content: 'hi', extra: deepArray(2000) }] }),
    )
    assert.match(err.message, /nested too deeply/)
    const serr = await streamRejects(proxy.stream({ model: 'mock/echo', messages: USER, metadata: deepArray(2000) }))
    assert.match(serr.message, /nested too deeply/)
  })

  test('huge strings: an 8 MB message goes through, a 1 MB model name is an error', async () => {
    const text = 'x'.repeat(8 * 1024 * 1024)
    const res = await proxy.generate({ model: 'mock/echo', messages: [{ role: 'user', content: text }] })
    assert.equal(res.choices[0].message.content.length, text.length)
    const err = await rejects(() => proxy.generate({ model: 'x'.repeat(1 << 20), messages: USER }))
    assert.equal(err.code, 'unsupported_model')
    // The name is shown once, cut to 200 characters, with its length.
    assert.ok(err.message.includes(`'${'x'.repeat(200)}…' (1048576 characters)`), err.message.slice(0, 400))
    assert.ok(err.message.length < 1000, `a short message: ${err.message.length} characters`)
  })

  test('call options of the wrong type', async () => {
    const cases = [
      42,
      'fast',
      true,
      Symbol('o'),
      { signal: {} },
      { signal: 'abort' },
      { signal: 42 },
      { signal: { aborted: 'no', addEventListener() {} } },
      { signal: new EventTarget() },
      { signal: Promise.resolve() },
      { retryOnFuturePromise: 'yes' },
      { retry: 'often' },
      { retry: { maxRetries: 'many' } },
      { timeouts: 'soon' },
      { timeouts: { requestMs: 'soon' } },
      { fallbacks: 42 },
      { fallbacks: { 'mock/echo': 'mock/other' } },
      { fallbacks: 10n },
    ]
    for (const options of cases) {
      const err = await rejects(() => proxy.generate(REQ, options))
      assert.ok(['invalid_request', 'config'].includes(err.code), `${util.inspect(options)}: ${err.code} ${err.message}`)
      await streamRejects(proxy.stream(REQ, options))
    }
  })

  test('a request whose toJSON or getter throws', async () => {
    const withToJSON = {
      ...REQ,
      toJSON() {
        throw new Error('toJSON failed')
      },
    }
    const withGetter = {
      model: 'mock/echo',
      get messages() {
        throw new Error('getter failed')
      },
    }
    const bad = [withToJSON, withGetter]
    for (const request of bad) {
      await rejects(() => proxy.generate(request), { code: 'invalid_request' })
      await streamRejects(proxy.stream(request), { code: 'invalid_request' })
    }
  })

  test(
    'options whose getters throw',
    async () => {
      const throwing = new Proxy(
        {},
        {
          get() {
            throw new Error('trap')
          },
          ownKeys() {
            throw new Error('trap')
          },
        },
      )
      await rejects(() => new LLMProxy(throwing), { code: 'config' })
      await rejects(() => proxy.generate(REQ, throwing), { code: 'invalid_request' })
      await streamRejects(proxy.stream(REQ, throwing), { code: 'invalid_request' })
    },
  )

  test('a getter that throws in the options or the request: an LLMProxyError with the thrown error as cause, never a synchronous throw', async () => {
    const thrown = new Error('the caller\'s own error')
    const throwing = (fields) => {
      const o = { ...fields }
      Object.defineProperty(o, 'signal', {
        enumerable: true,
        get() {
          throw thrown
        },
      })
      return o
    }
    const { proxy: revokedOptions, revoke } = Proxy.revocable({}, {})
    revoke()
    for (const options of [throwing({}), throwing({ retryOnFuturePromise: true }), revokedOptions]) {
      const what = options === revokedOptions ? 'revoked' : util.inspect(options, { getters: false })
      const err = await rejects(() => proxy.generate(REQ, options), { code: 'invalid_request', retryable: false })
      assert.match(err.message, /call options cannot be read/, what)
      if (options !== revokedOptions) assert.equal(err.cause, thrown, what)
      let iterable
      assert.doesNotThrow(() => {
        iterable = proxy.stream(REQ, options)
      }, `${what}: stream() itself does not throw`)
      const serr = await streamRejects(iterable, { code: 'invalid_request' })
      assert.equal(serr.message, err.message)
    }
    // A signal whose fields throw.
    const badSignal = {
      get aborted() {
        throw thrown
      },
    }
    const err = await rejects(() => proxy.generate(REQ, { signal: badSignal }), { code: 'invalid_request' })
    assert.match(err.message, /`signal` cannot be read/)
    assert.equal(err.cause, thrown)
    await streamRejects(proxy.stream(REQ, { signal: badSignal }), { code: 'invalid_request' })
    const deafSignal = {
      aborted: false,
      addEventListener() {
        throw thrown
      },
    }
    const derr = await rejects(() => proxy.generate(REQ, { signal: deafSignal }), { code: 'invalid_request' })
    assert.match(derr.message, /`signal` cannot be listened to/)
    assert.equal(derr.cause, thrown)
    let deafStream
    assert.doesNotThrow(() => {
      deafStream = proxy.stream(REQ, { signal: deafSignal })
    }, 'stream() itself does not throw')
    assert.equal((await streamRejects(deafStream, { code: 'invalid_request' })).cause, thrown)
    // The options of the proxy.
    const cerr = await rejects(() => new LLMProxy(throwing({})), { code: 'config' })
    assert.match(cerr.message, /LLMProxy options cannot be read/)
    assert.equal(cerr.cause, thrown)
    await rejects(() => new LLMProxy(revokedOptions), { code: 'config', message: /cannot be read/ })
    // A request whose getter throws, with the forced-tool retry on too (it reads the request's tools).
    const request = {
      model: 'mock/echo',
      messages: USER,
      get tools() {
        throw thrown
      },
    }
    for (const p of [proxy, new LLMProxy({ retryOnFuturePromise: true })]) {
      const gerr = await rejects(() => p.generate(request), { code: 'invalid_request', message: /reading request\.tools threw/ })
      assert.equal(gerr.cause, thrown)
      const serr = await streamRejects(p.stream(request), { code: 'invalid_request', message: /reading request\.tools threw/ })
      assert.equal(serr.cause, thrown)
    }
  })

  test('a value JSON cannot hold: each cause named, with where it is and what to do', async () => {
    const message = (content, extra) => ({ model: 'mock/echo', messages: [{ role: 'user', content, ...extra }] })
    const cyclic = message('hi')
    cyclic.messages[0].meta = { back: cyclic.messages }
    const toJsonError = new Error('toJSON failed here')
    const getterError = new TypeError('getter failed here')
    const cases = [
      ['BigInt', message('hi', { n: 5n }), /request\.messages\[0\]\.n is a BigInt.*Convert it to a number/, TypeError],
      ['BigInt object', message('hi', { 'odd key': Object(5n) }), /request\.messages\[0\]\["odd key"\] is a BigInt/, TypeError],
      [
        'circular',
        cyclic,
        /request\.messages\[0\]\.meta\.back refers back to request\.messages, which contains it \(a circular reference\)\. Pass a copy without the cycle/,
        TypeError,
      ],
      ['too deep', { ...REQ, metadata: deepArray(100_000) }, /nested too deeply \(100002 levels, down to request\.metadata\[0\]\[0\]/, RangeError],
      [
        'toJSON that throws',
        message('hi', {
          toJSON() {
            throw toJsonError
          },
        }),
        /the toJSON\(\) method of request\.messages\[0\] threw \(Error: toJSON failed here\)\. Fix that method/,
        toJsonError,
      ],
      [
        'getter that throws',
        {
          model: 'mock/echo',
          messages: [
            {
              role: 'user',
              get content() {
                throw getterError
              },
            },
          ],
        },
        /reading request\.messages\[0\]\.content threw \(TypeError: getter failed here\)/,
        getterError,
      ],
    ]
    for (const [what, request, says, cause] of cases) {
      for (const via of ['generate', 'stream']) {
        const err =
          via === 'generate'
            ? await rejects(() => proxy.generate(request), { code: 'invalid_request', retryable: false })
            : await streamRejects(proxy.stream(request), { code: 'invalid_request', retryable: false })
        assert.match(err.message, says, `${what} (${via})`)
        assert.match(err.message, /^The request cannot be (sent as JSON|read)/, `${what} (${via})`)
        if (typeof cause === 'function') assert.ok(err.cause instanceof cause, `${what} (${via}): cause ${err.cause}`)
        else assert.equal(err.cause, cause, `${what} (${via})`)
        // Only a BigInt is blamed on a BigInt, only a cycle on a cycle.
        if (what !== 'BigInt' && what !== 'BigInt object') assert.doesNotMatch(err.message, /BigInt/, what)
        if (what !== 'circular') assert.doesNotMatch(err.message, /circular/, what)
      }
    }
    // The call options and the proxy's options, the same way.
    const cerr = await rejects(() => proxy.generate(REQ, { timeouts: { requestMs: 10n } }), { code: 'invalid_request' })
    assert.match(cerr.message, /^The call options cannot be sent as JSON: options\.timeouts\.requestMs is a BigInt/)
    await streamRejects(proxy.stream(REQ, { retry: cyclic }), { code: 'invalid_request', message: /options\.retry\.messages\[0\]\.meta\.back refers back to options\.retry\.messages/ })
    const perr = await rejects(() => new LLMProxy({ openai: { apiKey: 10n } }), { code: 'config' })
    assert.match(perr.message, /^The LLMProxy options cannot be sent as JSON: options\.openai\.apiKey is a BigInt/)
    await rejects(() => new LLMProxy({ routes: { toJSON: () => { throw toJsonError } } }), {
      code: 'config',
      message: /the toJSON\(\) method of options\.routes threw/,
      cause: toJsonError,
    })
    await rejects(() => new LLMProxy({ nested: deepArray(100_000) }), { code: 'config', message: /nested too deeply/ })
  })

  test('resolve() with something other than a model name', async () => {
    for (const model of [undefined, null, 42, {}, [], Symbol('m'), 10n, () => 'gpt-4o']) {
      await rejects(() => proxy.resolve(model), { code: 'invalid_request' })
    }
  })

  test('a stream created with a bad request and never iterated rejects nothing', async () => {
    proxy.stream(42)
    proxy.stream({ model: 'mock/echo', messages: 42 })
    proxy.stream(REQ, { signal: 'x' })
    await new Promise((resolve) => setTimeout(resolve, 20))
  })
})

describe('garbage from the upstream', () => {
  let upstream
  let respond = () => {}
  before(async () => {
    upstream = await startUpstream((req, socket) => respond(req, socket))
  })
  after(() => upstream.close())

  const openai = () => new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl }, retry: { maxRetries: 0 } })
  const REQ_OPENAI = { model: 'gpt-4o', messages: USER }

  // A fixed pseudo-random sequence (xorshift32), so the noise and the cuts are the same every run.
  function rng(seed) {
    let x = seed >>> 0 || 1
    return () => {
      x ^= x << 13
      x >>>= 0
      x ^= x >>> 17
      x ^= x << 5
      x >>>= 0
      return x
    }
  }
  const noise = (n, seed) => {
    const next = rng(seed)
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = next() & 0xff
    return b
  }

  test('binary noise: 200 text/event-stream and 200 application/json', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const body = noise(4096, seed)
      respond = (req, socket) => writeResponse(socket, 200, SSE_HEADERS, body)
      await streamRejects(openai().stream(REQ_OPENAI), { code: 'stream_interrupted' })
      respond = (req, socket) => writeResponse(socket, 200, JSON_HEADERS, body)
      await rejects(() => openai().generate(REQ_OPENAI), { code: 'server_error' })
    }
  })

  test('a 50 MB body: one SSE line past the limit, and a JSON body of noise', async () => {
    const big = Buffer.alloc(50 * 1024 * 1024, 'a')
    Buffer.from('data: ').copy(big)
    respond = (req, socket) => writeResponse(socket, 200, SSE_HEADERS, big, { mode: { chunks: 50 } })
    const err = await streamRejects(openai().stream(REQ_OPENAI), { code: 'stream_interrupted' })
    assert.match(err.message, /limit/)
    respond = (req, socket) => writeResponse(socket, 200, JSON_HEADERS, big)
    await rejects(() => openai().generate(REQ_OPENAI), { code: 'server_error' })
  })

  test('bodies cut at random points', async () => {
    const sse = fixture('openai/sse/text-include-usage.sse')
    const done = sse.indexOf('data: [DONE]')
    const json = fixture('openai/chat/text-gpt35-2026.json')
    const next = rng(42)
    for (let i = 0; i < 6; i++) {
      const cutAt = next() % done
      respond = (req, socket) => writeResponse(socket, 200, SSE_HEADERS, sse, { mode: { cutAt } })
      await streamRejects(openai().stream(REQ_OPENAI), { code: 'stream_interrupted' })
      const jsonCut = next() % json.length
      respond = (req, socket) => writeResponse(socket, 200, JSON_HEADERS, json, { mode: { cutAt: jsonCut } })
      await rejects(() => openai().generate(REQ_OPENAI))
    }
  })

  test('invalid UTF-8 in an SSE event and in a JSON body', async () => {
    const bad = Buffer.concat([
      Buffer.from('data: {"choices":[{"index":0,"delta":{"content":"caf'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}}]}\n\ndata: [DONE]\n\n'),
    ])
    respond = (req, socket) => writeResponse(socket, 200, SSE_HEADERS, bad, { mode: 'bytewise' })
    await streamRejects(openai().stream(REQ_OPENAI), { code: 'stream_interrupted' })
    const badJson = Buffer.concat([
      Buffer.from('{"choices":[{"index":0,"message":{"role":"assistant","content":"caf'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"},"finish_reason":"stop"}]}'),
    ])
    respond = (req, socket) => writeResponse(socket, 200, JSON_HEADERS, badJson)
    await rejects(() => openai().generate(REQ_OPENAI), { code: 'server_error' })
  })

  test('JSON nested 100,000 deep in a body, a stream event and an error body', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    respond = (req, socket) => writeResponse(socket, 200, JSON_HEADERS, deep)
    await rejects(() => openai().generate(REQ_OPENAI), { code: 'server_error' })
    respond = (req, socket) => writeResponse(socket, 200, SSE_HEADERS, `data: ${deep}\n\n`)
    await streamRejects(openai().stream(REQ_OPENAI), { code: 'stream_interrupted' })
    respond = (req, socket) => writeResponse(socket, 400, JSON_HEADERS, `{"error":${deep}}`)
    const err = await rejects(() => openai().generate(REQ_OPENAI), { code: 'invalid_request' })
    assert.ok(err.message.length < 2000)
  })

  test('event-stream noise from Bedrock', async () => {
    const proxy = new LLMProxy({
      bedrock: { region: 'us-east-1', accessKeyId: 'AKID', secretAccessKey: 'secret', endpoint: upstream.url },
      retry: { maxRetries: 0 },
    })
    const headers = { 'Content-Type': 'application/vnd.amazon.eventstream' }
    for (let seed = 1; seed <= 3; seed++) {
      respond = (req, socket) => writeResponse(socket, 200, headers, noise(2048, seed), { framing: 'chunked' })
      await streamRejects(proxy.stream({ model: 'bedrock/anthropic.claude-3-haiku-20240307-v1:0', messages: USER }), {
        code: 'stream_interrupted',
      })
    }
    // A frame whose prelude claims 2 GB.
    const prelude = Buffer.alloc(16)
    prelude.writeUInt32BE(0x80000000, 0)
    respond = (req, socket) => writeResponse(socket, 200, headers, prelude, { framing: 'chunked' })
    await streamRejects(proxy.stream({ model: 'bedrock-converse/meta.llama3-8b', messages: USER }), {
      code: 'stream_interrupted',
    })
  })
})

describe('secrets never show', () => {
  // Distinct enough that no 12 characters of one are in another.
  const OPENAI_KEY = 'sk-proj-OpenAiSecretKey4f9a1c7e2b'
  const ANTHROPIC_KEY = 'AnthropicSecretKey-77d3e0a8c5f1'
  const COMPAT_KEY = 'CompatibleServerKey_9b2e4d6f8a0c'
  const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYAwsSecret'
  const AWS_TOKEN = 'IQoJb3JpZ2luX2VjEAwsSessionToken/3f7b+c1d9e=='
  const URL_PASSWORD = 'UrlPassword-e5c3a1f7d9b2'
  const SECRETS = [OPENAI_KEY, ANTHROPIC_KEY, COMPAT_KEY, AWS_SECRET, AWS_TOKEN, URL_PASSWORD]

  /** Fails if `text` shows a secret, or any 12 characters of one. */
  function assertClean(what, text) {
    for (const s of SECRETS) {
      for (let i = 0; i + 12 <= s.length; i++) {
        const part = s.slice(i, i + 12)
        assert.ok(!text.includes(part), `${what} shows ${JSON.stringify(part)} of a secret:\n${text}`)
      }
    }
  }

  /** Every form of an error a caller, a logger or a crash report may print. */
  function assertErrorClean(what, err) {
    assertProxyError(err)
    assertClean(`${what}: message`, err.message)
    assertClean(`${what}: String(err)`, String(err))
    assertClean(`${what}: JSON.stringify(err)`, JSON.stringify(err))
    assertClean(`${what}: err.body`, JSON.stringify(err.body) || '')
    assertClean(`${what}: err.stack`, err.stack)
    assertClean(`${what}: util.inspect(err)`, util.inspect(err, { depth: null, showHidden: true }))
  }

  function options(base, extra = {}) {
    return {
      openai: { apiKey: OPENAI_KEY, baseUrl: `${base}/v1` },
      anthropic: { apiKey: ANTHROPIC_KEY, baseUrl: base },
      compatible: { local: { baseUrl: `${base}/v1`, apiKey: COMPAT_KEY } },
      bedrock: { region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: AWS_SECRET, sessionToken: AWS_TOKEN, endpoint: base },
      retry: { maxRetries: 0 },
      ...extra,
    }
  }

  const MODELS = ['gpt-4o', 'local/m', 'claude-sonnet-4-5', 'bedrock/anthropic.claude-3-haiku-20240307-v1:0', 'bedrock-converse/meta.llama3-8b']

  test('util.inspect, JSON and String of a configured proxy', () => {
    const proxy = new LLMProxy(options(`http://user:${URL_PASSWORD}@127.0.0.1:9`))
    assertClean('util.inspect(proxy)', util.inspect(proxy, { depth: null, showHidden: true }))
    assertClean('JSON.stringify(proxy)', JSON.stringify(proxy))
    assertClean('String(proxy)', String(proxy))
    assertClean('Object.getOwnPropertyNames', JSON.stringify(Object.getOwnPropertyNames(proxy)))
  })

  test('configuration errors', async () => {
    const cases = [
      options(`htp://user:${URL_PASSWORD}@127.0.0.1:9`),
      options(`http://user:${URL_PASSWORD}@[::1`),
      options('http://127.0.0.1:9', { timeoutMs: 'x' }),
      { openai: { apiKey: OPENAI_KEY, bogus: 1 } },
      { bedrock: { secretAccessKey: AWS_SECRET, sessionToken: AWS_TOKEN, nope: 1 } },
      { openai: { apiKey: [OPENAI_KEY] } },
    ]
    for (const opts of cases) {
      const err = await rejects(() => new LLMProxy(opts), { code: 'config' })
      assertErrorClean(`new LLMProxy(${util.inspect(opts, { breakLength: Infinity })})`, err)
    }
    // Missing credentials are reported when a call needs them.
    const half = new LLMProxy({ bedrock: { region: 'us-east-1', secretAccessKey: AWS_SECRET, sessionToken: AWS_TOKEN } })
    assertErrorClean('bedrock without accessKeyId', await rejects(() => half.generate({ model: 'bedrock/meta.llama3-8b', messages: USER })))
  })

  test(
    'a credential given where it does not belong is not repeated',
    async () => {
      for (const opts of [{ openai: OPENAI_KEY }, { bedrock: AWS_SECRET }, { compatible: { x: COMPAT_KEY } }, { timeoutMs: AWS_TOKEN }]) {
        const err = await rejects(() => new LLMProxy(opts), { code: 'config' })
        assertErrorClean(`new LLMProxy(${util.inspect(opts)})`, err)
      }
    },
  )

  test(
    'a credential given as a URL is not repeated',
    async () => {
      const err = await rejects(() => new LLMProxy({ openai: { apiKey: OPENAI_KEY, baseUrl: OPENAI_KEY } }), { code: 'config' })
      assertErrorClean('baseUrl: key', err)
    },
  )

  /** An upstream that answers with `reply(echo)`, `echo` being the credentials the request carried. */
  async function echoing(reply) {
    const upstream = await startUpstream((req, socket) => {
      const h = req.headers
      const echo = [
        (h.authorization || '').startsWith('Bearer ') ? h.authorization.slice(7) : '',
        h['x-api-key'] || '',
        h['x-amz-security-token'] || '',
      ]
        .filter(Boolean)
        .join(' ')
      return reply(socket, echo)
    })
    return upstream
  }

  const ECHOES = {
    '401 JSON': (socket, echo) =>
      writeResponse(socket, 401, JSON_HEADERS, {
        error: { message: `Incorrect API key provided: ${echo}`, type: 'invalid_request_error', code: 'invalid_api_key' },
      }),
    '403 JSON, slashes escaped': (socket, echo) =>
      writeResponse(socket, 403, JSON_HEADERS, JSON.stringify({ message: `The security token ${echo} is invalid` }).replace(/\//g, '\\/')),
    '500 text': (socket, echo) => writeResponse(socket, 500, { 'Content-Type': 'text/plain' }, `upstream failed for ${echo}`),
    '200 SSE error event': (socket, echo) =>
      writeResponse(
        socket,
        200,
        SSE_HEADERS,
        `data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\nevent: error\ndata: ${JSON.stringify({ error: { message: `bad key ${echo}`, type: 'authentication_error' } })}\n\n`,
      ),
    '200 JSON that is not an answer': (socket, echo) => writeResponse(socket, 200, JSON_HEADERS, { detail: `key ${echo}` }),
  }

  for (const [what, reply] of Object.entries(ECHOES)) {
    test(`errors echoing the credentials: ${what}`, async (t) => {
      const upstream = await echoing(reply)
      t.after(() => upstream.close())
      const proxy = new LLMProxy(options(upstream.url))
      for (const model of MODELS) {
        const request = { model, messages: USER }
        assertErrorClean(`${what}, generate ${model}`, await rejects(() => proxy.generate(request)))
        assertErrorClean(`${what}, stream ${model}`, await streamRejects(proxy.stream(request)))
      }
      assertClean('util.inspect(proxy)', util.inspect(proxy, { depth: null, showHidden: true }))
    })
  }

  test('connection errors, with a password in the base URL', async () => {
    const port = await closedPort()
    const proxy = new LLMProxy(options(`http://user:${URL_PASSWORD}@127.0.0.1:${port}`))
    for (const model of MODELS) {
      const request = { model, messages: USER }
      assertErrorClean(`refused, generate ${model}`, await rejects(() => proxy.generate(request), { code: 'connection' }))
      assertErrorClean(`refused, stream ${model}`, await streamRejects(proxy.stream(request), { code: 'connection' }))
    }
  })
})
