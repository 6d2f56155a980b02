'use strict'

// The 1.x drop-in API, differentially: every case runs the SAME 1.x-style call through llm-proxy
// 1.17.0 (`require('llm-proxy-1')`, the official SDKs inside) and through this package
// (`require('..')`), against ONE loopback upstream that replays the responses recorded from 1.17.0
// (helpers/compat-1x-reference.json). Both packages find the loopback through OPENAI_BASE_URL and
// ANTHROPIC_BASE_URL, which the 1.x SDKs and the 2.x core both read.
//
// For each case the tests assert
// - that the live 1.17.0 still does what the recording says (so the harness is faithful);
// - that what was SENT upstream is the same (method, path, key header, and the body fields that
//   matter: model, messages / system, tools, max_tokens, temperature, tool_choice, stream);
// - that every field a 1.x user reads from the answer, the chunks or the error is EQUAL
//   (helpers/compat-1x.js `assertReads`: 2.x may add fields; null and undefined read alike);
// - and, kept out of those comparisons, the DOCUMENTED DIFFERENCES below, each asserted as the
//   intended 2.x behaviour. The README's migration section lists the same differences.
//
// Error responses carry `retry-after-ms: 1` (besides the recorded `retry-after: 0`) so that the
// retries of both packages are quick; everything else is byte for byte the recorded response.

const { test, describe, beforeEach, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { openSse, sseBody, within, sleep } = require('./helpers/upstream')
const { LLMProxyError } = require('./helpers/common') // also clears the provider env variables
const H = require('./helpers/compat-1x')

const v1 = require('llm-proxy-1')
const v2pkg = require('..')

/**
 * The intended differences between 2.x's 1.x functions and 1.17.0. Each is asserted by at least one
 * test below (the last test checks that), and each is a 1.x bug or a 2.x contract, never an accident.
 */
const DIFFERENCES = {
  object_chat_completion:
    "Anthropic answers have `object: 'chat.completion'` (1.x: 'text_completion').",
  created_seconds:
    'Anthropic answers and chunks have `created` in seconds, like OpenAI (1.x: Date.now(), milliseconds).',
  real_stream_ids:
    "Anthropic stream chunks carry the provider's message id, the same on every chunk (1.x: 'stream-<Date.now()>', or the message id on a tool-call chunk).",
  tool_calls_alongside_function_call:
    "Anthropic tool calls come as `message.tool_calls` / `delta.tool_calls` (argument pieces as they arrive) with Anthropic's tool_use ids, next to 1.x's `function_call` — `message.function_call` with `content: null` in an answer, the whole call as `delta.function_call` on a stream's finish chunk, as in 1.x (1.x: only `function_call`, without the id).",
  text_before_tool_call_kept:
    "In a stream, the text the model writes before a tool call is delivered as content deltas (1.x dropped it: its tool-call stream was one chunk). Answers keep 1.x's `content: null`.",
  no_filler_turns:
    "Anthropic requests contain no ':' filler turns; consecutive turns of one role are merged into one (1.x invented ':' turns to force alternation).",
  system_messages_in_system:
    'Every system message goes to Anthropic\'s `system`, in order (1.x: only the first; a later one became a ":" turn plus an assistant turn).',
  no_system_first_accepted:
    "An Anthropic conversation need not start with a system message: it is sent without `system` (1.x threw \"The first message must have a role of 'system' for Anthropic.\" before sending).",
  tool_history_intact:
    'Tool history is sent intact: assistant `tool_calls` and the `tool_call_id` of tool results reach OpenAI (1.x sent the text "function call" and dropped both); legacy function_call / function messages become tool_use / tool_result blocks for Anthropic (1.x: text turns).',
  legacy_call_ids:
    'A legacy `function_call` in the history gets the id `call_legacy_<message index>`, the same on the call and its result, for every model (1.x: a random `call_<uuid>`, for GPT-5 models only).',
  legacy_function_definitions_wrapped:
    'Legacy `{ name, description, parameters }` entries of `functions` are sent to OpenAI as `{ type: "function", function: {...} }` (1.x sent them unwrapped as `tools`, which OpenAI rejects).',
  reasoning_models_no_temperature:
    'OpenAI reasoning models (gpt-5*, o1/o3/o4…) get no `temperature` (1.x sent 0, which they reject, and then retried without it), and o1 models get `max_completion_tokens` (1.x sent them `max_tokens`, which they reject).',
  streams_not_buffered:
    'Anthropic streams are delivered as they arrive (1.x read the whole answer before yielding the first chunk).',
  stream_contract:
    "Anthropic stream chunks: `role: 'assistant'` on the first delta, one chunk per text or tool-argument piece (1.x also sent empty-content chunks for the start, ping and stop events). As in 1.x, every chunk has one choice whose `delta.content` is a string unless it carries a tool call, `usage` is null except on the finish chunk, which carries it.",
  stream_own_model:
    "Concurrent streams: every chunk carries its own request's model (1.x shared one model name between concurrent Anthropic streams and sent 'unknown-model').",
  stream_interrupted:
    "A stream cut before it ends delivers the chunks that arrived, then throws LLMProxyError code 'stream_interrupted' (1.x: Error 'Premature close'; for Anthropic after yielding nothing).",
  claude3_max_tokens:
    'Without `max_tokens`, Claude 3 models get 4096 (their limit) and later ones 8192 (1.x sent 8192 to every Claude, which Claude 3 rejects).',
  anthropic_temperature_clamped:
    "A `temperature` above 1 is sent to Anthropic as 1 (Anthropic's range is 0–1; 1.x sent it as given, which Anthropic rejects).",
  empty_functions_not_sent:
    '`functions: []` sends no `tools` (1.x sent `tools: []` to OpenAI and compatible servers, which OpenAI rejects).',
  one_choice_per_answer:
    "An Anthropic answer of several text blocks is one choice with the texts joined (1.x made one choice per content block, so `choices[0]` held only the first block).",
  judge_prompt_literal:
    "llmAsJudge puts the conversation into `judgePrompt` literally: `$&`, `$1`… in messages stay as they are, and a non-string last message is inserted as JSON (1.x let String.replace expand them, and inserted '[object Object]').",
  content_parts_for_anthropic:
    "Content parts (text, image_url…) reach Anthropic as text and image blocks (1.x put the parts array in a text block's `text`, which Anthropic rejects).",
  checked_before_sending:
    "Requests the provider would reject for their shape (no messages; for Anthropic, nothing but a system message) fail with LLMProxyError code 'invalid_request' before anything is sent (1.x sent them and got the provider's 400).",
  errors_are_llmproxyerror:
    'Errors are LLMProxyError with `code`, `provider`, `status`, `retryable`, `retryAfterMs` and the provider\'s `body` (1.x: the SDKs\' error classes with `status`, `error`, `headers`); `status` is the same, and after retries the message says how many attempts were made.',
}

/** Marks the assertions that follow as those of a documented difference. */
function documented(key) {
  assert.ok(key in DIFFERENCES, `unknown documented difference ${key}`)
}

function v2() {
  for (const name of ['generateLLMResponse', 'generateLLMStreamResponse']) {
    assert.equal(
      typeof v2pkg[name],
      'function',
      `require('..').${name} is not exported (it is ${typeof v2pkg[name]}): the 1.x API of 2.x is missing`,
    )
  }
  return v2pkg
}

let restoreEnv
beforeEach(() => {
  restoreEnv = H.saveEnv()
})
afterEach(() => {
  restoreEnv()
})

const SONNET = 'claude-sonnet-4-5-20250929'
const HAIKU = 'claude-haiku-4-5-20251001'
const OPENAI_FIELDS = [
  'model',
  'messages',
  'temperature',
  'max_tokens',
  'max_completion_tokens',
  'tools',
  'tool_choice',
  'functions',
  'function_call',
  'stream',
  'stream_options',
]

function pick(body, fields) {
  const out = {}
  for (const f of fields) if (body[f] !== undefined) out[f] = body[f]
  return out
}

const openaiView = (body) => pick(body, OPENAI_FIELDS)

/** The Anthropic body fields that matter, normalized (string content = one text block). */
function anthropicView(body) {
  return {
    model: body.model,
    max_tokens: body.max_tokens,
    temperature: body.temperature,
    stream: body.stream,
    tool_choice: body.tool_choice,
    tools: body.tools && body.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.input_schema })),
    system: H.anthropicSystem(body),
    turns: H.anthropicTurns(body),
  }
}

function assertOpenAiRequest(req, { key = 'sk-mock', path = '/v1/chat/completions' } = {}) {
  assert.equal(req.method, 'POST')
  assert.equal(req.path, path)
  assert.equal(req.headers.authorization, `Bearer ${key}`)
  assert.ok(req.json, 'the body is JSON')
}

function assertAnthropicRequest(req) {
  assert.equal(req.method, 'POST')
  assert.equal(req.path, '/v1/messages')
  assert.equal(req.headers['x-api-key'], 'sk-mock')
  assert.equal(req.headers['anthropic-version'], '2023-06-01')
  assert.ok(req.json, 'the body is JSON')
}

