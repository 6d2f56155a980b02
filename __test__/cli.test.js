'use strict'

// The command line (bin/llm-proxy.js), run as a child process: against the mock/ provider, and
// against a loopback OpenAI-compatible provider (OPENAI_BASE_URL) to see what reaches the request.

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { startUpstream, openSse, writeResponse, sseBody, chunk, JSON_HEADERS, within } = require('./helpers/upstream')

const ROOT = path.join(__dirname, '..')
const CLI = path.join(ROOT, 'bin', 'llm-proxy.js')
const pkg = require(path.join(ROOT, 'package.json'))

/** The environment without anything that configures llm-proxy. */
function cleanEnv(extra = {}) {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (/^(OPENAI_|ANTHROPIC_|AWS_|LLM_PROXY_)/.test(name)) delete env[name]
  }
  return { ...env, ...extra }
}

/**
 * Runs the CLI with `args`; resolves with `{ status, signal, stdout, stderr }`. `input` is written
 * to its stdin (which is then closed); `onStdout(text, child)` sees the output as it arrives.
 */
function run(args, { input, env, onStdout } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d) => {
      stdout += d
      if (onStdout) onStdout(stdout, child)
    })
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }))
    if (input !== undefined) child.stdin.end(input)
    else child.stdin.end()
  })
}

/** A loopback OpenAI: `handler(req, socket)`, and the environment that points llm-proxy at it. */
async function openai(t, handler) {
  const upstream = await startUpstream(handler)
  t.after(() => upstream.close())
  return { upstream, env: { OPENAI_BASE_URL: upstream.baseUrl, OPENAI_API_KEY: 'sk-cli-test-key-0123456789' } }
}

const answer = (pieces) => (req, socket) =>
  writeResponse(socket, 200, { 'Content-Type': 'text/event-stream' }, sseBody(pieces, { usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))

describe('answers', () => {
  test('the question is answered on stdout, with a newline at the end', async () => {
    const r = await run(['Hello', 'there, world', '-m', 'mock/echo'])
    assert.deepEqual(r, { status: 0, signal: null, stdout: 'Hello there, world\n', stderr: '' })
  })

  test('--json prints every chunk as one line of JSON', async () => {
    const r = await run(['--json', '-m', 'mock/echo', 'one two three'])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.ok(r.stdout.endsWith('\n'))
    const chunks = r.stdout.trimEnd().split('\n').map((line) => JSON.parse(line))
    assert.ok(chunks.length >= 5, r.stdout)
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk')
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
    assert.equal(text, 'one two three')
    assert.deepEqual(chunks.at(-1).choices, [])
    assert.equal(chunks.at(-1).usage.completion_tokens, 3)
  })

  test('the question is read from stdin when there is none in the arguments (or it is "-")', async () => {
    let r = await run(['-m', 'mock/echo'], { input: 'from stdin\n' })
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'from stdin\n', ''])
    r = await run(['-m', 'mock/echo', '-'], { input: 'multi\nline question\n\n' })
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'multi\nline question\n', ''])
    // Arguments win over stdin.
    r = await run(['-m', 'mock/echo', 'argument'], { input: 'ignored' })
    assert.equal(r.stdout, 'argument\n')
  })

  test('LLM_PROXY_MODEL is the model when -m is not given; -m wins over it', async () => {
    let r = await run(['hi'], { env: { LLM_PROXY_MODEL: 'mock/from-env' } })
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'hi\n', ''])
    r = await run(['--json', '-m', 'mock/flag', 'hi'], { env: { LLM_PROXY_MODEL: 'nosuch-model' } })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(JSON.parse(r.stdout.split('\n')[0]).model, 'mock/flag')
  })

  test('--system, --max-tokens and --temperature reach the request; keys come from the environment', async (t) => {
    const { upstream, env } = await openai(t, answer(['Hi', ' you']))
    const r = await run(['--system', 'Be brief.', '--max-tokens', '42', '--temperature=0.3', '-m', 'gpt-4o-mini', 'Say', 'hi'], { env })
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'Hi you\n', ''])
    assert.equal(upstream.requests.length, 1)
    const req = upstream.requests[0]
    assert.equal(req.path, '/v1/chat/completions')
    assert.equal(req.headers.authorization, 'Bearer sk-cli-test-key-0123456789')
    assert.equal(req.json.model, 'gpt-4o-mini')
    assert.equal(req.json.stream, true)
    assert.deepEqual(req.json.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hi' },
    ])
    assert.equal(req.json.max_tokens, 42)
    assert.equal(req.json.temperature, 0.3)
  })

  test('without the options, the request has only the question', async (t) => {
    const { upstream, env } = await openai(t, answer(['ok']))
    const r = await run(['-m', 'openai/gpt-4o-mini', 'q'], { env })
    assert.equal(r.status, 0, r.stderr)
    const body = upstream.requests[0].json
    assert.deepEqual(body.messages, [{ role: 'user', content: 'q' }])
    assert.equal(body.max_tokens, undefined)
    assert.equal(body.temperature, undefined)
  })

  test('package.json installs it as the llm-proxy command', () => {
    const fs = require('node:fs')
    assert.deepEqual(pkg.bin, { 'llm-proxy': 'bin/llm-proxy.js' })
    assert.ok(pkg.files.includes('bin/'), 'bin/ is published')
    assert.ok(fs.readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n'), 'a node shebang')
  })

  test('--help and --version', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run([flag])
      assert.equal(r.status, 0)
      assert.match(r.stdout, /^Usage: llm-proxy \[options\] <question\.\.\.>/)
      for (const option of ['--model', '--system', '--max-tokens', '--temperature', '--json', 'LLM_PROXY_MODEL', 'LLM_PROXY_LOG']) {
        assert.ok(r.stdout.includes(option), option)
      }
      assert.equal(r.stderr, '')
    }
    for (const flag of ['--version', '-v']) {
      const r = await run([flag])
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, `llm-proxy ${pkg.version}\n`, ''])
    }
  })
})

