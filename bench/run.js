'use strict'

// The benchmark harness (`npm run bench:node`; `npm run bench` builds the release addon first).
//
//   node bench/run.js [--quick] [--only peer[/route],…] [--json path] [--delay ms] [--import-runs n]
//                     [--workloads seq,conc,stream] [--no-footprint]
//
// Starts ONE mock upstream (bench/upstream.js, its own process), then runs every peer × route ×
// workload in a fresh child process (bench/peer.js), one at a time; then measures require/import time
// and installed size (bench/footprint.js). Prints a table with each figure's ratio to raw undici and
// to llm-proxy 1.17.0 on the same route, checks the targets, writes JSON (bench/results/latest.json by
// default). Every call of every peer is verified; a failed check fails the run (exit code 1).

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { PEERS } = require('./peers.js')
const footprint = require('./footprint.js')

const ROOT = path.join(__dirname, '..')

const FULL = {
  seq: { calls: 2000, warmup: 200 },
  conc: { calls: 5000, warmup: 1000, inflight: 64 },
  stream: { streams: 50, chunks: 1000, warmup: 3 },
  importRuns: 15,
  childTimeoutMs: 10 * 60_000,
}
const QUICK = {
  seq: { calls: 50, warmup: 10 },
  conc: { calls: 200, warmup: 64, inflight: 64 },
  stream: { streams: 3, chunks: 50, warmup: 1 },
  importRuns: 3,
  childTimeoutMs: 60_000,
}
const WORKLOADS = ['seq', 'conc', 'stream']

function parseArgs(argv) {
  const opts = {
    quick: false,
    only: null,
    workloads: WORKLOADS,
    json: path.join(__dirname, 'results', 'latest.json'),
    delay: 0,
    importRuns: null,
    footprint: true,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--quick') opts.quick = true
    else if (a === '--only') opts.only = value().split(',').map((s) => s.trim()).filter(Boolean)
    else if (a === '--json') opts.json = path.resolve(value())
    else if (a === '--workloads') {
      opts.workloads = value().split(',').map((w) => w.trim())
      for (const w of opts.workloads) if (!WORKLOADS.includes(w)) throw new Error(`--workloads: unknown workload ${w} (${WORKLOADS.join(', ')})`)
    } else if (a === '--no-footprint') opts.footprint = false
    else if (a === '--delay') opts.delay = Number(value())
    else if (a === '--import-runs') opts.importRuns = Number(value())
    else if (a === '--help' || a === '-h') {
      process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 12).join('\n').replace(/^\/\/ ?/gm, '') + '\n')
      process.exit(0)
    } else throw new Error(`unknown argument ${a} (try --help)`)
  }
  if (!(opts.delay >= 0)) throw new Error('--delay takes a number of milliseconds ≥ 0')
  if (opts.importRuns !== null && !(Number.isInteger(opts.importRuns) && opts.importRuns > 0)) {
    throw new Error('--import-runs takes a positive integer')
  }
  return opts
}

/** The peer × route combinations selected by --only (`llm-proxy`, `llm-proxy/anthropic`…). */
function selectCombos(only) {
  const all = []
  for (const [peer, spec] of Object.entries(PEERS)) for (const route of spec.routes) all.push({ peer, route, key: `${peer}/${route}` })
  if (!only) return all
  for (const item of only) {
    const [peer, route] = item.split('/')
    if (!PEERS[peer]) throw new Error(`--only: unknown peer ${peer} (peers: ${Object.keys(PEERS).join(', ')})`)
    if (route && !PEERS[peer].routes.includes(route)) throw new Error(`--only: ${peer} has no route ${route}`)
  }
  return all.filter((c) => only.some((item) => item === c.peer || item === c.key))
}

// A clean environment for the children: no real keys or base URLs, no test-runner context.
function childEnv(addon) {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (/^(OPENAI|ANTHROPIC|AWS)_/.test(name) || name === 'NODE_TEST_CONTEXT' || name === 'NODE_OPTIONS') delete env[name]
  }
  env.NAPI_RS_NATIVE_LIBRARY_PATH = addon.path
  return env
}

function startUpstream(env) {
  const child = spawn(process.execPath, [path.join(__dirname, 'upstream.js'), '--port', '0', '--exit-with-stdin'], {
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout })
    rl.once('line', (line) => {
      try {
        const { port } = JSON.parse(line)
        resolve({ child, origin: `http://127.0.0.1:${port}` })
      } catch (err) {
        reject(new Error(`the upstream printed ${line}`))
      }
    })
    child.once('exit', (code) => reject(new Error(`the upstream exited (${code}) before listening`)))
  })
}

