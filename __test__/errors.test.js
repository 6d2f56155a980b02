'use strict'

// Every way a call can fail, and what the caller gets: one LLMProxyError class with a code from the
// contract, the provider, the HTTP status, whether to retry and when, and the provider's own body —
// never a credential.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const {
  startUpstream,
  replay,
  writeResponse,
  openSse,
  chunk,
  closedPort,
  within,
  JSON_HEADERS,
  SSE_HEADERS,
} = require('./helpers/upstream')
const {
  LLMProxy,
  LLMProxyError,
  ERROR_CODES,
  fixture,
  fixtureJson,
  expectedFromSse,
  caught,
  assertProxyError,
  USER,
} = require('./helpers/common')

const REQ = { model: 'gpt-4o', messages: USER }

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

describe('HTTP error statuses', () => {
  // status → [code, retryable], as client/http.rs `code_for_status` maps them.
  const CASES = [
    [400, 'invalid_request', false, 'invalid_request_error'],
    [401, 'authentication', false, 'invalid_request_error'],
    [403, 'permission', false, 'permission_error'],
    [404, 'not_found', false, 'invalid_request_error'],
    [408, 'timeout', true, 'timeout'],
    [409, 'server_error', true, 'conflict'],
    [413, 'invalid_request', false, 'invalid_request_error'],
    [422, 'invalid_request', false, 'invalid_request_error'],
    [429, 'rate_limit', true, 'requests'],
    [500, 'server_error', true, 'server_error'],
    [502, 'server_error', true, 'server_error'],
    [503, 'overloaded', true, 'server_error'],
    [504, 'server_error', true, 'server_error'],
    [529, 'overloaded', true, 'overloaded_error'],
  ]
  let upstream
  let proxy
  let next
  before(async () => {
    upstream = await startUpstream((req, socket) => writeResponse(socket, next.status, next.headers || JSON_HEADERS, next.body))
    // One attempt, so each status is seen as the provider sent it; retries are tested below.
    proxy = new LLMProxy({ openai: { apiKey: 'sk-test-abcdef123456', baseUrl: upstream.baseUrl }, retry: { maxRetries: 0 } })
  })
  after(() => upstream.close())

  for (const [status, code, retryable, type] of CASES) {
    for (const via of ['generate', 'stream']) {
      test(`${status} → ${code} (${via})`, async () => {
        const body = { error: { message: `Boom number ${status}`, type, param: null, code: null } }
        next = { status, body }
        const seen = upstream.requests.length
        const err = await caught(async () => {
          if (via === 'generate') await proxy.generate(REQ)
          else for await (const c of proxy.stream(REQ)) assert.fail(`no chunk expected, got ${JSON.stringify(c)}`)
        })
        assertProxyError(err, { code, status, retryable, provider: 'openai', body, retryAfterMs: undefined })
        assert.ok(err.message.startsWith(`openai returned HTTP ${status}: Boom number ${status}`), err.message)
        assert.equal(upstream.requests.length, seen + 1)
      })
    }
  }

  test('the 400 fixture (unsupported parameter) keeps the provider message and body', async () => {
    const body = fixture('openai/errors/400-unsupported-parameter.json')
    next = { status: 400, body }
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, {
      code: 'invalid_request',
      status: 400,
      provider: 'openai',
      retryable: false,
      body: fixtureJson('openai/errors/400-unsupported-parameter.json'),
    })
    assert.match(err.message, /Unsupported parameter: 'max_tokens' is not supported with this model/)
    assert.match(err.message, /Fix the request/)
  })

  test('a 400 whose body says authentication is an authentication error', async () => {
    next = { status: 400, body: { error: { message: 'bad key', type: 'authentication_error' } } }
    assertProxyError(await caught(() => proxy.generate(REQ)), { code: 'authentication', status: 400, retryable: false })
  })

  test('429 with Retry-After: 2 → retryAfterMs 2000', async () => {
    next = {
      status: 429,
      headers: { ...JSON_HEADERS, 'Retry-After': '2' },
      body: { error: { message: 'Rate limit reached for requests', type: 'requests', code: 'rate_limit_exceeded' } },
    }
    for (const via of ['generate', 'stream']) {
      const err = await caught(async () => {
        if (via === 'generate') await proxy.generate(REQ)
        else for await (const _ of proxy.stream(REQ)) assert.fail('no chunk expected')
      })
      assertProxyError(err, { code: 'rate_limit', status: 429, retryable: true, retryAfterMs: 2000, provider: 'openai' })
      assert.match(err.message, /Rate limit reached/)
    }
  })

  test('429 with retry-after-ms (preferred over Retry-After)', async () => {
    next = {
      status: 429,
      headers: { ...JSON_HEADERS, 'retry-after-ms': '1500', 'Retry-After': '9' },
      body: { error: { message: 'slow down', type: 'requests' } },
    }
    assertProxyError(await caught(() => proxy.generate(REQ)), { code: 'rate_limit', retryAfterMs: 1500 })
  })

  test('503 with Retry-After as an HTTP date in the future', async () => {
    const date = new Date(Date.now() + 30_000).toUTCString()
    next = { status: 503, headers: { ...JSON_HEADERS, 'Retry-After': date }, body: { error: { message: 'busy' } } }
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'overloaded', retryable: true })
    assert.ok(err.retryAfterMs > 25_000 && err.retryAfterMs <= 30_000, String(err.retryAfterMs))
  })

  test('429 insufficient_quota is not retryable', async () => {
    next = {
      status: 429,
      body: { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } },
    }
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'rate_limit', retryable: false })
    assert.match(err.message, /quota/)
  })

  test('a non-JSON error body is kept as text', async () => {
    next = { status: 502, headers: { 'Content-Type': 'text/html' }, body: '<html>Bad Gateway</html>' }
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'server_error', status: 502, body: '<html>Bad Gateway</html>' })
    assert.match(err.message, /Bad Gateway/)
  })

  test('a 200 whose body is an error object, or not JSON at all', async () => {
    next = { status: 200, body: { error: { message: 'model overloaded', type: 'overloaded_error' } } }
    let err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'overloaded', provider: 'openai' })
    assert.match(err.message, /model overloaded/)
    next = { status: 200, headers: { 'Content-Type': 'text/html' }, body: '<html>oops</html>' }
    err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'server_error', provider: 'openai', body: '<html>oops</html>' })
  })
})

