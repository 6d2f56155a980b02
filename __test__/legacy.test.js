'use strict'

// The 1.x API of legacy.js on its own (the differential comparison with llm-proxy 1.17.0 is
// compat-1x.test.js): future-promise detection, the enums, 1.x routing and credentials, the 1.x
// request defaults, function_call next to tool_calls, the forced-tool retry in the 1.x functions and
// as LLMProxy's opt-in, llmAsJudge's reading of verdicts, and errors. The mock/ provider where it
// suffices, the loopback provider (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
// which 1.x's SDKs read too) where a provider's answer or the request sent matters.

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const zlib = require('node:zlib')
const { startUpstream, writeResponse, openSse, within, JSON_HEADERS, SSE_HEADERS } = require('./helpers/upstream')
const { LLMProxy, collect, caught, assertProxyError, pkg } = require('./helpers/common')
const legacy = require('../legacy.js')

const v1 = require('llm-proxy-1')
const { internal } = legacy
const {
  generateLLMResponse,
  generateLLMStreamResponse,
  llmAsJudge,
  responseContainsFuturePromise,
  Providers,
  OpenAISupportedLLMs,
  AnthropicSupportedLLMs,
  BedrockAnthropicSupportedLLMs,
  Llama3_1SupportedLLMs,
} = pkg

const KEY = 'sk-test-legacy-0001'
const SYSTEM_USER = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: "What's the weather in Paris?" },
]
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}
const PROMISE = 'Let me check the weather for you.'

// ---- scripted upstreams ----

/** Points the SDK-style environment variables at `upstream` for the duration of the test. */
function useEnv(t, vars) {
  const saved = {}
  for (const [name, value] of Object.entries(vars)) {
    saved[name] = process.env[name]
    process.env[name] = value
  }
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
}

/** A loopback provider answering the n-th request with the n-th response (the last one repeats). */
async function scripted(t, responses, env) {
  let n = 0
  const upstream = await startUpstream((req, socket) => {
    const r = responses[Math.min(n++, responses.length - 1)]
    if (typeof r === 'function') return r(req, socket)
    if (r.sse !== undefined) return writeResponse(socket, r.status || 200, SSE_HEADERS, r.sse)
    return writeResponse(socket, r.status || 200, JSON_HEADERS, r.body)
  })
  t.after(() => upstream.close())
  if (env) useEnv(t, env(upstream))
  return upstream
}

const openaiEnv = (u) => ({ OPENAI_BASE_URL: u.baseUrl })
const anthropicEnv = (u) => ({ ANTHROPIC_BASE_URL: u.url })

function openaiAnswer({ content = null, toolCalls, finish, id = 'chatcmpl-1', model = 'gpt-4o' } = {}) {
  const message = { role: 'assistant', content, refusal: null }
  if (toolCalls) message.tool_calls = toolCalls
  return {
    body: {
      id,
      object: 'chat.completion',
      created: 1700000000,
      model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finish || (toolCalls ? 'tool_calls' : 'stop') }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      system_fingerprint: 'fp_test',
    },
  }
}

const openaiCall = (id = 'call_1', args = '{"city":"Paris"}') => ({ id, type: 'function', function: { name: 'get_weather', arguments: args } })

function anthropicAnswer(blocks, { stop = 'end_turn', id = 'msg_1', usage = { input_tokens: 20, output_tokens: 7 } } = {}) {
  return {
    body: {
      id,
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: blocks,
      stop_reason: stop,
      stop_sequence: null,
      usage,
    },
  }
}

const sse = (events) => events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('')

/** An Anthropic stream: text pieces, then optionally one tool_use with its JSON in pieces. */
function anthropicStream({ text = [], tool, id = 'msg_s1', input = 30, output = 9 } = {}) {
  const events = [
    {
      type: 'message_start',
      message: { id, type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929', content: [], stop_reason: null, usage: { input_tokens: input, output_tokens: 1 } },
    },
  ]
  let index = 0
  if (text.length) {
    events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } })
    for (const piece of text) events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } })
    events.push({ type: 'content_block_stop', index })
    index++
  }
  if (tool) {
    events.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} } })
    for (const piece of tool.json) events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } })
    events.push({ type: 'content_block_stop', index })
  }
  events.push({ type: 'message_delta', delta: { stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: output } })
  events.push({ type: 'message_stop' })
  return { sse: sse(events), events }
}

/** An OpenAI stream of text pieces, or of one tool call in pieces. */
function openaiStream({ text, tool, id = 'chatcmpl-s1' } = {}) {
  const base = { id, object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o', system_fingerprint: 'fp_s' }
  const chunk = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })
  const events = [chunk({ role: 'assistant', content: text ? '' : null })]
  for (const piece of text || []) events.push(chunk({ content: piece }))
  if (tool) {
    events.push(chunk({ tool_calls: [{ index: 0, id: tool.id, type: 'function', function: { name: tool.name, arguments: '' } }] }))
    for (const piece of tool.json) events.push(chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }))
  }
  events.push(chunk({}, tool ? 'tool_calls' : 'stop'))
  events.push({ ...base, choices: [], usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 } })
  return { sse: events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n' }
}

/** One AWS event-stream `chunk` frame of InvokeModelWithResponseStream carrying the model's JSON `obj`. */
function bedrockChunkFrame(obj) {
  const headers = Buffer.concat(
    [[':event-type', 'chunk'], [':content-type', 'application/json'], [':message-type', 'event']].map(([name, value]) => {
      const n = Buffer.from(name)
      const v = Buffer.from(value)
      const b = Buffer.alloc(1 + n.length + 3 + v.length)
      b[0] = n.length
      n.copy(b, 1)
      b[1 + n.length] = 7 // string
      b.writeUInt16BE(v.length, 2 + n.length)
      v.copy(b, 4 + n.length)
      return b
    }),
  )
  const payload = Buffer.from(JSON.stringify({ bytes: Buffer.from(JSON.stringify(obj)).toString('base64') }))
  const prelude = Buffer.alloc(12)
  prelude.writeUInt32BE(12 + headers.length + payload.length + 4, 0)
  prelude.writeUInt32BE(headers.length, 4)
  prelude.writeUInt32BE(zlib.crc32(prelude.subarray(0, 8)), 8)
  const message = Buffer.concat([prelude, headers, payload])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(zlib.crc32(message), 0)
  return Buffer.concat([message, crc])
}

const finishes = (chunks) => chunks.flatMap((c) => (c.choices || []).map((x) => x.finish_reason).filter(Boolean))
const textOf = (chunks) => chunks.map((c) => (c.choices || []).map((x) => x.delta.content || '').join('')).join('')

