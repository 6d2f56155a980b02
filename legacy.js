'use strict'

// The llm-proxy 1.x API — generateLLMResponse, generateLLMStreamResponse, llmAsJudge,
// responseContainsFuturePromise and the Providers / model-name enums — served by the 2.x core, so that
// 1.x users upgrade by changing only the version. The behaviour follows llm-proxy 1.17.0 except where
// 1.17.0 had bugs; README.md ("Migrating from 1.x") lists every difference and why.
//
// Also home of the forced-tool retry ("future promise" recovery), which the 1.x functions always use
// and `LLMProxy` uses when asked to (`retryOnFuturePromise`).

// index.js loads this file; this file reaches index.js only when called, so either may load first.
function core() {
  return require('./index.js')
}

function legacyError(code, message) {
  return new (core().LLMProxyError)({ code, message, retryable: false })
}

// ---- enums: llm-proxy 1.17.0's published names and values (API, so they must match exactly) ----

const Providers = Object.freeze({
  OPENAI: 'OpenAI',
  ANTHROPIC: 'Anthropic',
  ANTHROPIC_BEDROCK: 'AnthropicBedrock',
  LLAMA_3_1_BEDROCK: 'Llama3.1',
  OPENAI_COMPATIBLE_PROVIDER: 'OpenAICompatibleProvider',
})
const OpenAISupportedLLMs = Object.freeze({
  GPT_5_6_LUNA: 'gpt-5.6-luna',
  GPT_5_6_SOL: 'gpt-5.6-sol',
  GPT_5_6_TERRA: 'gpt-5.6-terra',
  GPT_5_5: 'gpt-5.5',
  GPT_5_5_PRO: 'gpt-5.5-pro',
  GPT_5_4: 'gpt-5.4',
  GPT_5_4_PRO: 'gpt-5.4-pro',
  GPT_5_4_MINI: 'gpt-5.4-mini',
  GPT_5_4_NANO: 'gpt-5.4-nano',
  GPT_5_2: 'gpt-5.2',
  GPT_5_1: 'gpt-5.1',
  GPT_5: 'gpt-5',
  GPT_5_MINI: 'gpt-5-mini',
  GPT_5_NANO: 'gpt-5-nano',
  GPT_4_1: 'gpt-4.1',
  GPT_4_1_MINI: 'gpt-4.1-mini',
  GPT_4_1_NANO: 'gpt-4.1-nano',
  GPT_4_5: 'gpt-4.5',
  GPT_4_O_LATEST: 'chatgpt-4o-latest',
  GPT_4_O: 'gpt-4o',
  GPT_4_O_2024_11_20: 'gpt-4o-2024-11-20',
  GPT_4_O_2024_08_06: 'gpt-4o-2024-08-06',
  GPT_4_O_2024_05_13: 'gpt-4o-2024-05-13',
  GPT_4_O_REALTIME_PREVIEW: 'gpt-4o-realtime-preview',
  GPT_4_O_REALTIME_PREVIEW_2024_10_01: 'gpt-4o-realtime-preview-2024-10-01',
  GPT_4_O_AUDIO_PREVIEW: 'gpt-4o-audio-preview',
  GPT_4_O_AUDIO_PREVIEW_2024_10_01: 'gpt-4o-audio-preview-2024-10-01',
  GPT_4_O_MINI: 'gpt-4o-mini',
  GPT_4_O_MINI_2024_07_18: 'gpt-4o-mini-2024-07-18',
  O1_PREVIEW: 'o1-preview',
  O1_PREVIEW_2024_09_12: 'o1-preview-2024-09-12',
  O1_MINI: 'o1-mini',
  O1_MINI_2024_09_12: 'o1-mini-2024-09-12',
  GPT_4_TURBO: 'gpt-4-turbo',
  GPT_4_TURBO_2024_04_09: 'gpt-4-turbo-2024-04-09',
  GPT_4_TURBO_PREVIEW: 'gpt-4-turbo-preview',
  GPT_4_0125_PREVIEW: 'gpt-4-0125-preview',
  GPT_4_1106_PREVIEW: 'gpt-4-1106-preview',
  GPT_4_VISION_PREVIEW: 'gpt-4-vision-preview',
  GPT_4: 'gpt-4',
  GPT_4_0314: 'gpt-4-0314',
  GPT_4_0613: 'gpt-4-0613',
  GPT_4_32K: 'gpt-4-32k',
  GPT_4_32K_0314: 'gpt-4-32k-0314',
  GPT_4_32K_0613: 'gpt-4-32k-0613',
  GPT_3_5_TURBO: 'gpt-3.5-turbo',
  GPT_3_5_TURBO_16K: 'gpt-3.5-turbo-16k',
  GPT_3_5_TURBO_0301: 'gpt-3.5-turbo-0301',
  GPT_3_5_TURBO_0613: 'gpt-3.5-turbo-0613',
  GPT_3_5_TURBO_1106: 'gpt-3.5-turbo-1106',
  GPT_3_5_TURBO_0125: 'gpt-3.5-turbo-0125',
  GPT_3_5_TURBO_16K_0613: 'gpt-3.5-turbo-16k-0613',
})
const AnthropicSupportedLLMs = Object.freeze({
  CLAUDE_OPUS_4_6: 'claude-opus-4-6',
  CLAUDE_SONNET_4_5_20250929: 'claude-sonnet-4-5-20250929',
  CLAUDE_HAIKU_4_5_20251001: 'claude-haiku-4-5-20251001',
  CLAUDE_OPUS_4_5_20251101: 'claude-opus-4-5-20251101',
  CLAUDE_OPUS_4_1_20250805: 'claude-opus-4-1-20250805',
  CLAUDE_SONNET_4_20250514: 'claude-sonnet-4-20250514',
  CLAUDE_3_7_SONNET_20250219: 'claude-3-7-sonnet-20250219',
  CLAUDE_OPUS_4_20250514: 'claude-opus-4-20250514',
  CLAUDE_3_HAIKU_20240307: 'claude-3-haiku-20240307',
})
const BedrockAnthropicSupportedLLMs = Object.freeze({
  CLAUDE_4_5_EU: 'eu.anthropic.claude-opus-4-5-20251101-v1:0',
  CLAUDE_4_5_GLOBAL: 'global.anthropic.claude-opus-4-5-20251101-v1:0',
  CLAUDE_4_6_EU: 'eu.anthropic.claude-opus-4-6-v1',
  CLAUDE_4_6_GLOBAL: 'global.anthropic.claude-opus-4-6-v1',
  CLAUDE_4_7_EU: 'eu.anthropic.claude-opus-4-7',
  CLAUDE_4_7_GLOBAL: 'global.anthropic.claude-opus-4-7',
  CLAUDE_4_8_EU: 'eu.anthropic.claude-opus-4-8',
  CLAUDE_4_8_GLOBAL: 'global.anthropic.claude-opus-4-8',
  CLAUDE_SONNET_4_5_EU: 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0',
  CLAUDE_SONNET_4_5_GLOBAL: 'global.anthropic.claude-sonnet-4-5-20250929-v1:0',
  CLAUDE_SONNET_4_6_EU: 'eu.anthropic.claude-sonnet-4-6',
  CLAUDE_SONNET_4_6_GLOBAL: 'global.anthropic.claude-sonnet-4-6',
  CLAUDE_4_5_HAIKU_EU: 'eu.anthropic.claude-haiku-4-5-20251001-v1:0',
  CLAUDE_4_5_HAIKU_GLOBAL: 'global.anthropic.claude-haiku-4-5-20251001-v1:0',
  CLAUDE_FABLE_5_EU: 'eu.anthropic.claude-fable-5',
  CLAUDE_FABLE_5_GLOBAL: 'global.anthropic.claude-fable-5',
})
const BedrockAnthropicContentType = Object.freeze({
  TEXT: 'text',
  IMAGE: 'image',
  TOOL_USE: 'tool_use',
  TOOL_RESULT: 'tool_result',
})
const Llama3_1SupportedLLMs = Object.freeze({
  LLAMA_3_1_8B: 'meta.llama3-1-8b-instruct-v1:0',
  LLAMA_3_1_70B_2: 'meta.llama3-1-70b-instruct-v1:0',
  LLAMA_3_1_405B: 'meta.llama3-1-405b-instruct-v1:0',
  US_CROSS_REGION_LLAMA_3_1_8B: 'us.meta.llama3-1-8b-instruct-v1:0',
  US_CROSS_REGION_LLAMA_3_1_70B_2: 'us.meta.llama3-1-70b-instruct-v1:0',
  US_CROSS_REGION_LLAMA_3_1_405B: 'us.meta.llama3-1-405b-instruct-v1:0',
})

