'use strict'

// index.d.ts: strict usage programs compile against it (under moduleResolution node16 and bundler),
// its answers, chunks and requests fit the official `openai` package's types as they are
// (__test__/types/openai/compat.ts), programs with type errors do not compile, its error-code union is exactly the codes the native core has, and the answers
// and chunks llm-proxy really produces (every recorded provider response, replayed) have the fields it
// declares.

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { ROOT, pkg, fixture, listFixtures } = require('./helpers/common')
const { startUpstream, replay, JSON_HEADERS, SSE_HEADERS } = require('./helpers/upstream')

const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc')
const TYPES = path.join(__dirname, 'types')

function tsc(project, extra = []) {
  return new Promise((resolve) => {
    execFile(TSC, ['-p', project, '--pretty', 'false', ...extra], { cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` })
    })
  })
}

test('typescript and openai are installed', () => {
  assert.ok(fs.existsSync(TSC), `${TSC} is missing: run npm install`)
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const wanted = manifest.devDependencies && manifest.devDependencies.openai
  assert.ok(wanted, 'package.json lists no openai devDependency')
  const openaiManifest = path.join(ROOT, 'node_modules', 'openai', 'package.json')
  assert.ok(fs.existsSync(openaiManifest), 'node_modules/openai is missing: run npm install')
  assert.equal(JSON.parse(fs.readFileSync(openaiManifest, 'utf8')).version, wanted, 'installed openai differs from package.json')
})

// Each project compiles with no output at all. usage.ts: every part of the API, without DOM types;
// openai/compat.ts: against the `openai` package (whose declarations need lib dom).
const PROJECTS = [
  ['usage.ts, moduleResolution node16', '__test__/types'],
  ['usage.ts, moduleResolution bundler', '__test__/types/tsconfig.bundler.json'],
  ['usage.ts, exactOptionalPropertyTypes', '__test__/types', ['--exactOptionalPropertyTypes']],
  ['openai/compat.ts, moduleResolution node16', '__test__/types/openai'],
  ['openai/compat.ts, moduleResolution bundler', '__test__/types/openai/tsconfig.bundler.json'],
  ['openai/compat.ts, exactOptionalPropertyTypes', '__test__/types/openai', ['--exactOptionalPropertyTypes']],
]

// tsc is slow to start and these are independent: they run at the same time.
describe('the usage programs', { concurrency: true }, () => {
  for (const [name, project, extra] of PROJECTS) {
    test(`${name} compiles under strict against index.d.ts`, async () => {
      const { code, output } = await tsc(project, extra)
      assert.equal(code, 0, output)
      assert.equal(output.trim(), '')
    })
  }
})

test('openai/compat.ts assigns as it is: no @ts-expect-error, no cast', () => {
  // llm-proxy's answers, chunks and requests are the SDK's with plain assignments; a difference
  // would have to be pinned here, and there is none.
  const source = fs.readFileSync(path.join(TYPES, 'openai', 'compat.ts'), 'utf8')
  const code = source.replace(/\/\/.*$/gm, '')
  assert.doesNotMatch(source, /^\s*\/\/\s*@ts-(expect-error|ignore|nocheck)/m)
  assert.doesNotMatch(code, /\bas (?!const\b)[A-Za-z]/, 'a cast in compat.ts')
  assert.match(code, /const completion: OpenAI\.ChatCompletion = res\b/)
  assert.match(code, /const sdkChunk: OpenAI\.ChatCompletionChunk = chunk\b/)
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
    'bad-timeout-kind.ts:5 TS2367', // err.timeout === 'first_chunk'
    'bad-nullable-content.ts:7 TS2532', // delta.content may be absent
    'bad-usage.ts:8 TS2532', // an answer's usage may be absent
    'bad-usage.ts:10 TS18048', // a chunk's usage is on the last chunk only
    'bad-options.ts:4 TS2741', // compatible endpoint without baseUrl
    'bad-options.ts:5 TS2561', // openAI
    'bad-call-options.ts:7 TS2353', // timeouts.connectMs per call
    'bad-call-options.ts:8 TS2322', // retryOnFuturePromise: 'yes'
    'bad-custom-tool-call.ts:7 TS2339', // `function` read from a tool call that may be custom
    'bad-request-fields.ts:6 TS2322', // reasoning_effort: 'extreme'
    'bad-request-fields.ts:7 TS2322', // image_url: a string
    'bad-request-fields.ts:8 TS2322', // a tool result without tool_call_id
  ]
  assert.deepEqual(errors.sort(), expected.sort(), output)
  // Every file in negative/ is covered.
  const files = fs.readdirSync(path.join(TYPES, 'negative')).filter((f) => f.endsWith('.ts'))
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

// ---- what index.d.ts promises, checked on real answers and chunks ----
// Every recorded answer and stream of every provider (tests/fixtures), and the mock provider's, goes
// through generate() / stream() and is held to the answer and chunk types of index.d.ts: each field
// they declare is there with the declared type (in particular what the `openai` package's types
// require: `refusal` and `logprobs` present, usage counts numbers, no null delta content).

const isInt = (v) => Number.isInteger(v) && v >= 0
const isStr = (v) => typeof v === 'string'
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Problems of `v` against CompletionUsage, prefixed by `at`. */
function usageProblems(v, at) {
  const out = []
  if (!isObj(v)) return [`${at} is not an object`]
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) if (!isInt(v[k])) out.push(`${at}.${k} is not a count`)
  const details = {
    prompt_tokens_details: ['cached_tokens', 'cache_creation_tokens', 'audio_tokens'],
    completion_tokens_details: ['reasoning_tokens', 'audio_tokens', 'accepted_prediction_tokens', 'rejected_prediction_tokens'],
  }
  for (const [k, counts] of Object.entries(details)) {
    if (!(k in v)) continue
    if (!isObj(v[k])) out.push(`${at}.${k} is not an object`)
    else for (const c of counts) if (c in v[k] && !isInt(v[k][c])) out.push(`${at}.${k}.${c} is not a count`)
  }
  return out
}

function thinkingProblems(v, at) {
  if (!Array.isArray(v)) return [`${at} is not an array`]
  return v.flatMap((b, i) =>
    (b && b.type === 'thinking' && isStr(b.thinking) && isStr(b.signature)) || (b && b.type === 'redacted_thinking' && isStr(b.data))
      ? []
      : [`${at}[${i}] is not a ThinkingBlock`],
  )
}

/** FinishReason of index.d.ts. */
const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'content_filter', 'function_call']

/** `native_finish_reason`: absent, or a string on a choice that finishes. */
function nativeFinishProblems(choice, at) {
  if (!('native_finish_reason' in choice)) return []
  if (!isStr(choice.native_finish_reason)) return [`${at}.native_finish_reason is not a string`]
  return choice.finish_reason === null ? [`${at}.native_finish_reason without a finish_reason`] : []
}

function logprobsProblems(choice, at) {
  if (!('logprobs' in choice)) return [`${at}.logprobs is missing`]
  const l = choice.logprobs
  if (l === null) return []
  return isObj(l) && 'content' in l && 'refusal' in l ? [] : [`${at}.logprobs is not ChoiceLogprobs`]
}

function headProblems(c, object) {
  const out = []
  if (!isStr(c.id) || c.id === '') out.push('id is not a non-empty string')
  if (c.object !== object) out.push(`object is ${JSON.stringify(c.object)}`)
  if (!isInt(c.created) || c.created > 1e10) out.push('created is not Unix seconds')
  if (!isStr(c.model)) out.push('model is not a string')
  if (!Array.isArray(c.choices)) out.push('choices is not an array')
  if ('llm_proxy' in c) out.push('llm_proxy on a call without fallbacks')
  return out
}

/** Problems of an answer of generate() against ChatCompletion. */
function completionProblems(c) {
  const out = headProblems(c, 'chat.completion')
  if ('usage' in c) out.push(...usageProblems(c.usage, 'usage'))
  if ('stop_sequence' in c && !isStr(c.stop_sequence)) out.push('stop_sequence is not a string')
  ;(c.choices || []).forEach((choice, i) => {
    const at = `choices[${i}]`
    if (!isInt(choice.index)) out.push(`${at}.index is not an integer`)
    if (!FINISH_REASONS.includes(choice.finish_reason)) out.push(`${at}.finish_reason ${JSON.stringify(choice.finish_reason)} is not a FinishReason`)
    out.push(...nativeFinishProblems(choice, at))
    out.push(...logprobsProblems(choice, at))
    const m = choice.message
    if (!isObj(m)) return out.push(`${at}.message is not an object`)
    if (m.role !== 'assistant') out.push(`${at}.message.role is ${JSON.stringify(m.role)}`)
    for (const k of ['content', 'refusal']) {
      if (!(k in m)) out.push(`${at}.message.${k} is missing`)
      else if (!(m[k] === null || isStr(m[k]))) out.push(`${at}.message.${k} is not a string or null`)
    }
    if ('tool_calls' in m) {
      if (!Array.isArray(m.tool_calls) || m.tool_calls.length === 0) out.push(`${at}.message.tool_calls is not a non-empty array`)
      else
        m.tool_calls.forEach((t, j) => {
          const ok =
            isStr(t.id) &&
            t.id !== '' &&
            ((t.type === 'function' && isObj(t.function) && isStr(t.function.name) && isStr(t.function.arguments)) ||
              (t.type === 'custom' && isObj(t.custom) && isStr(t.custom.name) && isStr(t.custom.input)))
          if (!ok) out.push(`${at}.message.tool_calls[${j}] is not a ToolCall`)
        })
    }
    if ('reasoning_content' in m && !isStr(m.reasoning_content)) out.push(`${at}.message.reasoning_content is not a string`)
    if ('thinking_blocks' in m) out.push(...thinkingProblems(m.thinking_blocks, `${at}.message.thinking_blocks`))
  })
  return out
}

/** Problems of a chunk of stream() against ChatCompletionChunk. */
function chunkProblems(c) {
  const out = headProblems(c, 'chat.completion.chunk')
  if ('usage' in c) out.push(...usageProblems(c.usage, 'usage'))
  ;(c.choices || []).forEach((choice, i) => {
    const at = `choices[${i}]`
    if (!isInt(choice.index)) out.push(`${at}.index is not an integer`)
    if (!(choice.finish_reason === null || FINISH_REASONS.includes(choice.finish_reason))) out.push(`${at}.finish_reason ${JSON.stringify(choice.finish_reason)} is not a FinishReason or null`)
    out.push(...nativeFinishProblems(choice, at))
    out.push(...logprobsProblems(choice, at))
    const d = choice.delta
    if (!isObj(d)) return out.push(`${at}.delta is not an object`)
    if ('role' in d && d.role !== 'assistant') out.push(`${at}.delta.role is ${JSON.stringify(d.role)}`)
    for (const k of ['content', 'refusal', 'reasoning_content']) if (k in d && !isStr(d[k])) out.push(`${at}.delta.${k} is not a string`)
    if ('thinking_blocks' in d) out.push(...thinkingProblems(d.thinking_blocks, `${at}.delta.thinking_blocks`))
    if ('tool_calls' in d) {
      if (!Array.isArray(d.tool_calls)) out.push(`${at}.delta.tool_calls is not an array`)
      else
        d.tool_calls.forEach((t, j) => {
          const f = t.function
          const c = t.custom
          const ok =
            isInt(t.index) &&
            (!('id' in t) || isStr(t.id)) &&
            (!('type' in t) || t.type === 'function' || t.type === 'custom') &&
            (!('function' in t) || (isObj(f) && (!('name' in f) || isStr(f.name)) && (!('arguments' in f) || isStr(f.arguments)))) &&
            (!('custom' in t) || (isObj(c) && (!('name' in c) || isStr(c.name)) && (!('input' in c) || isStr(c.input))))
          if (!ok) out.push(`${at}.delta.tool_calls[${j}] is not a ChatCompletionChunkToolCall`)
        })
    }
  })
  return out
}

const BEDROCK = { region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }
const EVENTSTREAM_HEADERS = { 'Content-Type': 'application/vnd.amazon.eventstream', 'X-Amzn-Bedrock-Content-Type': 'application/json' }
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }]

/** [fixture, headers, options of the proxy (given the upstream's base URLs), model]: every recorded success. */
function recordings() {
  const usable = (f) => !f.includes('TEST-LITERAL')
  const openai = (u) => ({ openai: { apiKey: 'sk-test', baseUrl: u.baseUrl } })
  const compatible = (u) => ({ compatible: { gw: { baseUrl: u.baseUrl } } })
  const anthropic = (u) => ({ anthropic: { apiKey: 'sk-ant-test', baseUrl: u.url } })
  const bedrock = (u) => ({ bedrock: { ...BEDROCK, endpoint: u.url } })
  return {
    generate: [
      ...listFixtures('openai/chat', '.json').map((f) => [f, JSON_HEADERS, openai, 'gpt-4o']),
      ...listFixtures('anthropic/messages', '.json').map((f) => [f, JSON_HEADERS, anthropic, 'claude-sonnet-4-5']),
      ...listFixtures('bedrock/converse', '.json').map((f) => [f, JSON_HEADERS, bedrock, 'bedrock-converse/anthropic.claude-3-7-sonnet-20250219-v1:0']),
      ['bedrock/invoke/claude3-messages.json', JSON_HEADERS, bedrock, 'anthropic.claude-3-sonnet-20240229-v1:0'],
      ['bedrock/invoke/llama3-70b-generation.json', JSON_HEADERS, bedrock, 'meta.llama3-70b-instruct-v1:0'],
    ],
    stream: [
      ...listFixtures('openai/sse', '.sse').map((f) => [f, SSE_HEADERS, openai, 'gpt-4o']),
      ...listFixtures('openai-compatible/sse', '.sse').map((f) => [f, SSE_HEADERS, compatible, 'gw/model']),
      ...listFixtures('anthropic/sse', '.sse').filter(usable).map((f) => [f, SSE_HEADERS, anthropic, 'claude-sonnet-4-5']),
      ...listFixtures('bedrock/converse-stream', '.bin').map((f) => [f, EVENTSTREAM_HEADERS, bedrock, 'bedrock-converse/anthropic.claude-3-sonnet-20240229-v1:0']),
      ...listFixtures('bedrock/invoke-stream', '.bin')
        .filter((f) => f.includes('/claude'))
        .map((f) => [f, EVENTSTREAM_HEADERS, bedrock, 'anthropic.claude-3-sonnet-20240229-v1:0']),
      ...listFixtures('bedrock/invoke-stream', '.bin')
        .filter((f) => f.includes('/llama'))
        .map((f) => [f, EVENTSTREAM_HEADERS, bedrock, 'meta.llama3-8b-instruct-v1:0']),
    ],
  }
}

test('every recorded answer, through generate(), is a ChatCompletion as index.d.ts declares it', async () => {
  const { LLMProxy } = pkg
  const all = recordings().generate
  assert.ok(all.length >= 9, `found ${all.length} recordings`)
  for (const [file, headers, options, model] of all) {
    const upstream = await startUpstream(replay(200, headers, fixture(file)))
    try {
      const proxy = new LLMProxy({ ...options(upstream), retry: { maxRetries: 0 } })
      const res = await proxy.generate({ model, messages: [{ role: 'user', content: 'Hi' }], tools: TOOLS })
      assert.deepEqual(completionProblems(res), [], `${file}: ${JSON.stringify(res)}`)
    } finally {
      await upstream.close()
    }
  }
  const mock = await new pkg.LLMProxy().generate({ model: 'mock/x', messages: [{ role: 'user', content: 'Hi there' }] })
  assert.deepEqual(completionProblems(mock), [], JSON.stringify(mock))
})

test('every recorded stream, through stream(), is made of ChatCompletionChunks as index.d.ts declares them', async () => {
  const { LLMProxy } = pkg
  const all = recordings().stream
  assert.ok(all.length >= 14, `found ${all.length} recordings`)
  const check = (what, chunks) => {
    assert.ok(chunks.length > 0, what)
    chunks.forEach((c, i) => assert.deepEqual(chunkProblems(c), [], `${what}, chunk ${i}: ${JSON.stringify(c)}`))
    // Usage only on the last chunk, which has no choices.
    chunks.slice(0, -1).forEach((c, i) => assert.ok(!('usage' in c), `${what}, chunk ${i} has usage`))
  }
  for (const [file, headers, options, model] of all) {
    const upstream = await startUpstream(replay(200, headers, fixture(file), { framing: 'chunked' }))
    try {
      const proxy = new LLMProxy({ ...options(upstream), retry: { maxRetries: 0 } })
      const chunks = []
      for await (const c of proxy.stream({ model, messages: [{ role: 'user', content: 'Hi' }], tools: TOOLS })) chunks.push(c)
      check(file, chunks)
    } finally {
      await upstream.close()
    }
  }
  const mock = []
  for await (const c of new pkg.LLMProxy().stream({ model: 'mock/x', messages: [{ role: 'user', content: 'Hi there' }] })) mock.push(c)
  check('mock', mock)
})