// ---------------------------------------------------------------------------------------------
describe('responseContainsFuturePromise', () => {
  const PROMISES = [
    'Let me check the weather for you.',
    'I’ll look that up now.',
    "I'll quickly search for it.",
    'I will go ahead and fetch the data.',
    "I'm going to run the query.",
    'I am about to call the API.',
    'Allow me to verify that.',
    'Now I will grab the numbers.',
    'LET ME CALL THE TOOL',
    'One moment please.',
    'Hang tight!',
    'Bear with me…',
    'Sure thing. Give me a second.',
    `${'Some context. '.repeat(50)}Let me pull the latest figures.`,
  ]
  const NOT_PROMISES = [
    'The weather in Paris is 20°C.',
    'I am willing to help.',
    'Let me know if you need anything else.',
    `I'll check that. ${'The answer is 42. '.repeat(30)}`, // the promise is outside the last 400 characters
    "I'll quickly go ahead and then check", // four words between the phrase and the verb
    'I will not',
    '',
    '   ',
    null,
    undefined,
  ]
  for (const text of PROMISES) {
    test(`promise: ${JSON.stringify(text).slice(0, 60)}`, () => assert.equal(responseContainsFuturePromise(text), true))
  }
  for (const text of NOT_PROMISES) {
    test(`no promise: ${JSON.stringify(text === undefined ? 'undefined' : text).slice(0, 60)}`, () => {
      assert.equal(responseContainsFuturePromise(text), false)
    })
  }

  test('agrees with llm-proxy 1.17.0 on every subject × filler × verb combination and on the waiting phrases', () => {
    const subjects = ['let me', "i'll", 'I will', "I’m going to", 'i am going to', "I'm about to", 'allow me to', "I'm now", 'now I will', 'we will', 'let us']
    const fillers = ['', ' quickly', ' go ahead and', ' just go ahead and', ' go right ahead and then', ' willingly']
    const verbs = ['check', 'get', 'launch', 'analyze', 'checking', 'say', 'use', 'run']
    const texts = []
    for (const s of subjects) for (const f of fillers) for (const v of verbs) texts.push(`${s}${f} ${v} it`, `Sure. ${s}${f} ${v}`)
    for (const w of ['one moment', 'just a sec', 'give me a minute', 'please wait', 'hold on', 'holding on', 'momentary']) {
      texts.push(w, `Thanks, ${w.toUpperCase()}.`)
    }
    for (const n of [390, 399, 400, 401, 420]) texts.push(`let me check${'x'.repeat(n)}`, `${'y'.repeat(n)} let me check`)
    for (const text of texts) {
      assert.equal(responseContainsFuturePromise(text), v1.responseContainsFuturePromise(text), JSON.stringify(text))
    }
  })

  test('non-strings are not promises', () => {
    assert.equal(responseContainsFuturePromise(42), false)
    assert.equal(responseContainsFuturePromise({ text: 'let me check' }), false)
  })
})

// ---------------------------------------------------------------------------------------------
describe('enums', () => {
  for (const name of ['Providers', 'OpenAISupportedLLMs', 'AnthropicSupportedLLMs', 'BedrockAnthropicSupportedLLMs', 'BedrockAnthropicContentType', 'Llama3_1SupportedLLMs']) {
    test(`${name}: 1.17.0's members, values and order`, () => {
      assert.deepEqual(Object.entries(pkg[name]), Object.entries(v1[name]))
      assert.ok(Object.isFrozen(pkg[name]))
      assert.equal(pkg[name], legacy[name])
    })
  }
})

