'use strict'

// Under load and resources (issue 6): one LLMProxy serves thousands of concurrent streams and calls on
// one connection pool without mixing their answers up, and streams that are abandoned (`break`,
// aborted, or garbage-collected without being read) close their sockets and leave memory where it was.
//
// The provider is helpers/loadserver.js: keep-alive, fast, and every answer derived from its request
// (the tag `req-<i>` in every chunk with a sequence number, the request's model echoed), so an answer
// given to the wrong caller, or chunks lost, repeated or reordered, fail the checks.
//
// Sizes can be changed without editing the file:
//   LLM_PROXY_LOAD_STREAMS   concurrent streams, and concurrent generate calls   (default 2000)
//   LLM_PROXY_LOAD_CHUNKS    content chunks per stream in the load test            (default 20)
//   LLM_PROXY_ABANDON        abandoned streams in the resource test                (default 10000)
// Timings and the numbers measured are printed as test diagnostics (`# …` lines in the TAP output).

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { getEventListeners, setMaxListeners } = require('node:events')
const { startLoadServer, expectedPieces } = require('./helpers/loadserver')
const { within } = require('./helpers/upstream')
const { LLMProxy, assembleChunks, collect, caught, assertProxyError } = require('./helpers/common')

const envInt = (name, fallback) => {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not ${v}`)
  return n
}

const LOAD_STREAMS = envInt('LLM_PROXY_LOAD_STREAMS', 2000)
const LOAD_CHUNKS = envInt('LLM_PROXY_LOAD_CHUNKS', 20)
const ABANDON = envInt('LLM_PROXY_ABANDON', 10000)
/** Abandoned streams started at once in the resource test: the most requests in flight at a time. */
const WAVE = 250
/**
 * Growth allowed after all abandoned streams are gone and a full GC (RSS, then JS heap). Measured on
 * Linux x64 (glibc, debug build, 2 cores): RSS +0.6…8 MB whether 3,000, 10,000 or 30,000 streams are
 * abandoned, 250 at a time (a one-time step of the allocator, not growth per stream: with 500 at a
 * time the step is 18 MB, for 10,000 and 30,000 alike); JS heap +0.1…0.2 MB. A leak of 3 KB per
 * stream in native memory, or of 300 bytes per stream in the JS heap, fails.
 */
const RSS_SLACK_MB = process.platform === 'linux' ? 30 : 60
const HEAP_SLACK_MB = 3
/** How long the load tests' calls may take in all (about 10 s on 2 busy cores with the debug build). */
const LOAD_WITHIN_MS = 100_000
/** How long sockets may take to close once nothing holds their stream any more. */
const CLOSE_WITHIN_MS = 10_000
/** Idle connections the pool keeps per host (POOL_MAX_IDLE_PER_HOST in src/client/http.rs). */
const POOL_MAX_IDLE = 256

/** `global.gc`, exposed at run time so that `node --test` needs no flag for this file. */
const gc = (() => {
  if (typeof global.gc === 'function') return global.gc
  require('v8').setFlagsFromString('--expose-gc')
  return require('vm').runInNewContext('gc')
})()

const immediate = () => new Promise((resolve) => setImmediate(resolve))

/** Full GCs with a turn of the event loop in between, so that native finalizers (Drop) run too. */
async function fullGc() {
  for (let i = 0; i < 3; i++) {
    gc()
    await immediate()
  }
}

const MB = 1024 * 1024
const mb = (bytes) => (bytes / MB).toFixed(1)

/** Open file descriptors of this process (sockets of both the client and the server), on Linux. */
function openFds() {
  try {
    return fs.readdirSync('/proc/self/fd').length
  } catch {
    return null
  }
}

function request(model, tag) {
  return { model: `local/${model}`, messages: [{ role: 'user', content: tag }] }
}

/** One proxy that never retries: a failure under load must show, not be papered over. */
function proxyFor(server) {
  return new LLMProxy({ compatible: { local: { baseUrl: server.baseUrl } }, retry: { maxRetries: 0 } })
}

async function setup(t, options) {
  const server = await startLoadServer(options)
  t.after(() => server.close())
  return { server, proxy: proxyFor(server) }
}

/** `Promise.all`, failing (instead of hanging) if the calls are not all done within `LOAD_WITHIN_MS`. */
function allWithin(server, promises) {
  return within(LOAD_WITHIN_MS, Promise.all(promises), `all ${promises.length} calls finishing`).catch((err) => {
    err.message += ` (the provider had received ${server.stats.requests} requests and finished ${server.stats.finished} responses)`
    throw err
  })
}

/** Checks that `chunks` are exactly the answer to the request tagged `tag`, for `model`, of `n` pieces. */
function checkStream(chunks, tag, model, n) {
  assert.equal(chunks.length, n + 3, `${tag}: role, ${n} pieces, finish and usage`)
  const got = assembleChunks(chunks)
  assert.equal(chunks[0].id, `chatcmpl-${tag}`, `${tag}: another stream's id`)
  assert.equal(chunks[0].model, model, `${tag}: another stream's model`)
  assert.deepEqual(
    chunks.slice(1, n + 1).map((c) => c.choices[0].delta.content),
    expectedPieces(tag, n),
    `${tag}: pieces missing, repeated, reordered or from another stream`,
  )
  assert.equal(got.finishReason, 'stop')
  assert.equal(chunks[n + 1].choices[0].finish_reason, 'stop', `${tag}: the finish chunk comes after every piece`)
  assert.deepEqual(got.usage, { prompt_tokens: 1, completion_tokens: n, total_tokens: n + 1 }, `${tag}: usage`)
}