/** The same call through both packages; `kind` is 'generate' or 'stream'. */
async function differential(loop, responder, params, kind = 'generate') {
  const call = (api, input) =>
    kind === 'generate' ? H.settle(api.generateLLMResponse(input)) : H.drainLegacy(api.generateLLMStreamResponse(input))
  const one = await loop.side(responder, () => call(v1, H.clone(params)))
  const api = v2()
  const input = H.clone(params)
  const two = await loop.side(responder, () => call(api, input))
  assert.deepEqual(input, params, "2.x left the caller's params unchanged")
  return { one, two }
}

function assertOk(side, label) {
  assert.equal(side.err, undefined, `${label} failed: ${side.err && (side.err.stack || side.err)}`)
}

/** Live 1.17.0 sent what the recording says it sent (ids it makes up at random excepted). */
function assertSentAsRecorded(one, c, { randomIds = false } = {}) {
  assert.equal(one.requests.length, c.upstream.length, 'live 1.x made as many requests as recorded')
  one.requests.forEach((req, i) => {
    let sent = req.json
    let recorded = c.upstream[i].body
    if (randomIds) {
      const strip = (b) => JSON.parse(JSON.stringify(b).replace(/call_[0-9a-f]{32}/g, 'call_<uuid>'))
      sent = strip(sent)
      recorded = strip(recorded)
    }
    assert.deepEqual(sent, recorded, `live 1.x request ${i + 1} is the recorded one`)
  })
}

/** Live 1.17.0 returned what the recording says (its clock-made fields excepted). */
function assertAnswerAsRecorded(one, c) {
  assertOk(one, 'live 1.x')
  H.assertReads(one.result, c.output, { skip: ['created'], what: 'live 1.x' })
}

function assertChunksAsRecorded(one, recorded) {
  assert.equal(one.chunks.length, recorded.length, 'live 1.x yielded as many chunks as recorded')
  one.chunks.forEach((chunk, i) => {
    const clockless = { ...chunk, id: /^stream-\d+$/.test(chunk.id) ? '<clock>' : chunk.id, created: 0 }
    const rec = { ...recorded[i], id: /^stream-\d+$/.test(recorded[i].id) ? '<clock>' : recorded[i].id, created: 0 }
    assert.deepEqual(clockless, rec, `live 1.x chunk ${i} is the recorded one`)
  })
}

/** The documented Anthropic answer differences, asserted. */
function assertAnthropicAnswerDifferences(one, two) {
  documented('object_chat_completion')
  assert.equal(one.result.object, 'text_completion')
  assert.equal(two.result.object, 'chat.completion')
  documented('created_seconds')
  H.assertMilliseconds(one.result.created, '1.x')
  H.assertSeconds(two.result.created, '2.x')
}

let loop
async function freshLoop(t) {
  const l = await H.loopback()
  t.after(() => l.up.close())
  return l
}

