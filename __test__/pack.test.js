'use strict'

// Packaging: what npm publishes and what a user gets when installing it.
//
// - The platforms: package.json `napi.targets`, the npm/<platform> packages, `optionalDependencies`
//   (and their package-lock.json entries, without which `npm ci` refuses to run), and the targets
//   that .github/workflows/release.yml builds and tests name the same six platforms.
// - The main tarball holds exactly the files package.json lists (`npm pack --dry-run --json`).
// - Without a binary for its platform, require('llm-proxy') throws an error that names the platform
//   and says how to build from source.
// - Packed and installed: the main package and this platform's binary package are packed with
//   `npm pack`, installed from the tarballs into an empty folder (offline, the registry set to an
//   unreachable address), and used from CommonJS, from ESM (named and default imports), and from
//   TypeScript (strict; `node16` and `bundler` resolution).
//
// Environment:
//   LLM_PROXY_PACK_BINARY=<file>   the .node to pack into the platform package (default: the one
//                                  `npm run build` / `npm run build:debug` left in the repository)
//   LLM_PROXY_RELEASE_BINARY=1     that file is a release build (CI sets it); otherwise it counts
//                                  as one only when it is byte for byte cargo's release output
//                                  in target/. The installed size is asserted for release builds.

const { describe, test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFile } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const PKG = readJson(path.join(ROOT, 'package.json'))
const WORKFLOW = path.join(ROOT, '.github', 'workflows', 'release.yml')
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const MAX_INSTALLED_BYTES = 10 * 1024 * 1024
const UNREACHABLE_REGISTRY = 'http://127.0.0.1:9/'

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

const sortedKeys = (obj) => Object.keys(obj || {}).sort()

// ---- platforms ----

/** A Rust target triple as napi-rs names its platform: x86_64-unknown-linux-gnu → linux-x64-gnu. */
function platformOf(triple) {
  const parts = triple.split('-')
  const arch = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }[parts[0]]
  const osName = { linux: 'linux', darwin: 'darwin', windows: 'win32', freebsd: 'freebsd' }[parts[2]]
  assert.ok(arch && osName, `unexpected target triple ${triple}`)
  const abi = parts[3] || null
  return {
    triple,
    suffix: abi ? `${osName}-${arch}-${abi}` : `${osName}-${arch}`,
    os: osName,
    cpu: arch,
    libc: osName === 'linux' ? { gnu: 'glibc', musl: 'musl' }[abi] : undefined,
  }
}

const TARGETS = (PKG.napi && PKG.napi.targets) || []
const PLATFORMS = TARGETS.map(platformOf)

function linuxLibc() {
  const report = process.report && process.report.getReport ? process.report.getReport() : null
  if (report && report.header && report.header.glibcVersionRuntime) return 'glibc'
  try {
    if (fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')) return 'musl'
  } catch {
    // no ldd: assume musl (glibc systems report their version above)
  }
  return 'musl'
}

/** This machine, as a platform suffix (linux-x64-gnu), and as the binding's error names it. */
function hostPlatform() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const libc = linuxLibc()
    return { suffix: `linux-${arch}-${libc === 'musl' ? 'musl' : 'gnu'}`, description: `linux ${arch} (${libc})` }
  }
  if (platform === 'win32') return { suffix: `win32-${arch}-msvc`, description: `win32 ${arch}` }
  return { suffix: `${platform}-${arch}`, description: `${platform} ${arch}` }
}

/** The `target:` values of each job of the workflow (a plain reading of its text, no YAML parser). */
function workflowTargets() {
  const text = fs.readFileSync(WORKFLOW, 'utf8')
  const lines = text.split(/\r?\n/)
  const start = lines.findIndex((l) => /^jobs:\s*$/.test(l))
  assert.ok(start >= 0, 'release.yml has no jobs:')
  const jobs = {}
  let job = null
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line)) break // the next top-level key
    const name = /^ {2}([A-Za-z0-9_-]+):\s*$/.exec(line)
    if (name) {
      job = name[1]
      jobs[job] = []
      continue
    }
    const target = /^\s*(?:-\s+)?target:\s*['"]?([A-Za-z0-9_.-]+)['"]?\s*(?:#.*)?$/.exec(line)
    if (job && target) jobs[job].push(target[1])
  }
  return jobs
}

