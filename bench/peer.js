'use strict'

// One peer × route × workload, in a process of its own (spawned by bench/run.js), so that its peak RSS
// is its own and no other peer's heap or sockets are around. Loads the peer, warms up, runs the timed
// part, checks every answer against bench/content.js, and prints one line
//   @@RESULT {json}
// on stdout. Any failed check throws: the line then carries { ok: false, error } and the exit code is 1.
//
//   node bench/peer.js '<json config>'   (see run.js: peer, route, workload, origin, counts…)

const fs = require('node:fs')
const http = require('node:http')
const { performance } = require('node:perf_hooks')
const C = require('./content.js')
const { PEERS, expectedFinish, ROOT } = require('./peers.js')

const MARK = '@@RESULT '

function getJson(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d) => (text += d))
        res.on('end', () => {
          try {
            resolve(JSON.parse(text))
          } catch (err) {
            reject(err)
          }
        })
      })
      .on('error', reject)
  })
}

/**
 * The process's peak RSS. On Linux, VmHWM of /proc/self/status: process.resourceUsage().maxRSS there
 * is inherited across fork + exec (a child spawned by a 150 MB parent reports at least 150 MB), so it
 * is kept only as a fallback for other systems.
 */
function peakRss() {
  const maxRss = (process.resourceUsage().maxRSS * 1024) / 1e6
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))
    if (m) return { mb: (Number(m[1]) * 1024) / 1e6, source: 'VmHWM', maxRss }
  } catch {}
  return { mb: maxRss, source: 'maxRSS', maxRss }
}

/**
 * CPU time of each thread so far (Linux: /proc/self/task/<tid>/schedstat, in ns), keyed by thread id,
 * or null where there is no such file. Used to split the client's CPU between the JavaScript main
 * thread and the others (V8's helpers, libuv's pool, an addon's runtime threads).
 */
function threadCpu() {
  let tids
  try {
    tids = fs.readdirSync('/proc/self/task')
  } catch {
    return null
  }
  const out = new Map()
  for (const tid of tids) {
    try {
      const ns = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      const comm = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      out.set(tid, { ns, comm })
    } catch {}
  }
  return out.size ? out : null
}

/** CPU ms per thread group between two threadCpu() readings: `main`, then the others by name. */
function threadCpuDelta(before, after) {
  if (!before || !after) return null
  const groups = {}
  for (const [tid, { ns, comm }] of after) {
    const name = tid === String(process.pid) ? 'main' : comm
    const d = (ns - (before.has(tid) ? before.get(tid).ns : 0)) / 1e6
    groups[name] = (groups[name] || 0) + d
  }
  return groups
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

function summary(latenciesMs) {
  const s = Float64Array.from(latenciesMs).sort()
  let sum = 0
  for (const v of s) sum += v
  return {
    median_us: quantile(s, 0.5) * 1000,
    p99_us: quantile(s, 0.99) * 1000,
    mean_us: (sum / s.length) * 1000,
    min_us: s[0] * 1000,
    max_us: s[s.length - 1] * 1000,
  }
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length)
  let i = 0
  while (i < n && a[i] === b[i]) i++
  return `lengths ${a.length} vs ${b.length}, first difference at ${i}: ${JSON.stringify(a.slice(i, i + 40))} vs expected ${JSON.stringify(b.slice(i, i + 40))}`
}