// ---------------------------------------------------------------------------------------------
describe('1.x routing and credentials', () => {
  const CREDS = {
    apiKey: KEY,
    awsConfig: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', region: 'eu-west-1' },
    openAICompatibleProviderConfig: { openAICompatibleProviderKey: 'ck', baseUrl: 'http://127.0.0.1:9/v1' },
  }
  const EXPECT = [
    [OpenAISupportedLLMs, Providers.OPENAI, 'openai', 'openai'],
    [AnthropicSupportedLLMs, Providers.ANTHROPIC, 'anthropic', 'anthropic'],
    [BedrockAnthropicSupportedLLMs, Providers.ANTHROPIC_BEDROCK, 'bedrock', 'bedrock'],
    [Llama3_1SupportedLLMs, Providers.LLAMA_3_1_BEDROCK, 'bedrock', 'bedrock'],
  ]
  for (const [models, provider, prefix, kind] of EXPECT) {
    test(`every ${provider} enum value goes to ${prefix}/<the same id>, even with a baseUrl`, () => {
      for (const model of Object.values(models)) {
        const route = internal.legacyRoute(model, CREDS)
        assert.equal(route.provider, provider, model)
        assert.equal(route.model, `${prefix}/${model}`)
        const resolved = new LLMProxy(route.options).resolve(route.model)
        assert.deepEqual(resolved, { provider: prefix, kind, model, matchedBy: 'prefix' }, model)
      }
    })
  }

  test('a model outside the enums with a baseUrl goes to the compatible endpoint, whole', () => {
    for (const model of ['mock-compatible-model', 'meta-llama/Llama-3-70b', 'gpt-4o-2099-01-01', 'mock/echo']) {
      const route = internal.legacyRoute(model, CREDS)
      assert.equal(route.provider, Providers.OPENAI_COMPATIBLE_PROVIDER)
      assert.deepEqual(route.options, { compatible: { compatible: { baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'ck' } } })
      assert.deepEqual(new LLMProxy(route.options).resolve(route.model), {
        provider: 'compatible',
        kind: 'openai-compatible',
        model,
        matchedBy: 'prefix',
      })
    }
  })

  test('credentials become the options of the one provider used', () => {
    assert.deepEqual(internal.legacyRoute('gpt-4o', CREDS).options, { openai: { apiKey: KEY } })
    assert.deepEqual(internal.legacyRoute('claude-3-haiku-20240307', CREDS).options, { anthropic: { apiKey: KEY } })
    assert.deepEqual(internal.legacyRoute('meta.llama3-1-8b-instruct-v1:0', CREDS).options, {
      bedrock: { region: 'eu-west-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    })
    const withToken = { awsConfig: { ...CREDS.awsConfig, sessionToken: 'tok' } }
    assert.equal(internal.legacyRoute('global.anthropic.claude-opus-4-7', withToken).options.bedrock.sessionToken, 'tok')
    // Fields left out fall back to the AWS environment, as with the AWS SDK.
    assert.deepEqual(internal.legacyRoute('eu.anthropic.claude-opus-4-7', { awsConfig: { region: 'eu-west-3' } }).options, {
      bedrock: { region: 'eu-west-3' },
    })
  })

  test("missing credentials and unknown models throw 1.x's messages as LLMProxyError", async () => {
    const cases = [
      [{ model: 'gpt-4o', credentials: {} }, 'config', 'OpenAI API key is required for OpenAI models.'],
      [{ model: 'claude-opus-4-6', credentials: { awsConfig: CREDS.awsConfig } }, 'config', 'Anthropic API key is required for Anthropic models.'],
      [{ model: 'eu.anthropic.claude-opus-4-8', credentials: { apiKey: KEY } }, 'config', 'AWS credentials are required for Bedrock models.'],
      [{ model: 'meta.llama3-1-405b-instruct-v1:0', credentials: {} }, 'config', 'AWS credentials are required for Bedrock models.'],
      [
        { model: 'my-model', credentials: { openAICompatibleProviderConfig: { baseUrl: 'http://127.0.0.1:9/v1' } } },
        'config',
        'OpenAI Compatible Provider key and base URL are required.',
      ],
      [{ model: 'my-model', credentials: { apiKey: KEY } }, 'unsupported_model', 'Unsupported model: my-model'],
      [{ model: 'gpt-4o-2099-01-01', credentials: { apiKey: KEY } }, 'unsupported_model', 'Unsupported model: gpt-4o-2099-01-01'],
    ]
    for (const [params, code, message] of cases) {
      for (const fn of [generateLLMResponse, generateLLMStreamResponse]) {
        const err = await caught(() => fn({ messages: SYSTEM_USER, ...params }))
        assertProxyError(err, { code, message, retryable: false })
        assert.ok(err instanceof Error, 'still an Error: catch (e) { e.message } keeps working')
      }
    }
  })

  test('malformed parameters are LLMProxyError invalid_request', async () => {
    for (const bad of [undefined, null, 'gpt-4o', [], { messages: SYSTEM_USER, credentials: {} }, { messages: SYSTEM_USER, model: 4 }]) {
      assertProxyError(await caught(() => generateLLMResponse(bad)), { code: 'invalid_request' })
      assertProxyError(await caught(() => generateLLMStreamResponse(bad)), { code: 'invalid_request' })
    }
    const err = await caught(() => generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: { name: 'f' }, credentials: { apiKey: KEY } }))
    assertProxyError(err, { code: 'invalid_request', message: /`functions` must be an array/ })
    // What the core finds wrong with the messages is an LLMProxyError too (from the iteration for streams).
    const bad = { messages: [{ role: 'wizard', content: 'x' }], model: 'mock/x' }
    assertProxyError(await caught(() => generateLLMResponse(bad)), { code: 'invalid_request', message: /role is 'wizard'/ })
    const stream = await generateLLMStreamResponse(bad)
    assertProxyError(await caught(() => collect(stream)), { code: 'invalid_request' })
  })

  test('mock/ models (not in 1.x) answer without network or credentials', async () => {
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'mock/echo', mock_response: 'Hello there' })
    assert.equal(res.choices[0].message.content, 'Hello there')
    const chunks = await collect(await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'mock/echo', mock_response: 'a b c' }))
    assert.equal(textOf(chunks), 'a b c')
  })

  test('one cached LLMProxy per configuration, at most 32, keyed by the environment too', async (t) => {
    const ask = (apiKey) => generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', credentials: { apiKey } })
    const a = await scripted(t, [openaiAnswer({ content: 'from a' })], openaiEnv)
    const before = internal.proxyCacheSize()
    assert.equal((await ask('k-1')).choices[0].message.content, 'from a')
    const once = internal.proxyCacheSize()
    await ask('k-1')
    assert.equal(internal.proxyCacheSize(), once, 'the same credentials reuse their proxy')
    assert.ok(once <= before + 1)
    assert.equal(a.requests.length, 2)
    assert.equal(a.requests[0].headers.authorization, 'Bearer k-1')

    // A changed OPENAI_BASE_URL is honoured, as 1.x's SDK client (made per call) honoured it.
    const b = await scripted(t, [openaiAnswer({ content: 'from b' })], openaiEnv)
    assert.equal((await ask('k-1')).choices[0].message.content, 'from b')
    assert.equal(b.requests.length, 1)

    await Promise.all(Array.from({ length: 40 }, (_, i) => ask(`many-${i}`)))
    assert.equal(internal.proxyCacheSize(), internal.MAX_CACHED_PROXIES)
  })
})

