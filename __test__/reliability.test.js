'use strict'

// Reliability (issue 6): the time limits (`timeouts: { requestMs, connectMs, firstChunkMs, idleMs }`)
// and fallbacks to other models, against loopback providers that misbehave on purpose.
//
// The connect limit with a connect that really hangs is shown in tests/replay.rs
// (`a_connect_that_hangs_fails_with_the_connect_limit`): it needs a listener whose accept queue is
// full, and Node accepts every connection itself, so no Node server can hold one. Here the option is
// checked for what Node can see: it is accepted, validated, refused per call, and requests on a proxy
// with its own connect limit work.

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { LLMProxy, collect, caught, assertProxyError, assembleChunks } = require('./helpers/common')
const { startUpstream, writeResponse, openSse, sseBody, chunk, JSON_HEADERS, sleep } = require('./helpers/upstream')

const REQ = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] }
const OVERLOADED = [503, JSON_HEADERS, { error: { message: 'busy', type: 'server_error' } }]

function completion(id, content) {
  return {
    id,
    object: 'chat.completion',
    created: 1700000000,
    model: 'upstream-model',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 },
  }
}

/** A loopback provider that answers the n-th request (0-based) with `answers[n]` (the last one repeats). */
async function provider(t, answers) {
  let n = 0
  const upstream = await startUpstream((req, socket) => {
    const answer = answers[Math.min(n++, answers.length - 1)]
    if (typeof answer === 'function') return answer(req, socket)
    const [status, headers, body, options] = answer
    return writeResponse(socket, status, headers, body, options)
  })
  t.after(() => upstream.close())
  return upstream
}

/** Never answers (the socket stays open). */
const silent = () => {}

/** Starts an SSE answer and says nothing more. */
const headersOnly = (req, socket) => openSse(socket)

const sse = (pieces, options) => [200, { 'Content-Type': 'text/event-stream' }, sseBody(pieces, { model: 'upstream-model' }), options]

function openaiProxy(upstream, extra = {}) {
  return new LLMProxy({ openai: { apiKey: 'sk-test-reliability', baseUrl: upstream.baseUrl }, retry: { maxRetries: 0 }, ...extra })
}

/** OpenAI at `primary`, compatible endpoints named after the other upstreams. */
function chainProxy(primary, backups, extra = {}) {
  const compatible = {}
  for (const [name, upstream] of Object.entries(backups)) compatible[name] = { baseUrl: upstream.baseUrl }
  return new LLMProxy({ openai: { apiKey: 'sk-test-reliability', baseUrl: primary.baseUrl }, compatible, ...extra })
}

async function streamError(iterable) {
  const got = []
  const err = await caught(async () => {
    for await (const c of iterable) got.push(c)
  })
  return { got, err }
}