// ---- future promises: "Let me check that for you." with no tool call ----

// Only the end of a reply is read: a promise followed by this much more text was most likely kept.
const PROMISE_TAIL_CHARS = 400
// "<agent phrase> [up to three words] <action verb>", e.g. "I'll quickly check", "let me go ahead and get"…
const PROMISE_SUBJECTS = [
  'let me', "i'll", 'i will', "i'm going to", 'i am going to', "i'm about to", 'i am about to',
  'allow me to', "i'm now", 'i am now', "now i'll", 'now i will',
]
const PROMISE_VERBS = [
  'check', 'look', 'search', 'find', 'retrieve', 'fetch', 'get', 'grab', 'pull', 'load', 'query', 'run',
  'call', 'execute', 'verify', 'inspect', 'access', 'open', 'read', 'gather', 'browse', 'scan', 'analyze',
  'use', 'contact', 'request', 'prepare', 'generate', 'create', 'compile', 'collect', 'process', 'update',
  'start', 'launch',
]
// …or a phrase that says on its own that work is still pending.
const WAITING_PHRASES = [
  'one moment', 'just a moment', 'just a second', 'just a sec', 'hold on', 'give me a moment',
  'give me a second', 'give me a sec', 'give me a minute', 'bear with me', 'please wait', 'hang on',
  'hang tight',
]