describe('platforms', () => {
  test('napi.targets lists the six supported platforms, once each', () => {
    assert.deepEqual(PLATFORMS.map((p) => p.suffix).sort(), [
      'darwin-arm64',
      'darwin-x64',
      'linux-arm64-gnu',
      'linux-x64-gnu',
      'linux-x64-musl',
      'win32-x64-msvc',
    ])
  })

  test('npm/ has one package per target, at the version of llm-proxy, for that os/cpu/libc', () => {
    const dirs = fs
      .readdirSync(path.join(ROOT, 'npm'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort()
    assert.deepEqual(dirs, PLATFORMS.map((p) => p.suffix).sort())
    for (const p of PLATFORMS) {
      const manifest = readJson(path.join(ROOT, 'npm', p.suffix, 'package.json'))
      const binary = `${PKG.napi.binaryName}.${p.suffix}.node`
      assert.equal(manifest.name, `${PKG.name}-${p.suffix}`)
      assert.equal(manifest.version, PKG.version, `npm/${p.suffix}: run \`npm run version\` (napi version)`)
      assert.deepEqual(manifest.os, [p.os], `npm/${p.suffix} os`)
      assert.deepEqual(manifest.cpu, [p.cpu], `npm/${p.suffix} cpu`)
      assert.deepEqual(manifest.libc, p.libc ? [p.libc] : undefined, `npm/${p.suffix} libc`)
      assert.equal(manifest.main, binary)
      assert.deepEqual(manifest.files, [binary])
      assert.equal(manifest.license, PKG.license)
    }
  })

  test('optionalDependencies list each binary package at the same version', () => {
    const expected = Object.fromEntries(PLATFORMS.map((p) => [`${PKG.name}-${p.suffix}`, PKG.version]))
    const listed = Object.fromEntries(
      Object.entries(PKG.optionalDependencies || {}).filter(([name]) => name.startsWith(`${PKG.name}-`)),
    )
    assert.deepEqual(listed, expected, 'run `node scripts/sync-optional-deps.js`')
  })

  test('package-lock.json records them, so that `npm ci` accepts the lockfile', () => {
    const lock = readJson(path.join(ROOT, 'package-lock.json'))
    const root = lock.packages['']
    for (const p of PLATFORMS) {
      const name = `${PKG.name}-${p.suffix}`
      assert.equal(root.optionalDependencies && root.optionalDependencies[name], PKG.version, `root entry: ${name}`)
      const entry = lock.packages[`node_modules/${name}`]
      assert.ok(entry, `package-lock.json has no node_modules/${name}: run \`node scripts/sync-optional-deps.js\``)
      assert.equal(entry.version, PKG.version, name)
      assert.equal(entry.optional, true, name)
      assert.deepEqual(entry.os, [p.os], name)
      assert.deepEqual(entry.cpu, [p.cpu], name)
    }
  })

  test('the release workflow builds every target and tests every target', () => {
    const jobs = workflowTargets()
    assert.ok(jobs.build, 'release.yml has no build job')
    assert.deepEqual([...jobs.build].sort(), [...TARGETS].sort(), 'targets of the build job')
    const tested = Object.entries(jobs)
      .filter(([name]) => name.startsWith('test'))
      .flatMap(([, targets]) => targets)
    assert.deepEqual([...new Set(tested)].sort(), [...TARGETS].sort(), 'targets of the test jobs')
    assert.ok(jobs.publish, 'release.yml has no publish job')
  })
})

// ---- running npm and node ----

/** The environment for npm: none of the caller's npm settings, no registry, nothing from the user's .npmrc. */
function npmEnv(tmp) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value
  fs.writeFileSync(path.join(tmp, 'empty-npmrc'), '')
  return Object.assign(env, {
    npm_config_registry: UNREACHABLE_REGISTRY,
    npm_config_userconfig: path.join(tmp, 'empty-npmrc'),
    npm_config_cache: path.join(tmp, 'npm-cache'),
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_ignore_scripts: 'true',
    npm_config_loglevel: 'warn',
  })
}

/** The environment for node: nothing that would redirect the loading of the addon. */
function nodeEnv() {
  const env = { ...process.env }
  for (const key of ['NODE_TEST_CONTEXT', 'NODE_PATH', 'NAPI_RS_NATIVE_LIBRARY_PATH', 'NAPI_RS_FORCE_WASI', 'NAPI_RS_WASI_FLAVOR']) {
    delete env[key]
  }
  return env
}

function run(file, args, options) {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000, ...options }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr })
    })
  })
}

