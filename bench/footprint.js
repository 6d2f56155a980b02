'use strict'

// The figures that need no upstream: the addon being measured, `require`/`import` time over bare
// Node, and installed size.

const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pathToFileURL } = require('node:url')

const ROOT = path.join(__dirname, '..')

// ---- the addon ---------------------------------------------------------------------------------

/** napi-rs's name for this platform's binary (`llm-proxy.<suffix>.node`, package `llm-proxy-<suffix>`). */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report && process.report.getReport ? process.report.getReport() : null
    const glibc = report && report.header && report.header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The section names of an ELF64 little-endian file, or null when it is not one. */
function elfSections(file) {
  const fd = fs.openSync(file, 'r')
  try {
    const h = Buffer.alloc(64)
    fs.readSync(fd, h, 0, 64, 0)
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return null
    const shoff = Number(h.readBigUInt64LE(0x28))
    const shentsize = h.readUInt16LE(0x3a)
    const shnum = h.readUInt16LE(0x3c)
    const shstrndx = h.readUInt16LE(0x3e)
    const sh = Buffer.alloc(shentsize * shnum)
    fs.readSync(fd, sh, 0, sh.length, shoff)
    const strOff = Number(sh.readBigUInt64LE(shstrndx * shentsize + 0x18))
    const strSize = Number(sh.readBigUInt64LE(shstrndx * shentsize + 0x20))
    const strtab = Buffer.alloc(strSize)
    fs.readSync(fd, strtab, 0, strSize, strOff)
    const names = []
    for (let i = 0; i < shnum; i++) {
      const at = sh.readUInt32LE(i * shentsize)
      names.push(strtab.toString('latin1', at, strtab.indexOf(0, at)))
    }
    return names
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Copies this platform's built addon to a private directory, so that every process of one run loads
 * the same binary even if the repository's copy is rebuilt meanwhile (NAPI_RS_NATIVE_LIBRARY_PATH,
 * which native.js honours). Returns its description and a cleanup function.
 */
function snapshotAddon() {
  const suffix = platformSuffix()
  const name = `llm-proxy.${suffix}.node`
  const source = path.join(ROOT, name)
  if (!fs.existsSync(source)) {
    throw new Error(`${name} is not built: run \`npm run build\` (release) or \`npm run build:debug\` first`)
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-bench-'))
  const copy = path.join(dir, name)
  // A build writing the binary meanwhile would leave a torn copy: copy until the source is the same
  // before and after.
  for (let attempt = 0; ; attempt++) {
    const before = fs.statSync(source)
    fs.copyFileSync(source, copy)
    const after = fs.statSync(source)
    if (before.size === after.size && before.mtimeMs === after.mtimeMs && fs.statSync(copy).size === after.size) break
    if (attempt >= 20) throw new Error(`${name} kept changing while being copied (a build running?)`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500)
  }
  const bytes = fs.statSync(copy).size
  // Hashed in pieces: reading a 100 MB debug binary whole would raise this process's RSS, which
  // the children would inherit in their maxRSS.
  const hash = crypto.createHash('sha256')
  const fd = fs.openSync(copy, 'r')
  const piece = Buffer.alloc(1 << 20)
  for (let n; (n = fs.readSync(fd, piece, 0, piece.length, null)) > 0; ) hash.update(piece.subarray(0, n))
  fs.closeSync(fd)
  const sha256 = hash.digest('hex')
  const sections = elfSections(copy)
  let flavor = 'unknown (not ELF)'
  if (sections) {
    flavor = sections.includes('.debug_info')
      ? 'debug (has .debug_info)'
      : sections.includes('.symtab')
        ? 'release, not stripped'
        : 'release (stripped)'
  }
  const addon = { name, suffix, source, path: copy, bytes, sha256, flavor, mtime: fs.statSync(source).mtime.toISOString() }
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true })
  return { addon, cleanup }
}

// ---- require / import time ---------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

// Each command prints how long its own require/import took inside the process; the spawn's wall
// time (process start to exit) is what the figure uses, minus that of bare Node.
function cjsCode(spec) {
  const load = spec === null ? '' : `require(${JSON.stringify(spec)});`
  return `const t=process.hrtime.bigint();${load}process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`
}
function esmCode(url) {
  const load = url === null ? '' : `await import(${JSON.stringify(url)});`
  return `const t=process.hrtime.bigint();${load}process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`
}