const alternatives = (words) => words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')
const PROMISE_PATTERN = new RegExp(
  `\\b(?:${alternatives(PROMISE_SUBJECTS)})(?:\\s+\\w+){0,3}?\\s+(?:${alternatives(PROMISE_VERBS)})\\b`,
  'i',
)
const WAITING_PATTERN = new RegExp(`\\b(?:${alternatives(WAITING_PHRASES)})\\b`, 'i')

/**
 * Whether `text` ends by promising an action ("Let me grab that data for you", "One moment…") — the
 * sign of a model that meant to call a tool but ended its turn instead. As in llm-proxy 1.17.0.
 */
function responseContainsFuturePromise(text) {
  if (typeof text !== 'string' || text === '') return false
  // Typographic apostrophes ("I’ll") count as plain ones.
  const plain = text.replace(/[\u2018\u2019]/g, "'").trim()
  if (plain === '') return false
  const tail = plain.slice(-PROMISE_TAIL_CHARS)
  return PROMISE_PATTERN.test(tail) || WAITING_PATTERN.test(tail)
}

// ---- the forced-tool retry, on the 2.x request and response shapes ----

const isAbort = (err) => Boolean(err) && err.code === 'aborted'

function offersTools(request) {
  const nonEmpty = (v) => Array.isArray(v) && v.length > 0
  return nonEmpty(request.tools) || nonEmpty(request.functions)
}

/** Only a request that leaves the choice to the model can be retried with a tool forced. */
function canForceTool(request) {
  const open = (choice) => choice === undefined || choice === null || choice === 'auto'
  return offersTools(request) && open(request.tool_choice) && open(request.function_call)
}

function forcedToolRequest(request) {
  const forced = { ...request, tool_choice: 'required' }
  delete forced.function_call
  return forced
}

const callsTool = (m) => Boolean(m) && ((Array.isArray(m.tool_calls) && m.tool_calls.length > 0) || Boolean(m.function_call))

/** A completed answer that ended normally, called no tool, and promised to do something. */
function promisedWithoutToolCall(completion) {
  const choices = (completion && completion.choices) || []
  if (!choices.some((c) => c && c.finish_reason === 'stop')) return false
  if (choices.some((c) => c && callsTool(c.message))) return false
  const text = choices.map((c) => (c && c.message && typeof c.message.content === 'string' ? c.message.content : '')).join(' ')
  return responseContainsFuturePromise(text)
}

/**
 * `send(request)` once; if the answer promised an action without calling a tool, once more with
 * `tool_choice: 'required'`, and the second answer is returned if it calls a tool. A failed second
 * attempt (other than an abort) falls back to the first answer.
 */
async function generateWithForcedToolRetry(send, request) {
  const first = await send(request)
  if (!canForceTool(request) || !promisedWithoutToolCall(first)) return first
  try {
    const forced = await send(forcedToolRequest(request))
    if ((forced.choices || []).some((c) => c && callsTool(c.message))) return forced
  } catch (err) {
    if (isAbort(err)) throw err
  }
  return first
}

/**
 * Streams `open(request)`; if it ended promising an action without a tool call, continues with the tool
 * call of a second request with `tool_choice: 'required'`, from its first tool-call delta on and
 * without its text (the promise was already streamed). Nothing is added when the second answer calls
 * no tool or fails before its tool call starts; once part of the call is out, a failure is thrown.
 *
 * - `keepFirstFinish: false` (LLMProxy): the stream stays one answer. The promise's finish chunk and
 *   usage chunk wait until the second answer shows whether it calls a tool: if it does, they are
 *   replaced by its chunks (with the first answer's id and created, and the usage of the second
 *   request); if not, they are delivered.
 * - `keepFirstFinish: true` (1.x): as 1.17.0, the promise's own finish and usage are delivered at
 *   once, and the second answer's chunks (its role chunk, tool call, finish and usage) follow.
 */
