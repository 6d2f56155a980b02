'use strict'

// Cancellation: an AbortSignal (or a `break`) stops the request, the stream and its socket, promptly.

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const { startUpstream, openSse, chunk, within, sleep, JSON_HEADERS, writeResponse } = require('./helpers/upstream')
const { LLMProxy, caught, assertProxyError, USER, fixture } = require('./helpers/common')

const REQ = { model: 'gpt-4o', messages: USER }
/** How long the client may take to close its socket after a cancel. */
const CLOSE_WITHIN_MS = 3000

async function setup(t, handler) {
  const upstream = await startUpstream(handler)
  t.after(() => upstream.close())
  const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
  return { upstream, proxy }
}

/** A provider that accepts the request and never answers (until the test ends). */
const silent = () => {}

/** A provider that streams `n` chunks and then stalls. */
function stallsAfter(n) {
  return async (req, socket) => {
    const sse = await openSse(socket)
    await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
    for (let i = 1; i < n; i++) await sse.event(chunk({ delta: { content: `w${i} ` } }))
  }
}

async function assertClientClosed(upstream, i = 0) {
  const conn = upstream.requests[i].conn
  await within(CLOSE_WITHIN_MS, conn.whenClosed, 'the client closing its upstream connection')
  assert.equal(conn.closed, true)
  assert.equal(conn.closedBy, 'client', 'the client, not the server, closed the connection')
}

