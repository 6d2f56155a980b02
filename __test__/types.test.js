'use strict'

// index.d.ts: a strict usage program compiles against it, programs with type errors do not, and its
// error-code union is exactly the codes the native core has.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { ROOT, pkg } = require('./helpers/common')

const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc')

function tsc(project) {
  return new Promise((resolve) => {
    execFile(TSC, ['-p', project, '--pretty', 'false'], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` })
    })
  })
}

test('typescript is installed', () => {
  assert.ok(fs.existsSync(TSC), `${TSC} is missing: run npm install`)
})

test('__test__/types/usage.ts compiles under strict against index.d.ts', async () => {
  const { code, output } = await tsc('__test__/types')
  assert.equal(code, 0, output)
  assert.equal(output.trim(), '')
})

test('programs with type errors do not compile (each for the expected reason)', async () => {
  const { code, output } = await tsc('__test__/types/negative')
  assert.notEqual(code, 0, 'tsc accepted programs with type errors')
  const errors = output
    .split('\n')
    .map((l) => /([\w-]+\.ts)\((\d+),\d+\): error (TS\d+)/.exec(l))
    .filter(Boolean)
    .map(([, file, line, ts]) => `${file}:${line} ${ts}`)
  const expected = [
    'bad-model.ts:5 TS2322', // model: 1
    'bad-error-code.ts:5 TS2367', // err.code === 'rate_limited'
    'bad-nullable-content.ts:7 TS2533', // delta.content may be null or undefined
    'bad-options.ts:4 TS2741', // compatible endpoint without baseUrl
    'bad-options.ts:5 TS2561', // openAI
  ]
  assert.deepEqual(errors.sort(), expected.sort(), output)
  // Every file in negative/ is covered.
  const files = fs.readdirSync(path.join(__dirname, 'types', 'negative')).filter((f) => f.endsWith('.ts'))
  for (const f of files) assert.ok(errors.some((e) => e.startsWith(`${f}:`)), `${f} compiled without an error`)
})

test('LLMProxyErrorCode in index.d.ts lists exactly ERROR_CODES', () => {
  const dts = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8')
  const start = dts.indexOf('export type LLMProxyErrorCode =')
  assert.ok(start >= 0, 'index.d.ts has no LLMProxyErrorCode')
  let body = dts.slice(start + 'export type LLMProxyErrorCode ='.length)
  // The union ends at the first line that is neither a member, a comment nor blank.
  const lines = []
  for (const line of body.split('\n')) {
    const t = line.trim()
    if (t === '' && lines.length === 0) continue
    if (t.startsWith('|') || t.startsWith('//') || t.startsWith('/*') || t.startsWith('*') || /^'[^']*'$/.test(t)) {
      lines.push(t)
      continue
    }
    break
  }
  body = lines
    .join('\n')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
  const members = [...body.matchAll(/'([^']+)'/g)].map((m) => m[1])
  assert.ok(members.length > 0)
  assert.equal(new Set(members).size, members.length, `duplicates in the union: ${members}`)
  assert.deepEqual([...members].sort(), [...pkg.ERROR_CODES].sort())
  assert.equal(members.length, pkg.ERROR_CODES.length)
})

test('index.d.ts declares what index.js exports', () => {
  const dts = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8')
  for (const name of Object.keys(pkg)) {
    assert.match(dts, new RegExp(`export declare (class|const|function|enum) ${name}\\b`), name)
  }
  assert.deepEqual(
    Object.keys(pkg).sort(),
    [
      'ERROR_CODES',
      'LLMProxy',
      'LLMProxyError',
      // the 1.x API (legacy.js)
      'AnthropicSupportedLLMs',
      'BedrockAnthropicContentType',
      'BedrockAnthropicSupportedLLMs',
      'Llama3_1SupportedLLMs',
      'OpenAISupportedLLMs',
      'Providers',
      'generateLLMResponse',
      'generateLLMStreamResponse',
      'llmAsJudge',
      'responseContainsFuturePromise',
    ].sort(),
  )
})