async function* streamWithForcedToolRetry(open, request, { keepFirstFinish = false } = {}) {
  // Read once the stream is open: a request that cannot be read then fails as open() fails it (an
  // LLMProxyError), not with whatever its getter threw.
  let forceable
  const canForce = () => (forceable === undefined ? (forceable = canForceTool(request)) : forceable)
  let text = ''
  let calledTool = false
  let finish = null
  let firstChunk = null
  let held = null
  const promised = () => !calledTool && finish === 'stop' && canForce() && responseContainsFuturePromise(text)
  for await (const chunk of open(request)) {
    if (held) {
      held.push(chunk)
      continue
    }
    if (!firstChunk) firstChunk = chunk
    let finishes = false
    for (const c of chunk.choices || []) {
      const d = c.delta || {}
      if (typeof d.content === 'string') text += d.content
      if (callsTool(d)) calledTool = true
      if (c.finish_reason) {
        finish = c.finish_reason
        finishes = true
      }
    }
    if (finishes && !keepFirstFinish && promised()) {
      held = [chunk]
      continue
    }
    yield chunk
  }
  if (keepFirstFinish ? !promised() : !held) return

  const waiting = []
  let flowing = false
  try {
    for await (const chunk of open(forcedToolRequest(request))) {
      const choice = (chunk.choices || [])[0]
      const delta = (choice && choice.delta) || {}
      if (delta.content && !callsTool(delta)) continue
      if (!flowing) {
        if (!callsTool(delta)) {
          waiting.push(chunk)
          continue
        }
        flowing = true
        if (keepFirstFinish) yield* waiting
      }
      yield keepFirstFinish ? chunk : continuationOf(firstChunk, chunk)
    }
  } catch (err) {
    if (flowing || isAbort(err)) throw err
  }
  if (!flowing && held) yield* held
}

/** A chunk of the second answer as part of the first: the first's id and created, no second role. */
function continuationOf(first, chunk) {
  const out = { ...chunk, id: first.id, created: first.created }
  if (Array.isArray(chunk.choices)) {
    out.choices = chunk.choices.map((c) => {
      if (!c || !c.delta || c.delta.role === undefined) return c
      const { role: _role, ...delta } = c.delta
      return { ...c, delta }
    })
  }
  return out
}

// ---- 1.x routing: the model enums first, then a baseUrl means the OpenAI-compatible provider ----

/** Not a 1.x provider: `mock/…` models, which 1.x rejected, for tests without network. */
const MOCK = 'mock'

const MODELS_OF = [
  [Providers.OPENAI, new Set(Object.values(OpenAISupportedLLMs))],
  [Providers.ANTHROPIC, new Set(Object.values(AnthropicSupportedLLMs))],
  [Providers.ANTHROPIC_BEDROCK, new Set(Object.values(BedrockAnthropicSupportedLLMs))],
  [Providers.LLAMA_3_1_BEDROCK, new Set(Object.values(Llama3_1SupportedLLMs))],
]

/** The name of the compatible endpoint in the 2.x options: models go out as `compatible/<model>`. */
const COMPATIBLE_NAME = 'compatible'

function legacyProvider(model, baseUrl) {
  for (const [provider, models] of MODELS_OF) if (models.has(model)) return provider
  if (baseUrl) return Providers.OPENAI_COMPATIBLE_PROVIDER
  if (typeof model === 'string' && model.startsWith('mock/')) return MOCK
  throw legacyError('unsupported_model', `Unsupported model: ${model}`)
}

const nonEmptyString = (v) => typeof v === 'string' && v !== ''

/**
 * Where a 1.x call goes: `{ provider }` (a `Providers` value, or 'mock'), the 2.x `model` with an
 * explicit prefix (so the 2.x catalogue never changes a 1.x route) and the `LLMProxy` options made
 * from the 1.x credentials. Throws 1.x's errors for missing credentials.
 */