async function main() {
  const cfg = JSON.parse(process.argv[2])
  const { peer, route, workload, origin, counts } = cfg
  const spec = PEERS[peer]
  if (!spec || !spec.routes.includes(route)) throw new Error(`no peer ${peer} with route ${route}`)

  const pathPrefix = workload === 'stream' ? `/bench/c${counts.chunks}-d${cfg.delay}` : ''
  const env = {
    origin,
    pathPrefix,
    openaiBase: `${origin}${pathPrefix}/v1`,
    anthropicBase: `${origin}${pathPrefix}`,
    root: cfg.root || ROOT,
  }
  // For llm-proxy 1.17.0, whose SDK clients take their base URL only from the environment; the other
  // peers are given it explicitly.
  process.env.OPENAI_BASE_URL = env.openaiBase
  process.env.ANTHROPIC_BASE_URL = env.anthropicBase

  const finish = expectedFinish(peer, route)
  let checked = 0
  const checkAnswer = (r, what) => {
    if (r.text !== C.ANSWER) throw new Error(`${what}: wrong content (${firstDifference(String(r.text), C.ANSWER)})`)
    if (r.finish !== finish) throw new Error(`${what}: finish reason ${JSON.stringify(r.finish)}, expected ${finish}`)
    if (r.tokens !== C.ANSWER_TOKENS) throw new Error(`${what}: usage ${r.tokens} completion tokens, expected ${C.ANSWER_TOKENS}`)
    checked++
  }
  const streamExpected = workload === 'stream' ? C.streamText(counts.chunks) : null
  const checkStream = (r, what) => {
    if (r.chunks !== counts.chunks) throw new Error(`${what}: ${r.chunks} content chunks reached the consumer, expected ${counts.chunks}`)
    if (r.text !== streamExpected) throw new Error(`${what}: wrong content (${firstDifference(String(r.text), streamExpected)})`)
    if (r.finish !== finish) throw new Error(`${what}: finish reason ${JSON.stringify(r.finish)}, expected ${finish}`)
    if (r.tokens !== counts.chunks) throw new Error(`${what}: usage ${r.tokens} completion tokens, expected ${counts.chunks}`)
    checked++
  }

  const rssBefore = process.memoryUsage.rss()
  const tLoad = performance.now()
  const client = spec.create(route, env)
  const loadMs = performance.now() - tLoad
  const rssLoaded = process.memoryUsage.rss()

  const out = { peer, route, workload, load_ms: loadMs, rss_start_mb: rssBefore / 1e6, rss_loaded_mb: rssLoaded / 1e6 }

  // Warm-up: the same calls, checked too, not timed.
  if (workload === 'stream') {
    for (let i = 0; i < counts.warmup; i++) checkStream(await client.stream(() => {}), `warm-up stream ${i}`)
  } else if (workload === 'conc') {
    await concurrent(client, counts.warmup, counts.inflight, checkAnswer, 'warm-up call')
  } else {
    for (let i = 0; i < counts.warmup; i++) checkAnswer(await client.generate(), `warm-up call ${i}`)
  }
  if (typeof global.gc === 'function') global.gc()

  const up0 = await getJson(`${origin}/_stats`)
  const threads0 = threadCpu()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let timed
  let requests
  if (workload === 'seq') {
    const lat = new Float64Array(counts.calls)
    for (let i = 0; i < counts.calls; i++) {
      const s = performance.now()
      const r = await client.generate()
      lat[i] = performance.now() - s
      checkAnswer(r, `call ${i}`)
    }
    const elapsed = performance.now() - t0
    timed = { calls: counts.calls, elapsed_ms: elapsed, ...summary(lat) }
    requests = counts.calls
  } else if (workload === 'conc') {
    const { lat, maxInflight } = await concurrent(client, counts.calls, counts.inflight, checkAnswer, 'call')
    const elapsed = performance.now() - t0
    const want = Math.min(counts.inflight, counts.calls)
    if (maxInflight !== want) throw new Error(`only ${maxInflight} calls were in flight at once, expected ${want}`)
    timed = { calls: counts.calls, inflight: counts.inflight, elapsed_ms: elapsed, rps: counts.calls / (elapsed / 1000), ...summary(lat) }
    requests = counts.calls
  } else if (workload === 'stream') {
    const ttfc = new Float64Array(counts.streams)
    let chunks = 0
    for (let i = 0; i < counts.streams; i++) {
      let first = 0
      const s = performance.now()
      const r = await client.stream(() => {
        first = performance.now()
      })
      checkStream(r, `stream ${i}`)
      ttfc[i] = first - s
      chunks += r.chunks
    }
    const elapsed = performance.now() - t0
    const t = summary(ttfc)
    timed = {
      streams: counts.streams,
      chunks_per_stream: counts.chunks,
      delay_ms: cfg.delay,
      elapsed_ms: elapsed,
      chunks_per_s: chunks / (elapsed / 1000),
      ttfc_median_us: t.median_us,
      ttfc_p99_us: t.p99_us,
      ttfc_min_us: t.min_us,
      ttfc_max_us: t.max_us,
    }
    requests = counts.streams
  } else {
    throw new Error(`unknown workload ${workload}`)
  }
  const elapsedMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const threads = threadCpuDelta(threads0, threadCpu())
  const up1 = await getJson(`${origin}/_stats`)

  // The upstream must have served exactly the timed calls: no hidden retries, no extra requests.
  const served = up1.requests - up0.requests
  if (served !== requests) throw new Error(`the upstream served ${served} requests during the timed part, expected ${requests}`)
  if (up1.rejected !== up0.rejected) throw new Error(`the upstream rejected ${up1.rejected - up0.rejected} requests`)
  const upCpuMs = (up1.cpu.user - up0.cpu.user + up1.cpu.system - up0.cpu.system) / 1000

  const peak = peakRss()
  Object.assign(out, timed, {
    checked,
    requests,
    client_cpu_ms: (cpu.user + cpu.system) / 1000,
    client_cpu_util: (cpu.user + cpu.system) / 1000 / elapsedMs,
    client_cpu_per_request_us: (cpu.user + cpu.system) / requests,
    // The same split by thread: the JavaScript main thread, and the rest.
    threads_cpu_ms: threads,
    client_main_cpu_per_request_us: threads ? (threads.main * 1000) / requests : null,
    client_other_cpu_per_request_us: threads
      ? (Object.entries(threads).reduce((sum, [k, v]) => (k === 'main' ? sum : sum + v), 0) * 1000) / requests
      : null,
    upstream_cpu_ms: upCpuMs,
    // Connections the upstream accepted during the timed part, less the one of the closing /_stats
    // request (with keep-alive and the warm-up's connections kept, 0 or close to it).
    new_connections: up1.connections - up0.connections - 1,
    upstream_cpu_util: upCpuMs / elapsedMs,
    rss_peak_mb: peak.mb,
    rss_peak_source: peak.source,
    rss_maxrss_mb: peak.maxRss,
    rss_end_mb: process.memoryUsage.rss() / 1e6,
    ok: true,
  })
  await new Promise((resolve) => process.stdout.write(`${MARK}${JSON.stringify(out)}\n`, resolve))
}

/** `n` calls with `inflight` of them running at once; checks each answer as it arrives. */
async function concurrent(client, n, inflight, check, what) {
  const lat = new Float64Array(n)
  let next = 0
  let running = 0
  let maxInflight = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      running++
      if (running > maxInflight) maxInflight = running
      const s = performance.now()
      const r = await client.generate()
      lat[i] = performance.now() - s
      running--
      check(r, `${what} ${i}`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, worker))
  return { lat, maxInflight }
}

main().then(
  () => process.exit(0),
  (err) => {
    const line = `${MARK}${JSON.stringify({ ok: false, error: String((err && err.stack) || err) })}\n`
    process.stdout.write(line, () => process.exit(1))
  },
)