describe('errors', () => {
  /** One line on stderr: `llm-proxy: <message> (<code>)`. */
  function assertOneLine(stderr, code) {
    assert.match(stderr, new RegExp(`^llm-proxy: [^\\n]+ \\(${code}\\)\\n$`), stderr)
    assert.ok(!/\n\s+at /.test(stderr), 'no stack trace')
  }

  test('an unknown model: exit 1 and one line naming the code', async () => {
    const r = await run(['-m', 'no-such-model', 'hi'])
    assert.equal(r.status, 1)
    assert.equal(r.stdout, '')
    assertOneLine(r.stderr, 'unsupported_model')
    assert.match(r.stderr, /no-such-model/)
  })

  test('a provider error: one line with its code, and never the key', async (t) => {
    const { env } = await openai(t, (req, socket) =>
      writeResponse(socket, 401, JSON_HEADERS, {
        error: { message: `Incorrect API key provided: ${env.OPENAI_API_KEY}`, type: 'invalid_request_error', code: 'invalid_api_key' },
      }),
    )
    const r = await run(['-m', 'gpt-4o-mini', 'hi'], { env })
    assert.equal(r.status, 1)
    assertOneLine(r.stderr, 'authentication')
    assert.ok(!r.stderr.includes('cli-test-key'), r.stderr)
  })

  test('no key for the provider: a config error', async () => {
    const r = await run(['-m', 'gpt-4o-mini', 'hi'])
    assert.equal(r.status, 1)
    assertOneLine(r.stderr, 'config')
    assert.match(r.stderr, /OPENAI_API_KEY/)
  })

  test('a stream cut in the middle: the text so far, its own line, then the error', async (t) => {
    const { env } = await openai(t, async (req, socket) => {
      const sse = await openSse(socket)
      await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
      await sse.event(chunk({ delta: { content: 'partial' } }))
      sse.cut()
    })
    const r = await run(['-m', 'gpt-4o-mini', 'hi'], { env })
    assert.equal(r.status, 1)
    assert.equal(r.stdout, 'partial\n')
    assertOneLine(r.stderr, 'stream_interrupted')
  })

  test('bad usage: exit 2, the problem and a usage hint on stderr, nothing on stdout', async () => {
    const cases = [
      [['hi'], /no model/],
      [['--nope', '-m', 'mock/x', 'hi'], /unknown option --nope/],
      [['-m'], /-m needs a value/],
      [['--json=yes', '-m', 'mock/x', 'hi'], /--json takes no value/],
      [['--max-tokens', 'many', '-m', 'mock/x', 'hi'], /--max-tokens must be a whole number/],
      [['--max-tokens', '0', '-m', 'mock/x', 'hi'], /--max-tokens must be a whole number/],
      [['--temperature', 'warm', '-m', 'mock/x', 'hi'], /--temperature must be a number/],
    ]
    for (const [args, problem] of cases) {
      const r = await run(args)
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stdout, '')
      const lines = r.stderr.trimEnd().split('\n')
      assert.match(lines[0], /^llm-proxy: .+ \(usage\)$/)
      assert.match(lines[0], problem)
      assert.match(r.stderr, /Usage: llm-proxy/)
      assert.match(r.stderr, /llm-proxy --help/)
    }
    // An empty question on stdin.
    const r = await run(['-m', 'mock/x'], { input: '  \n' })
    assert.equal(r.status, 2)
    assert.match(r.stderr, /the question is empty/)
  })
})

describe('Ctrl-C', () => {
  test('SIGINT aborts the stream, closes the connection and exits 130 without an error line', async (t) => {
    const { upstream, env } = await openai(t, async (req, socket) => {
      const sse = await openSse(socket)
      await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
      await sse.event(chunk({ delta: { content: 'thinking' } }))
      // …and nothing more until the client goes.
    })
    let sent = false
    const r = await within(
      20_000,
      run(['-m', 'gpt-4o-mini', 'hi'], {
        env,
        onStdout(stdout, child) {
          if (!sent && stdout.includes('thinking')) {
            sent = true
            child.kill('SIGINT')
          }
        },
      }),
      'the CLI exiting after SIGINT',
    )
    assert.ok(sent, 'the first text arrived')
    assert.equal(r.status, 130)
    assert.equal(r.stdout, 'thinking\n')
    assert.equal(r.stderr, '')
    const conn = upstream.requests[0].conn
    await within(5000, conn.whenClosed, 'the upstream connection closing')
    assert.equal(conn.closedBy, 'client')
  })

  test('SIGINT while the question is being read from stdin exits 130', async () => {
    // Nothing shows when the CLI has started reading, so it is given time; a SIGINT that came before
    // its handler (a very slow start) kills it instead, and is tried again with longer.
    for (const waitMs of [800, 4000]) {
      const child = spawn(process.execPath, [CLI, '-m', 'mock/x'], { cwd: ROOT, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      const closed = new Promise((resolve) => child.on('close', (...a) => resolve(a)))
      child.stdin.write('half a question')
      await new Promise((resolve) => setTimeout(resolve, waitMs))
      child.kill('SIGINT')
      const [status, signal] = await within(10_000, closed, 'exit')
      if (signal === 'SIGINT') continue
      assert.equal(status, 130)
      assert.equal(stderr, '')
      return
    }
    assert.fail('the CLI never got to handle SIGINT')
  })
})