function legacyRoute(model, credentials) {
  const creds = credentials && typeof credentials === 'object' ? credentials : {}
  const compat = creds.openAICompatibleProviderConfig || {}
  const provider = legacyProvider(model, compat.baseUrl)
  switch (provider) {
    case Providers.OPENAI:
      if (!creds.apiKey) throw legacyError('config', 'OpenAI API key is required for OpenAI models.')
      return { provider, model: `openai/${model}`, options: { openai: { apiKey: String(creds.apiKey) } } }
    case Providers.ANTHROPIC:
      if (!creds.apiKey) throw legacyError('config', 'Anthropic API key is required for Anthropic models.')
      return { provider, model: `anthropic/${model}`, options: { anthropic: { apiKey: String(creds.apiKey) } } }
    case Providers.ANTHROPIC_BEDROCK:
    case Providers.LLAMA_3_1_BEDROCK: {
      const aws = creds.awsConfig
      if (!aws || typeof aws !== 'object') throw legacyError('config', 'AWS credentials are required for Bedrock models.')
      // Fields left out fall back to the AWS environment and profile, as the AWS SDK did.
      const bedrock = {}
      for (const field of ['region', 'accessKeyId', 'secretAccessKey', 'sessionToken']) {
        if (nonEmptyString(aws[field])) bedrock[field] = aws[field]
      }
      return { provider, model: `bedrock/${model}`, options: { bedrock } }
    }
    case Providers.OPENAI_COMPATIBLE_PROVIDER:
      if (!compat.openAICompatibleProviderKey || !compat.baseUrl) {
        throw legacyError('config', 'OpenAI Compatible Provider key and base URL are required.')
      }
      return {
        provider,
        model: `${COMPATIBLE_NAME}/${model}`,
        options: {
          compatible: {
            [COMPATIBLE_NAME]: { baseUrl: String(compat.baseUrl), apiKey: String(compat.openAICompatibleProviderKey) },
          },
        },
      }
    default:
      return { provider: MOCK, model, options: {} }
  }
}

// One LLMProxy per distinct configuration, the least recently used dropped past this many.
const MAX_CACHED_PROXIES = 32
const proxies = new Map()

/**
 * The cached `LLMProxy` for these options. The key is a hash of the options and of the environment
 * variables the core reads at construction (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, AWS_…), so a changed
 * environment gets a new proxy as 1.x's per-call SDK clients did; no credential is kept in a key.
 */
function proxyFor(options) {
  const env = Object.keys(process.env)
    .filter((name) => /^(OPENAI|ANTHROPIC|AWS)_/.test(name))
    .sort()
    .map((name) => [name, process.env[name]])
  // node:crypto is loaded on first use: loading it costs ~4 ms of every process's require('llm-proxy').
  const key = require('node:crypto').createHash('sha256').update(JSON.stringify([options, env])).digest('base64')
  let proxy = proxies.get(key)
  if (proxy) {
    proxies.delete(key)
  } else {
    proxy = new (core().LLMProxy)(options)
  }
  proxies.set(key, proxy)
  if (proxies.size > MAX_CACHED_PROXIES) proxies.delete(proxies.keys().next().value)
  return proxy
}

// ---- 1.x parameters → a 2.x request ----

/**
 * 1.x passed `functions` to every provider as its tool list, in OpenAI's `tools` form
 * ({ type: 'function', function }) or as bare definitions ({ name, description, parameters } or
 * Anthropic's { name, description, input_schema }). All become `tools`; other tool types (provider
 * server tools) are passed as given.
 */
function toolsFrom(functions) {
  if (functions === undefined || functions === null || functions === false) return undefined
  if (!Array.isArray(functions)) {
    throw legacyError('invalid_request', '`functions` must be an array of tool definitions like { type: \'function\', function: { name, description, parameters } }.')
  }
  if (functions.length === 0) return undefined
  return functions.map((tool, i) => {
    if (!tool || typeof tool !== 'object') {
      throw legacyError('invalid_request', `functions[${i}] must be a tool definition object.`)
    }
    if (tool.function && typeof tool.function === 'object') return { ...tool, type: tool.type || 'function' }
    if ((tool.type === undefined || tool.type === 'function' || tool.type === 'custom') && typeof tool.name === 'string') {
      const fn = { name: tool.name }
      if (tool.description !== undefined) fn.description = tool.description
      const parameters = tool.parameters !== undefined ? tool.parameters : tool.input_schema
      if (parameters !== undefined) fn.parameters = parameters
      if (tool.strict !== undefined) fn.strict = tool.strict
      return { type: 'function', function: fn }
    }
    return tool
  })
}

/**
 * The 1.x functions return Anthropic and Llama tool calls with a `function_call` next to `tool_calls`;
 * code that keeps such a message in its history and answers it with a `role: 'function'` message would
 * otherwise state the same call twice. Such a `function_call` is dropped, and the function results
 * that answer it become tool results for the matching `tool_calls` id.
 */
function dedupeRoundTrippedCalls(messages) {
  if (!Array.isArray(messages)) return messages
  const waiting = new Map() // function name → ids of tool calls whose function_call was dropped
  return messages.map((m) => {
    if (!m || typeof m !== 'object') return m
    if (m.role === 'assistant' && m.function_call && Array.isArray(m.tool_calls)) {
      const name = m.function_call.name
      const call = m.tool_calls.find((t) => t && t.function && t.function.name === name && t.id)
      if (!call) return m
      const { function_call: _dropped, ...rest } = m
      if (!waiting.has(name)) waiting.set(name, [])
      waiting.get(name).push(call.id)
      return rest
    }
    if (m.role === 'function' && waiting.has(m.name) && waiting.get(m.name).length > 0) {
      const id = waiting.get(m.name).shift()
      return { role: 'tool', tool_call_id: id, content: m.content === null || m.content === undefined ? '' : m.content }
    }
    return m
  })
}