function runPeer(cfg, env, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'peer.js'), JSON.stringify(cfg)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find((l) => l.startsWith('@@RESULT '))
      let result = null
      try {
        result = line ? JSON.parse(line.slice('@@RESULT '.length)) : null
      } catch {}
      if (result && result.ok && code === 0) return resolve(result)
      const error = (result && result.error) || `exited with ${signal || code} and no result`
      resolve({ ok: false, error, stderr: stderr.trim().split('\n').slice(-15).join('\n') })
    })
  })
}

// ---- figures, ratios, targets ------------------------------------------------------------------

const FIGURES = [
  { id: 'seq_median_us', title: 'sequential non-stream latency, median', unit: 'µs', better: 'lower', from: (r) => r.seq && r.seq.median_us },
  { id: 'seq_p99_us', title: 'sequential non-stream latency, p99', unit: 'µs', better: 'lower', from: (r) => r.seq && r.seq.p99_us },
  { id: 'conc_rps', title: 'non-stream throughput, 64 in flight', unit: 'req/s', better: 'higher', from: (r) => r.conc && r.conc.rps },
  { id: 'stream_chunks_per_s', title: 'streaming: content chunks/s reaching the consumer', unit: 'chunks/s', better: 'higher', from: (r) => r.stream && r.stream.chunks_per_s },
  { id: 'stream_ttfc_median_us', title: 'streaming: time to first content chunk, median', unit: 'µs', better: 'lower', from: (r) => r.stream && r.stream.ttfc_median_us },
  { id: 'peak_rss_mb', title: 'peak RSS of the process (64-in-flight workload)', unit: 'MB', better: 'lower', from: (r) => r.conc && r.conc.rss_peak_mb },
]

function fmt(v, unit) {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—'
  const abs = Math.abs(v)
  if (unit === 'MB' || unit === 'ms') return v.toFixed(abs >= 100 ? 0 : 1)
  if (abs >= 1000) return Math.round(v).toLocaleString('en-US')
  if (abs >= 100) return v.toFixed(0)
  return v.toFixed(1)
}

function ratio(v, ref) {
  if (!Number.isFinite(v) || !Number.isFinite(ref) || ref <= 0) return '—'
  return `${(v / ref).toFixed(2)}×`
}