describe('timeouts', () => {
  test('requestMs (and its old name timeoutMs): a provider that never answers → timeout "request"', async (t) => {
    const upstream = await provider(t, [silent])
    for (const options of [{ timeouts: { requestMs: 150 } }, { timeoutMs: 150 }]) {
      const started = Date.now()
      const err = await caught(() => openaiProxy(upstream, options).generate(REQ))
      const took = Date.now() - started
      assertProxyError(err, { code: 'timeout', timeout: 'request', provider: 'openai', retryable: true, status: undefined })
      assert.match(err.message, /150 ms \(the request timeout, timeouts\.requestMs\)/)
      assert.ok(took >= 140 && took < 3000, `took ${took} ms`)
    }
  })

  test('requestMs covers the body too: headers in time, then a body that never comes', async (t) => {
    const upstream = await provider(t, [
      async (req, socket) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"id":')
      },
    ])
    const err = await caught(() => openaiProxy(upstream, { timeouts: { requestMs: 200 } }).generate(REQ))
    assertProxyError(err, { code: 'timeout', timeout: 'request' })
  })

  test('firstChunkMs: headers, then silence → timeout "firstChunk" (idleMs does not apply before the first chunk)', async (t) => {
    const upstream = await provider(t, [headersOnly])
    const proxy = openaiProxy(upstream, { timeouts: { firstChunkMs: 400, idleMs: 50 } })
    const started = Date.now()
    const { got, err } = await streamError(proxy.stream(REQ))
    const took = Date.now() - started
    assert.equal(got.length, 0)
    assertProxyError(err, { code: 'timeout', timeout: 'firstChunk', provider: 'openai', retryable: true })
    assert.match(err.message, /400 ms \(the first-chunk timeout, timeouts\.firstChunkMs\)/)
    assert.ok(took >= 390 && took < 3000, `took ${took} ms`)
  })

  test('firstChunkMs defaults to requestMs, and keep-alive comments do not count as a first chunk', async (t) => {
    const upstream = await provider(t, [
      async (req, socket) => {
        const s = await openSse(socket)
        for (let i = 0; i < 10 && !socket.destroyed; i++) {
          await s.send(': keep-alive\n\n')
          await sleep(40)
        }
      },
    ])
    const proxy = openaiProxy(upstream, { timeouts: { requestMs: 200, idleMs: 100 } })
    const { got, err } = await streamError(proxy.stream(REQ))
    assert.equal(got.length, 0)
    assertProxyError(err, { code: 'timeout', timeout: 'firstChunk' })
    assert.match(err.message, /200 ms/)
  })

  test('idleMs: chunks, then silence → the chunks, then timeout "idle"', async (t) => {
    const upstream = await provider(t, [
      async (req, socket) => {
        const s = await openSse(socket)
        await s.event(chunk({ model: 'upstream-model', delta: { role: 'assistant', content: '' } }))
        await s.event(chunk({ model: 'upstream-model', delta: { content: 'Hel' } }))
      },
    ])
    const proxy = openaiProxy(upstream, { timeouts: { idleMs: 250 } })
    const started = Date.now()
    const { got, err } = await streamError(proxy.stream(REQ))
    const took = Date.now() - started
    assert.deepEqual(
      got.map((c) => c.choices[0].delta.content),
      ['', 'Hel'],
    )
    assertProxyError(err, { code: 'timeout', timeout: 'idle', provider: 'openai' })
    assert.match(err.message, /250 ms \(the idle timeout, timeouts\.idleMs\); the answer is incomplete/)
    assert.ok(took >= 240 && took < 3000, `took ${took} ms`)
    assert.equal(upstream.requests.length, 1, 'a stream that has begun is never retried')
  })

  test('a stream that keeps talking may last longer than requestMs', async (t) => {
    const pieces = ['one', ' two', ' three', ' four', ' five', ' six']
    const upstream = await provider(t, [sse(pieces, { mode: { chunks: 8 }, intervalMs: 60 })])
    const proxy = openaiProxy(upstream, { timeouts: { requestMs: 150, idleMs: 2000 } })
    const started = Date.now()
    const answer = assembleChunks(await collect(proxy.stream(REQ)))
    assert.ok(Date.now() - started > 300)
    assert.equal(answer.content, pieces.join(''))
  })

  test("a call's timeouts replace the proxy's; connectMs is not accepted per call", async (t) => {
    const upstream = await provider(t, [silent])
    const proxy = openaiProxy(upstream, { timeouts: { requestMs: 60_000 } })
    const started = Date.now()
    let err = await caught(() => proxy.generate(REQ, { timeouts: { requestMs: 150 } }))
    assertProxyError(err, { code: 'timeout', timeout: 'request' })
    assert.ok(Date.now() - started < 3000)
    err = await caught(() => proxy.stream(REQ, { timeouts: { firstChunkMs: 150 } }).next())
    assertProxyError(err, { code: 'timeout', timeout: 'firstChunk' })
    const sent = upstream.requests.length
    err = await caught(() => proxy.generate(REQ, { timeouts: { connectMs: 100 } }))
    assertProxyError(err, { code: 'invalid_request', message: /connectMs cannot be set per call/ })
    err = await caught(() => proxy.generate(REQ, { timeouts: { requestMs: 0 } }))
    assertProxyError(err, { code: 'invalid_request', message: /timeouts\.requestMs must be greater than 0/ })
    err = await caught(() => proxy.generate(REQ, { timeouts: { requestMS: 10 } }))
    assertProxyError(err, { code: 'invalid_request', message: /requestMS/ })
    assert.equal(upstream.requests.length, sent, 'nothing is sent with bad call options')
  })

  test('connectMs: a proxy with its own connect limit (its own pool) works', async (t) => {
    const upstream = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-connect', 'hi')]])
    const res = await openaiProxy(upstream, { timeouts: { connectMs: 2500 } }).generate(REQ)
    assert.equal(res.id, 'chatcmpl-connect')
  })

  test('a timeout the provider reports (HTTP 408) has no `timeout` field', async (t) => {
    const upstream = await provider(t, [[408, JSON_HEADERS, { error: { message: 'took too long' } }]])
    const err = await caught(() => openaiProxy(upstream).generate(REQ))
    assertProxyError(err, { code: 'timeout', status: 408 })
    assert.ok(!('timeout' in err))
  })

  const BAD = [
    ['timeouts.idleMs: 0', { timeouts: { idleMs: 0 } }, /timeouts\.idleMs must be greater than 0/],
    ['timeouts.connectMs: -1', { timeouts: { connectMs: -1 } }, /timeouts\.connectMs/],
    ['timeouts.firstChunkMs: 1.5', { timeouts: { firstChunkMs: 1.5 } }, /timeouts\.firstChunkMs/],
    ['a misspelt limit', { timeouts: { idleMS: 5 } }, /idleMS/],
    ['timeoutMs and timeouts.requestMs together', { timeoutMs: 5, timeouts: { requestMs: 5 } }, /old name of timeouts\.requestMs/],
  ]
  for (const [name, options, message] of BAD) {
    test(`${name} → config, thrown by the constructor`, () => {
      assertProxyError(
        (() => {
          try {
            new LLMProxy(options)
          } catch (e) {
            return e
          }
          assert.fail('the constructor accepted it')
        })(),
        { code: 'config', retryable: false, message },
      )
    })
  }
})