const isNumber = (v) => typeof v === 'number' && !Number.isNaN(v)

function legacyRequest(route, params) {
  const request = { model: route.model, messages: dedupeRoundTrippedCalls(params.messages) }
  const tools = toolsFrom(params.functions)
  if (tools) request.tools = tools
  if (typeof params.max_tokens === 'number') request.max_tokens = params.max_tokens
  switch (route.provider) {
    case Providers.ANTHROPIC_BEDROCK:
      // 1.x sent no temperature to Bedrock Claude (the model's default applied); one given is sent now.
      if (isNumber(params.temperature)) request.temperature = params.temperature
      break
    case Providers.LLAMA_3_1_BEDROCK:
      // 1.x's Llama sampling: temperature 0.7 and top_p 0.9 unless a temperature is given.
      request.temperature = isNumber(params.temperature) ? params.temperature : 0.7
      request.top_p = 0.9
      break
    default:
      // 1.x's default temperature is 0 (the 2.x core leaves it out for models that reject it).
      request.temperature = isNumber(params.temperature) ? params.temperature : 0
  }
  // The gpt-5.6 family rejects tools with its default reasoning effort (1.17.0 sent 'none').
  if (route.provider === Providers.OPENAI && tools && /^gpt-5\.6-/.test(params.model)) request.reasoning_effort = 'none'
  if (route.provider === MOCK && typeof params.mock_response === 'string') request.mock_response = params.mock_response
  return request
}

/**
 * 1.17.0 retried an OpenAI request once when OpenAI rejected `reasoning_effort` (with 'none') or a
 * custom `temperature` (without it). Returns the request to try again, or null.
 */
function parameterFallback(route, request, err) {
  if (route.provider !== Providers.OPENAI || !err || err.status !== 400) return null
  const detail = err.body && typeof err.body === 'object' ? err.body.error || err.body : {}
  if (detail.param === 'reasoning_effort' && request.reasoning_effort !== 'none') {
    return { ...request, reasoning_effort: 'none' }
  }
  if (detail.param === 'temperature' && detail.code === 'unsupported_value' && 'temperature' in request) {
    const { temperature: _dropped, ...rest } = request
    return rest
  }
  return null
}

function checkParams(params, fn) {
  if (!params || typeof params !== 'object' || Array.isArray(params)) {
    throw legacyError('invalid_request', `${fn}() takes one object: { messages, model, functions?, max_tokens?, temperature?, credentials }.`)
  }
  if (typeof params.model !== 'string' || params.model.trim() === '') {
    throw legacyError('invalid_request', `${fn}() needs \`model\`: a model name such as 'gpt-4o' or 'claude-sonnet-4-5-20250929'.`)
  }
}

// ---- 2.x answers → what 1.x returned ----

const OPENAI_FORMAT = new Set([Providers.OPENAI, Providers.OPENAI_COMPATIBLE_PROVIDER, MOCK])

/** 1.x always gave non-OpenAI usage both details objects. */
function withUsageDetails(usage) {
  if (!usage || typeof usage !== 'object') return usage
  if (!usage.prompt_tokens_details) usage.prompt_tokens_details = { cached_tokens: 0 }
  if (!usage.completion_tokens_details) usage.completion_tokens_details = { reasoning_tokens: 0 }
  return usage
}

/**
 * OpenAI and compatible answers are returned as they are (1.x passed them through). For Anthropic,
 * Bedrock Claude and Llama a tool call also comes as `message.function_call` (the first call, as 1.x
 * gave it) with `content: null`, as 1.x returned it, next to the complete `tool_calls`; usage has both
 * details objects and `system_fingerprint` is 1.x's 'default_fingerprint'.
 */
function toLegacyCompletion(completion, provider) {
  if (OPENAI_FORMAT.has(provider)) return completion
  for (const choice of completion.choices || []) {
    const m = choice && choice.message
    if (m && Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
      const first = m.tool_calls[0].function || {}
      m.content = null
      m.function_call = { name: first.name, arguments: first.arguments }
    }
  }
  withUsageDetails(completion.usage)
  // 1.x's placeholder, which it gave every non-OpenAI answer.
  if (completion.system_fingerprint === undefined || completion.system_fingerprint === null) {
    completion.system_fingerprint = 'default_fingerprint'
  }
  return completion
}

