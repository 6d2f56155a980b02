'use strict'

// LLM_PROXY_LOG: what each call did, on stderr. Each test runs a small script in a child process
// (the level is read from the environment when an LLMProxy is made) against loopback providers
// served by this process, and reads the child's stderr.

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { startUpstream, writeResponse, openSse, sseBody, chunk, JSON_HEADERS, within } = require('./helpers/upstream')

const ROOT = path.join(__dirname, '..')

const KEY = 'sk-log-test-SECRETKEY-0123456789'
const GW_KEY = 'gw-SECRET-gateway-key-98765'
const HEADER_SECRET = 'hdr-SECRET-value-5555'
const URL_PASSWORD = 'urlSECRETpassword77'
/** Every credential given to the child; none may show in its stderr. */
const SECRETS = [KEY, GW_KEY, HEADER_SECRET, URL_PASSWORD, 'SECRET']

function cleanEnv(extra) {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (/^(OPENAI_|ANTHROPIC_|AWS_|LLM_PROXY_)/.test(name)) delete env[name]
  }
  return { ...env, ...extra }
}

/**
 * Runs `body` (the text of an async function of `proxy` and `pkg`, returning what is printed as
 * JSON on stdout) in a child with `options` for `new LLMProxy(options)` and the environment `env`.
 * Resolves with `{ status, result, stderr, lines }`.
 */
function runChild(body, { options = {}, env = {} } = {}) {
  const script = `
    const pkg = require(${JSON.stringify(ROOT)})
    const proxy = new pkg.LLMProxy(JSON.parse(process.env.TEST_OPTIONS))
    const run = async (proxy, pkg) => { ${body} }
    run(proxy, pkg).then(
      (result) => process.stdout.write(JSON.stringify(result === undefined ? null : result)),
      (err) => { process.stdout.write(JSON.stringify({ thrown: err.code || String(err) })) },
    )`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      cwd: ROOT,
      env: cleanEnv({ ...env, TEST_OPTIONS: JSON.stringify(options) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => {
      let result
      try {
        result = JSON.parse(stdout)
      } catch {
        result = stdout
      }
      resolve({ status, result, stderr, lines: stderr.split('\n').filter(Boolean) })
    })
  })
}

/** `key=value` fields of a line; quoted values are JSON strings. */
function fields(line) {
  const out = {}
  const re = / ([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ ]*)/g
  let m
  while ((m = re.exec(line)) !== null) out[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2]
  return out
}

function assertNoSecrets(stderr) {
  for (const secret of SECRETS) assert.ok(!stderr.includes(secret), `${secret} shows in:\n${stderr}`)
}

const MS = /^\d+ms$/

function completion(content) {
  return {
    id: 'chatcmpl-log',
    object: 'chat.completion',
    created: 1700000000,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 },
  }
}

const RATE_LIMITED = [429, { ...JSON_HEADERS, 'retry-after-ms': '20' }, { error: { message: `Rate limit reached for ${KEY}`, type: 'rate_limit' } }]

/** A loopback provider answering the n-th request with `answers[n]` (the last one repeats). */
async function provider(t, answers) {
  let n = 0
  const upstream = await startUpstream((req, socket) => {
    const answer = answers[Math.min(n++, answers.length - 1)]
    if (typeof answer === 'function') return answer(req, socket)
    const [status, headers, body] = answer
    return writeResponse(socket, status, headers, body)
  })
  t.after(() => upstream.close())
  return upstream
}

/** Options with OpenAI at `upstream`, its URL carrying a password, and a compatible gateway. */
function optionsFor(upstream, extra = {}) {
  const withPassword = upstream.baseUrl.replace('http://', `http://user:${URL_PASSWORD}@`)
  return {
    openai: { apiKey: KEY, baseUrl: withPassword, headers: { 'x-team-secret': HEADER_SECRET } },
    compatible: { gw: { baseUrl: upstream.baseUrl, apiKey: GW_KEY } },
    retry: { maxRetries: 2, initialDelayMs: 10 },
    ...extra,
  }
}

const REQ = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hi' }] }
const GENERATE = `return (await proxy.generate(${JSON.stringify(REQ)})).choices[0].message.content`
const STREAM = `let text = ''; for await (const c of proxy.stream(${JSON.stringify(REQ)})) text += c.choices[0]?.delta?.content ?? ''; return text`