// ---------------------------------------------------------------------------------------------
describe('1.x requests', () => {
  const route = (model, creds = { apiKey: KEY, awsConfig: { region: 'us-east-1' } }) => internal.legacyRoute(model, creds)

  test("1.x's sampling defaults per provider", () => {
    const req = (model, extra = {}) => internal.legacyRequest(route(model), { messages: SYSTEM_USER, model, ...extra })
    assert.equal(req('gpt-4o').temperature, 0, '1.x sent temperature 0 by default')
    assert.equal(req('claude-opus-4-6').temperature, 0)
    assert.equal(req('gpt-4o', { temperature: 0.7 }).temperature, 0.7)
    assert.equal('max_tokens' in req('gpt-4o'), false)
    assert.equal(req('gpt-4o', { max_tokens: 99 }).max_tokens, 99)
    // Bedrock Claude: 1.x sent no temperature; one given is sent now.
    assert.equal('temperature' in req('global.anthropic.claude-sonnet-4-6'), false)
    assert.equal(req('global.anthropic.claude-sonnet-4-6', { temperature: 0.3 }).temperature, 0.3)
    // Llama: 1.x's 0.7 and top_p 0.9, but an explicit 0 is kept.
    assert.deepEqual([req('meta.llama3-1-8b-instruct-v1:0').temperature, req('meta.llama3-1-8b-instruct-v1:0').top_p], [0.7, 0.9])
    assert.equal(req('meta.llama3-1-8b-instruct-v1:0', { temperature: 0 }).temperature, 0)
    // gpt-5.6 with tools: reasoning_effort 'none', as 1.17.0.
    assert.equal(req('gpt-5.6-sol', { functions: [WEATHER] }).reasoning_effort, 'none')
    assert.equal('reasoning_effort' in req('gpt-5.6-sol'), false)
    assert.equal('reasoning_effort' in req('gpt-5', { functions: [WEATHER] }), false)
  })

  test('functions in every 1.x form become tools', () => {
    const req = internal.legacyRequest(route('claude-opus-4-6'), {
      messages: SYSTEM_USER,
      model: 'claude-opus-4-6',
      functions: [
        WEATHER,
        { name: 'legacy_fn', description: 'Legacy', parameters: { type: 'object' } },
        { type: 'custom', name: 'anthropic_fn', description: 'Anthropic form', input_schema: { type: 'object', properties: {} } },
        { type: 'web_search_20250305', name: 'web_search', max_uses: 2 },
      ],
    })
    assert.deepEqual(req.tools, [
      WEATHER,
      { type: 'function', function: { name: 'legacy_fn', description: 'Legacy', parameters: { type: 'object' } } },
      { type: 'function', function: { name: 'anthropic_fn', description: 'Anthropic form', parameters: { type: 'object', properties: {} } } },
      { type: 'web_search_20250305', name: 'web_search', max_uses: 2 },
    ])
    assert.equal(internal.legacyRequest(route('gpt-4o'), { messages: SYSTEM_USER, model: 'gpt-4o', functions: [] }).tools, undefined)
  })

  test('what reaches OpenAI: temperature 0, wrapped legacy functions, tool history intact', async (t) => {
    const u = await scripted(t, [openaiAnswer({ content: 'ok' })], openaiEnv)
    await generateLLMResponse({
      messages: [
        ...SYSTEM_USER,
        { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { role: 'function', name: 'get_weather', content: '20C' },
      ],
      model: 'gpt-4o',
      functions: [{ name: 'get_weather', parameters: { type: 'object' } }],
      credentials: { apiKey: KEY },
    })
    const body = u.requests[0].json
    assert.equal(u.requests[0].path, '/v1/chat/completions')
    assert.equal(body.model, 'gpt-4o')
    assert.equal(body.temperature, 0)
    assert.deepEqual(body.tools, [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }])
    assert.deepEqual(body.messages.slice(2), [
      { role: 'assistant', tool_calls: [{ id: 'call_legacy_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_legacy_2', content: '20C' },
    ])
  })

  test('an Anthropic answer kept in the history (function_call next to tool_calls) is one call, answered by its result', async (t) => {
    const u = await scripted(t, [anthropicAnswer([{ type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris' } }], { stop: 'tool_use' }), anthropicAnswer([{ type: 'text', text: 'It is 20C.' }])], anthropicEnv)
    const params = { messages: [...SYSTEM_USER], model: 'claude-opus-4-6', functions: [WEATHER], credentials: { apiKey: KEY } }
    const first = await generateLLMResponse(params)
    const message = first.choices[0].message
    assert.ok(message.function_call && message.tool_calls)
    params.messages.push(message, { role: 'function', name: 'get_weather', content: '20C' })
    const second = await generateLLMResponse(params)
    assert.equal(second.choices[0].message.content, 'It is 20C.')
    const sent = u.requests[1].json.messages
    assert.deepEqual(sent.slice(1), [
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: '20C' }] },
    ])
  })

  test("OpenAI rejecting the temperature: tried again without it, as 1.17.0", async (t) => {
    const rejected = { status: 400, body: { error: { message: 'Unsupported value: temperature', type: 'invalid_request_error', param: 'temperature', code: 'unsupported_value' } } }
    const u = await scripted(t, [rejected, openaiAnswer({ content: 'fine' })], openaiEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4.1', credentials: { apiKey: KEY } })
    assert.equal(res.choices[0].message.content, 'fine')
    assert.equal(u.requests.length, 2)
    assert.equal(u.requests[0].json.temperature, 0)
    assert.equal('temperature' in u.requests[1].json, false)
  })
})

// ---------------------------------------------------------------------------------------------
describe('1.x answers', () => {
  test('OpenAI: returned as OpenAI sent it, no function_call added', async (t) => {
    await scripted(t, [openaiAnswer({ toolCalls: [openaiCall()] })], openaiEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } })
    const m = res.choices[0].message
    assert.deepEqual(m.tool_calls, [openaiCall()])
    assert.equal(m.function_call, undefined)
    assert.equal(res.system_fingerprint, 'fp_test')
    assert.equal(res.created, 1700000000)
  })

  test('Anthropic tool call: function_call (the first call) and content null as 1.x, tool_calls next to it', async (t) => {
    await scripted(t, [
      anthropicAnswer(
        [
          { type: 'text', text: "I'll look both up." },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
        { stop: 'tool_use' },
      ),
    ], anthropicEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', functions: [WEATHER], credentials: { apiKey: KEY } })
    const [choice] = res.choices
    assert.equal(choice.finish_reason, 'tool_calls')
    assert.equal(choice.message.content, null)
    assert.deepEqual(choice.message.function_call, { name: 'get_weather', arguments: '{"city":"Paris"}' })
    assert.deepEqual(choice.message.tool_calls.map((c) => c.id), ['toolu_1', 'toolu_2'])
    assert.deepEqual(res.usage, {
      prompt_tokens: 20,
      completion_tokens: 7,
      total_tokens: 27,
      prompt_tokens_details: res.usage.prompt_tokens_details,
      completion_tokens_details: { reasoning_tokens: 0 },
    })
    assert.equal(res.usage.prompt_tokens_details.cached_tokens, 0)
    assert.equal(res.system_fingerprint, 'default_fingerprint')
    assert.ok(Number.isInteger(res.created) && res.created < 1e10, 'created in seconds')
  })

  test('Anthropic text answer: no function_call', async (t) => {
    await scripted(t, [anthropicAnswer([{ type: 'text', text: 'Hello.' }])], anthropicEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', credentials: { apiKey: KEY } })
    assert.equal(res.choices[0].message.content, 'Hello.')
    assert.equal('function_call' in res.choices[0].message, false)
  })

  test('Bedrock Llama tool call: function_call next to tool_calls, signed with awsConfig', async (t) => {
    const reply = { generation: '<function=get_weather>{"city":"Paris"}</function>', prompt_token_count: 210, generation_token_count: 14, stop_reason: 'stop' }
    const u = await scripted(t, [{ body: reply }], (up) => ({ AWS_ENDPOINT_URL_BEDROCK_RUNTIME: up.url }))
    const res = await generateLLMResponse({
      messages: SYSTEM_USER,
      model: Llama3_1SupportedLLMs.LLAMA_3_1_8B,
      functions: [WEATHER],
      credentials: { awsConfig: { accessKeyId: 'AKIDLEGACY', secretAccessKey: 'secret', region: 'eu-central-1' } },
    })
    assert.equal(u.requests[0].path, '/model/meta.llama3-1-8b-instruct-v1%3A0/invoke')
    assert.match(u.requests[0].headers.authorization, /Credential=AKIDLEGACY\/\d{8}\/eu-central-1\/bedrock\/aws4_request/)
    assert.equal(u.requests[0].json.temperature, 0.7)
    assert.equal(u.requests[0].json.top_p, 0.9)
    const m = res.choices[0].message
    assert.equal(m.tool_calls[0].function.name, 'get_weather')
    assert.deepEqual(m.function_call, { name: 'get_weather', arguments: m.tool_calls[0].function.arguments })
    assert.deepEqual(JSON.parse(m.function_call.arguments), { city: 'Paris' })
  })

  test('upstream errors are LLMProxyError with the status', async (t) => {
    const body = { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } }
    await scripted(t, [{ status: 401, body }], anthropicEnv)
    const err = await caught(() => generateLLMResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', credentials: { apiKey: KEY } }))
    assertProxyError(err, { code: 'authentication', status: 401, provider: 'anthropic', body })
    assert.match(err.message, /invalid x-api-key/)
    assert.ok(!err.message.includes(KEY), 'no key in the message')
  })
})

// ---------------------------------------------------------------------------------------------
describe('1.x streams', () => {
  test('Anthropic tool call: text and tool_calls as they come, the whole call as function_call on the finish chunk with the usage', async (t) => {
    const s = anthropicStream({ text: ["I'll call ", 'the tool.'], tool: { id: 'toolu_s', name: 'get_weather', json: ['{"ci', 'ty":"Paris"}'] } })
    await scripted(t, [s], anthropicEnv)
    const chunks = await collect(await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', functions: [WEATHER], credentials: { apiKey: KEY } }))
    assert.equal(textOf(chunks), "I'll call the tool.")
    assert.deepEqual(finishes(chunks), ['tool_calls'])
    const last = chunks.at(-1)
    assert.equal(last.choices[0].finish_reason, 'tool_calls')
    assert.deepEqual(last.choices[0].delta.function_call, { name: 'get_weather', arguments: '{"city":"Paris"}' })
    assert.deepEqual(last.usage, {
      prompt_tokens: 30,
      completion_tokens: 9,
      total_tokens: 39,
      prompt_tokens_details: last.usage.prompt_tokens_details,
      completion_tokens_details: { reasoning_tokens: 0 },
    })
    const pieces = chunks.flatMap((c) => c.choices[0].delta.tool_calls || [])
    assert.equal(pieces[0].id, 'toolu_s')
    assert.equal(pieces.map((p) => p.function.arguments).join(''), '{"city":"Paris"}')
    chunks.forEach((c, i) => {
      assert.equal(c.choices.length, 1, `chunk ${i} has a choice`)
      const d = c.choices[0].delta
      if (!d.tool_calls && !d.function_call) assert.equal(typeof d.content, 'string', `chunk ${i} content`)
      if (i < chunks.length - 1) assert.equal(c.usage, null)
      assert.ok(c.created < 1e10)
      assert.equal(c.id, 'msg_s1')
    })
  })

  test('OpenAI: chunks pass as OpenAI sent them, usage last, no function_call', async (t) => {
    await scripted(t, [openaiStream({ tool: { id: 'call_s', name: 'get_weather', json: ['{"city"', ':"Paris"}'] } })], openaiEnv)
    const chunks = await collect(await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } }))
    assert.deepEqual(finishes(chunks), ['tool_calls'])
    assert.ok(chunks.every((c) => !c.choices.some((x) => x.delta.function_call)))
    assert.deepEqual(chunks.at(-1).choices, [])
    assert.equal(chunks.at(-1).usage.total_tokens, 15)
    assert.ok(chunks.every((c) => c.system_fingerprint === 'fp_s'), 'the fingerprint on every chunk, the usage chunk too')
  })

  test('Bedrock Llama tool call: the same 1.x layout, function_call on the finish chunk', async (t) => {
    const pieces = ['<function=', 'get_weather>', '{"city":', ' "Paris"}', '</function>']
    const body = Buffer.concat(
      pieces.map((generation, i) =>
        bedrockChunkFrame({
          generation,
          prompt_token_count: i === 0 ? 210 : null,
          generation_token_count: i + 1,
          stop_reason: i === pieces.length - 1 ? 'stop' : null,
          ...(i === pieces.length - 1 ? { 'amazon-bedrock-invocationMetrics': { inputTokenCount: 210, outputTokenCount: 5, invocationLatency: 3, firstByteLatency: 1 } } : {}),
        }),
      ),
    )
    const headers = { 'Content-Type': 'application/vnd.amazon.eventstream', 'X-Amzn-Bedrock-Content-Type': 'application/json' }
    const u = await scripted(t, [(req, socket) => writeResponse(socket, 200, headers, body, { framing: 'chunked', mode: { chunks: 4 } })], (up) => ({
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: up.url,
    }))
    const chunks = await collect(
      await generateLLMStreamResponse({
        messages: SYSTEM_USER,
        model: Llama3_1SupportedLLMs.LLAMA_3_1_70B_2,
        functions: [WEATHER],
        credentials: { awsConfig: { accessKeyId: 'AKIDLEGACY', secretAccessKey: 'secret', region: 'us-west-2' } },
      }),
    )
    assert.equal(u.requests[0].path, '/model/meta.llama3-1-70b-instruct-v1%3A0/invoke-with-response-stream')
    assert.deepEqual(finishes(chunks), ['tool_calls'])
    const last = chunks.at(-1)
    assert.equal(last.choices[0].delta.function_call.name, 'get_weather')
    assert.deepEqual(JSON.parse(last.choices[0].delta.function_call.arguments), { city: 'Paris' })
    assert.equal(last.usage.prompt_tokens, 210)
    assert.equal(last.usage.completion_tokens_details.reasoning_tokens, 0)
    chunks.forEach((c, i) => {
      const d = c.choices[0].delta
      if (!d.tool_calls && !d.function_call) assert.equal(typeof d.content, 'string', `chunk ${i}`)
      if (i < chunks.length - 1) assert.equal(c.usage, null, `chunk ${i}`)
    })
  })

  test('chunks arrive as the provider sends them, for Anthropic too', async (t) => {
    const s = anthropicStream({ text: ['first ', 'second'] })
    const held = s.events
    let release
    await scripted(t, [
      async (req, socket) => {
        const out = await openSse(socket)
        await out.send(sse(held.slice(0, 3)))
        await new Promise((resolve) => (release = resolve))
        await out.send(sse(held.slice(3)))
        await out.end()
      },
    ], anthropicEnv)
    const stream = await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', credentials: { apiKey: KEY } })
    let text = ''
    await within(3000, (async () => {
      while (!text.includes('first')) {
        const { value, done } = await stream.next()
        assert.ok(!done)
        text += value.choices[0].delta.content
      }
    })(), 'the first text chunk')
    release()
    for await (const c of stream) text += c.choices[0].delta.content || ''
    assert.equal(text, 'first second')
  })

  test('break stops the upstream request', async (t) => {
    let socketClosed
    await scripted(t, [
      async (req, socket) => {
        socketClosed = new Promise((resolve) => socket.on('close', resolve))
        const out = await openSse(socket)
        await out.send(openaiStream({ text: ['a', 'b'] }).sse.split('\n\n').slice(0, 2).join('\n\n') + '\n\n')
        // The rest never comes: only the client's cancel ends this response.
      },
    ], openaiEnv)
    for await (const c of await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'gpt-4o', credentials: { apiKey: KEY } })) {
      void c
      break
    }
    await within(3000, socketClosed, 'the upstream connection closing')
  })
})

// ---------------------------------------------------------------------------------------------
describe('forced-tool retry', () => {
  const promiseThenCall = () => [openaiAnswer({ content: PROMISE }), openaiAnswer({ toolCalls: [openaiCall('call_forced')] })]

  test('1.x functions: on — a promise without a tool call is asked again with tool_choice required', async (t) => {
    const u = await scripted(t, promiseThenCall(), openaiEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } })
    assert.equal(u.requests.length, 2)
    assert.equal(u.requests[0].json.tool_choice, undefined)
    assert.equal(u.requests[1].json.tool_choice, 'required')
    assert.equal(res.choices[0].message.tool_calls[0].id, 'call_forced')
  })

  test('1.x functions: Anthropic gets tool_choice any, and the forced call comes with function_call', async (t) => {
    const u = await scripted(t, [
      anthropicAnswer([{ type: 'text', text: PROMISE }]),
      anthropicAnswer([{ type: 'tool_use', id: 'toolu_f', name: 'get_weather', input: { city: 'Paris' } }], { stop: 'tool_use' }),
    ], anthropicEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', functions: [WEATHER], credentials: { apiKey: KEY } })
    assert.deepEqual(u.requests[1].json.tool_choice, { type: 'any' })
    assert.deepEqual(res.choices[0].message.function_call, { name: 'get_weather', arguments: '{"city":"Paris"}' })
  })

  test('no retry without functions, after a tool call, for a plain answer, or for Llama', async (t) => {
    const u = await scripted(t, promiseThenCall(), openaiEnv)
    const res = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', credentials: { apiKey: KEY } })
    assert.equal(res.choices[0].message.content, PROMISE)
    assert.equal(u.requests.length, 1)

    const plain = await scripted(t, [openaiAnswer({ content: 'It is 20C in Paris.' }), openaiAnswer({ toolCalls: [openaiCall()] })], openaiEnv)
    await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } })
    assert.equal(plain.requests.length, 1)

    const reply = { generation: PROMISE, prompt_token_count: 5, generation_token_count: 8, stop_reason: 'stop' }
    const llama = await scripted(t, [{ body: reply }], (up) => ({ AWS_ENDPOINT_URL_BEDROCK_RUNTIME: up.url }))
    const l = await generateLLMResponse({
      messages: SYSTEM_USER,
      model: 'us.meta.llama3-1-70b-instruct-v1:0',
      functions: [WEATHER],
      credentials: { awsConfig: { accessKeyId: 'a', secretAccessKey: 'b', region: 'us-east-1' } },
    })
    assert.equal(l.choices[0].message.content, PROMISE)
    assert.equal(llama.requests.length, 1, '1.17.0 never forced a tool on Llama')
  })

  test('the first answer stays when the forced one calls no tool or fails', async (t) => {
    const noCall = await scripted(t, [openaiAnswer({ content: PROMISE, id: 'first' }), openaiAnswer({ content: 'Sorry, I cannot.', id: 'second' })], openaiEnv)
    const a = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } })
    assert.equal(a.id, 'first')
    assert.equal(noCall.requests.length, 2)

    const bad = { status: 400, body: { error: { message: 'nope', type: 'invalid_request_error', param: null, code: null } } }
    await scripted(t, [openaiAnswer({ content: PROMISE, id: 'first' }), bad], openaiEnv)
    const b = await generateLLMResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } })
    assert.equal(b.id, 'first')
  })

  test("1.x stream: the promise's own finish and usage, then the forced tool call appended, as 1.17.0", async (t) => {
    const u = await scripted(t, [
      anthropicStream({ text: [PROMISE], id: 'msg_a' }),
      anthropicStream({ text: ['Calling.'], tool: { id: 'toolu_f', name: 'get_weather', json: ['{"city":"Paris"}'] }, id: 'msg_b', input: 40, output: 12 }),
    ], anthropicEnv)
    const chunks = await collect(await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'claude-opus-4-6', functions: [WEATHER], credentials: { apiKey: KEY } }))
    assert.deepEqual(u.requests[1].json.tool_choice, { type: 'any' })
    assert.equal(textOf(chunks), PROMISE, "the forced answer's text is left out")
    assert.deepEqual(finishes(chunks), ['stop', 'tool_calls'])
    assert.deepEqual(chunks.filter((c) => c.usage).map((c) => c.usage.total_tokens), [39, 52])
    assert.deepEqual(chunks.at(-1).choices[0].delta.function_call, { name: 'get_weather', arguments: '{"city":"Paris"}' })
  })

  test('1.x stream: nothing is appended when the forced answer calls no tool', async (t) => {
    const u = await scripted(t, [openaiStream({ text: ['Let me ', 'check.'] }), openaiStream({ text: ['No.'] })], openaiEnv)
    const chunks = await collect(await generateLLMStreamResponse({ messages: SYSTEM_USER, model: 'gpt-4o', functions: [WEATHER], credentials: { apiKey: KEY } }))
    assert.equal(u.requests.length, 2)
    assert.equal(textOf(chunks), 'Let me check.')
    assert.deepEqual(finishes(chunks), ['stop'])
  })

  describe('LLMProxy (opt-in)', () => {
    const request = { model: 'gpt-4o', messages: SYSTEM_USER, tools: [WEATHER] }
    const proxyFor = (u, options = {}) => new LLMProxy({ openai: { apiKey: KEY, baseUrl: u.baseUrl }, ...options })

    test('off by default', async (t) => {
      const u = await scripted(t, promiseThenCall())
      const res = await proxyFor(u).generate(request)
      assert.equal(res.choices[0].message.content, PROMISE)
      assert.equal(u.requests.length, 1)
      const v = await scripted(t, [openaiStream({ text: [PROMISE] }), openaiStream({ tool: { id: 'call_f', name: 'get_weather', json: ['{}'] } })])
      const chunks = await collect(proxyFor(v).stream(request))
      assert.equal(v.requests.length, 1, 'the stream is not retried')
      assert.deepEqual(finishes(chunks), ['stop'])
    })

    test('on for the proxy: generate returns the forced tool call', async (t) => {
      const u = await scripted(t, promiseThenCall())
      const res = await proxyFor(u, { retryOnFuturePromise: true }).generate(request)
      assert.equal(res.choices[0].message.tool_calls[0].id, 'call_forced')
      assert.equal(res.choices[0].message.function_call, undefined, 'LLMProxy answers stay in the 2.x shape')
      assert.equal(u.requests[1].json.tool_choice, 'required')
    })

    test('per call, overriding the proxy', async (t) => {
      const u = await scripted(t, promiseThenCall())
      const on = await proxyFor(u).generate(request, { retryOnFuturePromise: true })
      assert.equal(on.choices[0].finish_reason, 'tool_calls')
      assert.equal(u.requests.length, 2)
      const off = await proxyFor(u, { retryOnFuturePromise: true }).generate(request, { retryOnFuturePromise: false })
      assert.equal(off.choices[0].finish_reason, 'tool_calls', 'the scripted upstream repeats its last answer')
      assert.equal(u.requests.length, 3, 'no second request')
    })

    test('not with a tool_choice of the caller, nor without tools', async (t) => {
      const u = await scripted(t, promiseThenCall())
      const proxy = proxyFor(u, { retryOnFuturePromise: true })
      await proxy.generate({ ...request, tool_choice: 'none' })
      assert.equal(u.requests.length, 1)
      const v = await scripted(t, promiseThenCall())
      await proxyFor(v, { retryOnFuturePromise: true }).generate({ model: 'gpt-4o', messages: SYSTEM_USER })
      assert.equal(v.requests.length, 1)
      // Legacy `functions` count as tools; the forced request uses tool_choice.
      const w = await scripted(t, promiseThenCall())
      await proxyFor(w, { retryOnFuturePromise: true }).generate({ model: 'gpt-4o', messages: SYSTEM_USER, functions: [WEATHER.function], function_call: 'auto' })
      assert.equal(w.requests.length, 2)
      assert.equal(w.requests[1].json.tool_choice, 'required')
    })

    test('stream: one answer — the promise text, then the tool call, one finish_reason, usage last', async (t) => {
      const u = await scripted(t, [
        anthropicStream({ text: ['Let me check ', 'the weather for you.'], id: 'msg_a' }),
        anthropicStream({ text: ['Calling.'], tool: { id: 'toolu_f', name: 'get_weather', json: ['{"city":', '"Paris"}'] }, id: 'msg_b', input: 40, output: 12 }),
      ])
      const proxy = new LLMProxy({ anthropic: { apiKey: KEY, baseUrl: u.url }, retryOnFuturePromise: true })
      const chunks = await collect(proxy.stream({ ...request, model: 'claude-opus-4-6' }))
      assert.equal(u.requests.length, 2)
      assert.equal(textOf(chunks), PROMISE)
      assert.deepEqual(finishes(chunks), ['tool_calls'])
      assert.deepEqual(chunks.map((c) => c.id), chunks.map(() => 'msg_a'))
      assert.equal(chunks.filter((c) => c.choices.some((x) => x.delta.role)).length, 1, 'the role once')
      assert.deepEqual(chunks.at(-1).choices, [])
      assert.equal(chunks.at(-1).usage.total_tokens, 52, "the forced request's usage")
      assert.equal(chunks.filter((c) => c.usage).length, 1)
      const args = chunks.flatMap((c) => c.choices.flatMap((x) => x.delta.tool_calls || [])).map((p) => p.function.arguments || '').join('')
      assert.equal(args, '{"city":"Paris"}')
    })

    test('stream: when the forced answer calls no tool, the first answer ends as it would have', async (t) => {
      const u = await scripted(t, [openaiStream({ text: ['One moment.'] }), openaiStream({ text: ['No.'] })])
      const chunks = await collect(proxyFor(u).stream(request, { retryOnFuturePromise: true }))
      assert.equal(u.requests.length, 2)
      assert.equal(textOf(chunks), 'One moment.')
      assert.deepEqual(finishes(chunks), ['stop'])
      assert.deepEqual(chunks.at(-1).choices, [])
    })

    test('stream: chunks are not held back before the finish', async (t) => {
      let release
      const u = await scripted(t, [
        async (req, socket) => {
          const out = await openSse(socket)
          const events = openaiStream({ text: ['Let me ', 'check.'] }).sse.split(/(?<=\n\n)/)
          await out.send(events.slice(0, 2).join(''))
          await new Promise((resolve) => (release = resolve))
          await out.send(events.slice(2).join(''))
          await out.end()
        },
        openaiStream({ tool: { id: 'call_f', name: 'get_weather', json: ['{}'] } }),
      ])
      const it = proxyFor(u, { retryOnFuturePromise: true }).stream(request)
      let text = ''
      await within(3000, (async () => {
        while (!text.includes('Let me')) text += (await it.next()).value.choices[0].delta.content || ''
      })(), 'the first text chunk')
      release()
      const rest = await collect(it)
      assert.deepEqual(finishes(rest), ['tool_calls'])
    })

    test('the mock provider: a promise it keeps repeating gives the first answer', async () => {
      const proxy = new LLMProxy({ retryOnFuturePromise: true })
      const res = await proxy.generate({ model: 'mock/x', messages: SYSTEM_USER, tools: [WEATHER], mock_response: PROMISE })
      assert.equal(res.choices[0].message.content, PROMISE)
      const chunks = await collect(proxy.stream({ model: 'mock/x', messages: SYSTEM_USER, tools: [WEATHER], mock_response: PROMISE }))
      assert.equal(textOf(chunks), PROMISE)
      assert.deepEqual(finishes(chunks), ['stop'])
    })

    test('a non-boolean retryOnFuturePromise is an error', async () => {
      assertProxyError(await caught(() => new LLMProxy({ retryOnFuturePromise: 'yes' })), { code: 'config' })
      const proxy = new LLMProxy()
      assertProxyError(await caught(() => proxy.generate({ model: 'mock/x', messages: SYSTEM_USER }, { retryOnFuturePromise: 1 })), { code: 'invalid_request' })
      assertProxyError(await caught(() => collect(proxy.stream({ model: 'mock/x', messages: SYSTEM_USER }, { retryOnFuturePromise: 1 }))), { code: 'invalid_request' })
    })
  })
})