// The resource tests come first: their memory measurements are cleaner in a process that has not yet
// run thousands of concurrent streams.
describe('resources: abandoned streams close their sockets', () => {
  test('streams garbage-collected without being read close their sockets', { timeout: 60_000 }, async (t) => {
    const { server, proxy } = await setup(t)
    const n = 300
    // The provider sends a role chunk and two pieces, then holds the stream open: only the client can
    // end these connections.
    let streams = Array.from({ length: n }, (_, i) => proxy.stream(request(`stall-2.gc-${i}`, `gc-${i}`)))
    await server.waitFor(() => server.stats.requests === n, CLOSE_WITHIN_MS, `${n} requests arriving`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    // Held, the streams keep their connections.
    assert.equal(server.busyConnections(), n)
    assert.equal(streams.length, n)
    streams = null
    const started = Date.now()
    await fullGc()
    await server.waitFor(() => server.openConnections() === 0, CLOSE_WITHIN_MS, 'every socket closing after GC')
    t.diagnostic(`${n} unread streams: every socket closed ${Date.now() - started} ms after the GC`)
    assert.equal(server.stats.closedByClient, n, 'the client closed them')
    assert.equal(server.stats.closedWhileBusy, n)
    assert.deepEqual(server.stats.errors, [])
  })

  test(`${ABANDON} abandoned streams (break, abort, GC) leave sockets and memory where they started`, { timeout: 180_000 }, async (t) => {
    const { server, proxy } = await setup(t)
    // stall-2: a role chunk and two pieces, then silence; silent-0: no answer at all (for both, only
    // the client can end the connection); echo-2: the whole answer, so the connection may go back to
    // the pool.
    const KINDS = [
      'break after the first chunk (stalled provider)',
      'abort after the first chunk (stalled provider)',
      'unread, then garbage-collected (stalled provider)',
      'abort before reading (stalled provider)',
      'break after the first chunk (complete answer)',
      'unread, then garbage-collected (complete answer)',
      'abort before the response starts (silent provider)',
      'unread, garbage-collected before the response starts (silent provider)',
      'first chunk read with next(), then dropped and garbage-collected (stalled provider)',
    ]
    const MODELS = ['stall-2', 'stall-2', 'stall-2', 'stall-2', 'echo-2', 'echo-2', 'silent-0', 'silent-0', 'stall-2']
    const STALLED = new Set([0, 1, 2, 3, 6, 7, 8])
    const kindOf = (i) => i % KINDS.length

    /**
     * While the caller still holds the stream (so that garbage collection cannot be what closes it),
     * its response must end: the connection closed by the client, or (for a complete answer) written
     * whole.
     */
    async function endsWhileHeld(it, tracking, tag, stalled) {
      const how = await within(CLOSE_WITHIN_MS, tracking.done, `${tag}: the socket closing while the stream is still held`)
      if (stalled) assert.equal(how, 'closed', tag)
      assert.equal(typeof it.next, 'function')
    }

    async function abandon(prefix, i) {
      const kind = kindOf(i)
      const tag = `${prefix}-${i}`
      const stalled = STALLED.has(kind)
      const model = `${MODELS[kind]}.${tag}`
      const tracking = server.track(tag)
      switch (kind) {
        case 0:
        case 4: {
          const it = proxy.stream(request(model, tag))
          let first
          for await (const c of it) {
            first = c
            break
          }
          assert.equal(first.id, `chatcmpl-${tag}`)
          assert.equal(first.choices[0].delta.role, 'assistant')
          return endsWhileHeld(it, tracking, tag, stalled)
        }
        case 1: {
          const ac = new AbortController()
          const it = proxy.stream(request(model, tag), { signal: ac.signal })
          const first = await it.next()
          assert.equal(first.value.id, `chatcmpl-${tag}`)
          ac.abort()
          // Chunks already received may be handed over first; then the abort.
          const err = await caught(async () => {
            for await (const c of it) assert.equal(c.id, `chatcmpl-${tag}`)
          })
          assertProxyError(err, { code: 'aborted' })
          return endsWhileHeld(it, tracking, tag, stalled)
        }
        case 2:
        case 5:
        case 7: {
          // Never iterated; unreachable once this function returns.
          const it = proxy.stream(request(model, tag))
          await (kind === 7 ? tracking.received : tracking.answered)
          assert.equal(typeof it.next, 'function')
          return
        }
        case 8: {
          // Neither finished nor returned; unreachable once this function returns.
          const it = proxy.stream(request(model, tag))
          const first = await it.next()
          assert.equal(first.value.id, `chatcmpl-${tag}`)
          return
        }
        case 3:
        case 6: {
          const ac = new AbortController()
          const it = proxy.stream(request(model, tag), { signal: ac.signal })
          await (kind === 3 ? tracking.answered : tracking.received)
          ac.abort()
          // The socket closes on the abort alone, before the stream is read at all.
          await endsWhileHeld(it, tracking, tag, stalled)
          const err = await caught(async () => {
            for await (const c of it) assert.equal(c.id, `chatcmpl-${tag}`)
          })
          assertProxyError(err, { code: 'aborted' })
          return
        }
      }
    }

    async function run(prefix, count) {
      const started = performance.now()
      for (let base = 0; base < count; base += WAVE) {
        const wave = []
        for (let i = base; i < Math.min(count, base + WAVE); i++) wave.push(abandon(prefix, i))
        await Promise.all(wave)
        gc()
      }
      await fullGc()
      const settleStarted = Date.now()
      await server
        .waitFor(() => server.busyConnections() === 0, CLOSE_WITHIN_MS, "every abandoned stream's socket closing")
        .catch((err) => {
          err.message += ` (still open, by kind: ${describeBusy()})`
          throw err
        })
      return { ms: performance.now() - started, settleMs: Date.now() - settleStarted }
    }

    function describeBusy() {
      const byKind = {}
      for (const tag of server.busyTags()) {
        const k = KINDS[kindOf(Number(tag.split('-')[1]))]
        byKind[k] = (byKind[k] || 0) + 1
      }
      return JSON.stringify(byKind)
    }

    function measure() {
      const m = process.memoryUsage()
      return {
        rss: m.rss,
        heap: m.heapUsed,
        external: m.external,
        fds: openFds(),
        open: server.openConnections(),
        busy: server.busyConnections(),
      }
    }

    // Warm up (allocator arenas, the runtime's threads, the pool), then the baseline.
    const warmup = await run('warm', Math.min(ABANDON, 2000))
    await fullGc()
    const before = measure()
    const stalledBefore = server.stats.closedWhileBusy
    const requestsBefore = server.stats.requests

    const { ms, settleMs } = await run('req', ABANDON)
    await fullGc()
    const after = measure()

    const stalledCount = Array.from({ length: ABANDON }, (_, i) => kindOf(i)).filter((k) => STALLED.has(k)).length
    t.diagnostic(`warm-up: ${warmup.ms.toFixed(0)} ms`)
    t.diagnostic(
      `${ABANDON} abandoned streams of ${KINDS.length} kinds: ${ms.toFixed(0)} ms wall (${(ms / ABANDON).toFixed(2)} ms each, ${WAVE} at a time); ` +
        `last sockets closed ${settleMs} ms after the last GC`,
    )
    t.diagnostic(
      `connections: ${server.stats.accepted} opened in all, at most ${server.stats.maxOpen} at once; ` +
        `open before ${before.open} (busy ${before.busy}), after ${after.open} (busy ${after.busy}) — the idle ones are pooled`,
    )
    t.diagnostic(
      `memory after GC: rss ${mb(before.rss)} → ${mb(after.rss)} MB (${mb(after.rss - before.rss)}), ` +
        `heap ${mb(before.heap)} → ${mb(after.heap)} MB (${mb(after.heap - before.heap)}), ` +
        `external ${mb(before.external)} → ${mb(after.external)} MB; fds ${before.fds} → ${after.fds}`,
    )

    assert.deepEqual(server.stats.errors, [])
    assert.equal(server.stats.requests - requestsBefore, ABANDON, 'one request per stream, none retried')
    // Every stream to a stalled provider was closed by the client, in the middle of its response.
    assert.ok(
      server.stats.closedWhileBusy - stalledBefore >= stalledCount,
      `${server.stats.closedWhileBusy - stalledBefore} connections closed mid-response, ${stalledCount} expected`,
    )
    // Sockets: nothing is left in the middle of a response; the connections still open are idle ones
    // in the client's pool, no more than the requests that were in flight at once.
    assert.equal(after.busy, 0)
    assert.ok(after.open <= WAVE, `${after.open} connections left open (pool bound ${WAVE})`)
    if (after.fds !== null) {
      // Both ends of each pooled connection are in this process, plus a few of the runtime's own.
      assert.ok(
        after.fds <= before.fds + 2 * Math.max(0, after.open - before.open) + 20,
        `file descriptors ${before.fds} → ${after.fds} with ${after.open} connections open`,
      )
    }
    // Memory: measured growth is a few MB (see the diagnostics); the bounds are generous.
    assert.ok(after.rss - before.rss < RSS_SLACK_MB * MB, `rss grew by ${mb(after.rss - before.rss)} MB`)
    assert.ok(after.heap - before.heap < HEAP_SLACK_MB * MB, `the JS heap grew by ${mb(after.heap - before.heap)} MB`)
  })

  // An async generator that has not started runs none of its body on return(), so when stream()
  // returned one, return() before the first next() left the request running until GC. The stream
  // is its own iterator now, and this guards against going back.
  test(
    'return() before the first next() closes the socket while the stream is still held',
    { timeout: 60_000 },
    async (t) => {
      const { server, proxy } = await setup(t)
      const n = 20
      const tracks = []
      const streams = []
      for (let i = 0; i < n; i++) {
        tracks.push(server.track(`ret-${i}`))
        streams.push(proxy.stream(request(`stall-2.ret-${i}`, `ret-${i}`)))
      }
      await Promise.all(tracks.map((x) => x.answered))
      for (const it of streams) assert.deepEqual(await it.return(), { done: true, value: undefined })
      const how = await within(3000, Promise.all(tracks.map((x) => x.done)), 'the sockets closing after return()').catch(
        (err) => {
          err.message += ` (${server.busyConnections()} of ${n} still open)`
          throw err
        },
      )
      assert.deepEqual(how, Array(n).fill('closed'))
      // Still held: garbage collection is not what closed them.
      assert.equal(streams.length, n)
    },
  )

  // Calls sharing a signal share one listener on it; a stream dropped unread must not add one per
  // stream that outlives it (index.js once did: one listener and cancel token per stream, forever).
  test(
    'streams dropped unread leave no abort listener on a long-lived AbortSignal',
    { timeout: 60_000 },
    async (t) => {
      const { server, proxy } = await setup(t)
      const shared = new AbortController()
      const n = 200
      // Node warns when more than 10 listeners are on one signal; many calls sharing one is the point here.
      setMaxListeners(2 * n, shared.signal)
      let streams = Array.from({ length: n }, (_, i) =>
        proxy.stream(request(`stall-2.sig-${i}`, `sig-${i}`), { signal: shared.signal }),
      )
      await server.waitFor(() => server.stats.requests === n, CLOSE_WITHIN_MS, `${n} requests arriving`)
      assert.equal(streams.length, n)
      streams = null
      await fullGc()
      await server.waitFor(() => server.openConnections() === 0, CLOSE_WITHIN_MS, 'every socket closing after GC')
      // The sockets are closed; the caller's signal must not keep a listener (and a native cancel
      // token) per stream that is gone.
      await fullGc()
      const left = getEventListeners(shared.signal, 'abort').length
      t.diagnostic(`${left} abort listeners left on the shared signal by ${n} collected streams`)
      assert.ok(left <= 1, `${left} abort listeners left on the shared signal (one shared listener is allowed)`)
    },
  )
})

describe('under load: one proxy, one connection pool', () => {
  test(`${LOAD_STREAMS} concurrent streams each get exactly their own chunks, in order`, { timeout: LOAD_WITHIN_MS + 20_000 }, async (t) => {
    // The provider answers once every request is in: all the streams are under way side by side.
    const { server, proxy } = await setup(t, { holdUntil: LOAD_STREAMS })
    const started = performance.now()
    const results = await allWithin(
      server,
      Array.from({ length: LOAD_STREAMS }, (_, i) =>
        collect(proxy.stream(request(`echo-${LOAD_CHUNKS}.req-${i}`, `req-${i}`))),
      ),
    )
    const ms = performance.now() - started
    t.diagnostic(
      `${LOAD_STREAMS} streams × ${LOAD_CHUNKS + 3} chunks: ${ms.toFixed(0)} ms wall; ` +
        `${server.stats.accepted} connections opened, ${server.openConnections()} open after (pooled); ` +
        `at most ${server.stats.maxBusy} responses under way at once`,
    )
    assert.deepEqual(server.stats.errors, [])
    assert.equal(server.stats.requests, LOAD_STREAMS, 'one request per stream')
    results.forEach((chunks, i) => checkStream(chunks, `req-${i}`, `echo-${LOAD_CHUNKS}.req-${i}`, LOAD_CHUNKS))
    // Every response was read to its end: no connection is left in the middle of one.
    await server.waitFor(() => server.busyConnections() === 0, CLOSE_WITHIN_MS, 'every response being finished')
    assert.ok(server.openConnections() <= LOAD_STREAMS, 'no more pooled connections than requests at once')
    // After the burst the pool keeps its bound of idle connections and closes the others.
    await server.waitFor(
      () => server.openConnections() <= POOL_MAX_IDLE,
      CLOSE_WITHIN_MS,
      `the connections past the pool's bound (${POOL_MAX_IDLE} idle per host) closing`,
    )
    // The test means something only if the streams really ran side by side.
    assert.ok(server.stats.maxBusy >= LOAD_STREAMS / 2, `only ${server.stats.maxBusy} streams were under way at once`)
  })

  test(`${LOAD_STREAMS} concurrent generate calls each get their own answer, on the same pool`, { timeout: 2 * LOAD_WITHIN_MS + 20_000 }, async (t) => {
    // The first round is answered once all its requests are in; the second as they come.
    const { server, proxy } = await setup(t, { holdUntil: LOAD_STREAMS })
    const answers = async (round) => {
      const started = performance.now()
      const results = await allWithin(
        server,
        Array.from({ length: LOAD_STREAMS }, (_, i) =>
          proxy.generate(request(`echo-${LOAD_CHUNKS}.${round}-${i}`, `${round}-${i}`)),
        ),
      )
      const ms = performance.now() - started
      results.forEach((res, i) => {
        const tag = `${round}-${i}`
        assert.equal(res.id, `chatcmpl-${tag}`, `${tag}: another call's answer`)
        assert.equal(res.model, `echo-${LOAD_CHUNKS}.${tag}`, `${tag}: another call's model`)
        assert.equal(res.choices.length, 1)
        assert.equal(res.choices[0].message.content, expectedPieces(tag, LOAD_CHUNKS).join(''), tag)
        assert.equal(res.choices[0].finish_reason, 'stop')
        assert.equal(res.usage.completion_tokens, LOAD_CHUNKS)
      })
      return ms
    }
    const first = await answers('a')
    const opened = server.stats.accepted
    // The pool keeps up to its bound of the first round's connections, idle, and closes the rest.
    const bound = Math.min(LOAD_STREAMS, POOL_MAX_IDLE)
    await server.waitFor(
      () => server.openConnections() <= bound,
      CLOSE_WITHIN_MS,
      `the connections past the pool's bound (${POOL_MAX_IDLE} idle per host) closing`,
    )
    const pooled = server.openConnections()
    const second = await answers('b')
    const reopened = server.stats.accepted - opened
    t.diagnostic(
      `${LOAD_STREAMS} generate calls: ${first.toFixed(0)} ms wall (${opened} connections opened, ${pooled} kept idle), ` +
        `again: ${second.toFixed(0)} ms (${reopened} more connections; the rest reused from the pool)`,
    )
    assert.deepEqual(server.stats.errors, [])
    assert.equal(server.stats.requests, 2 * LOAD_STREAMS)
    assert.ok(pooled >= bound / 2, `only ${pooled} of the first round's connections were kept in the pool`)
    // The second round finds the pooled connections: it opens no more than it needs beyond them.
    assert.ok(
      reopened <= LOAD_STREAMS - pooled + LOAD_STREAMS / 10,
      `the second round opened ${reopened} new connections with ${pooled} in the pool`,
    )
  })

  test('streams and generate calls mixed, on two proxies sharing the pool, never swap answers', { timeout: LOAD_WITHIN_MS + 20_000 }, async (t) => {
    const n = Math.min(LOAD_STREAMS, 1000)
    const { server } = await setup(t, { holdUntil: n })
    const proxies = [proxyFor(server), proxyFor(server)]
    const started = performance.now()
    await allWithin(
      server,
      Array.from({ length: n }, async (_, i) => {
        const proxy = proxies[i % 2]
        const tag = `mix-${i}`
        const model = `echo-${3 + (i % 5)}.${tag}`
        const pieces = 3 + (i % 5)
        if (i % 3 === 0) {
          const res = await proxy.generate(request(model, tag))
          assert.equal(res.id, `chatcmpl-${tag}`)
          assert.equal(res.model, model)
          assert.equal(res.choices[0].message.content, expectedPieces(tag, pieces).join(''))
        } else {
          checkStream(await collect(proxy.stream(request(model, tag))), tag, model, pieces)
        }
      }),
    )
    t.diagnostic(`${n} mixed calls: ${(performance.now() - started).toFixed(0)} ms wall`)
    assert.deepEqual(server.stats.errors, [])
    assert.equal(server.stats.requests, n)
  })
})