describe('credentials never appear in errors', () => {
  test('the 401 fixture: no sk- key in message, JSON or body', async (t) => {
    const apiKey = 'sk-test-0123456789abcdef'
    const upstream = await startUpstream(replay(401, JSON_HEADERS, fixture('openai/errors/401-invalid-api-key.json')))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey, baseUrl: upstream.baseUrl } })
    for (const via of ['generate', 'stream']) {
      const err = await caught(async () => {
        if (via === 'generate') await proxy.generate(REQ)
        else for await (const _ of proxy.stream(REQ)) assert.fail('no chunk expected')
      })
      assertProxyError(err, { code: 'authentication', status: 401, provider: 'openai', retryable: false })
      assert.ok(err.message.startsWith('openai returned HTTP 401: Incorrect API key provided: '), err.message)
      assert.match(err.message, /Check the API key/)
      assert.equal(err.body.error.code, 'invalid_api_key')
      assert.equal(err.body.error.type, 'invalid_request_error')
      assert.ok(err.body.error.message.startsWith('Incorrect API key provided: '))
      for (const text of [err.message, JSON.stringify(err), JSON.stringify(err.body), String(err.stack)]) {
        assert.ok(!text.includes('sk-'), `an sk- key shape leaked: ${text}`)
        assert.ok(!text.includes(apiKey), `the API key leaked: ${text}`)
      }
    }
    assert.equal(upstream.requests[0].headers.authorization, `Bearer ${apiKey}`)
  })

  test('a key the provider echoes back verbatim is scrubbed everywhere', async (t) => {
    const apiKey = 'Zm9vYmFyLXByaXZhdGUtdG9rZW4tNDI'
    const upstream = await startUpstream(
      replay(401, JSON_HEADERS, {
        error: { message: `The token ${apiKey} is revoked`, type: 'authentication_error', detail: { key: apiKey } },
      }),
    )
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey } } })
    const err = await caught(() => proxy.generate({ model: 'local/m', messages: USER }))
    assertProxyError(err, { code: 'authentication', status: 401, provider: 'local' })
    assert.match(err.message, /is revoked/)
    for (const text of [err.message, JSON.stringify(err), JSON.stringify(err.body), String(err.stack)]) {
      assert.ok(!text.includes(apiKey), `the API key leaked: ${text}`)
    }
  })

  test('a key with a "/" that the provider echoes JSON-escaped ("\\/") is scrubbed too', async (t) => {
    // Keys may contain '/' (base64), and JSON encoders such as PHP's escape it as "\/". The key is
    // then not found in the raw text, but appears again once the body is parsed.
    const apiKey = 'tok/AbCdEf0123456789+xyz'
    const escaped = apiKey.replace(/\//g, '\\/')
    const upstream = await startUpstream(
      replay(401, JSON_HEADERS, `{"error":{"message":"The token ${escaped} is revoked","type":"authentication_error"}}`),
    )
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey } } })
    const err = await caught(() => proxy.generate({ model: 'local/m', messages: USER }))
    assertProxyError(err, { code: 'authentication', status: 401 })
    for (const text of [err.message, JSON.stringify(err), JSON.stringify(err.body)]) {
      assert.ok(!text.includes(apiKey) && !text.includes(escaped), `the API key leaked: ${text}`)
    }
  })
})

