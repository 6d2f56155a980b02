'use strict'

// Smoke test of the benchmark harness (bench/run.js --quick) with whatever addon is built: every
// peer × route × workload figure, the import times and the installed sizes are measured, and every
// call was verified. Timings are not asserted (the debug addon is slow, and CI machines are noisy).

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

const COMBOS = [
  'undici/openai',
  'undici/anthropic',
  'llm-proxy/openai',
  'llm-proxy/anthropic',
  'openai/openai',
  'llm-proxy-1/openai',
  'llm-proxy-1/anthropic',
]
const FIGURES = ['seq_median_us', 'seq_p99_us', 'conc_rps', 'stream_chunks_per_s', 'stream_ttfc_median_us', 'peak_rss_mb']

const positive = (v, what) => assert.ok(Number.isFinite(v) && v > 0, `${what} is ${v}, expected a positive finite number`)

// The peers the benchmark compares need Node 20.18 (undici 7); the package itself runs on Node 18.
const [major, minor] = process.versions.node.split('.').map(Number)
const peersRun = major > 20 || (major === 20 && minor >= 18)

test('bench/run.js --quick measures every figure of every peer and verifies every call', {
  timeout: 180_000,
  skip: peersRun ? false : `the benchmark's peers need Node >= 20.18 (this is ${process.versions.node})`,
}, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-bench-test-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'bench.json')
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bench', 'run.js'), '--quick', '--json', out], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 170_000,
  })
  const output = `${run.stdout}\n${run.stderr}`
  assert.equal(run.status, 0, `bench/run.js --quick exited with ${run.status ?? run.signal}:\n${output}`)
  assert.match(run.stdout, /verification: passed/)
  assert.match(run.stdout, /targets \(llm-proxy 2\.x\)/)

  const json = JSON.parse(fs.readFileSync(out, 'utf8'))
  assert.equal(json.quick, true)
  assert.equal(json.verification.passed, true, JSON.stringify(json.verification.failures, null, 2))
  assert.deepEqual(json.verification.failures, [])

  assert.deepEqual(Object.keys(json.figures).sort(), [...COMBOS].sort())
  for (const combo of COMBOS) {
    for (const f of FIGURES) positive(json.figures[combo][f], `${combo} ${f}`)
    // Every call of every workload was checked: warm-up and timed ones.
    const r = json.results[combo]
    const c = json.config
    assert.equal(r.seq.checked, c.seq.calls + c.seq.warmup, `${combo} seq calls checked`)
    assert.equal(r.conc.checked, c.conc.calls + c.conc.warmup, `${combo} conc calls checked`)
    assert.equal(r.stream.checked, c.stream.streams + c.stream.warmup, `${combo} streams checked`)
    assert.equal(r.stream.chunks_per_stream, c.stream.chunks)
    assert.equal(r.conc.inflight, c.conc.inflight)
  }

  for (const key of ['llm-proxy', 'llm-proxy (ESM)', 'openai', 'undici', 'llm-proxy-1']) {
    const p = json.import.packages[key]
    assert.ok(p, `import time of ${key} measured`)
    positive(p.median_ms, `${key} import median_ms`)
    positive(p.in_process_ms, `${key} import in_process_ms`)
    assert.ok(Number.isFinite(p.over_bare_ms), `${key} over_bare_ms is ${p.over_bare_ms}`)
  }
  positive(json.import.bare_ms, 'bare node')

  for (const key of ['llm-proxy', 'openai', 'undici', 'llm-proxy-1']) {
    const s = json.installed[key]
    assert.ok(s, `installed size of ${key} measured`)
    positive(s.bytes, `${key} installed bytes`)
    assert.ok(Number.isInteger(s.packages) && s.packages >= 1, `${key} packages`)
    assert.deepEqual(s.missing, [], `${key}: dependencies not installed`)
  }
  assert.equal(json.installed['llm-proxy'].packages, 2, 'llm-proxy: the package and one platform package')
  assert.ok(json.installed['llm-proxy-1'].packages > 10, '1.17.0 brings its SDKs')

  assert.ok(json.targets.length >= 10)
  for (const target of json.targets) assert.equal(typeof target.pass, 'boolean', `target evaluated: ${target.text}`)
})