// ---------------------------------------------------------------------------------------------
describe('OpenAI', () => {
  test('non-stream text (openai_system_user_nonstream)', async (t) => {
    const c = H.refCase('openai_system_user_nonstream')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_system_user_nonstream'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    assert.equal(two.requests[0].json.temperature, 0, "1.x's default temperature 0 is kept")
    H.assertReads(two.result, one.result)
  })

  test('tools → tool_calls, max_tokens (openai_tools_nonstream)', async (t) => {
    const c = H.refCase('openai_tools_nonstream')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_tools_nonstream'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    assert.equal(two.requests[0].json.max_tokens, 256)
    H.assertReads(two.result, one.result)
    assert.equal(two.result.choices[0].message.tool_calls[0].id, 'call_mock_10')
  })

  test('legacy {name, description, parameters} functions (openai_legacy_functions_shape)', async (t) => {
    const c = H.refCase('openai_legacy_functions_shape')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_legacy_functions_shape'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    documented('legacy_function_definitions_wrapped')
    assert.deepEqual(one.requests[0].json.tools, c.input.functions, '1.x sent the legacy shapes unwrapped')
    const wrapped = c.input.functions.map((f) => ({
      type: 'function',
      function: { name: f.name, description: f.description, parameters: f.parameters },
    }))
    assert.deepEqual(
      openaiView(two.requests[0].json),
      { ...openaiView(one.requests[0].json), tools: wrapped },
      'the same request, with the definitions wrapped',
    )
    H.assertReads(two.result, one.result)
  })

  test('tool-call history (openai_tool_history)', async (t) => {
    const c = H.refCase('openai_tool_history')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_tool_history'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])

    documented('tool_history_intact')
    const sent1 = one.requests[0].json.messages
    assert.deepEqual(sent1[2], { role: 'assistant', content: 'function call' }, '1.x dropped tool_calls')
    assert.deepEqual(sent1[3], { role: 'tool', content: '{"temp_c":20}' }, '1.x dropped tool_call_id')
    const sent2 = two.requests[0].json.messages
    assert.equal(sent2.length, c.input.messages.length)
    assert.deepEqual(sent2[2].tool_calls, c.input.messages[2].tool_calls, 'assistant tool_calls sent as given')
    assert.ok(sent2[2].content === null || sent2[2].content === undefined, `no "function call" text: ${JSON.stringify(sent2[2])}`)
    assert.equal(sent2[3].role, 'tool')
    assert.equal(sent2[3].tool_call_id, 'call_abc123')
    assert.equal(sent2[3].content, '{"temp_c":20}')
    // Everything else is sent as 1.x sent it.
    const rest = (m) => [m[0], m[1], m[4]]
    assert.deepEqual(rest(sent2), rest(sent1))
    const others = (b) => ({ ...openaiView(b), messages: undefined })
    assert.deepEqual(others(two.requests[0].json), others(one.requests[0].json))
    H.assertReads(two.result, one.result)
  })

  test('GPT-5 with a legacy function_call history and max_tokens (openai_gpt5_function_history)', async (t) => {
    const c = H.refCase('openai_gpt5_function_history')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_gpt5_function_history'), c.input)
    assertSentAsRecorded(one, c, { randomIds: true })
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    const b1 = one.requests[0].json
    const b2 = two.requests[0].json
    assert.equal(b2.model, 'gpt-5')
    assert.equal(b1.max_completion_tokens, 300)
    assert.equal(b2.max_completion_tokens, 300, 'max_tokens becomes max_completion_tokens, as in 1.x')
    assert.equal(b2.max_tokens, undefined)

    documented('reasoning_models_no_temperature')
    assert.equal(b1.temperature, 0)
    assert.equal(b2.temperature, undefined)

    documented('tool_history_intact')
    documented('legacy_call_ids')
    assert.match(b1.messages[2].tool_calls[0].id, /^call_[0-9a-f]{32}$/, "1.x's id is random")
    assert.equal(b1.messages[2].content, 'function call')
    const [sys, user, call, result, last] = b2.messages
    assert.equal(b2.messages.length, 5)
    assert.deepEqual([sys, user, last], [b1.messages[0], b1.messages[1], b1.messages[4]])
    assert.equal(call.role, 'assistant')
    assert.ok(call.content === null || call.content === undefined, `no "function call" text: ${JSON.stringify(call)}`)
    assert.deepEqual(call.tool_calls, [
      { id: 'call_legacy_2', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
    ])
    assert.equal(result.role, 'tool')
    assert.equal(result.tool_call_id, 'call_legacy_2')
    assert.equal(result.content, '{"temp_c":20}')
    H.assertReads(two.result, one.result)
  })

  test('stream, text (openai_stream_text)', async (t) => {
    const c = H.refCase('openai_stream_text')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_stream_text'), c.input, 'stream')
    assertSentAsRecorded(one, c)
    assert.equal(one.err, undefined)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    H.assertReads(two.chunks, one.chunks)
  })

  test('stream, tool call (openai_stream_tool)', async (t) => {
    const c = H.refCase('openai_stream_tool')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_stream_tool'), c.input, 'stream')
    assertSentAsRecorded(one, c)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertOpenAiRequest(two.requests[0])
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    H.assertReads(two.chunks, one.chunks)
    const r = H.readStream(two.chunks)
    assert.deepEqual(r.toolCalls, [{ id: 'call_mock_15', name: 'get_weather', arguments: '{"location":"Paris"}' }])
  })
})

// ---------------------------------------------------------------------------------------------
describe('OpenAI-compatible provider (openAICompatibleProviderConfig.baseUrl)', () => {
  function compatParams(c, baseUrl) {
    const p = H.clone(c.input)
    p.credentials = { openAICompatibleProviderConfig: { openAICompatibleProviderKey: 'sk-compat', baseUrl } }
    return p
  }

  test('non-stream (compat_nonstream)', async (t) => {
    const c = H.refCase('compat_nonstream')
    loop = await freshLoop(t)
    delete process.env.OPENAI_BASE_URL // the base URL comes from the credentials only
    const params = compatParams(c, `${loop.up.url}/compat/v1`)
    const { one, two } = await differential(loop, H.replayCase('compat_nonstream'), params)
    assertOk(one, '1.x')
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 1)
      assertOpenAiRequest(side.requests[0], { key: 'sk-compat', path: '/compat/v1/chat/completions' })
    }
    assert.deepEqual(one.requests[0].json, c.upstream[0].body, 'live 1.x sent the recorded body')
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    H.assertReads(two.result, one.result)
  })

  test('stream (compat_stream)', async (t) => {
    const c = H.refCase('compat_stream')
    loop = await freshLoop(t)
    delete process.env.OPENAI_BASE_URL
    const params = compatParams(c, `${loop.up.url}/compat/v1`)
    const { one, two } = await differential(loop, H.replayCase('compat_stream'), params, 'stream')
    assert.equal(one.err, undefined)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 1)
      assertOpenAiRequest(side.requests[0], { key: 'sk-compat', path: '/compat/v1/chat/completions' })
    }
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    H.assertReads(two.chunks, one.chunks)
  })

  test("routing: 1.x's model enums first, then a baseUrl means the compatible provider", async (t) => {
    loop = await freshLoop(t)
    const answer = H.refCase('compat_nonstream').upstream[0].response
    const messages = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Say hello.' },
    ]
    const compat = { openAICompatibleProviderKey: 'sk-compat', baseUrl: `${loop.up.url}/compat/v1` }
    // gpt-4o is in OpenAISupportedLLMs: OpenAI, with apiKey, even though a baseUrl is given.
    const enumModel = { messages, model: 'gpt-4o', credentials: { apiKey: 'sk-mock', openAICompatibleProviderConfig: compat } }
    let { one, two } = await differential(loop, H.replayResponse(answer), enumModel)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    for (const side of [one, two]) assertOpenAiRequest(side.requests[0])
    // claude-sonnet-4-5 (no date) is in no 1.x enum: with a baseUrl it goes to the compatible server.
    const other = { messages, model: 'claude-sonnet-4-5', credentials: { openAICompatibleProviderConfig: compat } }
    ;({ one, two } = await differential(loop, H.replayResponse(answer), other))
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 1)
      assertOpenAiRequest(side.requests[0], { key: 'sk-compat', path: '/compat/v1/chat/completions' })
      assert.equal(side.requests[0].json.model, 'claude-sonnet-4-5')
    }
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    H.assertReads(two.result, one.result)
  })

  test('an unknown model without a baseUrl is rejected before anything is sent', async (t) => {
    loop = await freshLoop(t)
    const params = {
      messages: [{ role: 'user', content: 'Say hello.' }],
      model: 'no-such-model-x',
      credentials: { apiKey: 'sk-mock' },
    }
    const { one, two } = await differential(loop, () => assert.fail('nothing may be sent'), params)
    assert.match(String(one.err && one.err.message), /Unsupported model: no-such-model-x/)
    assert.ok(two.err, '2.x rejects it too')
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err}`)
    assert.match(two.err.message, /no-such-model-x/)
    assert.equal(one.requests.length, 0)
    assert.equal(two.requests.length, 0)
  })
})

// ---------------------------------------------------------------------------------------------
describe('Anthropic', () => {
  test('system + user, defaults (anthropic_system_user_nonstream)', async (t) => {
    const c = H.refCase('anthropic_system_user_nonstream')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_system_user_nonstream'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    assert.deepEqual(anthropicView(two.requests[0].json), anthropicView(one.requests[0].json))
    assert.equal(two.requests[0].json.max_tokens, 8192)
    assert.equal(two.requests[0].json.temperature, 0, "1.x's default temperature 0 is kept")
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assertAnthropicAnswerDifferences(one, two)
  })

  test('a second system message (anthropic_second_system_message)', async (t) => {
    const c = H.refCase('anthropic_second_system_message')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_second_system_message'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    const b1 = one.requests[0].json
    const b2 = two.requests[0].json

    documented('system_messages_in_system')
    assert.deepEqual(H.anthropicSystem(b1), ['You are a helpful assistant.'])
    assert.deepEqual(H.anthropicSystem(b2), ['You are a helpful assistant.', 'Answer in French.'])
    documented('no_filler_turns')
    assert.ok(H.allTexts(b1).includes(':'), "1.x sent ':' turns")
    assert.deepEqual(H.anthropicTurns(b2), [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hi.' },
          { type: 'text', text: 'Say hello.' },
        ],
      },
    ])
    const rest = (b) => ({ ...anthropicView(b), system: undefined, turns: undefined })
    assert.deepEqual(rest(b2), rest(b1))
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assertAnthropicAnswerDifferences(one, two)
  })

  test('a conversation without a system message first (anthropic_no_system_first)', async (t) => {
    const c = H.refCase('anthropic_no_system_first')
    loop = await freshLoop(t)
    const answer = H.refCase('anthropic_system_user_nonstream').upstream[0].response
    const { one, two } = await differential(loop, H.replayResponse(answer), c.input)
    documented('no_system_first_accepted')
    assert.equal(one.err && one.err.message, c.error.message)
    assert.equal(one.requests.length, 0)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    const b2 = two.requests[0].json
    assert.deepEqual(H.anthropicSystem(b2), [])
    assert.deepEqual(H.anthropicTurns(b2), [{ role: 'user', content: [{ type: 'text', text: 'Say hello.' }] }])
    assert.equal(b2.model, SONNET)
    assert.equal(b2.max_tokens, 8192)
    assert.equal(b2.temperature, 0)
    assert.equal(two.result.choices[0].message.content, 'lorem ipsum dolor sit am')
  })

  test('legacy function history and same-role turns (anthropic_alternation_fix)', async (t) => {
    const c = H.refCase('anthropic_alternation_fix')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_alternation_fix'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    const b1 = one.requests[0].json
    const b2 = two.requests[0].json
    assert.equal(b2.max_tokens, 256)
    assert.equal(b2.temperature, 0.5)
    const rest = (b) => ({ ...anthropicView(b), turns: undefined })
    assert.deepEqual(rest(b2), rest(b1))

    documented('no_filler_turns')
    documented('tool_history_intact')
    documented('legacy_call_ids')
    assert.deepEqual(
      H.allTexts(b1),
      ["What's the weather in Paris?", '{"location":"Paris"}', ':', '{"temp_c":20}', 'Thanks.', ':', 'And tomorrow?'],
      '1.x: the call and its result as text, and filler turns',
    )
    assert.ok(!H.allTexts(b2).includes(':'), 'no filler turns')
    assert.deepEqual(H.anthropicTurns(b2), [
      { role: 'user', content: [{ type: 'text', text: "What's the weather in Paris?" }] },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'call_legacy_2', name: 'get_weather', input: { location: 'Paris' } }],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_legacy_2', content: '{"temp_c":20}' },
          { type: 'text', text: 'Thanks.' },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
    ])
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assertAnthropicAnswerDifferences(one, two)
  })

  test('tools → function_call and tool_calls (anthropic_tools_nonstream)', async (t) => {
    const c = H.refCase('anthropic_tools_nonstream')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_tools_nonstream'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    assert.deepEqual(anthropicView(two.requests[0].json), anthropicView(one.requests[0].json))

    // function_call with content: null, finish_reason, usage… as 1.x returned them.
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assert.equal(two.result.choices[0].message.content, null)
    assert.deepEqual(two.result.choices[0].message.function_call, {
      name: 'get_weather',
      arguments: '{"location":"Paris"}',
    })
    documented('tool_calls_alongside_function_call')
    assert.equal(one.result.choices[0].message.tool_calls, undefined)
    assert.deepEqual(two.result.choices[0].message.tool_calls, [
      { id: 'toolu_mock_4', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
    ])
    assertAnthropicAnswerDifferences(one, two)
  })

  test('stream, text (anthropic_stream_text)', async (t) => {
    const c = H.refCase('anthropic_stream_text')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_stream_text'), c.input, 'stream')
    assertSentAsRecorded(one, c)
    assert.equal(one.err, undefined)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    assert.deepEqual(anthropicView(two.requests[0].json), anthropicView(one.requests[0].json))
    assert.equal(two.requests[0].json.stream, true)

    const r1 = H.readStream(one.chunks)
    const r2 = H.readStream(two.chunks)
    assert.equal(r2.content, r1.content)
    assert.deepEqual(r2.finishReasons, r1.finishReasons)
    H.assertReads(r2.usage, r1.usage)
    assert.deepEqual(r2.objects, ['chat.completion.chunk'])
    assert.deepEqual([...new Set(r2.models)], [SONNET])

    assertAnthropicStreamDifferences(one.chunks, two.chunks, 'msg_mock_5')
  })

  test('stream, tool call (anthropic_stream_tool)', async (t) => {
    const c = H.refCase('anthropic_stream_tool')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_stream_tool'), c.input, 'stream')
    assertSentAsRecorded(one, c)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 1)
    assertAnthropicRequest(two.requests[0])
    assert.deepEqual(anthropicView(two.requests[0].json), anthropicView(one.requests[0].json))

    const r1 = H.readStream(one.chunks)
    const r2 = H.readStream(two.chunks)
    assert.deepEqual(r1.functionCall, { name: 'get_weather', arguments: '{"location":"Paris"}' })
    assert.deepEqual(r2.functionCall, r1.functionCall, "delta.function_call assembles to 1.x's")
    assert.deepEqual(r2.finishReasons, r1.finishReasons)
    H.assertReads(r2.usage, r1.usage)
    assert.deepEqual([...new Set(r2.models)], [SONNET])

    documented('tool_calls_alongside_function_call')
    assert.deepEqual(r1.toolCalls, [])
    assert.deepEqual(r2.toolCalls, [{ id: 'toolu_mock_6', name: 'get_weather', arguments: '{"location":"Paris"}' }])
    documented('text_before_tool_call_kept')
    assert.equal(r1.content, '')
    assert.equal(r2.content, "I'll call the tool now.")
    assertAnthropicStreamDifferences(one.chunks, two.chunks, 'msg_mock_6')
  })

  test('streams are not buffered', async (t) => {
    const c = H.refCase('anthropic_stream_text')
    const events = c.upstream[0].response.sse.split(/(?<=\n\n)/)
    assert.ok(events[3].includes('lorem ip'), 'the 4th event is the first text delta')
    loop = await freshLoop(t)
    let release
    const responder = async (req, socket) => {
      const sse = await openSse(socket)
      await sse.send(events.slice(0, 4).join(''))
      await new Promise((resolve) => (release = resolve))
      await sse.send(events.slice(4).join(''))
      await sse.end()
    }

    documented('streams_not_buffered')
    // 1.x: nothing until the upstream answer is complete.
    const one = await loop.side(responder, async () => {
      const stream = await v1.generateLLMStreamResponse(H.clone(c.input))
      const first = stream.next()
      const early = await Promise.race([first.then(() => 'chunk'), sleep(300).then(() => 'nothing')])
      assert.ok(release, 'the upstream request was sent')
      release()
      await first
      return { early }
    })
    assert.equal(one.early, 'nothing', '1.x buffers the whole answer')

    // 2.x: the first text arrives while the upstream is still holding the rest back.
    release = undefined
    const api = v2()
    const two = await loop.side(responder, async () => {
      const stream = await api.generateLLMStreamResponse(H.clone(c.input))
      let content = ''
      await within(
        3000,
        (async () => {
          while (!content.includes('lorem ip')) {
            const { value, done } = await stream.next()
            assert.ok(!done, 'the stream did not end before the held-back events')
            for (const ch of value.choices) content += ch.delta.content || ''
          }
        })(),
        "2.x's first text chunk",
      )
      assert.ok(release, 'the upstream request was sent')
      release()
      for await (const value of stream) for (const ch of value.choices) content += ch.delta.content || ''
      return { content }
    })
    assert.equal(two.content, 'lorem ipsum dolor sit am')
  })

  test('concurrent streams with different models (anthropic_concurrent_streams_model_race)', async (t) => {
    const c = H.refCase('anthropic_concurrent_streams_model_race')
    loop = await freshLoop(t)
    const byModel = { [SONNET]: c.upstream[0].response, [HAIKU]: c.upstream[1].response }
    const responder = (req, socket) => H.writeRecorded(socket, byModel[req.json.model])
    const params = (model) => ({
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'Say hello.' },
      ],
      model,
      credentials: { apiKey: 'sk-mock' },
    })
    // The two streams are consumed strictly in turn: a chunk of one, then a chunk of the other.
    const alternate = async (api) => {
      const a = await api.generateLLMStreamResponse(params(SONNET))
      const b = await api.generateLLMStreamResponse(params(HAIKU))
      const out = { [SONNET]: [], [HAIKU]: [] }
      let doneA = false
      let doneB = false
      while (!doneA || !doneB) {
        if (!doneA) {
          const r = await a.next()
          if (r.done) doneA = true
          else out[SONNET].push(r.value)
        }
        if (!doneB) {
          const r = await b.next()
          if (r.done) doneB = true
          else out[HAIKU].push(r.value)
        }
      }
      return { out }
    }
    const one = await loop.side(responder, () => alternate(v1))
    const api = v2()
    const two = await loop.side(responder, () => alternate(api))

    documented('stream_own_model')
    const wrong = (out) => Object.entries(out).flatMap(([model, chunks]) => chunks.filter((ch) => ch.model !== model))
    assert.ok(wrong(one.out).length > 0, '1.x mixes the models up (the recorded bug)')
    assert.ok(
      one.out[HAIKU].some((ch) => ch.model === 'unknown-model') || one.out[SONNET].some((ch) => ch.model === HAIKU),
      '1.x reports a model the stream did not ask for',
    )
    assert.deepEqual(wrong(two.out), [], 'every 2.x chunk carries its own model')
    for (const model of [SONNET, HAIKU]) {
      const r1 = H.readStream(one.out[model])
      const r2 = H.readStream(two.out[model])
      assert.equal(r2.content, r1.content)
      assert.deepEqual(r2.finishReasons, r1.finishReasons)
      H.assertReads(r2.usage, r1.usage)
    }
    assert.deepEqual(
      two.requests.map((r) => r.json.model).sort(),
      one.requests.map((r) => r.json.model).sort(),
    )
  })
})

/** The documented differences of an Anthropic stream, asserted. */
function assertAnthropicStreamDifferences(chunks1, chunks2, messageId) {
  const r1 = H.readStream(chunks1)
  const r2 = H.readStream(chunks2)
  documented('created_seconds')
  for (const created of r1.created) H.assertMilliseconds(created, '1.x')
  assert.equal(r2.created.length, 1, 'one created on every 2.x chunk')
  H.assertSeconds(r2.created[0], '2.x')
  documented('real_stream_ids')
  assert.deepEqual(r2.ids, [messageId])

  documented('stream_contract')
  assert.equal(chunks2[0].choices[0].delta.role, 'assistant', 'the first delta carries the role')
  assert.equal(r2.finishReasons.length, 1, 'exactly one finish_reason')
  assertLegacyChunkShape(chunks2)
  // No chunk without content, tool call or finish_reason after the first (1.x had several).
  chunks2.slice(1).forEach((ch, i) => {
    const d = ch.choices[0].delta
    assert.ok(d.content || d.tool_calls || d.function_call || ch.choices[0].finish_reason, `chunk ${i + 1} carries something`)
  })
}

/**
 * What 1.x users of Anthropic streams read: every chunk has one choice, `delta.content` is a string
 * unless the chunk carries a tool call, `usage` is null except on the finish chunk, which carries it.
 */
function assertLegacyChunkShape(chunks) {
  chunks.forEach((ch, i) => {
    assert.equal(ch.choices.length, 1, `chunk ${i} has one choice`)
    const [choice] = ch.choices
    const d = choice.delta
    if (!d.tool_calls && !d.function_call) assert.equal(typeof d.content, 'string', `chunk ${i}: delta.content is a string`)
    if (choice.finish_reason) {
      assert.ok(ch.usage, `the finish chunk ${i} carries the usage`)
      assert.equal(ch.usage.completion_tokens_details.reasoning_tokens, 0)
    } else {
      assert.equal(ch.usage, null, `chunk ${i} has usage: null`)
    }
  })
}

// ---------------------------------------------------------------------------------------------
describe('forced tool call after a promise without one (future_promise_*)', () => {
  test('OpenAI (future_promise_openai)', async (t) => {
    const c = H.refCase('future_promise_openai')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('future_promise_openai'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 2, 'the forced retry is a second request')
    two.requests.forEach((req, i) => {
      assertOpenAiRequest(req)
      assert.deepEqual(openaiView(req.json), openaiView(one.requests[i].json), `request ${i + 1}`)
    })
    assert.equal(two.requests[0].json.tool_choice, undefined)
    assert.equal(two.requests[1].json.tool_choice, 'required')
    H.assertReads(two.result, one.result)
    assert.equal(two.result.choices[0].message.tool_calls[0].id, 'call_mock_21')
  })

  test('Anthropic (future_promise_anthropic)', async (t) => {
    const c = H.refCase('future_promise_anthropic')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('future_promise_anthropic'), c.input)
    assertSentAsRecorded(one, c)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 2, 'the forced retry is a second request')
    two.requests.forEach((req, i) => {
      assertAnthropicRequest(req)
      assert.deepEqual(anthropicView(req.json), anthropicView(one.requests[i].json), `request ${i + 1}`)
    })
    assert.equal(two.requests[0].json.tool_choice, undefined)
    assert.deepEqual(two.requests[1].json.tool_choice, { type: 'any' })

    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assert.equal(two.result.choices[0].message.content, null)
    documented('tool_calls_alongside_function_call')
    assert.deepEqual(two.result.choices[0].message.tool_calls, [
      { id: 'toolu_mock_19', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
    ])
    assertAnthropicAnswerDifferences(one, two)
  })

  test('Anthropic stream (future_promise_anthropic_stream)', async (t) => {
    const c = H.refCase('future_promise_anthropic_stream')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('future_promise_anthropic_stream'), c.input, 'stream')
    assertSentAsRecorded(one, c)
    assertChunksAsRecorded(one, c.stream_chunks)
    assertOk(two, '2.x')
    assert.equal(two.requests.length, 2, 'the forced retry is a second request')
    two.requests.forEach((req, i) => {
      assertAnthropicRequest(req)
      assert.deepEqual(anthropicView(req.json), anthropicView(one.requests[i].json), `request ${i + 1}`)
    })
    assert.deepEqual(two.requests[1].json.tool_choice, { type: 'any' })

    const r1 = H.readStream(one.chunks)
    const r2 = H.readStream(two.chunks)
    // The promise text is streamed; the forced answer adds only the tool call.
    assert.equal(r1.content, 'Let me check the weather for you.')
    assert.equal(r2.content, r1.content)
    assert.deepEqual(r2.functionCall, r1.functionCall, "delta.function_call assembles to 1.x's")
    assert.equal(r1.finishReasons.at(-1), 'tool_calls')
    assert.equal(r2.finishReasons.at(-1), 'tool_calls', 'the stream ends as a tool call')
    assert.deepEqual([...new Set(r2.models)], [SONNET])
    documented('tool_calls_alongside_function_call')
    assert.deepEqual(r2.toolCalls, [{ id: 'toolu_mock_23', name: 'get_weather', arguments: '{"location":"Paris"}' }])
    // As in 1.x: the promise's own finish (stop, with its usage), then the appended call's (tool_calls).
    assert.deepEqual(r1.finishReasons, ['stop', 'tool_calls'])
    assert.deepEqual(r2.finishReasons, r1.finishReasons)
    assertLegacyChunkShape(two.chunks)
    const usages = (chunks) => chunks.filter((ch) => ch.usage).map((ch) => ch.usage)
    H.assertReads(usages(two.chunks), usages(one.chunks))
  })

  test('responseContainsFuturePromise gives the same answers', () => {
    assert.equal(typeof v2pkg.responseContainsFuturePromise, 'function', 'responseContainsFuturePromise is exported')
    const long = `I'll check that. ${'The answer is 42. '.repeat(30)}`
    const texts = [
      'Let me check the weather for you.',
      'I’ll look that up now.',
      "I'm going to quickly go ahead and search for it",
      'I will fetch the data.',
      'One moment please.',
      'Hang tight!',
      'Bear with me',
      'I am willing to help.',
      'The weather in Paris is 20°C.',
      'Let me know if you need anything else.',
      long,
      `${'x'.repeat(500)} let me grab that`,
      '',
      '   ',
      undefined,
      null,
      'LET ME CALL THE TOOL',
      'Now I will run the query',
      'I will not check',
    ]
    for (const text of texts) {
      assert.equal(
        v2pkg.responseContainsFuturePromise(text),
        v1.responseContainsFuturePromise(text),
        `responseContainsFuturePromise(${JSON.stringify(text)})`,
      )
    }
  })
})

