#!/usr/bin/env node
'use strict'

// Keeps the binary packages listed where npm and napi-rs look for them, at the version of the main
// package:
//   - package.json `optionalDependencies`: `llm-proxy-<platform>` for every `napi.targets` entry,
//     exactly as `napi pre-publish` (npm's prepublishOnly) writes them at publish time;
//   - package-lock.json: the same list in the root entry, and one `node_modules/llm-proxy-<platform>`
//     entry each, as npm records a platform package (version, os, cpu, libc, optional). npm cannot
//     write these entries itself while a version is unpublished (the registry answers 404, so
//     `npm install` leaves the package out), and without them `npm ci` refuses to run ("package.json
//     and package-lock.json ... are not in sync"). With them, `npm ci` tries the one package that
//     fits this machine, tolerates its absence as it does for any optional dependency, and skips
//     the others by os/cpu/libc. An entry npm has already filled in for this version (with its
//     integrity) is left as it is.
//   - npm/<platform>/package.json `version` (what `napi version` does).
//
// Run it after the version changes: `npm version` runs the `version` script, which should be
// `napi version && node scripts/sync-optional-deps.js`. Under `npm version` it also `git add`s
// npm/*/package.json so that they go into the version commit.
//
//   node scripts/sync-optional-deps.js          update the files
//   node scripts/sync-optional-deps.js --check  only report; exit code 1 if a file is out of date

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { parseTriple } = require('@napi-rs/cli')

const ROOT = path.join(__dirname, '..')
const check = process.argv.includes('--check')

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

function serialize(value) {
  return `${JSON.stringify(value, null, 2)}\n`
}

const pkgFile = path.join(ROOT, 'package.json')
const lockFile = path.join(ROOT, 'package-lock.json')
const pkg = readJson(pkgFile)
const lock = fs.existsSync(lockFile) ? readJson(lockFile) : null
const npmDir = path.join(ROOT, 'npm')
const targets = ((pkg.napi && pkg.napi.targets) || []).map((t) => parseTriple(t))
const managed = new Set(targets.map((t) => `${pkg.name}-${t.platformArchABI}`))
// Any binary package of this one, including those of targets since dropped from napi.targets.
const isManaged = (name) =>
  managed.has(name) ||
  (name.startsWith(`${pkg.name}-`) &&
    /^(?:linux|darwin|win32|freebsd|android|openharmony|wasm32)-/.test(name.slice(pkg.name.length + 1)))

const outOfDate = []
const writes = new Map()

// npm/<platform>/package.json: the version of the main package.
const platformManifests = new Map()
for (const t of targets) {
  const file = path.join(npmDir, t.platformArchABI, 'package.json')
  if (!fs.existsSync(file)) {
    console.error(`${path.relative(ROOT, file)} is missing: create it with \`napi create-npm-dirs\``)
    process.exit(1)
  }
  const manifest = readJson(file)
  platformManifests.set(t.platformArchABI, manifest)
  if (manifest.version !== pkg.version) {
    outOfDate.push(`${path.relative(ROOT, file)}: version ${manifest.version}, not ${pkg.version}`)
    writes.set(file, serialize({ ...manifest, version: pkg.version }))
  }
}

// The same entries, whatever their order.
const sameEntries = (a, b) => {
  const sorted = (o) => JSON.stringify(Object.entries(o || {}).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
  return sorted(a) === sorted(b)
}
const byName = (a, b) => a.localeCompare(b, 'en')

// package.json: optionalDependencies sorted by name, as npm saves dependencies (napi pre-publish
// writes them in target order when it publishes; either order means the same); other optional
// dependencies kept.
const wanted = {}
for (const [name, spec] of Object.entries(pkg.optionalDependencies || {})) if (!isManaged(name)) wanted[name] = spec
for (const t of targets) wanted[`${pkg.name}-${t.platformArchABI}`] = pkg.version
const optional = {}
for (const name of Object.keys(wanted).sort(byName)) optional[name] = wanted[name]
if (!sameEntries(optional, pkg.optionalDependencies)) {
  outOfDate.push('package.json: optionalDependencies')
  // Rebuilt in place: the field keeps its position, or goes at the end like napi pre-publish puts it.
  const next = {}
  for (const [key, value] of Object.entries(pkg)) next[key] = key === 'optionalDependencies' ? optional : value
  if (!('optionalDependencies' in next)) next.optionalDependencies = optional
  writes.set(pkgFile, serialize(next))
}

// package-lock.json: the root's list and one entry per binary package.
if (lock) {
  let changed = false
  const root = lock.packages && lock.packages['']
  if (!root) {
    console.error('package-lock.json has no root entry (lockfileVersion 2 or 3 expected)')
    process.exit(1)
  }
  // npm lists a lockfile entry's dependencies sorted by name
  const rootOptional = optional
  if (!sameEntries(rootOptional, root.optionalDependencies)) {
    root.optionalDependencies = rootOptional
    changed = true
  }
  const entries = { ...lock.packages }
  for (const key of Object.keys(entries)) {
    const name = key.startsWith('node_modules/') ? key.slice('node_modules/'.length) : null
    if (name && isManaged(name) && !(name in optional)) {
      delete entries[key]
      changed = true
    }
  }
  for (const t of targets) {
    const name = `${pkg.name}-${t.platformArchABI}`
    const key = `node_modules/${name}`
    const current = entries[key]
    if (current && current.version === pkg.version && current.optional === true) continue
    const manifest = platformManifests.get(t.platformArchABI)
    const entry = { version: pkg.version }
    for (const field of ['cpu', 'libc', 'license']) if (manifest[field] !== undefined) entry[field] = manifest[field]
    entry.optional = true
    if (manifest.os !== undefined) entry.os = manifest.os
    if (manifest.engines !== undefined) entry.engines = manifest.engines
    entries[key] = entry
    changed = true
  }
  if (changed) {
    outOfDate.push('package-lock.json: the binary packages')
    // npm's own order: the root first, then paths compared as npm compares them.
    const keys = Object.keys(entries).filter((k) => k !== '')
    keys.sort((a, b) => a.localeCompare(b, 'en'))
    lock.packages = { '': entries[''] }
    for (const k of keys) lock.packages[k] = entries[k]
    writes.set(lockFile, serialize(lock))
  }
}

if (check) {
  if (outOfDate.length > 0) {
    console.error(`Out of date (run \`node scripts/sync-optional-deps.js\`):\n  ${outOfDate.join('\n  ')}`)
    process.exit(1)
  }
  console.log(`The ${targets.length} binary packages are listed at ${pkg.version}.`)
  process.exit(0)
}

for (const [file, text] of writes) fs.writeFileSync(file, text)
for (const line of outOfDate) console.log(`updated ${line}`)

if (process.env.npm_lifecycle_event === 'version') {
  // `npm version` commits package.json and package-lock.json itself; the platform manifests are ours.
  const files = targets.map((t) => path.join('npm', t.platformArchABI, 'package.json'))
  try {
    execFileSync('git', ['add', '--', ...files], { cwd: ROOT, stdio: 'inherit' })
  } catch {
    // not a git checkout, or git missing: npm version makes no commit then either
  }
}