describe('off', () => {
  test('without LLM_PROXY_LOG nothing is written to stderr, answers, retries and errors alike', async (t) => {
    const upstream = await provider(t, [RATE_LIMITED, [200, JSON_HEADERS, completion('hi')]])
    const r = await runChild(
      `const a = await proxy.generate(${JSON.stringify(REQ)})
       let n = 0; for await (const c of proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'a b' }] })) n++
       let code; try { await proxy.generate({ model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'x' }] }) } catch (e) { code = e.code }
       return [a.choices[0].message.content, n, code]`,
      { options: optionsFor(upstream) },
    )
    assert.deepEqual(r.result, ['hi', 5, 'config'])
    assert.equal(upstream.requests.length, 2)
    assert.equal(r.stderr, '')
    for (const value of ['', 'off', 'OFF']) {
      const off = await runChild(GENERATE.replace('gpt-4o-mini', 'mock/x'), { env: { LLM_PROXY_LOG: value } })
      assert.equal(off.stderr, '', `LLM_PROXY_LOG=${value}`)
    }
  })

  test('an unknown level turns logging off and says so once', async () => {
    const r = await runChild(
      `await proxy.generate({ model: 'mock/x', messages: [{ role: 'user', content: 'a' }] })
       await new pkg.LLMProxy().generate({ model: 'mock/x', messages: [{ role: 'user', content: 'b' }] })`,
      { env: { LLM_PROXY_LOG: 'verbose' } },
    )
    assert.deepEqual(r.lines, ['llm-proxy warn  config LLM_PROXY_LOG=verbose is not one of off, info, debug: logging is off'])
  })
})