// ---------------------------------------------------------------------------------------------
describe('llmAsJudge', () => {
  test('verdicts in JSON: passed, and the score normalized to 0–1', () => {
    const cases = [
      ['{"passed": true, "score": 0.9, "reasoning": "ok"}', true, 0.9],
      ['Verdict: {"passed": "true", "score": 8} — done', true, 0.8],
      ['{"passed": false, "score": 10}', false, 1],
      ['{"passed": true, "score": 11}', true, 1],
      ['{"passed": true, "score": -3}', true, 0],
      ['{"passed": true, "score": "7.5"}', true, 0.75],
      ['{"passed": true, "score": 1}', true, 1],
      ['{"passed": "yes", "score": null}', false, null],
      ['{"passed": true}', true, null],
      ['{"passed": true, "score": "high"}', true, null], // 1.x: NaN
    ]
    for (const [reply, passed, score] of cases) assert.deepEqual(internal.parseVerdict(reply), { passed, score }, reply)
  })

  test('verdicts in words: keywords, and "score: n"', () => {
    const cases = [
      ['The answer is correct. Score: 7', true, 0.7],
      ['Wrong answer. score 2', false, 0.2],
      ['It is a PASS.', true, null],
      ['The assistant was successful; score: 0.85', true, 0.85],
      ['true', true, null],
      ['Not good at all.', false, null],
      ['Score: 42', false, 1],
      // Something like JSON that does not parse: keywords only ("true" no longer counts), no score.
      ['{"passed": tru, "score": 9}', true, null],
      ['true {not json}', false, null],
      ['', false, null],
    ]
    for (const [reply, passed, score] of cases) assert.deepEqual(internal.parseVerdict(reply), { passed, score }, reply)
  })

  test("the judge request: the prompt's placeholders filled, 1.x's user turn, max_tokens 500 and temperature 0 by default", async (t) => {
    const u = await scripted(t, [openaiAnswer({ content: '{"passed": true, "score": 9, "reasoning": "fine"}' })], openaiEnv)
    const messages = [
      { role: 'system', content: 'Answer sums.' },
      { role: 'user', content: 'What is 2+2? ($& $1)' },
      { role: 'assistant', content: null, function_call: { name: 'add', arguments: '{"a":2,"b":2}' } },
      { role: 'function', name: 'add', content: '4' },
      { role: 'assistant', content: 'It is 4.' },
    ]
    const verdict = await llmAsJudge({
      messages,
      judgePrompt: 'Last: {{messages[-1]}}\nAll:\n{{messages}}\nAgain:\n{{trajectory}}',
      model: 'gpt-4o',
      provider: 'OpenAI',
      credentials: { apiKey: KEY },
    })
    assert.deepEqual(verdict, {
      passed: true,
      score: 0.9,
      judgeResponse: '{"passed": true, "score": 9, "reasoning": "fine"}',
      tokenUsage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    })
    const trajectory = [
      'Turn 1 [System]: Answer sums.',
      'Turn 2 [User]: What is 2+2? ($& $1)',
      'Turn 3 [Assistant]: null',
      'Turn 4 [Tool]: 4',
      'Turn 5 [Assistant]: It is 4.',
    ].join('\n\n')
    const body = u.requests[0].json
    assert.equal(body.max_tokens, 500)
    assert.equal(body.temperature, 0)
    assert.equal(body.tools, undefined)
    assert.deepEqual(body.messages, [
      { role: 'system', content: `Last: It is 4.\nAll:\n${trajectory}\nAgain:\n${trajectory}` },
      {
        role: 'user',
        content: `Please evaluate the following conversation trajectory:\n\n${trajectory}\n\nRespond with JSON format: {"passed": true/false, "score": 0.0-1.0, "reasoning": "your explanation"}`,
      },
    ])
  })

  test('maxTokens and temperature are passed; a judge on the mock provider works offline', async () => {
    const verdict = await llmAsJudge({ messages: SYSTEM_USER, judgePrompt: 'Judge.', model: 'mock/judge', credentials: {}, maxTokens: 20, temperature: 0.5 })
    // The mock echoes the user turn, whose JSON template does not parse: keywords ("passed") decide.
    assert.equal(verdict.passed, true)
    assert.equal(verdict.score, null)
    assert.match(verdict.judgeResponse, /^Please evaluate the following conversation trajectory/)
    assert.ok(verdict.tokenUsage.total_tokens > 0)
  })

  test('a failed judge call never throws: passed false, score null, the error in judgeResponse', async () => {
    const verdict = await llmAsJudge({ messages: SYSTEM_USER, judgePrompt: 'x', model: 'no-such-model', credentials: { apiKey: KEY } })
    assert.deepEqual(verdict, {
      passed: false,
      score: null,
      judgeResponse: 'Error in judge evaluation: Unsupported model: no-such-model',
      tokenUsage: undefined,
    })
    const broken = await llmAsJudge(undefined)
    assert.equal(broken.passed, false)
    assert.match(broken.judgeResponse, /^Error in judge evaluation: /)
  })
})

test('ESM: `import { generateLLMResponse, OpenAISupportedLLMs } from "llm-proxy"` works, as with 1.x', async () => {
  const ns = await import(require.resolve('..'))
  for (const name of Object.keys(pkg)) assert.equal(ns[name], pkg[name], `named export ${name}`)
  for (const name of Object.keys(v1)) assert.ok(name in ns, `1.x's export ${name}`)
})

test('legacy.js loads on its own before index.js and shares its LLMProxyError', () => {
  assert.equal(require('..').generateLLMResponse, legacy.generateLLMResponse)
  const script = `
    const legacy = require('./legacy.js')
    legacy.generateLLMResponse({ model: 'mock/x', messages: [{ role: 'user', content: 'hi' }], mock_response: 'ok' })
      .then(async (res) => {
        const index = require('./index.js')
        const err = await legacy.generateLLMResponse({ model: 'nope', messages: [], credentials: {} }).catch((e) => e)
        console.log(JSON.stringify([res.choices[0].message.content, index.generateLLMResponse === legacy.generateLLMResponse, err instanceof index.LLMProxyError]))
      })`
  const out = execFileSync(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  assert.deepEqual(JSON.parse(out), ['ok', true, true])
})