function table(rows, header, groups = null) {
  const all = groups ? groups.flatMap((g) => g.rows) : rows
  const widths = header.map((h, i) => Math.max(h.length, ...all.map((r) => String(r[i]).length)))
  const numeric = (c) => /^[-−]?[\d—]/.test(String(c))
  const line = (cells) => cells.map((c, i) => (numeric(c) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ').trimEnd()
  const out = [line(header), widths.map((w) => '─'.repeat(w)).join('  ')]
  if (!groups) out.push(...rows.map(line))
  else for (const g of groups) out.push(g.title, ...g.rows.map(line))
  return out.join('\n')
}

function evaluateTargets(fig, imports, installed) {
  const get = (combo, id) => (fig[combo] ? fig[combo][id] : undefined)
  const out = []
  const add = (text, detail, pass) => out.push({ text, detail, pass })
  const cmp = (text, a, b, test, describe) => {
    if (!Number.isFinite(a) || !Number.isFinite(b)) return add(text, 'not measured in this run', null)
    add(text, describe(a, b), test(a, b))
  }
  for (const route of ['openai', 'anthropic']) {
    const me = `llm-proxy/${route}`
    cmp(`64-in-flight req/s ≥ raw undici (${route})`, get(me, 'conc_rps'), get(`undici/${route}`, 'conc_rps'), (a, b) => a >= b,
      (a, b) => `${fmt(a)} vs ${fmt(b)} req/s (${ratio(a, b)})`)
    cmp(`64-in-flight req/s ≥ 3× llm-proxy 1.17.0 (${route})`, get(me, 'conc_rps'), get(`llm-proxy-1/${route}`, 'conc_rps'), (a, b) => a >= 3 * b,
      (a, b) => `${fmt(a)} vs ${fmt(b)} req/s (${ratio(a, b)})`)
    cmp(`sequential median within 50 µs of raw undici (${route})`, get(me, 'seq_median_us'), get(`undici/${route}`, 'seq_median_us'), (a, b) => a - b <= 50,
      (a, b) => `${fmt(a)} vs ${fmt(b)} µs (${a - b >= 0 ? '+' : ''}${(a - b).toFixed(1)} µs)`)
    cmp(`TTFC within 1 ms of raw undici (${route})`, get(me, 'stream_ttfc_median_us'), get(`undici/${route}`, 'stream_ttfc_median_us'), (a, b) => a - b <= 1000,
      (a, b) => `${fmt(a)} vs ${fmt(b)} µs (${a - b >= 0 ? '+' : ''}${((a - b) / 1000).toFixed(2)} ms)`)
    cmp(`peak RSS within 20 MB of raw undici (${route})`, get(me, 'peak_rss_mb'), get(`undici/${route}`, 'peak_rss_mb'), (a, b) => a - b <= 20,
      (a, b) => `${fmt(a, 'MB')} vs ${fmt(b, 'MB')} MB (${a - b >= 0 ? '+' : ''}${(a - b).toFixed(1)} MB)`)
  }
  cmp('streaming chunks/s ≥ 2× openai SDK (openai route)', get('llm-proxy/openai', 'stream_chunks_per_s'), get('openai/openai', 'stream_chunks_per_s'),
    (a, b) => a >= 2 * b, (a, b) => `${fmt(a)} vs ${fmt(b)} chunks/s (${ratio(a, b)})`)
  for (const key of ['llm-proxy', 'llm-proxy (ESM)']) {
    const p = imports && imports.packages[key]
    if (!p) add(`${key === 'llm-proxy' ? 'require' : 'import'} within 10 ms of bare node`, 'not measured in this run', null)
    else if (p.esm) {
      add('import within 10 ms of bare node (an ESM program importing an empty module)',
        `${p.over_bare_file_ms.toFixed(1)} ms over an empty module's import (${p.over_bare_ms.toFixed(1)} ms over bare ESM node, ${p.in_process_ms.toFixed(1)} ms inside the process)`,
        p.over_bare_file_ms <= 10)
    } else add('require within 10 ms of bare node', `${p.over_bare_ms.toFixed(1)} ms over bare (${p.in_process_ms.toFixed(1)} ms inside the process)`, p.over_bare_ms <= 10)
  }
  const size = installed && installed['llm-proxy']
  if (!size) add('installed size < 10 MB', 'not measured in this run', null)
  else add('installed size < 10 MB', `${(size.bytes / 1e6).toFixed(2)} MB in ${size.packages} packages`, size.bytes < 10e6)
  return out
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const counts = opts.quick ? QUICK : FULL
  const importRuns = opts.importRuns || counts.importRuns
  const combos = selectCombos(opts.only)
  if (combos.length === 0) throw new Error('--only selected no peer')
  const started = Date.now()
  const loadStart = os.loadavg()

  const { addon, cleanup } = footprint.snapshotAddon()
  process.on('exit', cleanup)
  const env = childEnv(addon)
  const log = (s) => process.stderr.write(`${s}\n`)
  log(`addon: ${addon.name}, ${(addon.bytes / 1e6).toFixed(1)} MB, ${addon.flavor}, built ${addon.mtime}`)
  if (addon.flavor.startsWith('debug') && !opts.quick) log('warning: this is a debug build; `npm run bench` builds the release addon first')
  if (loadStart[0] > os.cpus().length * 0.5) log(`warning: load average ${loadStart[0].toFixed(2)} on ${os.cpus().length} CPUs: figures will be noisy`)

  const upstream = await startUpstream(env)
  const results = {}
  const failures = []
  let checked = 0
  try {
    for (const workload of opts.workloads) {
      for (const c of combos) {
        const cfg = { peer: c.peer, route: c.route, workload, origin: upstream.origin, delay: opts.delay, counts: counts[workload], root: ROOT }
        const t = Date.now()
        const r = await runPeer(cfg, env, counts.childTimeoutMs)
        results[c.key] = results[c.key] || { peer: c.peer, route: c.route, label: PEERS[c.peer].label }
        if (r.ok) {
          results[c.key][workload] = r
          checked += r.checked
          log(`  ${workload.padEnd(6)} ${c.key.padEnd(22)} ok (${r.checked} calls checked, ${((Date.now() - t) / 1000).toFixed(1)} s)`)
        } else {
          failures.push({ combo: c.key, workload, error: r.error, stderr: r.stderr })
          log(`  ${workload.padEnd(6)} ${c.key.padEnd(22)} FAILED: ${r.error.split('\n')[0]}`)
        }
      }
    }
  } finally {
    upstream.child.stdin.end()
    upstream.child.kill('SIGTERM')
  }

  // require/import time and installed size, for the packages of the selected peers.
  const peersSelected = [...new Set(combos.map((c) => c.peer))]
  const importPackages = []
  for (const peer of peersSelected) {
    if (peer === 'llm-proxy') {
      importPackages.push({ key: 'llm-proxy', label: 'llm-proxy 2.x (require)', spec: ROOT })
      importPackages.push({ key: 'llm-proxy (ESM)', label: 'llm-proxy 2.x (import)', spec: footprint.pathToFileURL(path.join(ROOT, 'index.mjs')).href, esm: true })
    } else {
      importPackages.push({ key: PEERS[peer].package, label: PEERS[peer].label, spec: PEERS[peer].package })
    }
  }
  let imports = null
  let installed = null
  if (opts.footprint) {
    try {
      log(`  import time: ${importRuns} runs of ${importPackages.length + 2} commands`)
      imports = footprint.measureImports(importPackages, {
        runs: importRuns,
        env,
        breakdown: peersSelected.includes('llm-proxy') ? ROOT : null,
      })
    } catch (err) {
      failures.push({ combo: 'import', workload: 'import', error: String(err.message || err) })
    }
    try {
      installed = footprint.installedSizes(peersSelected.map((p) => (p === 'llm-proxy' ? 'llm-proxy' : PEERS[p].package)), addon)
    } catch (err) {
      failures.push({ combo: 'installed', workload: 'installed', error: String(err.message || err) })
    }
  }

  // Flat figures per combo.
  const figures = {}
  for (const c of combos) {
    const r = results[c.key] || {}
    figures[c.key] = {}
    for (const f of FIGURES) figures[c.key][f.id] = f.from(r)
  }
  const targets = evaluateTargets(figures, imports, installed)

  // ---- print --------------------------------------------------------------------------------
  const out = []
  const cpuModel = (os.cpus()[0] && os.cpus()[0].model) || 'unknown CPU'
  out.push('')
  out.push(`llm-proxy benchmark${opts.quick ? ' (--quick: tiny counts, not for comparison)' : ''}`)
  out.push(`node ${process.version}, ${process.platform}-${process.arch}, ${os.cpus().length} × ${cpuModel}, load average ${loadStart.map((l) => l.toFixed(2)).join(' ')} at start`)
  out.push(`addon: ${addon.name} ${(addon.bytes / 1e6).toFixed(1)} MB, ${addon.flavor}, sha256 ${addon.sha256.slice(0, 12)}`)
  out.push(
    `workloads: ${counts.seq.calls} sequential calls (after ${counts.seq.warmup} warm-up); ${counts.conc.calls} calls with ${counts.conc.inflight} in flight (after ${counts.conc.warmup}); ` +
      `${counts.stream.streams} streams of ${counts.stream.chunks} chunks, one at a time, ${opts.delay} ms between chunks (after ${counts.stream.warmup}); ` +
      `each peer × route × workload in its own process; one mock upstream process`,
  )
  out.push('ratios: value ÷ the same figure of raw undici / of llm-proxy 1.17.0 on the same route')
  out.push('')
  const groups = []
  for (const f of FIGURES) {
    const rows = []
    for (const c of combos) {
      const v = figures[c.key][f.id]
      const u = figures[`undici/${c.route}`] && figures[`undici/${c.route}`][f.id]
      const o = figures[`llm-proxy-1/${c.route}`] && figures[`llm-proxy-1/${c.route}`][f.id]
      rows.push([`  ${c.route}`, PEERS[c.peer].label, fmt(v, f.unit), ratio(v, u), ratio(v, o)])
    }
    groups.push({ title: `${f.title} (${f.unit}, ${f.better} is better)`, rows })
  }
  if (imports) {
    const rows = []
    const ref = (key) => imports.packages[key] && imports.packages[key].over_bare_ms
    for (const p of Object.values(imports.packages)) {
      rows.push(['', p.label, fmt(p.over_bare_ms, 'ms'), ratio(p.over_bare_ms, ref('undici')), ratio(p.over_bare_ms, ref('llm-proxy-1'))])
    }
    groups.push({
      title: `require/import time over bare node (ms, median of ${imports.runs}; bare node ${imports.bare_ms.toFixed(1)} ms, bare ESM ${imports.bare_esm_ms.toFixed(1)} ms, ESM importing an empty module ${imports.bare_esm_file_ms.toFixed(1)} ms)`,
      rows,
    })
  }
  if (installed) {
    const rows = []
    const ref = (key) => installed[key] && installed[key].bytes
    for (const [key, s] of Object.entries(installed)) {
      const label = key === 'llm-proxy' ? PEERS['llm-proxy'].label : PEERS[Object.keys(PEERS).find((p) => PEERS[p].package === key)].label
      rows.push(['', label, `${fmt(s.bytes / 1e6, 'MB')} MB, ${s.packages} pkg`, ratio(s.bytes, ref('undici')), ratio(s.bytes, ref('llm-proxy-1'))])
    }
    groups.push({ title: 'installed size (MB of files, packages; lower is better)', rows })
  }
  out.push(table(null, ['  route', 'peer', 'value', '× undici', '× 1.17.0'], groups))
  out.push('')

  // Where the time goes: CPU per request in the client process, and how busy the upstream was.
  const diag = []
  for (const c of combos) {
    const r = results[c.key] || {}
    const d = (w, k, scale = 1) => (r[w] && Number.isFinite(r[w][k]) ? r[w][k] * scale : NaN)
    // CPU per call (or per chunk) as "JS main thread + other threads" where the split is known.
    const split = (w, per = 1) => {
      const main = d(w, 'client_main_cpu_per_request_us') / per
      const other = d(w, 'client_other_cpu_per_request_us') / per
      if (Number.isFinite(main) && Number.isFinite(other)) return `${fmt(main)} + ${fmt(other)}`
      return fmt(d(w, 'client_cpu_per_request_us') / per)
    }
    diag.push([
      c.route,
      PEERS[c.peer].label,
      split('seq'),
      split('conc'),
      fmt(d('conc', 'client_cpu_util', 100)),
      fmt(d('conc', 'upstream_cpu_util', 100)),
      fmt(d('conc', 'new_connections')),
      split('stream', d('stream', 'chunks_per_stream')),
      fmt(d('stream', 'upstream_cpu_util', 100)),
      fmt(d('conc', 'load_ms')),
    ])
  }
  out.push('where the time goes: CPU of the client process per call / per chunk, as JS main thread + other threads')
  out.push('(V8 helpers, libuv pool, the addon\'s runtime); client and upstream CPU as % of the timed wall time')
  out.push(
    table(diag, ['route', 'peer', 'seq µs/call', '64∥ µs/call', '64∥ client %', '64∥ upstream %', '64∥ new conns', 'stream µs/chunk', 'stream upstream %', 'load ms']),
  )
  if (imports && imports.breakdown) {
    out.push('')
    out.push(`llm-proxy require, inclusive ms per module (median of ${imports.breakdown.runs}): ${imports.breakdown.text}`)
  }
  out.push('')

  out.push('targets (llm-proxy 2.x)')
  for (const t of targets) out.push(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS'}  ${t.text}: ${t.detail}`)
  out.push('')
  out.push(`verification: ${failures.length === 0 ? `passed (${checked} calls and streams checked for content, chunk count, finish reason and usage)` : `FAILED (${failures.length})`}`)
  for (const f of failures) {
    out.push(`  FAILED ${f.combo} ${f.workload}: ${f.error}`)
    if (f.stderr) out.push(f.stderr.replace(/^/gm, '    | '))
  }
  process.stdout.write(`${out.join('\n')}\n`)

  const json = {
    schema: 1,
    date: new Date(started).toISOString(),
    duration_s: (Date.now() - started) / 1000,
    quick: opts.quick,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: os.cpus().length,
    cpu_model: cpuModel,
    loadavg_start: loadStart,
    loadavg_end: os.loadavg(),
    addon: { name: addon.name, bytes: addon.bytes, sha256: addon.sha256, flavor: addon.flavor, built: addon.mtime },
    config: { ...counts, importRuns, delay_ms: opts.delay, only: opts.only, stream_concurrency: 1 },
    figures,
    results,
    import: imports,
    installed,
    targets,
    verification: { passed: failures.length === 0, checked, failures },
  }
  fs.mkdirSync(path.dirname(opts.json), { recursive: true })
  fs.writeFileSync(opts.json, `${JSON.stringify(json, null, 2)}\n`)
  log(`wrote ${path.relative(process.cwd(), opts.json) || opts.json}`)
  if (failures.length) process.exitCode = 1
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack || err}\n`)
  process.exitCode = 1
})