describe('info: one line per call', () => {
  test('a generate retried after a 429: provider, models, status, attempts and timings', async (t) => {
    const upstream = await provider(t, [RATE_LIMITED, [200, JSON_HEADERS, completion('hi')]])
    const r = await runChild(GENERATE, { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'info' } })
    assert.equal(r.result, 'hi')
    assert.equal(upstream.requests.length, 2)
    assert.equal(r.lines.length, 1, r.stderr)
    const line = r.lines[0]
    assert.match(line, /^llm-proxy info  generate id=\d+ result=ok model=gpt-4o-mini provider=openai upstream=gpt-4o-mini answered=gpt-4o-mini-2024-07-18 status=200 attempts=2 headers=\d+ms total=\d+ms$/)
    assertNoSecrets(r.stderr)
  })

  test('a stream: time to the first chunk and the chunks delivered', async (t) => {
    const upstream = await provider(t, [[200, { 'Content-Type': 'text/event-stream' }, sseBody(['Hel', 'lo'], { model: 'gpt-4o-mini', usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })]])
    const r = await runChild(STREAM, { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'info' } })
    assert.equal(r.result, 'Hello')
    assert.equal(r.lines.length, 1, r.stderr)
    const f = fields(r.lines[0])
    assert.match(r.lines[0], /^llm-proxy info  stream id=\d+ result=ok /)
    assert.equal(f.model, 'gpt-4o-mini')
    assert.equal(f.provider, 'openai')
    assert.equal(f.status, '200')
    assert.equal(f.attempts, '1')
    assert.match(f.headers, MS)
    assert.match(f.first_chunk, MS)
    assert.match(f.total, MS)
    // role + 2 pieces + finish + usage
    assert.equal(f.chunks, '5')
  })

  test('errors: the code, status and message, without the key the provider echoed', async (t) => {
    const upstream = await provider(t, [[401, JSON_HEADERS, { error: { message: `Incorrect API key provided: ${KEY}`, type: 'invalid_request_error' } }]])
    const r = await runChild(GENERATE, { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'info' } })
    assert.deepEqual(r.result, { thrown: 'authentication' })
    assert.equal(r.lines.length, 1, r.stderr)
    const f = fields(r.lines[0])
    assert.match(r.lines[0], /^llm-proxy info  generate id=\d+ result=error /)
    assert.equal(f.status, '401')
    assert.equal(f.attempts, '1')
    assert.equal(f.error, 'authentication')
    assert.match(f.message, /Incorrect API key provided: \[redacted\]/)
    assertNoSecrets(r.stderr)

    // An unknown model fails before any provider is asked.
    const unknown = await runChild(`await proxy.generate({ model: 'nosuch', messages: [{ role: 'user', content: 'x' }] })`, { env: { LLM_PROXY_LOG: 'info' } })
    assert.equal(unknown.lines.length, 1)
    assert.match(unknown.lines[0], /^llm-proxy info  generate id=\d+ result=error model=nosuch total=\d+ms error=unsupported_model message="No provider is known/)
  })

  test('a stream cut in the middle ends with an error line; one left by break is cancelled', async (t) => {
    const upstream = await provider(t, [
      async (req, socket) => {
        const sse = await openSse(socket)
        await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
        await sse.event(chunk({ delta: { content: 'par' } }))
        sse.cut()
      },
      async (req, socket) => {
        const sse = await openSse(socket)
        await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
        await sse.event(chunk({ delta: { content: 'first' } }))
        // …then nothing, until the client goes.
      },
    ])
    const r = await runChild(
      `let code; try { for await (const c of proxy.stream(${JSON.stringify(REQ)})) {} } catch (e) { code = e.code }
       for await (const c of proxy.stream(${JSON.stringify(REQ)})) { if (c.choices[0]?.delta?.content) break }
       await new Promise((resolve) => setTimeout(resolve, 200))
       return code`,
      { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'info' } },
    )
    assert.equal(r.result, 'stream_interrupted')
    assert.equal(r.lines.length, 2, r.stderr)
    const [cut, left] = r.lines.map(fields)
    assert.equal(cut.result, 'error')
    assert.equal(cut.error, 'stream_interrupted')
    assert.equal(cut.chunks, '2')
    assert.equal(left.result, 'cancelled')
    assert.equal(left.error, undefined)
    assert.ok(Number(left.chunks) >= 1, r.lines[1])
    assert.notEqual(cut.id, left.id)
  })

  test('an aborted generate is logged as cancelled', async (t) => {
    const upstream = await provider(t, [() => {}])
    const r = await runChild(
      `try { await proxy.generate(${JSON.stringify(REQ)}, { signal: AbortSignal.timeout(150) }) } catch (e) { return e.code }`,
      { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'debug' } },
    )
    assert.equal(r.result, 'aborted')
    assert.equal(r.lines.length, 1, r.stderr)
    assert.match(r.lines[0], /^llm-proxy info  generate id=\d+ result=cancelled model=gpt-4o-mini provider=openai upstream=gpt-4o-mini attempts=1 total=\d+ms$/)
  })

  test('mock/ calls are logged too', async () => {
    const r = await runChild(
      `await proxy.generate({ model: 'mock/a', messages: [{ role: 'user', content: 'x' }] })
       for await (const c of proxy.stream({ model: 'mock/b', messages: [{ role: 'user', content: 'x y' }] })) {}`,
      { env: { LLM_PROXY_LOG: 'INFO' } },
    )
    assert.equal(r.lines.length, 2, r.stderr)
    assert.match(r.lines[0], /^llm-proxy info  generate id=\d+ result=ok model=mock\/a provider=mock upstream=a /)
    assert.match(r.lines[1], /^llm-proxy info  stream id=\d+ result=ok model=mock\/b provider=mock upstream=b .*chunks=5 /)
  })
})