// Times every require inside loading `spec`, inclusive, keyed by its chain of requests.
function breakdownCode(spec) {
  return `const M=require('module');const load=M._load;const stack=[];const rec={};
M._load=function(request){stack.push(request.replace(/^.*[\\\\/](?=[^\\\\/]+\\.node$)/,''));const key=stack.join(' › ');const s=process.hrtime.bigint();
try{return load.apply(this,arguments)}finally{rec[key]=(rec[key]||0)+Number(process.hrtime.bigint()-s)/1e6;stack.pop()}};
require(${JSON.stringify(spec)});process.stdout.write(JSON.stringify(rec))`
}

function requireBreakdown(spec, runs, env) {
  const samples = new Map()
  for (let r = 0; r < runs; r++) {
    const res = spawnSync(process.execPath, ['-e', breakdownCode(spec)], { cwd: ROOT, env, encoding: 'utf8' })
    if (res.status !== 0) throw new Error(`require breakdown failed: ${res.stderr}`)
    for (const [key, ms] of Object.entries(JSON.parse(res.stdout))) {
      if (!samples.has(key)) samples.set(key, [])
      samples.get(key).push(ms)
    }
  }
  const modules = []
  for (const [key, xs] of samples) {
    while (xs.length < runs) xs.push(0)
    modules.push({ key, ms: median(xs) })
  }
  const text = modules
    .filter((m) => m.ms >= 0.5)
    .map((m) => `${m.key.replace(/^[^›]*?(?= ›|$)/, (top) => (top.startsWith('/') ? 'llm-proxy' : top))} ${m.ms.toFixed(1)}`)
    .join('; ')
  return { runs, modules, text }
}

/**
 * `node -e "require(pkg)"` against `node -e ""`, `runs` times each, interleaved (so drift in the
 * machine's load hits every package alike); medians.
 * packages: [{ key, label, spec, esm }] — spec: what to require (or a file URL to import when esm).
 */
function measureImports(packages, { runs, env, breakdown = null }) {
  const commands = [
    { key: 'bare', args: ['-e', cjsCode(null)] },
    { key: 'bare-esm', args: ['--input-type=module', '-e', esmCode(null)] },
    { key: 'bare-esm-file', args: ['--input-type=module', '-e', esmCode(pathToFileURL(path.join(__dirname, 'empty.mjs')).href)] },
    ...packages.map((p) => ({
      key: p.key,
      args: p.esm ? ['--input-type=module', '-e', esmCode(p.spec)] : ['-e', cjsCode(p.spec)],
    })),
  ]
  const wall = new Map(commands.map((c) => [c.key, []]))
  const inside = new Map(commands.map((c) => [c.key, []]))
  for (let r = 0; r < runs; r++) {
    for (const c of commands) {
      const t = process.hrtime.bigint()
      const res = spawnSync(process.execPath, c.args, { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      const ms = Number(process.hrtime.bigint() - t) / 1e6
      if (res.status !== 0) throw new Error(`${c.key}: node ${c.args.join(' ')} failed: ${res.stderr || res.error}`)
      wall.get(c.key).push(ms)
      inside.get(c.key).push(Number(res.stdout))
    }
  }
  const bare = median(wall.get('bare'))
  const bareEsm = median(wall.get('bare-esm'))
  const bareEsmFile = median(wall.get('bare-esm-file'))
  const out = { runs, bare_ms: bare, bare_esm_ms: bareEsm, bare_esm_file_ms: bareEsmFile, packages: {} }
  for (const p of packages) {
    const m = median(wall.get(p.key))
    out.packages[p.key] = {
      label: p.label,
      esm: Boolean(p.esm),
      median_ms: m,
      over_bare_ms: m - (p.esm ? bareEsm : bare),
      // ESM: over importing an empty module file (bench/empty.mjs), i.e. without the ESM loader's
      // start-up, which an ESM program pays for its own first file anyway.
      ...(p.esm ? { over_bare_file_ms: m - bareEsmFile } : {}),
      in_process_ms: median(inside.get(p.key)),
    }
  }
  if (breakdown) out.breakdown = requireBreakdown(breakdown, Math.max(3, Math.min(runs, 7)), env)
  return out
}

// ---- installed size ----------------------------------------------------------------------------

function dirBytes(dir, skipNodeModules = true) {
  let bytes = 0
  let files = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (skipNodeModules && entry.name === 'node_modules') continue
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) {
      const sub = dirBytes(p, false)
      bytes += sub.bytes
      files += sub.files
    } else if (entry.isFile()) {
      bytes += fs.statSync(p).size
      files++
    }
  }
  return { bytes, files }
}