describe('generate() with an AbortSignal', () => {
  test('an already-aborted signal rejects with aborted and sends nothing', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    ac.abort()
    const err = await caught(() => proxy.generate(REQ, { signal: ac.signal }))
    assertProxyError(err, { code: 'aborted', retryable: false })
    await sleep(50)
    assert.equal(upstream.requests.length, 0)
    assert.equal(upstream.connections.length, 0)
  })

  test('abort while waiting for the answer: rejects promptly and closes the socket', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    const pending = proxy.generate(REQ, { signal: ac.signal })
    await within(5000, upstream.waitForRequest(1), 'the request reaching the provider')
    const started = Date.now()
    ac.abort()
    const err = await caught(() => within(2000, pending, 'the rejection after abort'))
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`)
    assertProxyError(err, { code: 'aborted', retryable: false })
    assert.match(err.message, /aborted/)
    await assertClientClosed(upstream)
  })

  test('abort with a reason keeps it as the cause', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    const pending = proxy.generate(REQ, { signal: ac.signal })
    await upstream.waitForRequest(1)
    const reason = new Error('user pressed stop')
    ac.abort(reason)
    const err = await caught(() => pending)
    assertProxyError(err, { code: 'aborted' })
    assert.equal(err.cause, reason)
  })

  test('AbortSignal.timeout(50) → aborted, saying the timeout elapsed', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const started = Date.now()
    const err = await caught(() => proxy.generate(REQ, { signal: AbortSignal.timeout(50) }))
    assert.ok(Date.now() - started < 2000)
    assertProxyError(err, { code: 'aborted', message: /timeout/ })
    assert.equal(err.cause && err.cause.name, 'TimeoutError')
    await assertClientClosed(upstream)
  })

  test("the caller's own abort listener still runs", async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    const calls = []
    ac.signal.addEventListener('abort', () => calls.push('before'))
    const pending = proxy.generate(REQ, { signal: ac.signal })
    ac.signal.addEventListener('abort', () => calls.push('after'))
    await upstream.waitForRequest(1)
    ac.abort()
    assertProxyError(await caught(() => pending), { code: 'aborted' })
    assert.deepEqual(calls, ['before', 'after'])
  })

  test('a signal that is never aborted changes nothing, and aborting after completion is harmless', async (t) => {
    const body = fixture('openai/chat/text-gpt35-2026.json')
    const { proxy } = await setup(t, (req, socket) => writeResponse(socket, 200, JSON_HEADERS, body))
    const ac = new AbortController()
    const res = await proxy.generate(REQ, { signal: ac.signal })
    assert.equal(res.id, 'chatcmpl-DPTBnLVEU6gLtntz301fthMFXeE4C')
    ac.abort()
    const again = await proxy.generate(REQ, { signal: new AbortController().signal })
    assert.equal(again.id, res.id)
  })
})

describe('stream() with an AbortSignal', () => {
  test('an already-aborted signal rejects the first step and sends nothing', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    ac.abort()
    const it = proxy.stream(REQ, { signal: ac.signal })
    assertProxyError(await caught(() => it.next()), { code: 'aborted' })
    await sleep(50)
    assert.equal(upstream.requests.length, 0)
    assert.equal(upstream.connections.length, 0)
  })

  test('abort before the response headers: the first step rejects and the socket closes', async (t) => {
    const { upstream, proxy } = await setup(t, silent)
    const ac = new AbortController()
    const it = proxy.stream(REQ, { signal: ac.signal })
    const first = it.next()
    await upstream.waitForRequest(1)
    ac.abort()
    assertProxyError(await caught(() => within(2000, first, 'the rejection after abort')), { code: 'aborted' })
    await assertClientClosed(upstream)
  })

  test('abort mid-stream: iteration throws aborted after the chunks so far, and the socket closes', async (t) => {
    const { upstream, proxy } = await setup(t, stallsAfter(3))
    const ac = new AbortController()
    const got = []
    const err = await caught(async () => {
      for await (const c of proxy.stream(REQ, { signal: ac.signal })) {
        got.push(c)
        if (got.length === 3) setTimeout(() => ac.abort(), 20)
      }
    })
    assertProxyError(err, { code: 'aborted', retryable: false })
    assert.equal(got.length, 3)
    assert.equal(got[0].choices[0].delta.role, 'assistant')
    assert.equal(got[2].choices[0].delta.content, 'w2 ')
    await assertClientClosed(upstream)
  })

  test('abort inside the loop: chunks already received are not handed out, even of a finished stream', async (t) => {
    // mock/ streams its whole answer at once, so every chunk is received before the abort.
    const proxy = new LLMProxy()
    const ac = new AbortController()
    const got = []
    const err = await caught(async () => {
      for await (const c of proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'one two three four five six' }] }, { signal: ac.signal })) {
        got.push(c)
        if (got.length === 3) ac.abort()
      }
    })
    assertProxyError(err, { code: 'aborted', retryable: false })
    assert.equal(got.length, 3)
  })

  test('AbortSignal.timeout mid-stream → aborted', async (t) => {
    const { upstream, proxy } = await setup(t, stallsAfter(2))
    const got = []
    const err = await caught(async () => {
      for await (const c of proxy.stream(REQ, { signal: AbortSignal.timeout(500) })) got.push(c)
    })
    assertProxyError(err, { code: 'aborted', message: /timeout/ })
    assert.equal(got.length, 2)
    await assertClientClosed(upstream)
  })
})

describe('leaving a stream early', () => {
  test('break after the first chunk closes the upstream socket', async (t) => {
    const { upstream, proxy } = await setup(t, stallsAfter(3))
    let first
    for await (const c of proxy.stream(REQ)) {
      first = c
      break
    }
    assert.equal(first.choices[0].delta.role, 'assistant')
    await assertClientClosed(upstream)
  })

  test('a throw in the loop body closes the upstream socket and the error is the caller’s', async (t) => {
    const { upstream, proxy } = await setup(t, stallsAfter(3))
    const mine = new Error('mine')
    const err = await caught(async () => {
      for await (const _ of proxy.stream(REQ)) throw mine
    })
    assert.equal(err, mine)
    await assertClientClosed(upstream)
  })

  test('return() on the iterator closes the upstream socket', async (t) => {
    const { upstream, proxy } = await setup(t, stallsAfter(2))
    const it = proxy.stream(REQ)
    const step = await it.next()
    assert.equal(step.done, false)
    assert.deepEqual(await it.return(), { done: true, value: undefined })
    await assertClientClosed(upstream)
  })

  test('break while the provider is still streaming fast: the client stops reading', async (t) => {
    // The provider writes as fast as it can for a long time; after a break the client must close the
    // connection instead of reading the rest.
    let written = 0
    let stoppedWriting = false
    const { upstream, proxy } = await setup(t, async (req, socket) => {
      const sse = await openSse(socket)
      await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
      const piece = `data: ${JSON.stringify(chunk({ delta: { content: 'x'.repeat(1000) } }))}\n\n`
      while (!socket.destroyed && written < 200_000_000) {
        if (!socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)) {
          await new Promise((resolve) => {
            socket.once('drain', resolve)
            socket.once('close', resolve)
          })
        }
        written += piece.length
      }
      stoppedWriting = true
    })
    let n = 0
    for await (const _ of proxy.stream(REQ)) {
      if (++n === 5) break
    }
    await assertClientClosed(upstream)
    await within(2000, (async () => { while (!stoppedWriting) await sleep(10) })(), 'the provider noticing')
    assert.ok(written < 200_000_000, `the client kept reading: ${written} bytes written`)
  })
})