describe('credentials never appear in errors reported inside a 200 answer', () => {
  const apiKey = 'gw-private-token-0123456789'
  const echoed = { error: { message: `Key ${apiKey} is revoked (sk-proj-ab12***xy_9)`, type: 'authentication_error' } }

  function check(err) {
    assertProxyError(err, { code: 'authentication', provider: 'local' })
    assert.match(err.message, /is revoked/)
    for (const text of [err.message, JSON.stringify(err), JSON.stringify(err.body)]) {
      assert.ok(!text.includes(apiKey), `the API key leaked: ${text}`)
      assert.ok(!text.includes('sk-proj'), `an sk- key shape leaked: ${text}`)
    }
  }

  test('generate: a 200 body that is an error object echoing the key', async (t) => {
    const upstream = await startUpstream(replay(200, JSON_HEADERS, echoed))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey } } })
    check(await caught(() => proxy.generate({ model: 'local/m', messages: USER })))
  })

  test('stream: an event: error echoing the key', async (t) => {
    const upstream = await startUpstream(async (req, socket) => {
      const sse = await openSse(socket)
      await sse.event(chunk({ delta: { role: 'assistant', content: 'x' } }))
      await sse.send(`event: error\ndata: ${JSON.stringify(echoed)}\n\n`)
      await sse.end()
    })
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey } } })
    const { chunks, err } = await drain(proxy.stream({ model: 'local/m', messages: USER }))
    assert.equal(chunks.length, 1)
    check(err)
  })
})

describe('errors inside a 200 stream', () => {
  async function streamOf(write) {
    const upstream = await startUpstream(async (req, socket) => {
      const sse = await openSse(socket)
      await write(sse)
    })
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
    try {
      return await drain(proxy.stream(REQ))
    } finally {
      await upstream.close()
    }
  }

  test('event: error → thrown with the mapped code after the chunks before it', async () => {
    const errorBody = { error: { message: 'Overloaded', type: 'overloaded_error' } }
    const { chunks, err } = await streamOf(async (sse) => {
      await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
      await sse.event(chunk({ delta: { content: 'partial' } }))
      await sse.send(`event: error\ndata: ${JSON.stringify(errorBody)}\n\n`)
      await sse.end()
    })
    assert.equal(chunks.length, 2)
    assert.equal(chunks[0].choices[0].delta.role, 'assistant')
    assert.equal(chunks[1].choices[0].delta.content, 'partial')
    assertProxyError(err, { code: 'overloaded', provider: 'openai', retryable: true, body: errorBody })
    assert.match(err.message, /Overloaded/)
  })

  test('a data: {"error": …} event without event: error is an error too', async () => {
    const errorBody = { error: { message: 'Rate limit reached', type: 'rate_limit_error' } }
    const { chunks, err } = await streamOf(async (sse) => {
      await sse.event(chunk({ delta: { role: 'assistant', content: 'x' } }))
      await sse.event(errorBody)
      await sse.end()
    })
    assert.equal(chunks.length, 1)
    assertProxyError(err, { code: 'rate_limit', provider: 'openai', body: errorBody })
  })

  test('an event that is not JSON → stream_interrupted', async () => {
    const { chunks, err } = await streamOf(async (sse) => {
      await sse.event(chunk({ delta: { role: 'assistant', content: 'x' } }))
      await sse.send('data: {"id": "broken\n\n')
      await sse.end()
    })
    assert.equal(chunks.length, 1)
    assertProxyError(err, { code: 'stream_interrupted', provider: 'openai', retryable: true })
  })
})