/** Where Node would find package `name` from a package installed at `fromDir`. */
function resolvePackageDir(name, fromDir) {
  let dir = fromDir
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name)
    if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate)
    const parent = path.dirname(dir)
    if (parent === dir) return null
    dir = parent
  }
}

/**
 * A package and everything it installs: its dependencies, optional dependencies that are present,
 * and required (non-optional) peer dependencies, recursively, each package directory counted once
 * (without its own node_modules, whose packages are counted as packages of their own).
 */
function closure(startDir) {
  const seen = new Map()
  const missing = []
  const visit = (dir) => {
    if (seen.has(dir)) return
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    seen.set(dir, { name: pkg.name, version: pkg.version, ...dirBytes(dir) })
    const peersMeta = pkg.peerDependenciesMeta || {}
    const deps = [
      ...Object.keys(pkg.dependencies || {}).map((n) => [n, true]),
      ...Object.keys(pkg.optionalDependencies || {}).map((n) => [n, false]),
      ...Object.keys(pkg.peerDependencies || {})
        .filter((n) => !(peersMeta[n] && peersMeta[n].optional))
        .map((n) => [n, true]),
    ]
    for (const [name, required] of deps) {
      const found = resolvePackageDir(name, dir)
      if (found) visit(found)
      else if (required) missing.push(`${pkg.name} → ${name}`)
    }
  }
  visit(fs.realpathSync(startDir))
  // One copy per name@version: a fresh install dedupes what this repository's tree may hold twice
  // (nested copies left by other dev dependencies, or 1.17.0's dependency on itself).
  const unique = new Map()
  for (const p of seen.values()) unique.set(`${p.name}@${p.version}`, p)
  let bytes = 0
  let files = 0
  for (const p of unique.values()) {
    bytes += p.bytes
    files += p.files
  }
  const largest = [...unique.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 5)
    .map((p) => `${p.name}@${p.version} ${(p.bytes / 1e6).toFixed(1)} MB`)
  return { bytes, files, packages: unique.size, largest, missing }
}

/**
 * What `npm install llm-proxy` puts on disk: the package's published files (package.json "files",
 * plus package.json, README and LICENSE, which npm always includes), its dependencies' closure, and
 * ONE platform package (its package.json and the .node binary — the one being measured).
 */
function thisPackageSize(addon) {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  let bytes = 0
  let files = 0
  const add = (p) => {
    const st = fs.statSync(p)
    if (st.isDirectory()) {
      const d = dirBytes(p, false)
      bytes += d.bytes
      files += d.files
    } else {
      bytes += st.size
      files++
    }
  }
  for (const entry of pkg.files || []) {
    if (/[*?[\]{}!]/.test(entry)) throw new Error(`package.json "files" entry ${entry} is a glob; bench/footprint.js reads plain paths only`)
    const p = path.join(ROOT, entry)
    if (!fs.existsSync(p)) throw new Error(`package.json "files" lists ${entry}, which does not exist`)
    add(p)
  }
  for (const f of fs.readdirSync(ROOT)) {
    if (f === 'package.json' || /^(readme|license|licence)(\.|$)/i.test(f)) add(path.join(ROOT, f))
  }
  let packages = 1
  const largest = []
  // The platform package: its package.json and the binary.
  const platformPkg = path.join(ROOT, 'npm', addon.suffix, 'package.json')
  if (fs.existsSync(platformPkg)) add(platformPkg)
  bytes += addon.bytes
  files++
  packages++
  largest.push(`${addon.name} ${(addon.bytes / 1e6).toFixed(1)} MB (${addon.flavor})`)
  // Dependencies, if it ever has any.
  for (const name of Object.keys(pkg.dependencies || {})) {
    const dir = resolvePackageDir(name, ROOT)
    if (!dir) throw new Error(`dependency ${name} is not installed`)
    const c = closure(dir)
    bytes += c.bytes
    files += c.files
    packages += c.packages
  }
  return { bytes, files, packages, largest, missing: [] }
}

function installedSizes(keys, addon) {
  const out = {}
  for (const key of keys) {
    if (key === 'llm-proxy') out[key] = thisPackageSize(addon)
    else {
      const dir = resolvePackageDir(key, ROOT)
      if (!dir) throw new Error(`${key} is not installed (npm ci)`)
      out[key] = closure(dir)
    }
  }
  return out
}

module.exports = { snapshotAddon, measureImports, installedSizes, platformSuffix, pathToFileURL, ROOT }