describe('fallbacks', () => {
  test('the requested model fails with 503 until its retries are spent → the fallback answers, and says so', async (t) => {
    const primary = await provider(t, [OVERLOADED])
    const backup = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-backup', 'from the backup')]])
    const proxy = chainProxy(primary, { backup }, {
      retry: { maxRetries: 2, initialDelayMs: 5 },
      fallbacks: { 'gpt-4o-mini': ['backup/some-model'] },
    })
    const res = await proxy.generate(REQ)
    assert.equal(res.id, 'chatcmpl-backup')
    assert.equal(res.model, 'upstream-model', '`model` stays what the provider said')
    assert.equal(res.choices[0].message.content, 'from the backup')
    const { failed, ...served } = res.llm_proxy
    assert.deepEqual(served, { model: 'backup/some-model', provider: 'backup', fallback: true, attempts: 1 })
    assert.equal(failed.length, 1)
    assert.deepEqual({ ...failed[0], message: undefined }, {
      model: 'gpt-4o-mini',
      provider: 'openai',
      code: 'overloaded',
      status: 503,
      attempts: 3,
      message: undefined,
    })
    assert.match(failed[0].message, /busy.*\(gave up after 3 attempts\)$/)
    assert.equal(primary.requests.length, 3)
    assert.equal(backup.requests.length, 1)
    // The same request, with the model replaced.
    assert.deepEqual({ ...backup.requests[0].json, model: undefined }, { ...primary.requests[0].json, model: undefined })
    assert.equal(backup.requests[0].json.model, 'some-model')
  })

  test('the requested model answers → llm_proxy says so (fallback: false); without fallbacks there is no llm_proxy', async (t) => {
    const primary = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-primary', 'hi')]])
    const withFallbacks = new LLMProxy({
      openai: { apiKey: 'sk-test-reliability', baseUrl: primary.baseUrl },
      fallbacks: { 'gpt-4o-mini': ['mock/echo'] },
    })
    const res = await withFallbacks.generate(REQ)
    assert.deepEqual(res.llm_proxy, { model: 'gpt-4o-mini', provider: 'openai', fallback: false, attempts: 1, failed: [] })
    const plain = await openaiProxy(primary).generate(REQ)
    assert.ok(!('llm_proxy' in plain))
  })

  for (const [status, body, code] of [
    [400, { error: { message: "Unsupported parameter: 'max_tokens'", type: 'invalid_request_error' } }, 'invalid_request'],
    [401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } }, 'authentication'],
  ]) {
    test(`the requested model answers ${status} → that error, no fallback`, async (t) => {
      const primary = await provider(t, [[status, JSON_HEADERS, body]])
      const backup = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-backup', 'no')]])
      const proxy = chainProxy(primary, { backup }, { retry: { maxRetries: 2, initialDelayMs: 5 }, fallbacks: { 'gpt-4o-mini': ['backup/m'] } })
      const err = await caught(() => proxy.generate(REQ))
      assertProxyError(err, { code, status, retryable: false, tried: undefined })
      assert.doesNotMatch(err.message, /Models tried/)
      assert.equal(primary.requests.length, 1)
      assert.equal(backup.requests.length, 0)
    })
  }

  const BEFORE_FIRST_CHUNK = [
    ['503', OVERLOADED, 'overloaded'],
    ['an error event as the first thing in a 200 stream', [200, { 'Content-Type': 'text/event-stream' }, 'event: error\ndata: {"error":{"type":"overloaded_error","message":"busy"}}\n\n'], 'overloaded'],
    ['headers, then the connection drops', [200, { 'Content-Type': 'text/event-stream' }, sseBody(['x']), { mode: { cutAt: 0 } }], 'connection'],
    ['headers, then silence past firstChunkMs', headersOnly, 'timeout'],
  ]
  for (const [name, failure, code] of BEFORE_FIRST_CHUNK) {
    test(`stream: ${name} before the first chunk → the fallback streams the answer`, async (t) => {
      const primary = await provider(t, [failure])
      const backup = await provider(t, [sse(['Hello', ' from', ' the backup'], { mode: 'bytewise' })])
      const proxy = chainProxy(primary, { backup }, {
        retry: { maxRetries: 0 },
        timeouts: { firstChunkMs: 300 },
        fallbacks: { 'gpt-4o-mini': ['backup/some-model'] },
      })
      const chunks = await collect(proxy.stream(REQ))
      const answer = assembleChunks(chunks)
      assert.equal(answer.content, 'Hello from the backup')
      assert.equal(chunks[0].llm_proxy.model, 'backup/some-model')
      assert.equal(chunks[0].llm_proxy.fallback, true)
      assert.equal(chunks[0].llm_proxy.failed[0].code, code, JSON.stringify(chunks[0].llm_proxy))
      assert.ok(chunks.slice(1).every((c) => !('llm_proxy' in c)), 'only the first chunk carries llm_proxy')
      assert.equal(primary.requests.length, 1)
      assert.equal(backup.requests[0].json.model, 'some-model')
      assert.equal(backup.requests[0].json.stream, true)
    })
  }

  test('stream: a failure after the first chunk → the chunks, then the error; no fallback', async (t) => {
    const primary = await provider(t, [sse(['Hello', ' world'], { mode: { cutAt: 250 } })])
    const backup = await provider(t, [sse(['no'])])
    const proxy = chainProxy(primary, { backup }, { retry: { maxRetries: 2, initialDelayMs: 5 }, fallbacks: { 'gpt-4o-mini': ['backup/m'] } })
    const { got, err } = await streamError(proxy.stream(REQ))
    assert.ok(got.length >= 1)
    assert.deepEqual(got[0].llm_proxy, { model: 'gpt-4o-mini', provider: 'openai', fallback: false, attempts: 1, failed: [] })
    assertProxyError(err, { code: 'stream_interrupted', tried: undefined })
    assert.equal(primary.requests.length, 1)
    assert.equal(backup.requests.length, 0)
  })

  test("a call's fallbacks replace the proxy's; [] turns them off", async (t) => {
    const primary = await provider(t, [OVERLOADED])
    const a = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-a', 'a')]])
    const b = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-b', 'b')]])
    const proxy = chainProxy(primary, { a, b }, { retry: { maxRetries: 0 }, fallbacks: { 'gpt-4o-mini': ['a/m'] } })

    let res = await proxy.generate(REQ, { fallbacks: ['b/m'] })
    assert.equal(res.id, 'chatcmpl-b')
    assert.equal(res.llm_proxy.model, 'b/m')
    assert.equal(a.requests.length, 0)

    const chunks = await collect(proxy.stream(REQ, { fallbacks: ['mock/echo'] }))
    assert.equal(assembleChunks(chunks).content, 'Say hello')
    assert.deepEqual({ ...chunks[0].llm_proxy, failed: undefined }, { model: 'mock/echo', provider: 'mock', fallback: true, attempts: 1, failed: undefined })

    const err = await caught(() => proxy.generate(REQ, { fallbacks: [] }))
    assertProxyError(err, { code: 'overloaded', tried: undefined })
    assert.equal(a.requests.length, 0)

    // A model without fallbacks in the options can have them per call.
    res = await proxy.generate({ ...REQ, model: 'gpt-4o' }, { fallbacks: ['a/m'] })
    assert.equal(res.id, 'chatcmpl-a')
  })

  test('every model fails → the last error, listing every model tried (skipped ones included)', async (t) => {
    const primary = await provider(t, [OVERLOADED])
    const backup = await provider(t, [[500, JSON_HEADERS, { error: { message: 'boom', type: 'server_error' } }]])
    const proxy = chainProxy(primary, { backup }, {
      retry: { maxRetries: 1, initialDelayMs: 5 },
      // No Anthropic key anywhere: that fallback cannot be used, and is skipped.
      fallbacks: { 'gpt-4o-mini': ['claude-sonnet-4-5', 'backup/some-model'] },
    })
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'server_error', provider: 'backup', status: 500, retryable: true })
    assert.deepEqual(
      err.tried.map(({ model, provider, code, status, attempts }) => ({ model, provider, code, status, attempts })),
      [
        { model: 'gpt-4o-mini', provider: 'openai', code: 'overloaded', status: 503, attempts: 2 },
        { model: 'claude-sonnet-4-5', provider: 'anthropic', code: 'config', status: undefined, attempts: 0 },
        { model: 'backup/some-model', provider: 'backup', code: 'server_error', status: 500, attempts: 2 },
      ],
    )
    assert.match(err.tried[1].message, /ANTHROPIC_API_KEY/)
    assert.match(
      err.message,
      /\[Models tried, in order: gpt-4o-mini \(overloaded, 2 attempts\), claude-sonnet-4-5 \(config, not sent\), backup\/some-model \(server_error, 2 attempts\)\.\]$/,
    )
    assert.ok(!err.message.includes('sk-test-reliability'))
    assert.equal(primary.requests.length, 2)
    assert.equal(backup.requests.length, 2)
  })

  test('the last fallback cannot be used → the error is the last asked model\'s, listing both', async (t) => {
    const primary = await provider(t, [OVERLOADED])
    const proxy = new LLMProxy({
      openai: { apiKey: 'sk-test-reliability', baseUrl: primary.baseUrl },
      retry: { maxRetries: 0 },
      fallbacks: { 'gpt-4o-mini': ['claude-sonnet-4-5'] },
    })
    const err = await caught(() => proxy.generate(REQ))
    assertProxyError(err, { code: 'overloaded', provider: 'openai', status: 503, retryable: true })
    assert.deepEqual(
      err.tried.map((x) => [x.model, x.code, x.attempts]),
      [
        ['gpt-4o-mini', 'overloaded', 1],
        ['claude-sonnet-4-5', 'config', 0],
      ],
    )
  })

  test('a stream whose every model fails before its first chunk throws the listing error', async (t) => {
    const primary = await provider(t, [OVERLOADED])
    const proxy = new LLMProxy({
      openai: { apiKey: 'sk-test-reliability', baseUrl: primary.baseUrl },
      retry: { maxRetries: 0 },
      fallbacks: { 'gpt-4o-mini': ['openai/gpt-4o'] },
    })
    const { got, err } = await streamError(proxy.stream(REQ))
    assert.equal(got.length, 0)
    assertProxyError(err, { code: 'overloaded' })
    assert.deepEqual(
      err.tried.map((x) => x.model),
      ['gpt-4o-mini', 'openai/gpt-4o'],
    )
  })

  test('an abort while the requested model is failing stops the call: no fallback', async (t) => {
    const primary = await provider(t, [silent])
    const backup = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-backup', 'no')]])
    const proxy = chainProxy(primary, { backup }, { fallbacks: { 'gpt-4o-mini': ['backup/m'] } })
    const err = await caught(() => proxy.generate(REQ, { signal: AbortSignal.timeout(100) }))
    assertProxyError(err, { code: 'aborted' })
    await sleep(50)
    assert.equal(backup.requests.length, 0)
  })

  const BAD_PROXY = [
    ['a fallback no provider serves', { fallbacks: { 'gpt-4o': ['no-such-model'] } }, /fallbacks\['gpt-4o'\]\[0\] 'no-such-model' cannot be routed/],
    ['an empty fallback', { fallbacks: { 'gpt-4o': [''] } }, /fallbacks\['gpt-4o'\]\[0\]/],
    ['fallbacks for a model no provider serves', { fallbacks: { 'gtp-4o': ['gpt-4o'] } }, /'gtp-4o', which cannot be routed/],
    ['fallbacks that are not a list', { fallbacks: { 'gpt-4o': 'claude-sonnet-4-5' } }, /fallbacks\.gpt-4o/],
  ]
  for (const [name, options, message] of BAD_PROXY) {
    test(`${name} → config, thrown by the constructor`, () => {
      let err
      try {
        new LLMProxy(options)
      } catch (e) {
        err = e
      }
      assertProxyError(err, { code: 'config', retryable: false, message })
    })
  }

  test('bad fallbacks of a call fail it before anything is sent', async (t) => {
    const primary = await provider(t, [[200, JSON_HEADERS, completion('chatcmpl-x', 'x')]])
    const proxy = openaiProxy(primary)
    let err = await caught(() => proxy.generate(REQ, { fallbacks: ['no-such-model'] }))
    assertProxyError(err, { code: 'unsupported_model', message: /^fallbacks\[0\] 'no-such-model': / })
    err = await caught(() => proxy.generate(REQ, { fallbacks: 'claude-sonnet-4-5' }))
    assertProxyError(err, { code: 'invalid_request', message: /call options at `fallbacks`/ })
    err = await caught(() => proxy.stream(REQ, { fallbacks: [42] }).next())
    assertProxyError(err, { code: 'invalid_request', message: /fallbacks\[0\]/ })
    assert.equal(primary.requests.length, 0)
  })
})
