'use strict'

// Every script in examples/ runs, without keys or network, exits 0 and prints what it says it prints.
// The files are found here, so a new example is tested as soon as it is added. In an example:
//   // expect: <text>        stdout must contain <text> (any number of these lines)
//   // example-test: skip    not run here (an example that needs a real provider and its key)

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const DIR = path.join(ROOT, 'examples')
const RUNNABLE = /\.(js|cjs|mjs)$/

/** The environment without keys, endpoints or llm-proxy settings: examples fall back to mock/. */
function cleanEnv() {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (/^(OPENAI_|ANTHROPIC_|AWS_|LLM_PROXY_)/.test(name)) delete env[name]
  }
  return env
}

function runExample(file) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, stdout, stderr })
    })
  })
}

const files = fs
  .readdirSync(DIR)
  .filter((f) => RUNNABLE.test(f))
  .sort()

test('examples/ has the examples, demo.js included', () => {
  for (const name of ['demo.js', 'basic-generate.js', 'streaming.js', 'tools.js', 'errors-and-retries.js', 'cancellation.js', 'fallbacks.js', 'legacy-1x.js']) {
    assert.ok(files.includes(name), `${name} is missing`)
  }
})

describe('every example runs against mock/ without a key', () => {
  for (const name of files) {
    const file = path.join(DIR, name)
    const source = fs.readFileSync(file, 'utf8')
    const skip = /^\s*\/\/\s*example-test:\s*skip\b/m.test(source)
    const expected = [...source.matchAll(/^\s*\/\/\s*expect:\s?(.*)$/gm)].map((m) => m[1])
    test(name, { skip: skip && 'marked example-test: skip' }, async () => {
      const r = await runExample(file)
      assert.equal(r.signal, null, `${name} was killed (took over 60 s?)\n${r.stderr}`)
      assert.equal(r.status, 0, `${name} exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
      assert.equal(r.stderr, '', `${name} wrote to stderr`)
      assert.ok(r.stdout.trim().length > 0, `${name} printed nothing`)
      for (const text of expected) assert.ok(r.stdout.includes(text), `${name}: expected output containing ${JSON.stringify(text)}, got:\n${r.stdout}`)
    })
  }
})