/**
 * OpenAI and compatible chunks pass as they are (the usage chunk gets the stream's system_fingerprint,
 * as the provider's own usage chunk had it). Anthropic, Bedrock Claude and Llama chunks get 1.x's
 * shape where its users read it: `delta.content` is a string on every chunk that is not a tool call,
 * `usage` is null until the finish chunk, which carries the usage (the 2.x core sends it in a chunk of
 * its own right after), and the finish chunk of a tool call carries the whole first call as
 * `delta.function_call`, as 1.x's single tool chunk did. Only the finish chunk waits, for the usage
 * chunk that follows it; everything else is passed on as it arrives.
 */
async function* toLegacyChunks(chunks, provider) {
  if (OPENAI_FORMAT.has(provider)) {
    // The core's usage chunk does not repeat the provider's system_fingerprint; 1.x passed the
    // provider's chunk, which had it.
    let fingerprint
    for await (const chunk of chunks) {
      if (typeof chunk.system_fingerprint === 'string') fingerprint = chunk.system_fingerprint
      else if (chunk.system_fingerprint === undefined && fingerprint !== undefined) chunk.system_fingerprint = fingerprint
      yield chunk
    }
    return
  }
  let finishChunk = null
  let calls = []
  try {
    for await (const chunk of chunks) {
      const choices = chunk.choices || []
      if (choices.length === 0 && finishChunk) {
        finishChunk.usage = withUsageDetails(chunk.usage || null)
        const out = finishChunk
        finishChunk = null
        yield out
        continue
      }
      if (finishChunk) {
        const out = finishChunk
        finishChunk = null
        yield out
      }
      let finished = false
      for (const choice of choices) {
        const delta = choice.delta || (choice.delta = {})
        for (const t of delta.tool_calls || []) {
          const call = calls[t.index] || (calls[t.index] = { name: '', arguments: '' })
          if (t.function && t.function.name) call.name += t.function.name
          if (t.function && t.function.arguments) call.arguments += t.function.arguments
        }
        if (choice.finish_reason) {
          finished = true
          const first = calls.find(Boolean)
          if (first) delta.function_call = { name: first.name, arguments: first.arguments }
          calls = []
        }
        if (!callsTool(delta) && typeof delta.content !== 'string') delta.content = ''
      }
      if (chunk.usage === undefined) chunk.usage = null
      else withUsageDetails(chunk.usage)
      if (finished) finishChunk = chunk
      else yield chunk
    }
  } catch (err) {
    if (finishChunk) yield finishChunk
    finishChunk = null
    throw err
  }
  if (finishChunk) yield finishChunk
}

// ---- the 1.x functions ----

function prepare(params, fn) {
  checkParams(params, fn)
  const route = legacyRoute(params.model, params.credentials)
  const proxy = proxyFor(route.options)
  const request = legacyRequest(route, params)
  // 1.17.0 never forced a tool on Llama (its prompt-based tools had no tool choice).
  const forceable = route.provider !== Providers.LLAMA_3_1_BEDROCK
  return { route, proxy, request, forceable }
}

/**
 * llm-proxy 1.x's `generateLLMResponse`: one chat completion in OpenAI's format, whatever the
 * provider, with the forced-tool retry on.
 */
async function generateLLMResponse(params) {
  const { route, proxy, request, forceable } = prepare(params, 'generateLLMResponse')
  const send = async (req) => {
    try {
      return await proxy.generate(req)
    } catch (err) {
      const retry = parameterFallback(route, req, err)
      if (!retry) throw err
      return proxy.generate(retry)
    }
  }
  const completion = forceable ? await generateWithForcedToolRetry(send, request) : await send(request)
  return toLegacyCompletion(completion, route.provider)
}

/**
 * A stream of `proxy.stream(request)` that is tried once more, with `parameterFallback`, when it fails
 * before its first chunk.
 */
async function* streamWithFallback(route, proxy, request) {
  let started = false
  try {
    for await (const chunk of proxy.stream(request)) {
      started = true
      yield chunk
    }
  } catch (err) {
    const retry = started ? null : parameterFallback(route, request, err)
    if (!retry) throw err
    yield* proxy.stream(retry)
  }
}

/**
 * llm-proxy 1.x's `generateLLMStreamResponse`: resolves with an async generator of OpenAI-format
 * chunks, delivered as they arrive, with the forced-tool retry on.
 */
async function generateLLMStreamResponse(params) {
  const { route, proxy, request, forceable } = prepare(params, 'generateLLMStreamResponse')
  const open = (req) => streamWithFallback(route, proxy, req)
  const chunks = forceable ? streamWithForcedToolRetry(open, request, { keepFirstFinish: true }) : open(request)
  return toLegacyChunks(chunks, route.provider)
}