describe('a stream cut short throws stream_interrupted after the chunks that arrived', () => {
  const FILES = ['openai/sse/tool-call-deltas-2024.sse', 'openai/sse/text-include-usage.sse']
  for (const file of FILES) {
    const body = fixture(file)
    const text = body.toString('latin1')
    // Offsets just after each complete event.
    const boundaries = []
    for (let i = text.indexOf('\n\n'); i >= 0; i = text.indexOf('\n\n', i + 2)) boundaries.push(i + 2)
    const k = Math.floor(boundaries.length / 2)
    const cuts = {
      'in the middle of an event': Math.floor((boundaries[k - 1] + boundaries[k]) / 2),
      'right after a complete event, before any finish': boundaries[k - 1],
    }
    for (const [where, cutAt] of Object.entries(cuts)) {
      for (const framing of ['chunked', 'close']) {
        test(`${file}: ${where} (${framing})`, async (t) => {
          const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode: { cutAt }, framing }))
          t.after(() => upstream.close())
          const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
          const { chunks, err } = await within(10_000, drain(proxy.stream(REQ)), 'the end of the cut stream')
          assertProxyError(err, { code: 'stream_interrupted', provider: 'openai', retryable: true })
          // Every complete event before the cut was yielded, and nothing claims to be finished.
          const complete = expectedFromSse(body.subarray(0, boundaries[k - 1]))
          assert.ok(chunks.length > 0, 'the chunks before the cut were yielded')
          assert.equal(chunks[0].choices[0].delta.role, 'assistant')
          const content = chunks.map((c) => c.choices[0].delta.content || '').join('')
          const args = chunks
            .flatMap((c) => c.choices[0].delta.tool_calls || [])
            .map((tc) => tc.function.arguments || '')
            .join('')
          assert.equal(content, complete.content)
          assert.equal(args, complete.toolCalls.map((c) => c.arguments).join(''))
          assert.ok(content.length + args.length > 0)
          assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)), 'no finish_reason')
          assert.ok(chunks.every((c) => c.usage == null), 'no usage')
        })
      }
    }
  }

  test('a 200 stream that closes with no body at all', async (t) => {
    const upstream = await startUpstream(replay(200, SSE_HEADERS, ''))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
    const { chunks, err } = await drain(proxy.stream(REQ))
    assert.equal(chunks.length, 0)
    assertProxyError(err, { code: 'stream_interrupted' })
  })

  for (const framing of ['length', 'chunked']) test(`a non-streamed body cut short (${framing}) → connection`, async (t) => {
    const body = fixture('openai/chat/text-gpt35-2026.json')
    const upstream = await startUpstream(replay(200, JSON_HEADERS, body, { mode: { cutAt: 200 }, framing }))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
    const err = await caught(() => proxy.generate(REQ))
    // The connection broke before the body was complete: a network failure, worth retrying.
    assertProxyError(err, { code: 'connection', provider: 'openai', retryable: true, status: undefined })
    assert.ok(!err.message.includes('sk-test'))
  })
})

describe('network failures', () => {
  test('connection refused → connection (generate and stream)', async () => {
    const port = await closedPort()
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-secret-for-refused', baseUrl: `http://127.0.0.1:${port}/v1` } })
    let err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'connection', provider: 'openai', retryable: true, status: undefined })
    assert.ok(!err.message.includes('sk-secret-for-refused'))
    err = await caught(async () => {
      for await (const _ of proxy.stream(REQ)) assert.fail('no chunk expected')
    })
    assertProxyError(err, { code: 'connection', provider: 'openai', retryable: true })
  })

  test('timeoutMs: a provider that never answers → timeout (generate and stream)', async (t) => {
    const upstream = await startUpstream(() => {}) // never answers
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl }, timeoutMs: 150, retry: { maxRetries: 0 } })
    let started = Date.now()
    let err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'timeout', provider: 'openai', retryable: true })
    assert.match(err.message, /150 ms/)
    assert.ok(Date.now() - started < 3000)
    started = Date.now()
    err = await caught(async () => {
      for await (const _ of proxy.stream(REQ)) assert.fail('no chunk expected')
    })
    assertProxyError(err, { code: 'timeout', provider: 'openai' })
    assert.ok(Date.now() - started < 3000)
    assert.equal(upstream.requests.length, 2)
  })
})