// ---------------------------------------------------------------------------------------------
describe('errors and retries', () => {
  // Both packages retry: 1.x inside the SDKs (2 retries), 2.x in the core (2 retries by default).

  test('Anthropic 429, 429, then an answer (anthropic_429_then_ok)', async (t) => {
    const c = H.refCase('anthropic_429_then_ok')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_429_then_ok'), c.input)
    assertAnswerAsRecorded(one, c)
    assertOk(two, '2.x')
    assert.equal(one.requests.length, 3)
    assert.equal(two.requests.length, 3, '2.x retried twice too')
    two.requests.forEach((req, i) => {
      assertAnthropicRequest(req)
      assert.deepEqual(anthropicView(req.json), anthropicView(one.requests[i].json), `attempt ${i + 1}`)
    })
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
    assertAnthropicAnswerDifferences(one, two)
  })

  test('Anthropic 529 on every attempt (anthropic_529_exhausted)', async (t) => {
    const c = H.refCase('anthropic_529_exhausted')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_529_exhausted'), c.input)
    assert.equal(one.requests.length, 3)
    assert.equal(one.err && one.err.status, 529)
    assert.equal(one.err.message, c.error.message)
    assert.equal(two.requests.length, 3, '2.x made 3 attempts too')
    assert.equal(two.err && two.err.status, one.err.status, 'err.status is the same')

    documented('errors_are_llmproxyerror')
    assert.equal(one.err.constructor.name, 'InternalServerError')
    assert.deepEqual(one.err.error, c.upstream[2].response.body, "1.x: the body is err.error")
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err && two.err.stack}`)
    assert.equal(two.err.code, 'overloaded')
    assert.equal(two.err.provider, 'anthropic')
    assert.equal(two.err.retryable, true)
    assert.equal(two.err.retryAfterMs, 1)
    assert.deepEqual(two.err.body, c.upstream[2].response.body, "2.x: the body is err.body")
    assert.match(two.err.message, /3 attempts/)
  })

  test('OpenAI 500 on every attempt (openai_500_exhausted)', async (t) => {
    const c = H.refCase('openai_500_exhausted')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_500_exhausted'), c.input)
    assert.equal(one.requests.length, 3)
    assert.equal(one.err && one.err.status, 500)
    assert.equal(one.err.message, c.error.message)
    assert.equal(two.requests.length, 3, '2.x made 3 attempts too')
    for (const req of two.requests) assertOpenAiRequest(req)
    assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
    assert.equal(two.err && two.err.status, one.err.status, 'err.status is the same')

    documented('errors_are_llmproxyerror')
    assert.equal(one.err.constructor.name, 'InternalServerError')
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err && two.err.stack}`)
    assert.equal(two.err.code, 'server_error')
    assert.equal(two.err.provider, 'openai')
    assert.equal(two.err.retryable, true)
    assert.deepEqual(two.err.body, c.upstream[2].response.body)
    assert.match(two.err.message, /Internal server error \(mock\)/)
    assert.match(two.err.message, /3 attempts/)
  })

  test('OpenAI 400 is not retried by either (built from openai_500_exhausted)', async (t) => {
    const c = H.refCase('openai_500_exhausted')
    loop = await freshLoop(t)
    const body = { error: { message: 'Bad request (mock)', type: 'invalid_request_error', param: 'messages', code: null } }
    const { one, two } = await differential(loop, H.replayResponse({ status: 400, body }), c.input)
    assert.equal(one.requests.length, 1)
    assert.equal(two.requests.length, 1)
    assert.equal(one.err && one.err.status, 400)
    assert.equal(two.err && two.err.status, 400)
    documented('errors_are_llmproxyerror')
    assert.ok(two.err instanceof LLMProxyError)
    assert.equal(two.err.code, 'invalid_request')
    assert.equal(two.err.retryable, false)
    assert.deepEqual(two.err.body, body)
  })

  test('OpenAI stream, 500 on every attempt (built from openai_500_exhausted)', async (t) => {
    const c = H.refCase('openai_500_exhausted')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_500_exhausted'), c.input, 'stream')
    assert.equal(one.requests.length, 3)
    assert.equal(two.requests.length, 3, 'a stream is retried until its response starts')
    assert.deepEqual(one.chunks, [])
    assert.deepEqual(two.chunks, [])
    assert.equal(one.err && one.err.status, 500)
    assert.equal(two.err && two.err.status, 500)
    documented('errors_are_llmproxyerror')
    assert.ok(two.err instanceof LLMProxyError)
    assert.equal(two.err.code, 'server_error')
    assert.match(two.err.message, /3 attempts/)
  })

  test('Anthropic stream with an error event after some text (built from anthropic_stream_dropped)', async (t) => {
    const c = H.refCase('anthropic_stream_dropped')
    loop = await freshLoop(t)
    const error = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded (mock)' } }
    const sse = `${c.upstream[0].response.sse}event: error\ndata: ${JSON.stringify(error)}\n\n`
    const { one, two } = await differential(loop, H.replayResponse({ status: 200, sse }), c.input, 'stream')
    assert.equal(one.requests.length, 1)
    assert.equal(two.requests.length, 1, 'a stream that has begun is not retried')
    documented('streams_not_buffered')
    assert.deepEqual(one.chunks, [], '1.x yielded nothing (it buffered)')
    assert.match(String(one.err && one.err.message), /Overloaded \(mock\)/)
    assert.equal(H.readStream(two.chunks).content, 'lorem ipsum dolor sit am', '2.x delivered the text before the error')
    documented('errors_are_llmproxyerror')
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err && two.err.stack}`)
    assert.equal(two.err.code, 'overloaded')
    assert.equal(two.err.provider, 'anthropic')
    assert.match(two.err.message, /Overloaded \(mock\)/)
  })

  test('OpenAI stream cut mid-way (openai_stream_dropped)', async (t) => {
    const c = H.refCase('openai_stream_dropped')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('openai_stream_dropped'), c.input, 'stream')
    assert.equal(one.requests.length, 1)
    assert.equal(two.requests.length, 1, 'a stream that has begun is not retried')
    assertChunksAsRecorded(one, c.stream_chunks)
    assert.equal(one.err && one.err.message, c.error.message)
    // The chunks that arrived are delivered, as 1.x delivered them.
    H.assertReads(two.chunks, one.chunks)
    assert.equal(H.readStream(two.chunks).content, 'lorem ipsum dolor sit amet conse')
    documented('stream_interrupted')
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err && two.err.stack}`)
    assert.equal(two.err.code, 'stream_interrupted')
    assert.equal(two.err.provider, 'openai')
  })

  test('Anthropic stream cut mid-way (anthropic_stream_dropped)', async (t) => {
    const c = H.refCase('anthropic_stream_dropped')
    loop = await freshLoop(t)
    const { one, two } = await differential(loop, H.replayCase('anthropic_stream_dropped'), c.input, 'stream')
    assert.equal(one.requests.length, 1)
    assert.equal(two.requests.length, 1, 'a stream that has begun is not retried')
    documented('stream_interrupted')
    documented('streams_not_buffered')
    assert.deepEqual(one.chunks, [], '1.x yielded nothing (it buffered)')
    assert.equal(one.err && one.err.message, c.error.message)
    const r2 = H.readStream(two.chunks)
    assert.equal(r2.content, 'lorem ipsum dolor sit am', '2.x delivered the text that arrived')
    assert.deepEqual(r2.finishReasons, [])
    assert.ok(two.err instanceof LLMProxyError, `an LLMProxyError: ${two.err && two.err.stack}`)
    assert.equal(two.err.code, 'stream_interrupted')
    assert.equal(two.err.provider, 'anthropic')
  })
})