// ---- llmAsJudge ----

const JUDGE_ROLES = { system: 'System', user: 'User', assistant: 'Assistant', tool: 'Tool', function: 'Tool' }

function judgeText(content) {
  return typeof content === 'string' ? content : JSON.stringify(content)
}

/** A score as 1.x read it: a 0–10 score becomes 0–1, anything else is clamped to 0–1. */
function normalizedScore(value) {
  let score = parseFloat(String(value))
  if (Number.isNaN(score)) return null
  if (score > 1 && score <= 10) score /= 10
  return Math.max(0, Math.min(1, score))
}

const includesAny = (text, words) => words.some((w) => text.includes(w))

/** Reads the judge's verdict: the JSON object in its reply, else keywords and a "score: n". */
function parseVerdict(reply) {
  const json = /\{[\s\S]*\}/.exec(reply)
  if (json) {
    let parsed
    try {
      parsed = JSON.parse(json[0])
    } catch {
      // Not JSON after all: keywords only, and no score.
      return { passed: includesAny(reply.toLowerCase(), ['pass', 'correct', 'yes', 'satisfied']), score: null }
    }
    const passed = parsed !== null && (parsed.passed === true || parsed.passed === 'true')
    const raw = parsed === null ? undefined : parsed.score
    return { passed, score: raw === undefined || raw === null ? null : normalizedScore(raw) }
  }
  const lower = reply.toLowerCase()
  const passed = includesAny(lower, ['pass', 'correct', 'yes', 'true', 'satisfied', 'successful'])
  const scoreText = /score[:\s]+([0-9.]+)/i.exec(reply)
  return { passed, score: scoreText ? normalizedScore(scoreText[1] || '0') : null }
}

/**
 * llm-proxy 1.x's `llmAsJudge`: asks `model` to judge a conversation with `judgePrompt` (where
 * `{{messages}}` / `{{trajectory}}` stand for the conversation and `{{messages[-1]}}` for its last
 * message) and reads `{ passed, score (0–1 or null), judgeResponse, tokenUsage }` from the reply.
 * Never throws: a failure gives `passed: false` and the error in `judgeResponse`.
 */
async function llmAsJudge(params) {
  try {
    const { messages, judgePrompt, model, credentials } = params
    const maxTokens = params.maxTokens === undefined ? 500 : params.maxTokens
    const temperature = params.temperature === undefined ? 0 : params.temperature
    const trajectory = messages
      .map((m, i) => `Turn ${i + 1} [${JUDGE_ROLES[m.role] || 'Unknown'}]: ${judgeText(m.content)}`)
      .join('\n\n')
    const last = messages[messages.length - 1]
    const lastText = last && last.content ? judgeText(last.content) : ''
    const prompt = judgePrompt
      .replace(/\{\{messages\[-1\]\}\}/g, () => lastText)
      .replace(/\{\{messages\}\}/g, () => trajectory)
      .replace(/\{\{trajectory\}\}/g, () => trajectory)
    const response = await generateLLMResponse({
      messages: [
        { role: 'system', content: prompt },
        {
          role: 'user',
          content: `Please evaluate the following conversation trajectory:\n\n${trajectory}\n\nRespond with JSON format: {"passed": true/false, "score": 0.0-1.0, "reasoning": "your explanation"}`,
        },
      ],
      model,
      max_tokens: maxTokens,
      temperature,
      credentials,
    })
    const first = response.choices && response.choices[0]
    const judgeResponse = (first && first.message && first.message.content) || ''
    return { ...parseVerdict(judgeResponse), judgeResponse, tokenUsage: response.usage }
  } catch (err) {
    return {
      passed: false,
      score: null,
      judgeResponse: `Error in judge evaluation: ${err instanceof Error ? err.message : String(err)}`,
      tokenUsage: undefined,
    }
  }
}

module.exports = {
  generateLLMResponse,
  generateLLMStreamResponse,
  llmAsJudge,
  responseContainsFuturePromise,
  Providers,
  OpenAISupportedLLMs,
  AnthropicSupportedLLMs,
  BedrockAnthropicSupportedLLMs,
  BedrockAnthropicContentType,
  Llama3_1SupportedLLMs,
  // For index.js (LLMProxy's opt-in retry) and the tests; not part of the public API.
  internal: {
    generateWithForcedToolRetry,
    streamWithForcedToolRetry,
    canForceTool,
    legacyRoute,
    legacyRequest,
    parseVerdict,
    proxyCacheSize: () => proxies.size,
    MAX_CACHED_PROXIES,
  },
}