describe('debug: also one line per attempt and per fallback', () => {
  test('each attempt: the redacted URL, body size, status, retry reason and wait', async (t) => {
    const upstream = await provider(t, [RATE_LIMITED, [200, JSON_HEADERS, completion('hi')]])
    const r = await runChild(GENERATE, { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'debug' } })
    assert.equal(r.result, 'hi')
    assert.equal(r.lines.length, 3, r.stderr)
    assertNoSecrets(r.stderr)
    const [first, second, end] = r.lines
    assert.match(first, /^llm-proxy debug attempt /)
    assert.match(second, /^llm-proxy debug attempt /)
    assert.match(end, /^llm-proxy info  generate /)
    const a1 = fields(first)
    const a2 = fields(second)
    assert.equal(a1.attempt, '1')
    assert.equal(a1.model, 'gpt-4o-mini')
    assert.equal(a1.provider, 'openai')
    assert.equal(a1.url, `http://[redacted]@127.0.0.1:${upstream.port}/v1/chat/completions`)
    assert.equal(a1.bytes, String(upstream.requests[0].bodyBytes.length))
    assert.equal(a1.status, '429')
    assert.equal(a1.result, 'error')
    assert.equal(a1.error, 'rate_limit')
    assert.equal(a1.retry_in, '20ms')
    assert.match(a1.message, /Rate limit reached for \[redacted\]/)
    assert.equal(a2.attempt, '2')
    assert.equal(a2.status, '200')
    assert.equal(a2.result, 'ok')
    assert.match(a2.headers, MS)
    assert.match(a2.took, MS)
    assert.equal(a2.retry_in, undefined)
    assert.equal(fields(end).attempts, '2')
    assert.ok([a1.id, a2.id].every((id) => id === fields(end).id), 'the lines of a call share its id')
  })

  test('a move to a fallback, and the model that answered', async (t) => {
    const upstream = await provider(t, [[503, JSON_HEADERS, { error: { message: 'busy', type: 'server_error' } }]])
    const r = await runChild(
      `const res = await proxy.generate(${JSON.stringify(REQ)}, { fallbacks: ['gw/other', 'mock/backup'], retry: { maxRetries: 0 } })
       return res.llm_proxy.model`,
      { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'debug' } },
    )
    assert.equal(r.result, 'mock/backup')
    const kinds = r.lines.map((l) => l.split(' ').filter(Boolean).slice(1, 3).join(' '))
    assert.deepEqual(kinds, ['debug attempt', 'debug fallback', 'debug attempt', 'debug fallback', 'info generate'], r.stderr)
    const moves = r.lines.filter((l) => l.includes(' fallback ')).map(fields)
    assert.deepEqual(
      moves.map((f) => [f.from, f.to, f.error, f.attempts]),
      [
        ['gpt-4o-mini', 'gw/other', 'overloaded', '1'],
        ['gw/other', 'mock/backup', 'overloaded', '1'],
      ],
    )
    assert.equal(fields(r.lines[2]).provider, 'gw')
    assert.equal(fields(r.lines[2]).url, `${upstream.baseUrl}/chat/completions`)
    const end = fields(r.lines[4])
    assert.equal(end.model, 'gpt-4o-mini')
    assert.equal(end.fallback, 'mock/backup')
    assert.equal(end.provider, 'mock')
    assertNoSecrets(r.stderr)
  })

  test('a time limit that fires says which', async (t) => {
    const upstream = await provider(t, [() => {}])
    const r = await runChild(
      `try { for await (const c of proxy.stream(${JSON.stringify(REQ)}, { timeouts: { firstChunkMs: 100 }, retry: { maxRetries: 0 } })) {} } catch (e) { return e.code }`,
      { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'debug' } },
    )
    assert.equal(r.result, 'timeout')
    assert.equal(r.lines.length, 2, r.stderr)
    const attempt = fields(r.lines[0])
    assert.equal(attempt.error, 'timeout')
    assert.equal(attempt.timeout, 'firstChunk')
    assert.equal(attempt.status, undefined)
    const end = fields(r.lines[1])
    assert.equal(end.result, 'error')
    assert.equal(end.timeout, 'firstChunk')
  })

  test('concurrent calls write whole lines, one per write', async (t) => {
    const upstream = await provider(t, [(req, socket) => writeResponse(socket, 200, JSON_HEADERS, completion('x'.repeat(50)), { mode: { chunks: 3 } })])
    const n = 40
    const r = await within(
      60_000,
      runChild(
        `await Promise.all(Array.from({ length: ${n} }, (_, i) => i % 2
           ? proxy.generate(${JSON.stringify(REQ)})
           : proxy.generate({ model: 'mock/m' + i, messages: [{ role: 'user', content: 'word '.repeat(200) }] })))
         return ${n}`,
        { options: optionsFor(upstream), env: { LLM_PROXY_LOG: 'debug' } },
      ),
      'the concurrent calls',
    )
    assert.equal(r.result, n)
    assert.ok(r.stderr.endsWith('\n'))
    // n/2 upstream calls with one attempt line each, and an end line per call.
    assert.equal(r.lines.length, n / 2 + n, r.stderr)
    for (const line of r.lines) {
      assert.match(line, /^llm-proxy (info  generate|debug attempt) id=\d+ /, line)
      assert.match(line, /( total=\d+ms| result=ok)$/, line)
    }
    const ids = new Set(r.lines.filter((l) => l.startsWith('llm-proxy info')).map((l) => fields(l).id))
    assert.equal(ids.size, n, 'one end line per call')
    assertNoSecrets(r.stderr)
  })
})