async function npm(args, options) {
  // npm is a .cmd script on Windows, which only a shell can run
  const windows = process.platform === 'win32'
  const quoted = windows ? args.map((a) => (/[\s"]/.test(a) ? `"${a.replace(/"/g, '\\"')}"` : a)) : args
  const result = await run('npm', quoted, { ...options, shell: windows })
  assert.equal(result.code, 0, `npm ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result
}

function node(args, options) {
  return run(process.execPath, args, { env: nodeEnv(), ...options })
}

/** The JSON that `npm pack --json` prints (npm may print lifecycle output before it). */
function packJson(stdout) {
  const json = JSON.parse(stdout.slice(stdout.indexOf('[')))
  assert.equal(json.length, 1)
  return json[0]
}

function dirSize(dir) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) total += dirSize(file)
    else total += fs.lstatSync(file).size
  }
  return total
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Whether `file` is a release build of the addon: CI says so, or it is cargo's release output. */
function isReleaseBinary(file) {
  if (process.env.LLM_PROXY_RELEASE_BINARY === '1') return true
  const names = ['libllm_proxy.so', 'libllm_proxy.dylib', 'llm_proxy.dll']
  const dirs = [path.join(ROOT, 'target', 'release')]
  try {
    for (const d of fs.readdirSync(path.join(ROOT, 'target'))) dirs.push(path.join(ROOT, 'target', d, 'release'))
  } catch {
    return false
  }
  const size = fs.statSync(file).size
  const digest = sha256(file)
  return dirs.some((d) =>
    names.some((n) => {
      const candidate = path.join(d, n)
      return fs.existsSync(candidate) && fs.statSync(candidate).size === size && sha256(candidate) === digest
    }),
  )
}

// ---- the main tarball ----

describe('the main tarball', () => {
  let tmp
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-pack-list-'))
  })
  after(() => fs.rmSync(tmp, { recursive: true, force: true }))

  test('holds exactly what package.json lists (npm pack --dry-run)', async () => {
    const { stdout } = await npm(['pack', '--dry-run', '--json'], { cwd: ROOT, env: npmEnv(tmp) })
    const packed = packJson(stdout)
      .files.map((f) => f.path.replace(/\\/g, '/'))
      .sort()
    const bins = typeof PKG.bin === 'string' ? [PKG.bin] : Object.values(PKG.bin || {})
    const listed = [...PKG.files, ...bins].map((f) => f.replace(/^\.\//, '').replace(/\/$/, ''))
    const always = ['package.json', 'README.md', 'LICENSE']
    const allowed = (f) => always.includes(f) || listed.some((l) => f === l || f.startsWith(`${l}/`))
    assert.deepEqual(
      packed.filter((f) => !allowed(f)),
      [],
      `files packed that package.json does not list: ${packed.join(', ')}`,
    )
    for (const f of always) assert.ok(packed.includes(f), `${f} is not packed`)
    const built = fs.existsSync(path.join(ROOT, 'native.js'))
    for (const l of listed) {
      if (!built && /^native\./.test(l)) continue // generated by the build
      assert.ok(
        packed.some((f) => f === l || f.startsWith(`${l}/`)),
        `${l} is listed in package.json files but not packed`,
      )
    }
    assert.ok(!packed.some((f) => f.endsWith('.node')), 'a native binary is in the main package')
  })
})

// ---- a missing binary ----

describe('without a binary for the platform', () => {
  let tmp
  const hasNative = fs.existsSync(path.join(ROOT, 'native.js'))
  const host = hostPlatform()

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-missing-'))
  })
  after(() => fs.rmSync(tmp, { recursive: true, force: true }))

  /** A copy of the package's JavaScript, without any .node, outside any node_modules. */
  function copyPackage(name, { withNative }) {
    const dir = path.join(tmp, name, 'llm-proxy')
    fs.mkdirSync(dir, { recursive: true })
    const files = ['package.json', ...PKG.files.filter((f) => withNative || !/^native\./.test(f))]
    for (const f of files) {
      if (fs.existsSync(path.join(ROOT, f))) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true })
    }
    return dir
  }

  async function requireError(dir, preload) {
    const script = `try { require(${JSON.stringify(dir)}); console.log('{}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
    const { stdout, stderr } = await node([...(preload ? ['-r', preload] : []), '-e', script], { cwd: tmp })
    const out = JSON.parse(stdout.trim() || 'null')
    assert.ok(out && out.message, `require() did not throw:\n${stdout}\n${stderr}`)
    return out
  }

  function assertBuildFromSource(message) {
    assert.match(message, /git clone /)
    assert.match(message, /rustup/)
    assert.match(message, /npm ci && npm run build/)
    const described = PLATFORMS.map((p) => p.suffix)
    for (const d of ['linux x64 (glibc)', 'linux x64 (musl)', 'linux arm64 (glibc)', 'darwin x64', 'darwin arm64', 'win32 x64 (MSVC)']) {
      assert.ok(message.includes(d), `the supported platforms (${described}) are not all listed: ${d}`)
    }
  }

  test("on this platform: names it, the package that is missing, and how to build", { skip: !hasNative && 'not built' }, async () => {
    const dir = copyPackage('no-binary', { withNative: true })
    const { code, message } = await requireError(dir)
    assert.equal(code, 'ERR_LLM_PROXY_NO_NATIVE_BINARY', message)
    assert.ok(message.includes(`this platform: ${host.description}`), message)
    assert.ok(message.includes(process.platform) && message.includes(process.arch), message)
    if (process.platform === 'linux') assert.match(message, /\((glibc|musl)\)/)
    if (PLATFORMS.some((p) => p.suffix === host.suffix)) {
      assert.ok(message.includes(`${PKG.name}-${host.suffix}@${PKG.version}`), message)
      assert.match(message, /is not installed/)
    }
    assertBuildFromSource(message)
  })

  test('on a platform without a prebuilt binary: says so', { skip: !hasNative && 'not built' }, async () => {
    const dir = copyPackage('elsewhere', { withNative: true })
    const stub = path.join(tmp, 'freebsd.js')
    fs.writeFileSync(stub, "Object.defineProperty(process, 'platform', { value: 'freebsd' })\n")
    const { code, message } = await requireError(dir, stub)
    assert.equal(code, 'ERR_LLM_PROXY_NO_NATIVE_BINARY', message)
    assert.ok(message.includes(`has no prebuilt native binary for this platform: freebsd ${process.arch}`), message)
    assertBuildFromSource(message)
  })

  test('in a checkout that was never built (no native.js): says to build it', async () => {
    const dir = copyPackage('unbuilt', { withNative: false })
    const { code, message } = await requireError(dir)
    assert.equal(code, 'ERR_LLM_PROXY_NO_NATIVE_BINARY', message)
    assert.match(message, /has not been built/)
    assert.ok(message.includes(dir), message)
    assertBuildFromSource(message)
  })
})

// ---- packed, installed, used ----

const HOST = hostPlatform()
const HOST_BINARY = process.env.LLM_PROXY_PACK_BINARY || path.join(ROOT, `${PKG.napi.binaryName}.${HOST.suffix}.node`)
const packSkip = !PLATFORMS.some((p) => p.suffix === HOST.suffix)
  ? `no package for this platform (${HOST.suffix})`
  : !fs.existsSync(path.join(ROOT, 'native.js')) || !fs.existsSync(HOST_BINARY)
    ? `not built (${path.basename(HOST_BINARY)}): npm run build:debug`
    : false

describe('packed and installed from the tarballs', { skip: packSkip }, () => {
  const platformName = `${PKG.name}-${HOST.suffix}`
  const binaryName = `${PKG.napi.binaryName}.${HOST.suffix}.node`
  let tmp
  let app
  let release
  let packedBinaryNote = ''
  const tarballs = {}

  before(
    async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llm-proxy-pack-'))
      const env = npmEnv(tmp)
      const out = path.join(tmp, 'tarballs')
      fs.mkdirSync(out)
      release = isReleaseBinary(HOST_BINARY)

      // The main package, as `npm publish` would pack it.
      tarballs.main = packJson((await npm(['pack', '--json', '--pack-destination', out], { cwd: ROOT, env })).stdout)

      // This platform's package: a copy of npm/<platform> with the binary put in, as `napi artifacts`
      // does before publishing (the repository itself is left without build products in npm/).
      const platformDir = path.join(tmp, 'platform')
      fs.mkdirSync(platformDir)
      for (const f of fs.readdirSync(path.join(ROOT, 'npm', HOST.suffix))) {
        fs.copyFileSync(path.join(ROOT, 'npm', HOST.suffix, f), path.join(platformDir, f))
      }
      const binary = path.join(platformDir, binaryName)
      fs.copyFileSync(HOST_BINARY, binary)
      if (!release && process.platform === 'linux') {
        // A debug build is mostly debug info (~100 MB), slow to compress; pack it without that.
        const stripped = await run('strip', ['--strip-debug', binary])
        if (stripped.code === 0) packedBinaryNote = ' (a debug build, packed with --strip-debug)'
      }
      tarballs.platform = packJson((await npm(['pack', '--json', '--pack-destination', out], { cwd: platformDir, env })).stdout)

      // An empty project that installs both tarballs and nothing else.
      app = path.join(tmp, 'app')
      fs.mkdirSync(app)
      fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
      await npm(['install', '--offline', '--no-audit', '--no-fund', path.join(out, tarballs.main.filename), path.join(out, tarballs.platform.filename)], {
        cwd: app,
        env,
      })
    },
    { timeout: 120_000 },
  )
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }))

  test('the platform tarball holds its package.json, README.md and the binary', () => {
    const files = tarballs.platform.files.map((f) => f.path).sort()
    assert.deepEqual(files, [binaryName, 'README.md', 'package.json'].sort())
  })

  test('the optional dependency on this platform resolves to the platform tarball; no other is installed', () => {
    const installed = readJson(path.join(app, 'node_modules', PKG.name, 'package.json'))
    assert.equal(installed.version, PKG.version)
    assert.equal(installed.optionalDependencies[platformName], PKG.version)
    const platform = readJson(path.join(app, 'node_modules', platformName, 'package.json'))
    assert.equal(platform.version, PKG.version)
    assert.ok(fs.existsSync(path.join(app, 'node_modules', platformName, binaryName)))
    const others = fs.readdirSync(path.join(app, 'node_modules')).filter((d) => d.startsWith(`${PKG.name}-`) && d !== platformName)
    assert.deepEqual(others, [])
  })

  test('CommonJS: require() loads the binary from the platform package; generate and stream', async () => {
    const script = `
      const llm = require('llm-proxy')
      const { LLMProxy, generateLLMResponse, generateLLMStreamResponse, llmAsJudge, Providers } = llm
      ;(async () => {
        const proxy = new LLMProxy()
        const messages = [{ role: 'user', content: 'q' }]
        const res = await proxy.generate({ model: 'mock/x', messages, mock_response: 'packed and installed' })
        let streamed = ''
        for await (const chunk of proxy.stream({ model: 'mock/x', messages, mock_response: 'streamed from the tarball' })) {
          streamed += chunk.choices[0]?.delta?.content ?? ''
        }
        console.log(JSON.stringify({
          main: require.resolve('llm-proxy'),
          binaries: Object.keys(require.cache).filter((f) => f.endsWith('.node')),
          version: require('llm-proxy/package.json').version,
          content: res.choices[0].message.content,
          streamed,
          exports: Object.keys(llm).sort(),
          legacy: [typeof generateLLMResponse, typeof generateLLMStreamResponse, typeof llmAsJudge, Providers.OPENAI],
        }))
      })().catch((e) => { console.error(e); process.exit(1) })`
    fs.writeFileSync(path.join(app, 'cjs.js'), script)
    const { code, stdout, stderr } = await node(['cjs.js'], { cwd: app })
    assert.equal(code, 0, stderr)
    const out = JSON.parse(stdout)
    const real = (f) => fs.realpathSync.native(f)
    assert.equal(real(out.main), real(path.join(app, 'node_modules', PKG.name, 'index.js')))
    assert.deepEqual(out.binaries.map(real), [real(path.join(app, 'node_modules', platformName, binaryName))])
    assert.equal(out.version, PKG.version)
    assert.equal(out.content, 'packed and installed')
    assert.equal(out.streamed, 'streamed from the tarball')
    assert.deepEqual(out.legacy, ['function', 'function', 'function', 'OpenAI'])
    for (const name of ['LLMProxy', 'LLMProxyError', 'ERROR_CODES']) assert.ok(out.exports.includes(name), name)
  })

  test('ESM: every export is a named import, and the default import is the CommonJS exports', async () => {
    const script = `
      import { createRequire } from 'node:module'
      import { LLMProxy, LLMProxyError, generateLLMResponse } from 'llm-proxy'
      import llm from 'llm-proxy'
      import * as namespace from 'llm-proxy'
      const cjs = createRequire(import.meta.url)('llm-proxy')
      const proxy = new LLMProxy()
      const messages = [{ role: 'user', content: 'q' }]
      const res = await proxy.generate({ model: 'mock/x', messages, mock_response: 'imported' })
      let streamed = ''
      for await (const chunk of new llm.LLMProxy().stream({ model: 'mock/x', messages, mock_response: 'as ESM' })) {
        streamed += chunk.choices[0]?.delta?.content ?? ''
      }
      console.log(JSON.stringify({
        sameDefault: llm === cjs,
        sameClass: llm.LLMProxy === LLMProxy && LLMProxyError === cjs.LLMProxyError && generateLLMResponse === cjs.generateLLMResponse,
        named: Object.keys(namespace).filter((k) => k !== 'default').sort(),
        cjs: Object.keys(cjs).sort(),
        content: res.choices[0].message.content,
        streamed,
      }))`
    fs.writeFileSync(path.join(app, 'esm.mjs'), script)
    const { code, stdout, stderr } = await node(['esm.mjs'], { cwd: app })
    assert.equal(code, 0, stderr)
    const out = JSON.parse(stdout)
    assert.equal(out.sameDefault, true)
    assert.equal(out.sameClass, true)
    assert.deepEqual(out.named, out.cjs, 'an export of index.js that ESM cannot import by name')
    assert.equal(out.content, 'imported')
    assert.equal(out.streamed, 'as ESM')
  })

  test('TypeScript (strict): the types resolve under node16 (ESM and CommonJS) and bundler', { timeout: 120_000 }, async () => {
    const usage = (imports) => `${imports}
const proxy: LLMProxy = new llm.LLMProxy({ openai: { apiKey: 'k' } })
export async function main(): Promise<string | null | undefined> {
  const res: ChatCompletion = await proxy.generate({ model: 'mock/x', messages: [{ role: 'user', content: 'q' }] })
  for await (const chunk of proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'q' }] })) {
    const c: ChatCompletionChunk = chunk
    void c
  }
  return res.choices[0]?.message.content
}
export const provider: Providers = Providers.OPENAI
export const isProxyError = (e: unknown): e is LLMProxyError => e instanceof LLMProxyError
export const legacy: typeof generateLLMResponse = llm.generateLLMResponse
// @ts-expect-error a model is a string: this line only fails if the types resolved (any would accept it)
void proxy.generate({ model: 1, messages: [] })
`
    const esm = usage(
      `import { LLMProxy, LLMProxyError, Providers, generateLLMResponse, type ChatCompletion, type ChatCompletionChunk } from 'llm-proxy'\nimport llm from 'llm-proxy'`,
    )
    const cjs = usage(
      `import llm = require('llm-proxy')\nimport { LLMProxy, LLMProxyError, Providers, generateLLMResponse, type ChatCompletion, type ChatCompletionChunk } from 'llm-proxy'`,
    )
    fs.writeFileSync(path.join(app, 'check-esm.mts'), esm)
    fs.writeFileSync(path.join(app, 'check-cjs.cts'), cjs)
    fs.writeFileSync(path.join(app, 'check-bundler.ts'), esm)
    const base = { strict: true, noEmit: true, target: 'es2022', lib: ['es2022'], types: [], skipLibCheck: false }
    const configs = {
      'tsconfig.node16.json': { compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, files: ['check-esm.mts', 'check-cjs.cts'] },
      'tsconfig.bundler.json': { compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['check-bundler.ts'] },
    }
    const results = await Promise.all(
      Object.entries(configs).map(async ([file, config]) => {
        fs.writeFileSync(path.join(app, file), JSON.stringify(config, null, 2))
        return { file, ...(await node([TSC, '-p', file, '--pretty', 'false'], { cwd: app, timeout: 120_000 })) }
      }),
    )
    for (const r of results) assert.equal(r.code, 0, `${r.file}:\n${r.stdout}${r.stderr}`)
  })

  test('without the platform package, require() names the missing package', async () => {
    const bare = path.join(tmp, 'bare')
    fs.mkdirSync(bare)
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'bare', version: '1.0.0', private: true }))
    await npm(['install', '--offline', '--no-audit', '--no-fund', path.join(tmp, 'tarballs', tarballs.main.filename)], {
      cwd: bare,
      env: npmEnv(tmp),
    })
    const script = `try { require('llm-proxy') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
    const { stdout } = await node(['-e', script], { cwd: bare })
    const { code, message } = JSON.parse(stdout)
    assert.equal(code, 'ERR_LLM_PROXY_NO_NATIVE_BINARY', message)
    assert.ok(message.includes(`this platform: ${HOST.description}`), message)
    assert.ok(message.includes(`${platformName}@${PKG.version}, which is not installed`), message)
    assert.match(message, /npm ci && npm run build/)
  })

  test(`installed size of ${PKG.name} + its platform package: under ${mb(MAX_INSTALLED_BYTES)} (release builds)`, (t) => {
    const main = dirSize(path.join(app, 'node_modules', PKG.name))
    const platform = dirSize(path.join(app, 'node_modules', platformName))
    const raw = fs.statSync(HOST_BINARY).size
    t.diagnostic(
      `installed: ${PKG.name} ${mb(main)}, ${platformName} ${mb(platform)}${packedBinaryNote}; ` +
        `tarballs: ${mb(tarballs.main.size)} + ${mb(tarballs.platform.size)}; ${path.basename(HOST_BINARY)}: ${mb(raw)}`,
    )
    assert.ok(main < 1024 * 1024, `the main package alone is ${mb(main)}`)
    if (!release) {
      t.skip(`${path.basename(HOST_BINARY)} is not a release build (${mb(raw)}): size not asserted`)
      return
    }
    assert.ok(main + platform < MAX_INSTALLED_BYTES, `installed: ${mb(main + platform)}`)
  })
})