describe('retries', () => {
  test('429 and 503 are retried with backoff, honouring retry-after-ms, until the answer comes', async (t) => {
    const answers = [
      [429, { ...JSON_HEADERS, 'retry-after-ms': '20' }, { error: { message: 'Rate limit reached', type: 'requests' } }],
      [503, JSON_HEADERS, { error: { message: 'busy', type: 'server_error' } }],
      [200, JSON_HEADERS, { id: 'chatcmpl-after-retries', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'made it' }, finish_reason: 'stop' }] }],
    ]
    let n = 0
    const upstream = await startUpstream((req, socket) => {
      const [status, headers, body] = answers[Math.min(n++, answers.length - 1)]
      writeResponse(socket, status, headers, body)
    })
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl }, retry: { initialDelayMs: 10 } })
    const res = await proxy.generate(REQ)
    assert.equal(res.choices[0].message.content, 'made it')
    assert.equal(upstream.requests.length, 3)
    assert.deepEqual(upstream.requests[2].json, upstream.requests[0].json, 'every attempt sends the same body')
  })

  test('when retries are spent the error says how many attempts were made; 400 is never retried', async (t) => {
    let status = 529
    const upstream = await startUpstream((req, socket) => writeResponse(socket, status, JSON_HEADERS, { error: { message: 'Overloaded', type: 'overloaded_error' } }))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl }, retry: { maxRetries: 3, initialDelayMs: 5, maxDelayMs: 20 } })
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'overloaded', status: 529, retryable: true })
    assert.match(err.message, /gave up after 4 attempts/)
    assert.equal(upstream.requests.length, 4)
    status = 400
    const before = upstream.requests.length
    const bad = await caught(() => proxy.generate(REQ))
    assertProxyError(bad, { code: 'invalid_request', status: 400 })
    assert.doesNotMatch(bad.message, /attempts/)
    assert.equal(upstream.requests.length, before + 1)
  })
})