// ---------------------------------------------------------------------------------------------
describe('more 1.x calls, built from the recordings', () => {
  const SYSTEM = { role: 'system', content: 'You are a helpful assistant.' }
  const HELLO = { role: 'user', content: 'Say hello.' }
  const openaiText = H.refCase('openai_system_user_nonstream').upstream[0].response
  const anthropicText = H.refCase('anthropic_system_user_nonstream').upstream[0].response
  const TOOLS = H.refCase('openai_tools_nonstream').input.functions

  test("missing credentials: 1.x's messages, and nothing sent", async (t) => {
    loop = await freshLoop(t)
    const cases = [
      ['gpt-4o', {}, 'OpenAI API key is required for OpenAI models.'],
      [SONNET, { awsConfig: { accessKeyId: 'a', secretAccessKey: 'b', region: 'eu-west-1' } }, 'Anthropic API key is required for Anthropic models.'],
      ['eu.anthropic.claude-sonnet-4-5-20250929-v1:0', { apiKey: 'sk-mock' }, 'AWS credentials are required for Bedrock models.'],
      [
        'some-compatible-model',
        { openAICompatibleProviderConfig: { baseUrl: `${loop.up.url}/compat/v1` } },
        'OpenAI Compatible Provider key and base URL are required.',
      ],
    ]
    process.env.OPENAI_API_KEY = 'sk-from-env' // 1.x never read it: credentials.apiKey is required
    for (const [model, credentials, message] of cases) {
      for (const kind of ['generate', 'stream']) {
        const { one, two } = await differential(loop, () => assert.fail('nothing may be sent'), { messages: [SYSTEM, HELLO], model, credentials }, kind)
        assert.equal(one.err && one.err.message, message, `1.x, ${model}, ${kind}`)
        assert.equal(two.err && two.err.message, message, `2.x, ${model}, ${kind}`)
        assert.ok(two.err instanceof LLMProxyError)
        assert.equal(two.err.code, 'config')
        assert.equal(one.requests.length + two.requests.length, 0)
      }
    }
  })

  test('an Anthropic tool-call answer sent back with its function result', async (t) => {
    // The upgrade path: each package's own answer goes back into the history, with a function result.
    const c = H.refCase('anthropic_tools_nonstream')
    loop = await freshLoop(t)
    const followUp = (answer) => ({
      ...H.clone(c.input),
      messages: [
        ...c.input.messages,
        answer.choices[0].message,
        { role: 'function', name: 'get_weather', content: '{"temp_c":20}' },
      ],
    })
    const round = async (api) => {
      const first = await api.generateLLMResponse(H.clone(c.input))
      const second = await api.generateLLMResponse(followUp(first))
      return { first, second }
    }
    let n = 0
    const responder = (req, socket) => H.writeRecorded(socket, n++ % 2 === 0 ? c.upstream[0].response : anthropicText)
    const one = await loop.side(responder, () => round(v1))
    const api = v2()
    const two = await loop.side(responder, () => round(api))
    assert.equal(one.requests.length, 2)
    assert.equal(two.requests.length, 2)
    H.assertReads(two.second, one.second, { skip: ['object', 'created'] })

    documented('tool_history_intact')
    const b1 = one.requests[1].json
    const b2 = two.requests[1].json
    assert.deepEqual(
      H.allTexts(b1),
      ['Please call the tool for Paris.', '{"location":"Paris"}', ':', '{"temp_c":20}'],
      '1.x: the call and its result as text',
    )
    assert.deepEqual(H.anthropicTurns(b2), [
      { role: 'user', content: [{ type: 'text', text: 'Please call the tool for Paris.' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_mock_4', name: 'get_weather', input: { location: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_mock_4', content: '{"temp_c":20}' }] },
    ])
    const rest = (b) => ({ ...anthropicView(b), turns: undefined })
    assert.deepEqual(rest(b2), rest(b1))
  })

  test('gpt-4o with a legacy function_call history', async (t) => {
    const c = H.refCase('openai_gpt5_function_history')
    loop = await freshLoop(t)
    const params = { ...H.clone(c.input), model: 'gpt-4o', functions: TOOLS }
    const { one, two } = await differential(loop, H.replayResponse(openaiText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    const b1 = one.requests[0].json
    const b2 = two.requests[0].json
    assert.equal(b2.max_tokens, 300)
    assert.equal(b2.max_completion_tokens, undefined)
    assert.equal(b2.temperature, 0)
    assert.deepEqual(b2.tools, b1.tools)
    documented('tool_history_intact')
    documented('legacy_call_ids')
    assert.deepEqual(b1.messages.slice(2, 4), [
      { role: 'assistant', content: 'function call', function_call: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
      { role: 'function', content: '{"temp_c":20}', name: 'get_weather' },
    ])
    assert.deepEqual(b2.messages[2].tool_calls, [
      { id: 'call_legacy_2', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
    ])
    assert.equal(b2.messages[2].function_call, undefined)
    assert.deepEqual({ ...b2.messages[3] }, { role: 'tool', content: '{"temp_c":20}', tool_call_id: 'call_legacy_2' })
    assert.deepEqual([b2.messages[0], b2.messages[1], b2.messages[4]], [b1.messages[0], b1.messages[1], b1.messages[4]])
    H.assertReads(two.result, one.result)
  })

  test('Claude 3 Haiku without max_tokens', async (t) => {
    loop = await freshLoop(t)
    const params = { messages: [SYSTEM, HELLO], model: 'claude-3-haiku-20240307', credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse(anthropicText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    documented('claude3_max_tokens')
    assert.equal(one.requests[0].json.max_tokens, 8192)
    assert.equal(two.requests[0].json.max_tokens, 4096)
    const rest = (b) => ({ ...anthropicView(b), max_tokens: undefined })
    assert.deepEqual(rest(two.requests[0].json), rest(one.requests[0].json))
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
  })

  test('an Anthropic temperature above 1', async (t) => {
    loop = await freshLoop(t)
    const params = { messages: [SYSTEM, HELLO], model: SONNET, temperature: 1.5, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse(anthropicText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    documented('anthropic_temperature_clamped')
    assert.equal(one.requests[0].json.temperature, 1.5)
    assert.equal(two.requests[0].json.temperature, 1)
  })

  test('o1-mini with max_tokens', async (t) => {
    loop = await freshLoop(t)
    const params = { messages: [HELLO], model: 'o1-mini', max_tokens: 100, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse(openaiText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    documented('reasoning_models_no_temperature')
    assert.deepEqual(openaiView(one.requests[0].json), { model: 'o1-mini', messages: [HELLO], temperature: 0, max_tokens: 100 })
    assert.deepEqual(openaiView(two.requests[0].json), { model: 'o1-mini', messages: [HELLO], max_completion_tokens: 100 })
    H.assertReads(two.result, one.result)
  })

  test('gpt-5.6 with tools: reasoning_effort none and no temperature, in both', async (t) => {
    loop = await freshLoop(t)
    const params = { messages: [SYSTEM, HELLO], model: 'gpt-5.6-sol', functions: TOOLS, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse(openaiText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    const view = (b) => ({ ...openaiView(b), reasoning_effort: b.reasoning_effort })
    assert.equal(one.requests[0].json.reasoning_effort, 'none')
    assert.equal(one.requests[0].json.temperature, undefined)
    assert.deepEqual(view(two.requests[0].json), view(one.requests[0].json))
  })

  test('OpenAI rejects the temperature: both try once more without it', async (t) => {
    loop = await freshLoop(t)
    const rejection = {
      status: 400,
      body: { error: { message: "Unsupported value: 'temperature' does not support 0 with this model.", type: 'invalid_request_error', param: 'temperature', code: 'unsupported_value' } },
    }
    const params = { messages: [HELLO], model: 'gpt-4.1', credentials: { apiKey: 'sk-mock' } }
    const streamed = H.refCase('openai_stream_text').upstream[0].response
    for (const kind of ['generate', 'stream']) {
      const answer = kind === 'stream' ? streamed : openaiText
      const respond = (req, socket, i) => H.writeRecorded(socket, i === 0 ? rejection : answer)
      const { one, two } = await differential(loop, respond, params, kind)
      assertOk(one, `1.x ${kind}`)
      assertOk(two, `2.x ${kind}`)
      for (const side of [one, two]) {
        assert.equal(side.requests.length, 2, kind)
        assert.equal(side.requests[0].json.temperature, 0)
        assert.equal('temperature' in side.requests[1].json, false, `${kind}: the second attempt has no temperature`)
      }
      assert.deepEqual(openaiView(two.requests[1].json), openaiView(one.requests[1].json))
      if (kind === 'stream') H.assertReads(two.chunks, one.chunks)
      else H.assertReads(two.result, one.result)
    }
  })

  test("OpenAI rejects reasoning_effort: both try once more with 'none'", async (t) => {
    loop = await freshLoop(t)
    const rejection = {
      status: 400,
      body: { error: { message: 'reasoning_effort is not supported with tools (mock)', type: 'invalid_request_error', param: 'reasoning_effort', code: null } },
    }
    const responder = (req, socket, i) => H.writeRecorded(socket, i === 0 ? rejection : openaiText)
    const params = { messages: [HELLO], model: 'gpt-5', functions: TOOLS, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, responder, params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 2)
      assert.equal(side.requests[0].json.reasoning_effort, undefined)
      assert.equal(side.requests[1].json.reasoning_effort, 'none')
    }
    H.assertReads(two.result, one.result)
  })

  test('OpenAI forced tool call in a stream (future_promise_openai, streamed)', async (t) => {
    const c = H.refCase('future_promise_openai')
    loop = await freshLoop(t)
    const promise = sseBody(['Let me check ', 'the weather for you.'], {
      id: 'chatcmpl-promise',
      model: 'gpt-4o',
      usage: { prompt_tokens: 214, completion_tokens: 8, total_tokens: 222 },
    })
    const toolSse = H.refCase('openai_stream_tool').upstream[0].response.sse
    const responder = (req, socket, i) => H.writeRecorded(socket, { status: 200, sse: i === 0 ? promise : toolSse })
    const { one, two } = await differential(loop, responder, c.input, 'stream')
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 2)
      assert.equal(side.requests[0].json.tool_choice, undefined)
      assert.equal(side.requests[1].json.tool_choice, 'required')
      assert.equal(side.requests[1].json.stream, true)
    }
    two.requests.forEach((req, i) => assert.deepEqual(openaiView(req.json), openaiView(one.requests[i].json)))
    H.assertReads(two.chunks, one.chunks)
    const r = H.readStream(two.chunks)
    assert.equal(r.content, 'Let me check the weather for you.')
    assert.deepEqual(r.toolCalls, [{ id: 'call_mock_15', name: 'get_weather', arguments: '{"location":"Paris"}' }])
  })

  test('the forced retry fails: both return the first answer', async (t) => {
    const c = H.refCase('future_promise_openai')
    loop = await freshLoop(t)
    const failure = H.refCase('openai_500_exhausted').upstream[0].response
    const responder = (req, socket, i) => H.writeRecorded(socket, i === 0 ? c.upstream[0].response : failure)
    const { one, two } = await differential(loop, responder, c.input)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    // One request, then the forced one with its two retries.
    assert.equal(one.requests.length, 4)
    assert.equal(two.requests.length, 4)
    for (const req of two.requests.slice(1)) assert.equal(req.json.tool_choice, 'required')
    assert.equal(one.result.choices[0].message.content, 'Let me check the weather for you.')
    H.assertReads(two.result, one.result)
  })

  test('an empty functions list', async (t) => {
    loop = await freshLoop(t)
    for (const model of ['gpt-4o', SONNET]) {
      const params = { messages: [SYSTEM, HELLO], model, functions: [], credentials: { apiKey: 'sk-mock' } }
      const answer = model === SONNET ? anthropicText : openaiText
      const { one, two } = await differential(loop, H.replayResponse(answer), params)
      assertOk(one, '1.x')
      assertOk(two, '2.x')
      assert.equal(two.requests[0].json.tools, undefined, `${model}: no tools sent`)
      if (model === SONNET) {
        assert.equal(one.requests[0].json.tools, undefined)
      } else {
        documented('empty_functions_not_sent')
        assert.deepEqual(one.requests[0].json.tools, [], '1.x sent tools: [], which OpenAI rejects')
        const rest = (b) => ({ ...openaiView(b), tools: undefined })
        assert.deepEqual(rest(two.requests[0].json), rest(one.requests[0].json))
      }
    }
  })

  test('an Anthropic answer of several text blocks, cut by max_tokens', async (t) => {
    loop = await freshLoop(t)
    const body = H.clone(anthropicText.body)
    body.content = [
      { type: 'text', text: 'Hello, ' },
      { type: 'text', text: 'world' },
    ]
    body.stop_reason = 'max_tokens'
    const params = { messages: [SYSTEM, HELLO], model: SONNET, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse({ status: 200, body }), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    documented('one_choice_per_answer')
    assert.deepEqual(
      one.result.choices.map((c) => [c.index, c.message.content, c.finish_reason]),
      [
        [0, 'Hello, ', 'length'],
        [1, 'world', 'length'],
      ],
      '1.x: one choice per content block',
    )
    assert.deepEqual(
      two.result.choices.map((c) => [c.index, c.message.role, c.message.content, c.finish_reason]),
      [[0, 'assistant', 'Hello, world', 'length']],
    )
    H.assertReads(two.result, one.result, { skip: ['object', 'created', 'choices'] })
  })

  test('tool-call history to an OpenAI-compatible server', async (t) => {
    const c = H.refCase('openai_tool_history')
    loop = await freshLoop(t)
    const params = {
      ...H.clone(c.input),
      model: 'some-compatible-model',
      credentials: { openAICompatibleProviderConfig: { openAICompatibleProviderKey: 'sk-compat', baseUrl: `${loop.up.url}/compat/v1` } },
    }
    const { one, two } = await differential(loop, H.replayResponse(openaiText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    for (const side of [one, two]) assertOpenAiRequest(side.requests[0], { key: 'sk-compat', path: '/compat/v1/chat/completions' })
    documented('tool_history_intact')
    const m1 = one.requests[0].json.messages
    const m2 = two.requests[0].json.messages
    assert.deepEqual(m1[2], { role: 'assistant' }, '1.x sent the tool call as an empty assistant turn')
    assert.deepEqual(m1[3], { role: 'tool', content: '{"temp_c":20}' }, '1.x dropped tool_call_id')
    assert.deepEqual(m2[2].tool_calls, c.input.messages[2].tool_calls)
    assert.equal(m2[3].tool_call_id, 'call_abc123')
    assert.deepEqual([m2[0], m2[1], m2[4]], [m1[0], m1[1], m1[4]])
    H.assertReads(two.result, one.result)
  })

  test('image parts to Anthropic', async (t) => {
    loop = await freshLoop(t)
    const parts = [
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ]
    const params = { messages: [SYSTEM, { role: 'user', content: parts }], model: SONNET, credentials: { apiKey: 'sk-mock' } }
    const { one, two } = await differential(loop, H.replayResponse(anthropicText), params)
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    documented('content_parts_for_anthropic')
    assert.deepEqual(H.anthropicTurns(one.requests[0].json), [{ role: 'user', content: [{ type: 'text', text: parts }] }])
    assert.deepEqual(H.anthropicTurns(two.requests[0].json), [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
        ],
      },
    ])
    H.assertReads(two.result, one.result, { skip: ['object', 'created'] })
  })

  test('leaving a stream early closes the upstream connection', async (t) => {
    loop = await freshLoop(t)
    const events = H.refCase('openai_stream_text').upstream[0].response.sse.split(/(?<=\n\n)/)
    // The upstream sends two events, then nothing: only the client can end the exchange.
    const responder = async (req, socket) => {
      const sse = await openSse(socket)
      await sse.send(events.slice(0, 2).join(''))
    }
    const params = { messages: [SYSTEM, HELLO], model: 'gpt-4o', credentials: { apiKey: 'sk-mock' } }
    const leaveEarly = async (api) => {
      const stream = await api.generateLLMStreamResponse(H.clone(params))
      let content = ''
      for await (const chunk of stream) {
        content += chunk.choices[0].delta.content || ''
        if (content) break
      }
      return { content }
    }
    const one = await loop.side(responder, () => leaveEarly(v1))
    const api = v2()
    const two = await loop.side(responder, () => leaveEarly(api))
    assert.equal(one.content, 'lorem ip')
    assert.equal(two.content, 'lorem ip')
    for (const [label, side] of [['1.x', one], ['2.x', two]]) {
      const conn = side.requests[0].conn
      await within(3000, conn.whenClosed, `${label} closing the upstream connection`)
      assert.equal(conn.closedBy, 'client', label)
    }
  })

  test('requests the provider would reject fail before anything is sent', async (t) => {
    loop = await freshLoop(t)
    const cases = [
      ['no messages', { messages: [], model: 'gpt-4o', credentials: { apiKey: 'sk-mock' } }, openaiText],
      ['only a system message', { messages: [SYSTEM], model: SONNET, credentials: { apiKey: 'sk-mock' } }, anthropicText],
    ]
    documented('checked_before_sending')
    for (const [what, params, answer] of cases) {
      const { one, two } = await differential(loop, H.replayResponse(answer), params)
      assert.equal(one.requests.length, 1, `${what}: 1.x sent it`)
      assert.equal(two.requests.length, 0, `${what}: 2.x did not`)
      assert.ok(two.err instanceof LLMProxyError, `${what}: ${two.err}`)
      assert.equal(two.err.code, 'invalid_request')
    }
  })
})

// ---------------------------------------------------------------------------------------------
describe('llmAsJudge', () => {
  const conversation = [
    { role: 'system', content: 'You answer arithmetic questions.' },
    { role: 'user', content: 'What is 2 + 2?' },
    { role: 'assistant', content: '4' },
  ]
  const judgeParams = (model, extra = {}) => ({
    messages: conversation,
    judgePrompt: 'Judge the last answer ({{messages[-1]}}) of this conversation:\n{{messages}}\n{{trajectory}}',
    model,
    provider: model.startsWith('claude') ? 'Anthropic' : 'OpenAI',
    credentials: { apiKey: 'sk-mock' },
    ...extra,
  })
  const openaiAnswer = (content) => {
    const body = H.clone(H.refCase('openai_system_user_nonstream').upstream[0].response.body)
    body.choices[0].message.content = content
    return { status: 200, body }
  }
  const anthropicAnswer = (text) => {
    const body = H.clone(H.refCase('anthropic_system_user_nonstream').upstream[0].response.body)
    body.content[0].text = text
    return { status: 200, body }
  }

  async function judgeBoth(responder, params) {
    assert.equal(typeof v2pkg.llmAsJudge, 'function', 'llmAsJudge is exported')
    const one = await loop.side(responder, () => H.settle(v1.llmAsJudge(H.clone(params))))
    const two = await loop.side(responder, () => H.settle(v2pkg.llmAsJudge(H.clone(params))))
    assertOk(one, '1.x')
    assertOk(two, '2.x')
    return { one, two }
  }

  const CASES = [
    ['a JSON verdict', 'gpt-4o', '{"passed": true, "score": 0.9, "reasoning": "correct"}', { passed: true, score: 0.9 }],
    ['a JSON verdict on a 0–10 scale', 'gpt-4o', 'Verdict: {"passed": "true", "score": 8}', { passed: true, score: 0.8 }],
    ['a verdict in words', 'gpt-4o', 'The answer is correct. Score: 7', { passed: true, score: 0.7 }],
    ['a failing verdict in words', 'gpt-4o', 'Wrong answer. score 2', { passed: false, score: 0.2 }],
    // JSON.parse fails: 1.x falls back to keywords, and "passed" contains "pass".
    ['malformed JSON', 'gpt-4o', '{"passed": tru, "score": 9}', { passed: true, score: null }],
    ['a JSON verdict from Claude', SONNET, '{"passed": false, "score": 0.1, "reasoning": "no"}', { passed: false, score: 0.1 }],
  ]
  for (const [what, model, reply, verdict] of CASES) {
    test(`${what} (${model})`, async (t) => {
      loop = await freshLoop(t)
      const answer = model.startsWith('claude') ? anthropicAnswer(reply) : openaiAnswer(reply)
      const params = judgeParams(model, model.startsWith('claude') ? { maxTokens: 300, temperature: 0.2 } : {})
      const { one, two } = await judgeBoth(H.replayResponse(answer), params)
      assert.equal(one.result.passed, verdict.passed)
      assert.equal(one.result.score, verdict.score)
      assert.equal(one.result.judgeResponse, reply)
      H.assertReads(two.result, one.result)
      assert.equal(two.requests.length, 1)
      if (model.startsWith('claude')) {
        assertAnthropicRequest(two.requests[0])
        assert.deepEqual(anthropicView(two.requests[0].json), anthropicView(one.requests[0].json))
        assert.equal(two.requests[0].json.max_tokens, 300)
        assert.equal(two.requests[0].json.temperature, 0.2)
      } else {
        assertOpenAiRequest(two.requests[0])
        assert.deepEqual(openaiView(two.requests[0].json), openaiView(one.requests[0].json))
        assert.equal(two.requests[0].json.max_tokens, 500, "1.x's default maxTokens")
        assert.equal(two.requests[0].json.temperature, 0)
      }
    })
  }

  test('the conversation is put into judgePrompt as it is', async (t) => {
    loop = await freshLoop(t)
    const messages = [
      { role: 'user', content: 'What does it cost?' },
      { role: 'assistant', content: 'It costs $& more, $1 in total.' },
      { role: 'tool', content: [{ type: 'text', text: 'price: 1' }] },
    ]
    const params = { ...judgeParams('gpt-4o'), messages, judgePrompt: 'Last: {{messages[-1]}} / {{trajectory}}' }
    const answer = openaiAnswer('{"passed": true, "score": 1}')
    const { one, two } = await judgeBoth(H.replayResponse(answer), params)
    H.assertReads(two.result, one.result)
    const prompt = (side) => side.requests[0].json.messages[0].content
    const user = (side) => side.requests[0].json.messages[1].content
    assert.equal(user(two), user(one), 'the user turn (the trajectory) is the same')
    documented('judge_prompt_literal')
    const trajectory =
      'Turn 1 [User]: What does it cost?\n\nTurn 2 [Assistant]: It costs $& more, $1 in total.\n\nTurn 3 [Tool]: [{"type":"text","text":"price: 1"}]'
    assert.equal(prompt(two), `Last: [{"type":"text","text":"price: 1"}] / ${trajectory}`)
    assert.equal(prompt(one), `Last: [object Object] / ${trajectory.replace('$&', '{{trajectory}}')}`)
  })

  test('a failing judge call gives passed: false, score: null and the error text', async (t) => {
    loop = await freshLoop(t)
    const body = { error: { message: 'Incorrect API key provided (mock)', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }
    const { one, two } = await judgeBoth(H.replayResponse({ status: 401, body }), judgeParams('gpt-4o'))
    for (const side of [one, two]) {
      assert.equal(side.requests.length, 1, 'a 401 is not retried')
      assert.equal(side.result.passed, false)
      assert.equal(side.result.score, null)
      assert.equal(side.result.tokenUsage, undefined)
      assert.match(side.result.judgeResponse, /^Error in judge evaluation: /)
      assert.match(side.result.judgeResponse, /Incorrect API key provided \(mock\)/)
    }
  })
})

// ---------------------------------------------------------------------------------------------
describe('exports', () => {
  for (const name of [
    'Providers',
    'OpenAISupportedLLMs',
    'AnthropicSupportedLLMs',
    'BedrockAnthropicSupportedLLMs',
    'Llama3_1SupportedLLMs',
    'BedrockAnthropicContentType',
  ]) {
    test(`${name} has every 1.x member with its value`, () => {
      assert.ok(v2pkg[name], `${name} is exported`)
      H.assertReads(v2pkg[name], v1[name])
    })
  }

  test('the 1.x functions are exported', () => {
    for (const name of ['generateLLMResponse', 'generateLLMStreamResponse', 'llmAsJudge', 'responseContainsFuturePromise']) {
      assert.equal(typeof v2pkg[name], 'function', `${name} is exported`)
    }
  })
})

test('every documented difference is asserted by a test', () => {
  const source = require('node:fs').readFileSync(__filename, 'utf8')
  const used = new Set([...source.matchAll(/documented\('([a-z0-9_]+)'\)/g)].map((m) => m[1]))
  assert.deepEqual(Object.keys(DIFFERENCES).filter((k) => !used.has(k)), [])
  assert.deepEqual([...used].filter((k) => !(k in DIFFERENCES)), [])
})