describe('invalid input is rejected before any request', () => {
  let upstream
  let proxy
  before(async () => {
    upstream = await startUpstream(replay(500, JSON_HEADERS, { error: { message: 'must not be reached' } }))
    proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
  })
  after(() => {
    assert.equal(upstream.requests.length, 0, 'no request reached the provider')
    assert.equal(upstream.connections.length, 0, 'no connection was even opened')
    return upstream.close()
  })

  const msg = (content) => [{ role: 'user', content }]
  const INVALID = [
    ['no model', { messages: USER }, /no `model`/],
    ['empty model', { model: '  ', messages: USER }, /model/],
    ['model: 5', { model: 5, messages: USER }, /`model` is invalid/],
    ['no messages', { model: 'gpt-4o' }, /no `messages`/],
    ['empty messages', { model: 'gpt-4o', messages: [] }, /`messages` is empty/],
    ["messages: 'hi'", { model: 'gpt-4o', messages: 'hi' }, /`messages` is invalid/],
    ['content: 5', { model: 'gpt-4o', messages: msg(5) }, /messages\[0\]\.content must be a string or an array/],
    ["temperature: 'hot'", { model: 'gpt-4o', messages: USER, temperature: 'hot' }, /`temperature` is invalid/],
    ["role: 'bot'", { model: 'gpt-4o', messages: [{ role: 'bot', content: 'x' }] }, /messages\[0\]\.role is 'bot'/],
    ['tool result without tool_call_id', { model: 'gpt-4o', messages: [{ role: 'tool', content: 'x' }] }, /tool_call_id/],
    [
      'image part without image_url',
      { model: 'gpt-4o', messages: msg([{ type: 'image_url' }]) },
      /messages\[0\]\.content\[0\] is an image part/,
    ],
    [
      'function result without its call',
      { model: 'gpt-4o', messages: [{ role: 'function', name: 'f', content: '1' }] },
      /no earlier assistant message called it/,
    ],
    ["tool_choice: 'sometimes'", { model: 'gpt-4o', messages: USER, tool_choice: 'sometimes' }, /'sometimes'/],
    ["'openai/' with no model after the prefix", { model: 'openai/', messages: USER }, /no model after the '\/'/],
    ['null request', null, /must be an object/],
    ['array request', [], /must be an object/],
    ['string request', 'hello', /must be an object/],
    ['a BigInt in the request', { model: 'gpt-4o', messages: USER, seed: 1n }, /BigInt/],
  ]

  for (const [name, request, message] of INVALID) {
    test(`${name} → invalid_request (generate)`, async () => {
      const err = await caught(() => proxy.generate(request))
      assertProxyError(err, { code: 'invalid_request', retryable: false, message })
    })
    test(`${name} → invalid_request from the first iteration step (stream)`, async () => {
      let iterable
      assert.doesNotThrow(() => {
        iterable = proxy.stream(request)
      }, 'stream() itself does not throw')
      const err = await caught(() => iterable.next())
      assertProxyError(err, { code: 'invalid_request', retryable: false, message })
      assert.deepEqual(await iterable.next(), { done: true, value: undefined })
    })
  }

  test('bad call options → invalid_request', async () => {
    assertProxyError(await caught(() => proxy.generate(REQ, 5)), { code: 'invalid_request', message: /options object/ })
    assertProxyError(await caught(() => proxy.generate(REQ, { signal: {} })), {
      code: 'invalid_request',
      message: /AbortSignal/,
    })
    assertProxyError(await caught(() => proxy.stream(REQ, { signal: 'x' }).next()), { code: 'invalid_request' })
  })

  test("an unknown model ('my-model', no compatible endpoint) → unsupported_model naming the ways to route it", async () => {
    for (const via of ['generate', 'stream']) {
      const err = await caught(() => (via === 'generate' ? proxy.generate({ ...REQ, model: 'my-model' }) : proxy.stream({ ...REQ, model: 'my-model' }).next()))
      assertProxyError(err, { code: 'unsupported_model', retryable: false })
      assert.match(err.message, /'my-model'/)
      assert.equal(err.message.split('my-model').length - 1, 1, `the name once: ${err.message}`)
      assert.match(err.message, /'openai\/…'/)
      assert.match(err.message, /'anthropic\/…'/)
      assert.match(err.message, /routes/)
      assert.match(err.message, /compatible/)
    }
    assertProxyError(await caught(() => proxy.resolve('my-model')), { code: 'unsupported_model' })
  })

  test('an unknown model with two compatible endpoints names both prefixes', async () => {
    const two = new LLMProxy({
      compatible: { a: { baseUrl: upstream.baseUrl }, b: { baseUrl: upstream.baseUrl } },
    })
    const err = await caught(() => two.generate({ ...REQ, model: 'mystery' }))
    assertProxyError(err, { code: 'unsupported_model' })
    assert.match(err.message, /'a\/…'/)
    assert.match(err.message, /'b\/…'/)
  })

  for (const model of ['claude-sonnet-4-5', 'anthropic/claude-3-5-haiku-20241022']) {
    test(`${model} without an Anthropic key → config error naming ANTHROPIC_API_KEY`, async () => {
      for (const via of ['generate', 'stream']) {
        const err = await caught(() => (via === 'generate' ? proxy.generate({ ...REQ, model }) : proxy.stream({ ...REQ, model }).next()))
        assertProxyError(err, { code: 'config', retryable: false, provider: 'anthropic' })
        assert.match(err.message, /ANTHROPIC_API_KEY/)
      }
      assert.equal(upstream.requests.length, 0)
    })
  }

  for (const model of ['anthropic.claude-3-5-sonnet-20240620-v1:0', 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0']) {
    test(`${model} without AWS credentials → config error listing where it looked`, async () => {
      const saved = { ...process.env }
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/llm-proxy-test/credentials'
      try {
        const bedrockProxy = new LLMProxy({ bedrock: { region: 'us-east-1', endpoint: upstream.url } })
        for (const via of ['generate', 'stream']) {
          const err = await caught(() => (via === 'generate' ? bedrockProxy.generate({ ...REQ, model }) : bedrockProxy.stream({ ...REQ, model }).next()))
          assertProxyError(err, { code: 'config', retryable: false, provider: 'bedrock' })
          assert.match(err.message, /AWS_ACCESS_KEY_ID/)
          assert.match(err.message, /\/nonexistent\/llm-proxy-test\/credentials/)
        }
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
        Object.assign(process.env, saved)
      }
    })
  }
})

describe('configuration errors', () => {
  const BAD_OPTIONS = [
    ["{ openAI: {} } (misspelt provider)", { openAI: {} }, /openAI/],
    ['openai.baseUrl not a URL', { openai: { baseUrl: 'not a url' } }, /openai\.baseUrl/],
    ['compatible baseUrl with ftp://', { compatible: { x: { baseUrl: 'ftp://example.com/v1' } } }, /http/],
    ['compatible endpoint without baseUrl', { compatible: { x: { apiKey: 'k' } } }, /baseUrl/],
    ['compatible endpoint named like a built-in provider', { compatible: { openai: { baseUrl: 'http://x' } } }, /taken by a built-in provider/],
    ["compatible endpoint name with '/'", { compatible: { 'a/b': { baseUrl: 'http://x' } } }, /'a\/b'/],
    ['timeoutMs: 0', { timeoutMs: 0 }, /timeoutMs/],
    ["options 'x'", 'x', /must be an object/],
    ['options null', null, /must be an object/],
    ['options []', [], /must be an object/],
  ]
  for (const [name, options, message] of BAD_OPTIONS) {
    test(`${name} → config, thrown by the constructor`, () => {
      let err
      try {
        new LLMProxy(options)
      } catch (e) {
        err = e
      }
      assert.ok(err, 'the constructor threw')
      assertProxyError(err, { code: 'config', retryable: false, message })
    })
  }

  test('no OpenAI key (option nor OPENAI_API_KEY) → config, and nothing is sent', async (t) => {
    assert.equal(process.env.OPENAI_API_KEY, undefined)
    const upstream = await startUpstream(replay(200, JSON_HEADERS, fixture('openai/chat/text-gpt35-2026.json')))
    t.after(() => upstream.close())
    for (const options of [{ openai: { baseUrl: upstream.baseUrl } }, { openai: { baseUrl: upstream.baseUrl, apiKey: '' } }]) {
      const proxy = new LLMProxy(options)
      let err = await caught(() => proxy.generate(REQ))
      assertProxyError(err, { code: 'config', provider: 'openai', retryable: false, message: /OPENAI_API_KEY/ })
      err = await caught(() => proxy.stream(REQ).next())
      assertProxyError(err, { code: 'config', provider: 'openai' })
    }
    assert.equal(upstream.requests.length, 0)
  })

  test('OPENAI_API_KEY and OPENAI_BASE_URL from the environment are used when no option is given', async (t) => {
    const upstream = await startUpstream(replay(200, JSON_HEADERS, fixture('openai/chat/text-gpt35-2026.json')))
    t.after(() => upstream.close())
    process.env.OPENAI_API_KEY = 'sk-from-env'
    process.env.OPENAI_BASE_URL = upstream.baseUrl
    let proxy
    try {
      proxy = new LLMProxy()
    } finally {
      delete process.env.OPENAI_API_KEY
      delete process.env.OPENAI_BASE_URL
    }
    const res = await proxy.generate(REQ)
    assert.equal(res.id, 'chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C')
    assert.equal(upstream.requests[0].headers.authorization, 'Bearer sk-from-env')
  })
})

describe('LLMProxyError', () => {
  test('is exported, and ERROR_CODES lists the contract codes', () => {
    assert.equal(typeof LLMProxyError, 'function')
    assert.ok(Object.isFrozen(ERROR_CODES))
    assert.deepEqual(
      [...ERROR_CODES].sort(),
      [
        'aborted',
        'authentication',
        'config',
        'connection',
        'internal',
        'invalid_request',
        'not_found',
        'overloaded',
        'permission',
        'rate_limit',
        'server_error',
        'stream_interrupted',
        'timeout',
        'unsupported_model',
      ],
    )
  })
})
