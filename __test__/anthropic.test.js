'use strict'

// The Anthropic provider end to end: recorded Messages answers and streams replayed byte for byte
// (whole, and one byte per write) from the loopback provider, the exact bodies sent to
// `POST /v1/messages` for every documented mapping (README, "Anthropic (Claude)"), history round
// trips, error statuses, cancellation and routing. Expected values are read from the fixtures here,
// independently of the library.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startUpstream, replay, writeResponse, openSse, within, sleep, JSON_HEADERS, SSE_HEADERS } = require('./helpers/upstream')
const {
  LLMProxy,
  fixture,
  fixtureJson,
  listFixtures,
  assembleChunks,
  collect,
  caught,
  assertProxyError,
  USER,
} = require('./helpers/common')

const KEY = 'sk-ant-test-key'
const MODEL = 'claude-sonnet-4-5'
const USER_TEXT = USER[0].content
/** How long the client may take to close its socket after a cancel. */
const CLOSE_WITHIN_MS = 3000

function anthropicProxy(upstream, extra = {}) {
  // One attempt: these tests look at each answer as the provider sent it.
  return new LLMProxy({ anthropic: { apiKey: KEY, baseUrl: upstream.url, ...extra }, retry: { maxRetries: 0 } })
}

/** Consumes a stream; returns the chunks that arrived and the error it ended with. */
async function drain(iterable) {
  const chunks = []
  try {
    for await (const c of iterable) chunks.push(c)
  } catch (err) {
    return { chunks, err }
  }
  return { chunks, err: undefined }
}

const nowSeconds = () => Date.now() / 1000

/** Anthropic's stop_reason in OpenAI's words, as the README documents it. */
const FINISH = { end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls', refusal: 'content_filter' }

/** OpenAI usage for an Anthropic usage object, as the README documents it. */
function openAiUsage(u) {
  const input = u.input_tokens || 0
  const cacheRead = u.cache_read_input_tokens || 0
  const cacheCreation = u.cache_creation_input_tokens || 0
  const prompt = input + cacheRead + cacheCreation
  return { prompt, completion: u.output_tokens || 0, total: prompt + (u.output_tokens || 0), cached: cacheRead }
}

function assertUsage(usage, anthropicUsage) {
  const want = openAiUsage(anthropicUsage)
  assert.ok(usage, 'usage is present')
  assert.equal(usage.prompt_tokens, want.prompt, 'prompt_tokens = input + cache read + cache creation')
  assert.equal(usage.completion_tokens, want.completion)
  assert.equal(usage.total_tokens, want.total)
  assert.equal(usage.prompt_tokens_details.cached_tokens, want.cached, 'cached_tokens = cache read')
}

/**
 * Reads a recorded Anthropic SSE body without the library: what a correct client must assemble.
 * Only complete events (ended by a blank line) count.
 */
function expectedFromAnthropicSse(buf) {
  const events = []
  let name = null
  let data = null
  for (const line of buf.toString('utf8').split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data !== null) events.push({ event: name, data })
      name = null
      data = null
    } else if (line.startsWith('event:')) name = line.slice(6).trim()
    else if (line.startsWith('data:')) {
      const value = line.slice(5).replace(/^ /, '')
      data = data === null ? value : `${data}\n${value}`
    }
  }
  // An event without its closing blank line at the end of `buf` is incomplete: dropped.
  const want = {
    id: null,
    model: null,
    text: '',
    reasoning: '',
    thinkingBlocks: [],
    toolCalls: [],
    stopReason: null,
    usage: {},
    complete: false,
    error: null,
    events: [],
  }
  const blocks = new Map()
  for (const e of events) {
    const d = JSON.parse(e.data)
    want.events.push(d)
    if (e.event === 'error' || d.type === 'error') {
      want.error = d
      break
    }
    switch (d.type) {
      case 'message_start':
        want.id = d.message.id
        want.model = d.message.model
        for (const [k, v] of Object.entries(d.message.usage || {})) if (v !== null) want.usage[k] = v
        break
      case 'content_block_start': {
        const b = d.content_block
        if (b.type === 'text') {
          want.text += b.text
        } else if (b.type === 'thinking') {
          const block = { type: 'thinking', thinking: b.thinking, signature: b.signature }
          blocks.set(d.index, block)
          want.reasoning += b.thinking
          want.thinkingBlocks.push(block)
        } else if (b.type === 'redacted_thinking') {
          want.thinkingBlocks.push({ ...b })
        } else if (b.type === 'tool_use') {
          const call = { id: b.id, name: b.name, arguments: '' }
          blocks.set(d.index, call)
          want.toolCalls.push(call)
        }
        break
      }
      case 'content_block_delta': {
        const delta = d.delta
        const block = blocks.get(d.index)
        if (delta.type === 'text_delta') want.text += delta.text
        else if (delta.type === 'thinking_delta') {
          block.thinking += delta.thinking
          want.reasoning += delta.thinking
        } else if (delta.type === 'signature_delta') block.signature += delta.signature
        else if (delta.type === 'input_json_delta') block.arguments += delta.partial_json
        break
      }
      case 'message_delta':
        if (d.delta && d.delta.stop_reason) want.stopReason = d.delta.stop_reason
        for (const [k, v] of Object.entries(d.usage || {})) if (v !== null) want.usage[k] = v
        break
      case 'message_stop':
        want.complete = true
        break
      default:
        break
    }
  }
  return want
}

/** What the chunks carry beside content and tool calls: reasoning, thinking blocks, tool-call indexes. */
function extras(chunks) {
  let reasoning = ''
  const thinkingBlocks = []
  const toolIndexes = []
  const thinkingAt = []
  chunks.forEach((c, i) => {
    for (const ch of c.choices) {
      if (typeof ch.delta.reasoning_content === 'string') reasoning += ch.delta.reasoning_content
      if (ch.delta.thinking_blocks) {
        thinkingBlocks.push(...ch.delta.thinking_blocks)
        thinkingAt.push(i)
      }
      for (const t of ch.delta.tool_calls || []) if (!toolIndexes.includes(t.index)) toolIndexes.push(t.index)
    }
  })
  return { reasoning, thinkingBlocks, toolIndexes, thinkingAt }
}

function assertAnthropicRequest(req, { stream }) {
  assert.equal(req.method, 'POST')
  assert.equal(req.path, '/v1/messages')
  assert.equal(req.headers['x-api-key'], KEY)
  assert.equal(req.headers['anthropic-version'], '2023-06-01')
  assert.match(req.headers['content-type'], /^application\/json\b/)
  assert.equal(req.headers.authorization, undefined, 'Anthropic takes the key as x-api-key, not Authorization')
  if (stream) assert.equal(req.headers.accept, 'text/event-stream')
  else assert.notEqual(req.headers.accept, 'text/event-stream')
}

// ---------------------------------------------------------------------------------------------

describe('Anthropic: generate() replays every recorded Messages answer', () => {
  const FILES = listFixtures('anthropic/messages', '.json')

  test('the recordings are all there', () => {
    assert.deepEqual(FILES, [
      'anthropic/messages/text-and-two-tool-use.json',
      'anthropic/messages/text.json',
      'anthropic/messages/thinking.json',
    ])
  })

  for (const file of FILES) {
    for (const mode of ['whole', 'bytewise']) {
      test(`${file} (${mode})`, async (t) => {
        const body = fixture(file)
        const recorded = JSON.parse(body.toString('utf8'))
        const upstream = await startUpstream(replay(200, JSON_HEADERS, body, { mode }))
        t.after(() => upstream.close())
        const proxy = anthropicProxy(upstream)
        const before = nowSeconds()
        const res = await proxy.generate({ model: MODEL, messages: USER })
        const afterT = nowSeconds()

        // What the provider received.
        assert.equal(upstream.requests.length, 1)
        const req = upstream.requests[0]
        assertAnthropicRequest(req, { stream: false })
        assert.deepStrictEqual(req.json, {
          model: MODEL,
          messages: [{ role: 'user', content: USER_TEXT }],
          max_tokens: 8192,
        })

        // What the recording says the answer is.
        const texts = recorded.content.filter((b) => b.type === 'text').map((b) => b.text)
        const toolUses = recorded.content.filter((b) => b.type === 'tool_use')
        const thinking = recorded.content.filter((b) => b.type === 'thinking' || b.type === 'redacted_thinking')

        assert.equal(res.id, recorded.id)
        assert.match(res.id, /^msg_/)
        assert.equal(res.object, 'chat.completion')
        assert.ok(Number.isInteger(res.created), `created is an integer: ${res.created}`)
        assert.ok(res.created >= Math.floor(before) - 1 && res.created <= Math.ceil(afterT) + 1, `created is now, in seconds: ${res.created}`)
        assert.equal(res.model, recorded.model)
        assert.equal(res.choices.length, 1)
        const choice = res.choices[0]
        assert.equal(choice.index, 0)
        assert.equal(choice.message.role, 'assistant')
        assert.equal(choice.message.content, texts.length ? texts.join('') : null)
        assert.ok('refusal' in choice.message, 'refusal is present')
        assert.equal(choice.message.refusal, null)
        assert.ok('logprobs' in choice, 'logprobs is present')
        assert.equal(choice.logprobs, null)
        assert.equal(choice.finish_reason, FINISH[recorded.stop_reason])

        if (toolUses.length) {
          assert.equal(choice.message.tool_calls.length, toolUses.length)
          choice.message.tool_calls.forEach((call, i) => {
            assert.equal(call.id, toolUses[i].id, 'Anthropic’s tool_use id is kept')
            assert.equal(call.type, 'function')
            assert.equal(call.function.name, toolUses[i].name)
            assert.equal(typeof call.function.arguments, 'string')
            assert.deepStrictEqual(JSON.parse(call.function.arguments), toolUses[i].input)
          })
        } else {
          assert.equal(choice.message.tool_calls ?? null, null)
        }

        if (thinking.length) {
          assert.equal(
            choice.message.reasoning_content,
            thinking.filter((b) => b.type === 'thinking').map((b) => b.thinking).join(''),
          )
          assert.deepStrictEqual(choice.message.thinking_blocks, thinking)
        } else {
          assert.equal(choice.message.reasoning_content ?? null, null)
          assert.equal(choice.message.thinking_blocks ?? null, null)
        }

        assertUsage(res.usage, recorded.usage)
      })
    }
  }

  test('text-and-two-tool-use: the text before the tool calls is kept, both calls with their ids', async (t) => {
    const upstream = await startUpstream(replay(200, JSON_HEADERS, fixture('anthropic/messages/text-and-two-tool-use.json')))
    t.after(() => upstream.close())
    const res = await anthropicProxy(upstream).generate({ model: MODEL, messages: USER })
    const m = res.choices[0].message
    assert.ok(m.content.startsWith("Certainly! I'd be happy to help you with both"), m.content)
    assert.ok(m.content.endsWith('to get this information for you.'))
    assert.deepStrictEqual(
      m.tool_calls.map((c) => [c.id, c.type, c.function.name, JSON.parse(c.function.arguments)]),
      [
        ['toolu_012r6TBCWjRHG71j6zruYyUL', 'function', 'get_weather', { location: 'New York, NY', unit: 'fahrenheit' }],
        ['toolu_01SkeBKkLCNYWNuivqFerGDd', 'function', 'get_time', { timezone: 'America/New_York' }],
      ],
    )
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
    assert.equal(res.usage.prompt_tokens, 514)
    assert.equal(res.usage.completion_tokens, 152)
    assert.equal(res.usage.total_tokens, 666)
    assert.equal(res.usage.prompt_tokens_details.cached_tokens, 0)
  })

  test('thinking: reasoning_content and the signed thinking block', async (t) => {
    const upstream = await startUpstream(replay(200, JSON_HEADERS, fixture('anthropic/messages/thinking.json')))
    t.after(() => upstream.close())
    const res = await anthropicProxy(upstream).generate({ model: MODEL, messages: USER })
    const m = res.choices[0].message
    assert.equal(m.content, 'The letter \'r\' appears 3 times in the word "strawberry".')
    assert.ok(m.reasoning_content.startsWith("Let me count the number of times the letter 'r'"))
    assert.equal(m.thinking_blocks.length, 1)
    assert.equal(m.thinking_blocks[0].type, 'thinking')
    assert.equal(m.thinking_blocks[0].thinking, m.reasoning_content)
    assert.ok(m.thinking_blocks[0].signature.startsWith('ErUBCkYIARgCIkBSkP4z'))
    assert.ok(m.thinking_blocks[0].signature.endsWith('cQi6fSA=='))
    assert.equal(res.choices[0].finish_reason, 'stop')
    assert.deepStrictEqual(
      [res.usage.prompt_tokens, res.usage.completion_tokens, res.usage.total_tokens],
      [52, 215, 267],
    )
  })

  test('usage with cache read and cache creation tokens', async (t) => {
    const body = {
      id: 'msg_cache',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: [{ type: 'text', text: 'Hi.' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 7, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000, output_tokens: 3 },
    }
    const upstream = await startUpstream(replay(200, JSON_HEADERS, body))
    t.after(() => upstream.close())
    const res = await anthropicProxy(upstream).generate({ model: MODEL, messages: USER })
    assert.equal(res.usage.prompt_tokens, 1107)
    assert.equal(res.usage.completion_tokens, 3)
    assert.equal(res.usage.total_tokens, 1110)
    assert.equal(res.usage.prompt_tokens_details.cached_tokens, 1000)
  })

  test('every stop_reason maps to OpenAI’s finish_reason', async (t) => {
    let stopReason
    const upstream = await startUpstream((req, socket) =>
      writeResponse(socket, 200, JSON_HEADERS, {
        id: `msg_${stopReason}`,
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5-20250929',
        content: [{ type: 'text', text: 'x' }],
        stop_reason: stopReason,
        stop_sequence: stopReason === 'stop_sequence' ? 'END' : null,
        usage: { input_tokens: 1, output_tokens: 1 },
      }),
    )
    t.after(() => upstream.close())
    const proxy = anthropicProxy(upstream)
    for (const [reason, finish] of Object.entries({
      end_turn: 'stop',
      stop_sequence: 'stop',
      max_tokens: 'length',
      refusal: 'content_filter',
      pause_turn: 'stop',
      model_context_window_exceeded: 'length',
      // A stop reason newer than this release (found by the types review: it was passed through).
      some_new_reason: 'stop',
    })) {
      stopReason = reason
      const res = await proxy.generate({ model: MODEL, messages: USER })
      assert.equal(res.choices[0].finish_reason, finish, reason)
      // Anthropic's own word is kept.
      assert.equal(res.choices[0].native_finish_reason, reason)
      assert.equal(res.choices[0].message.content, 'x')
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: stream() replays every recorded SSE body', () => {
  const FILES = listFixtures('anthropic/sse', '.sse')
  const ERROR_FILES = FILES.filter((f) => f.includes('error-'))
  const ANSWER_FILES = FILES.filter((f) => !f.includes('error-'))

  test('the recordings are all there', () => {
    assert.equal(FILES.length, 7)
    assert.equal(ERROR_FILES.length, 2)
  })

  for (const file of ANSWER_FILES) {
    for (const mode of ['whole', 'bytewise']) {
      test(`${file} (${mode})`, async (t) => {
        const body = fixture(file)
        const want = expectedFromAnthropicSse(body)
        assert.ok(want.complete, 'the recording ends with message_stop')
        const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode }))
        t.after(() => upstream.close())
        const proxy = anthropicProxy(upstream)
        const before = nowSeconds()
        const chunks = await collect(proxy.stream({ model: MODEL, messages: USER }))
        const afterT = nowSeconds()

        // The request as the provider received it.
        assert.equal(upstream.requests.length, 1)
        const req = upstream.requests[0]
        assertAnthropicRequest(req, { stream: true })
        assert.deepStrictEqual(req.json, {
          model: MODEL,
          messages: [{ role: 'user', content: USER_TEXT }],
          max_tokens: 8192,
          stream: true,
        })

        // The contract (role first, one finish, usage alone last…) and what the chunks assemble to.
        const got = assembleChunks(chunks)
        const more = extras(chunks)
        assert.equal(got.content, want.text, 'content = the text_deltas joined')
        assert.deepStrictEqual(got.toolCalls, want.toolCalls, 'tool calls: ids, names, arguments = partial_json joined')
        for (const call of got.toolCalls) JSON.parse(call.arguments)
        assert.deepStrictEqual(more.toolIndexes, want.toolCalls.map((_, i) => i), 'tool-call indexes 0, 1, … in order')
        assert.equal(more.reasoning, want.reasoning, 'reasoning_content = the thinking_deltas joined')
        assert.deepStrictEqual(more.thinkingBlocks, want.thinkingBlocks, 'thinking blocks with their signatures')
        assert.equal(got.finishReason, FINISH[want.stopReason])

        // Usage comes alone, last.
        const last = chunks[chunks.length - 1]
        assert.deepStrictEqual(last.choices, [])
        assertUsage(got.usage, want.usage)
        const withChoices = chunks.filter((c) => c.choices.length > 0)
        assert.ok(withChoices[withChoices.length - 1].choices[0].finish_reason, 'the finish is on the last choice chunk')

        // Metadata is the message's.
        assert.equal(chunks[0].id, want.id)
        assert.equal(chunks[0].model, want.model)
        assert.ok(chunks[0].created >= Math.floor(before) - 1 && chunks[0].created <= Math.ceil(afterT) + 1, `created: ${chunks[0].created}`)
      })
    }
  }

  test('tool-use-input-json-delta: text first, then two calls numbered 0 and 1 with complete JSON', async (t) => {
    const upstream = await startUpstream(replay(200, SSE_HEADERS, fixture('anthropic/sse/tool-use-input-json-delta.sse'), { mode: 'bytewise' }))
    t.after(() => upstream.close())
    const chunks = await collect(anthropicProxy(upstream).stream({ model: MODEL, messages: USER }))
    const got = assembleChunks(chunks)
    assert.equal(
      got.content,
      "Certainly! I can help you with that information. To get the weather and current time in San Francisco, I'll need to use two separate functions. Let me fetch that data for you.",
    )
    assert.deepStrictEqual(
      got.toolCalls.map((c) => [c.id, c.name, JSON.parse(c.arguments)]),
      [
        ['toolu_014x5X91kx3fvdhpLvwXZWE2', 'get_weather', { location: 'San Francisco, CA', unit: 'celsius' }],
        ['toolu_0121kXsENLvoDZ72LCuAnCCz', 'get_time', { timezone: 'America/Los_Angeles' }],
      ],
    )
    assert.equal(got.finishReason, 'tool_calls')
    // The id and name come on the first delta of each call only.
    const firsts = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls || [])).filter((tc) => tc.id)
    assert.deepStrictEqual(firsts.map((tc) => [tc.index, tc.type, tc.function.name]), [[0, 'function', 'get_weather'], [1, 'function', 'get_time']])
    // All text comes before the first tool-call delta.
    const firstTool = chunks.findIndex((c) => c.choices[0]?.delta.tool_calls)
    const lastText = chunks.findLastIndex((c) => c.choices[0]?.delta.content)
    assert.ok(lastText < firstTool)
    assert.deepStrictEqual(
      [got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.total_tokens, got.usage.prompt_tokens_details.cached_tokens],
      [506, 153, 659, 0],
    )
  })

  test('thinking.sse: reasoning deltas, then the signed thinking block when it ends, then the text', async (t) => {
    const body = fixture('anthropic/sse/thinking.sse')
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body))
    t.after(() => upstream.close())
    const chunks = await collect(anthropicProxy(upstream).stream({ model: MODEL, messages: USER }))
    const got = assembleChunks(chunks)
    const more = extras(chunks)
    assert.equal(got.content, 'The letter \'r\' appears 3 times in the word "strawberry".')
    assert.ok(more.reasoning.startsWith("Let me count the occurrences of the letter 'r' in the word \"strawberry\"."))
    assert.ok(more.reasoning.endsWith('So the letter \'r\' appears 3 times in the word "strawberry".'))
    assert.equal(more.thinkingBlocks.length, 1)
    const block = more.thinkingBlocks[0]
    assert.deepStrictEqual(Object.keys(block).sort(), ['signature', 'thinking', 'type'])
    assert.equal(block.type, 'thinking')
    assert.equal(block.thinking, more.reasoning)
    // The signature exactly as the signature_delta carried it.
    const sig = /"signature_delta","signature":"([^"]+)"/.exec(body.toString('utf8'))[1]
    assert.equal(block.signature, sig)
    assert.ok(sig.startsWith('ErUBCkYIARgCIkCepoF8'))
    // Order: every reasoning delta, then the block, then the text.
    const lastReasoning = chunks.findLastIndex((c) => c.choices[0]?.delta.reasoning_content)
    const firstText = chunks.findIndex((c) => c.choices[0]?.delta.content)
    assert.ok(lastReasoning < more.thinkingAt[0] && more.thinkingAt[0] < firstText, `${lastReasoning} < ${more.thinkingAt[0]} < ${firstText}`)
    assert.equal(got.finishReason, 'stop')
    assert.deepStrictEqual([got.usage.prompt_tokens, got.usage.completion_tokens], [52, 216])
  })

  test('redacted-thinking.sse: both redacted blocks arrive as delta.thinking_blocks, unchanged', async (t) => {
    const body = fixture('anthropic/sse/redacted-thinking.sse')
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode: { chunks: 13 } }))
    t.after(() => upstream.close())
    const chunks = await collect(anthropicProxy(upstream).stream({ model: MODEL, messages: USER }))
    const got = assembleChunks(chunks)
    const more = extras(chunks)
    const datas = [...body.toString('utf8').matchAll(/"redacted_thinking","data":"([^"]+)"/g)].map((m) => m[1])
    assert.equal(datas.length, 2)
    assert.deepStrictEqual(more.thinkingBlocks, datas.map((data) => ({ type: 'redacted_thinking', data })))
    assert.equal(more.reasoning, '')
    assert.ok(got.content.startsWith("I notice that you've sent what appears to be some kind of test string"))
    assert.ok(got.content.endsWith('How can I assist you today with a legitimate task or question?'))
    assert.equal(got.finishReason, 'stop')
    assert.deepStrictEqual([got.usage.prompt_tokens, got.usage.completion_tokens], [92, 189])
  })

  test('cache-read-usage-in-message-delta.sse: prompt 1220 (3 + 1217 cached), completion 4', async (t) => {
    const upstream = await startUpstream(replay(200, SSE_HEADERS, fixture('anthropic/sse/cache-read-usage-in-message-delta.sse')))
    t.after(() => upstream.close())
    const chunks = await collect(anthropicProxy(upstream).stream({ model: MODEL, messages: USER }))
    const got = assembleChunks(chunks)
    assert.equal(got.content, 'Hello')
    assert.equal(got.finishReason, 'stop')
    assert.equal(got.usage.prompt_tokens, 1220)
    assert.equal(got.usage.prompt_tokens_details.cached_tokens, 1217)
    assert.equal(got.usage.completion_tokens, 4)
    assert.equal(got.usage.total_tokens, 1224)
    assert.deepStrictEqual(chunks[chunks.length - 1].choices, [])
    assert.equal(chunks[0].id, 'msg_01LshZroyEGgd3HfDrKdQMLm')
    assert.equal(chunks[0].model, 'claude-sonnet-4-5-20250929')
  })

  for (const mode of ['whole', 'bytewise']) {
    test(`error-first-event (${mode}): throws overloaded, nothing yielded`, async (t) => {
      const file = 'anthropic/sse/error-first-event.TEST-LITERAL.sse'
      const want = expectedFromAnthropicSse(fixture(file))
      const upstream = await startUpstream(replay(200, SSE_HEADERS, fixture(file), { mode }))
      t.after(() => upstream.close())
      const { chunks, err } = await within(10_000, drain(anthropicProxy(upstream).stream({ model: MODEL, messages: USER })), 'the end of the stream')
      assert.deepStrictEqual(chunks, [])
      assertProxyError(err, { code: 'overloaded', provider: 'anthropic', retryable: true, body: want.error })
      assert.match(err.message, /Overloaded/)
    })

    test(`error-overloaded-mid-stream (${mode}): 'Hello' is yielded, then overloaded is thrown`, async (t) => {
      const file = 'anthropic/sse/error-overloaded-mid-stream.TEST-LITERAL.sse'
      const want = expectedFromAnthropicSse(fixture(file))
      assert.equal(want.text, 'Hello')
      const upstream = await startUpstream(replay(200, SSE_HEADERS, fixture(file), { mode }))
      t.after(() => upstream.close())
      const { chunks, err } = await within(10_000, drain(anthropicProxy(upstream).stream({ model: MODEL, messages: USER })), 'the end of the stream')
      assertProxyError(err, { code: 'overloaded', provider: 'anthropic', retryable: true, body: want.error })
      assert.match(err.message, /Overloaded/)
      assert.ok(chunks.length > 0, 'the chunks before the error event were yielded')
      assert.equal(chunks[0].choices[0].delta.role, 'assistant')
      assert.equal(chunks.map((c) => c.choices[0]?.delta.content || '').join(''), 'Hello')
      assert.ok(chunks.every((c) => c.id === 'msg_01KfpJoAEabmH2iHRRFjQMAG'))
      assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)), 'no finish_reason')
      assert.ok(chunks.every((c) => c.usage == null), 'no usage')
    })
  }
})

describe('Anthropic: a stream that ends before message_stop throws stream_interrupted after the chunks that arrived', () => {
  const body = fixture('anthropic/sse/text.sse')
  const text = body.toString('latin1')
  const boundaries = []
  for (let i = text.indexOf('\n\n'); i >= 0; i = text.indexOf('\n\n', i + 2)) boundaries.push(i + 2)
  const k = Math.floor(boundaries.length / 2)
  const beforeDelta = text.indexOf('event: message_delta')
  const beforeStop = text.indexOf('event: message_stop')
  const cuts = {
    'in the middle of an event': [Math.floor((boundaries[k - 1] + boundaries[k]) / 2), boundaries[k - 1]],
    'right after a complete text event': [boundaries[k - 1], boundaries[k - 1]],
    'just before message_delta': [beforeDelta, beforeDelta],
  }

  for (const [where, [cutAt, completeUpTo]] of Object.entries(cuts)) {
    for (const framing of ['chunked', 'close']) {
      test(`text.sse cut ${where} (${framing})`, async (t) => {
        const complete = expectedFromAnthropicSse(body.subarray(0, completeUpTo))
        assert.ok(!complete.complete && complete.text.length > 0)
        const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode: { cutAt }, framing }))
        t.after(() => upstream.close())
        const { chunks, err } = await within(10_000, drain(anthropicProxy(upstream).stream({ model: MODEL, messages: USER })), 'the end of the cut stream')
        assertProxyError(err, { code: 'stream_interrupted', provider: 'anthropic', retryable: true })
        assert.ok(chunks.length > 0, 'the chunks before the cut were yielded')
        assert.equal(chunks[0].choices[0].delta.role, 'assistant')
        assert.equal(chunks.map((c) => c.choices[0]?.delta.content || '').join(''), complete.text)
        assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason == null)), 'no finish_reason')
        assert.ok(chunks.every((c) => c.usage == null), 'no usage')
      })
    }
  }

  test('text.sse with message_delta but without message_stop, ended cleanly → stream_interrupted', async (t) => {
    // The body is complete HTTP-wise (chunked, terminated); only Anthropic's message_stop is missing.
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body.subarray(0, beforeStop)))
    t.after(() => upstream.close())
    const { chunks, err } = await drain(anthropicProxy(upstream).stream({ model: MODEL, messages: USER }))
    assertProxyError(err, { code: 'stream_interrupted', provider: 'anthropic' })
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content || '').join(''), expectedFromAnthropicSse(body).text)
    assert.ok(chunks.every((c) => c.usage == null), 'no usage chunk for an incomplete answer')
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: the exact request bodies', () => {
  const TEXT_JSON = fixture('anthropic/messages/text.json')
  const TEXT_SSE = fixture('anthropic/sse/text.sse')
  let upstream
  let proxy
  /** A one-off response for the next request: { status, headers, body }. */
  let next = null
  before(async () => {
    upstream = await startUpstream((req, socket) => {
      if (next) {
        const r = next
        next = null
        return writeResponse(socket, r.status || 200, r.headers || JSON_HEADERS, r.body)
      }
      return /event-stream/.test(req.headers.accept)
        ? writeResponse(socket, 200, SSE_HEADERS, TEXT_SSE)
        : writeResponse(socket, 200, JSON_HEADERS, TEXT_JSON)
    })
    proxy = anthropicProxy(upstream)
  })
  after(() => upstream.close())

  /** Sends `request` through generate() and returns the body the provider received. */
  async function sent(request) {
    const n = upstream.requests.length
    const res = await proxy.generate(request)
    assert.equal(upstream.requests.length, n + 1)
    const req = upstream.requests[n]
    assertAnthropicRequest(req, { stream: false })
    sent.res = res
    return req.json
  }

  /** Sends `request` through stream() and returns the body the provider received. */
  async function sentStreamed(request) {
    const n = upstream.requests.length
    const chunks = await collect(proxy.stream(request))
    assert.equal(upstream.requests.length, n + 1)
    const req = upstream.requests[n]
    assertAnthropicRequest(req, { stream: true })
    sentStreamed.chunks = chunks
    return req.json
  }

  /** No turn is a ":" (or blank) filler, and the roles alternate. */
  function assertNoFillers(body) {
    body.messages.forEach((m, i) => {
      if (typeof m.content === 'string') {
        assert.notEqual(m.content.trim(), ':', `messages[${i}] is a ":" filler`)
        assert.notEqual(m.content.trim(), '', `messages[${i}] is empty`)
      } else {
        assert.ok(m.content.length > 0, `messages[${i}] has no blocks`)
        for (const b of m.content) {
          if (b.type === 'text') {
            assert.notEqual(b.text.trim(), ':', `messages[${i}] has a ":" filler block`)
            assert.notEqual(b.text.trim(), '', `messages[${i}] has an empty text block`)
          }
        }
      }
      if (i > 0) assert.notEqual(m.role, body.messages[i - 1].role, `messages[${i - 1}] and [${i}] have the same role`)
    })
  }

  test('(a) system and developer messages anywhere → the system field, in order; the turns without them', async () => {
    const request = {
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hi.' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'system', content: 'Now answer in French.' },
        { role: 'user', content: 'How are you?' },
        { role: 'developer', content: [{ type: 'text', text: 'Never use emoji.' }] },
      ],
    }
    const want = {
      model: MODEL,
      system: [
        { type: 'text', text: 'You are terse.' },
        { type: 'text', text: 'Now answer in French.' },
        { type: 'text', text: 'Never use emoji.' },
      ],
      messages: [
        { role: 'user', content: 'Hi.' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'How are you?' },
      ],
      max_tokens: 8192,
    }
    assert.deepStrictEqual(await sent(request), want)
    assert.deepStrictEqual(await sentStreamed(request), { ...want, stream: true })
  })

  test('(b) parallel tool calls, their two results and a user message → one assistant turn, one user turn', async () => {
    const body = await sent({
      model: MODEL,
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Current weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          },
        },
      ],
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: 'Checking both.',
          tool_calls: [
            { id: 'toolu_A1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'toolu_B2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_A1', content: '18C' },
        { role: 'tool', tool_call_id: 'toolu_B2', content: '24C' },
        { role: 'user', content: 'Which is warmer?' },
      ],
    })
    assert.deepStrictEqual(body, {
      model: MODEL,
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking both.' },
            { type: 'tool_use', id: 'toolu_A1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_B2', name: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_A1', content: '18C' },
            { type: 'tool_result', tool_use_id: 'toolu_B2', content: '24C' },
            { type: 'text', text: 'Which is warmer?' },
          ],
        },
      ],
      max_tokens: 8192,
      tools: [
        {
          name: 'get_weather',
          description: 'Current weather',
          input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      ],
    })
    assertNoFillers(body)
  })

  test('(c) images: data URI → base64 source, https URL → url source; cache_control on a part and a tool passed through', async () => {
    const body = await sent({
      model: MODEL,
      tools: [
        {
          type: 'function',
          function: { name: 'describe', parameters: { type: 'object', properties: { what: { type: 'string' } } } },
          cache_control: { type: 'ephemeral' },
        },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these two.', cache_control: { type: 'ephemeral' } },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
            { type: 'image_url', image_url: { url: 'http://example.com/dog.webp' } },
          ],
        },
      ],
    })
    assert.deepStrictEqual(body, {
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these two.', cache_control: { type: 'ephemeral' } },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
            { type: 'image', source: { type: 'url', url: 'http://example.com/dog.webp' } },
          ],
        },
      ],
      max_tokens: 8192,
      tools: [
        {
          name: 'describe',
          input_schema: { type: 'object', properties: { what: { type: 'string' } } },
          cache_control: { type: 'ephemeral' },
        },
      ],
    })
  })

  test('(c) a PDF file part (file_data data URI) → a base64 document block', async () => {
    const body = await sent({
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Summarise.' },
            { type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0xLjQ=' } },
          ],
        },
      ],
    })
    const doc = body.messages[0].content[1]
    assert.equal(doc.type, 'document')
    assert.deepStrictEqual(doc.source, { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQ=' })
    assert.deepStrictEqual(body.messages[0].content[0], { type: 'text', text: 'Summarise.' })
  })

  test('(d) legacy functions + function_call + role: function → tools, tool_use call_legacy_<i>, tool_result with that id', async () => {
    const body = await sent({
      model: MODEL,
      functions: [
        { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } },
      ],
      function_call: 'auto',
      messages: [
        { role: 'user', content: "What's the weather in Paris?" },
        { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
        { role: 'function', name: 'get_weather', content: '{"temp_c":20}' },
        { role: 'user', content: 'Thanks. And tomorrow?' },
      ],
    })
    assert.deepStrictEqual(body, {
      model: MODEL,
      messages: [
        { role: 'user', content: "What's the weather in Paris?" },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_legacy_1', name: 'get_weather', input: { location: 'Paris' } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_legacy_1', content: '{"temp_c":20}' },
            { type: 'text', text: 'Thanks. And tomorrow?' },
          ],
        },
      ],
      max_tokens: 8192,
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { location: { type: 'string' } } } }],
      tool_choice: { type: 'auto' },
    })
    assertNoFillers(body)
  })

  test('(e) consecutive turns of one role are merged; no ":" filler turns are invented', async () => {
    let body = await sent({
      model: MODEL,
      messages: [
        { role: 'user', content: 'First.' },
        { role: 'user', content: [{ type: 'text', text: 'Second.' }] },
        { role: 'assistant', content: 'A1.' },
        { role: 'assistant', content: 'A2.' },
        { role: 'user', content: 'Third.' },
      ],
    })
    assert.deepStrictEqual(body.messages, [
      { role: 'user', content: [{ type: 'text', text: 'First.' }, { type: 'text', text: 'Second.' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'A1.' }, { type: 'text', text: 'A2.' }] },
      { role: 'user', content: 'Third.' },
    ])
    assertNoFillers(body)

    // A conversation that opens with the assistant (after the system prompt) is not padded with a user turn.
    body = await sent({
      model: MODEL,
      messages: [
        { role: 'system', content: 'Be kind.' },
        { role: 'assistant', content: 'How can I help?' },
        { role: 'user', content: 'Tell me a joke.' },
      ],
    })
    assert.deepStrictEqual(body.messages, [
      { role: 'assistant', content: 'How can I help?' },
      { role: 'user', content: 'Tell me a joke.' },
    ])
    assertNoFillers(body)

    // An empty assistant turn between two user turns disappears; the user turns merge.
    body = await sent({
      model: MODEL,
      messages: [
        { role: 'user', content: 'One.' },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Two.' },
      ],
    })
    assert.deepStrictEqual(body.messages, [{ role: 'user', content: [{ type: 'text', text: 'One.' }, { type: 'text', text: 'Two.' }] }])
    assertNoFillers(body)

    // Tool results followed by several user messages: one user turn.
    body = await sent({
      model: MODEL,
      messages: [
        { role: 'user', content: 'Go.' },
        { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 't1', content: 'done' },
        { role: 'user', content: 'Next.' },
        { role: 'user', content: 'And then?' },
      ],
    })
    assert.deepStrictEqual(body.messages, [
      { role: 'user', content: 'Go.' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 't1', content: 'done' },
          { type: 'text', text: 'Next.' },
          { type: 'text', text: 'And then?' },
        ],
      },
    ])
    assertNoFillers(body)
  })

  describe('(f) tool_choice, sampling and output fields', () => {
    const TOOL = {
      type: 'function',
      function: { name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
    }
    const TOOL_DEF = { name: 'lookup', description: 'Look it up', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }

    for (const [choice, want] of [
      ['auto', { type: 'auto' }],
      ['none', { type: 'none' }],
      ['required', { type: 'any' }],
      [{ type: 'function', function: { name: 'lookup' } }, { type: 'tool', name: 'lookup' }],
    ]) {
      test(`tool_choice ${JSON.stringify(choice)} → ${JSON.stringify(want)}`, async () => {
        const body = await sent({ model: MODEL, messages: USER, tools: [TOOL], tool_choice: choice })
        assert.deepStrictEqual(body, {
          model: MODEL,
          messages: [{ role: 'user', content: USER_TEXT }],
          max_tokens: 8192,
          tools: [TOOL_DEF],
          tool_choice: want,
        })
      })
    }

    test('parallel_tool_calls: false → disable_parallel_tool_use: true', async () => {
      let body = await sent({ model: MODEL, messages: USER, tools: [TOOL], parallel_tool_calls: false })
      assert.deepStrictEqual(body.tool_choice, { type: 'auto', disable_parallel_tool_use: true })
      assert.equal('parallel_tool_calls' in body, false)
      body = await sent({ model: MODEL, messages: USER, tools: [TOOL], tool_choice: 'required', parallel_tool_calls: false })
      assert.deepStrictEqual(body.tool_choice, { type: 'any', disable_parallel_tool_use: true })
      body = await sent({ model: MODEL, messages: USER, tools: [TOOL], parallel_tool_calls: true })
      assert.equal('tool_choice' in body, false)
    })

    test('max_tokens default: 8192 for claude-sonnet-4-5, 4096 for claude-3-haiku-20240307; yours otherwise', async () => {
      assert.equal((await sent({ model: 'claude-sonnet-4-5', messages: USER })).max_tokens, 8192)
      assert.equal((await sent({ model: 'claude-3-haiku-20240307', messages: USER })).max_tokens, 4096)
      assert.equal((await sent({ model: 'claude-3-5-haiku-20241022', messages: USER })).max_tokens, 8192)
      assert.equal((await sent({ model: MODEL, messages: USER, max_tokens: 300 })).max_tokens, 300)
      const body = await sent({ model: MODEL, messages: USER, max_completion_tokens: 200 })
      assert.equal(body.max_tokens, 200)
      assert.equal('max_completion_tokens' in body, false)
    })

    test('temperature 1.5 → 1; stop → stop_sequences; user → metadata.user_id; OpenAI-only fields left out', async () => {
      const body = await sent({
        model: 'claude-3-haiku-20240307',
        messages: USER,
        temperature: 1.5,
        top_p: 0.9,
        stop: ['END', ' '],
        user: 'u-42',
        seed: 7,
        logprobs: true,
        top_logprobs: 2,
        frequency_penalty: 0.5,
        presence_penalty: 0.5,
        top_k: 5,
      })
      assert.deepStrictEqual(body, {
        model: 'claude-3-haiku-20240307',
        messages: [{ role: 'user', content: USER_TEXT }],
        max_tokens: 4096,
        temperature: 1,
        top_p: 0.9,
        stop_sequences: ['END'],
        metadata: { user_id: 'u-42' },
        top_k: 5,
      })
      const one = await sent({ model: MODEL, messages: USER, stop: 'STOP', temperature: 0.3 })
      assert.deepStrictEqual(one.stop_sequences, ['STOP'])
      assert.equal(one.temperature, 0.3)
      assert.equal('stop' in one, false)
    })

    test("reasoning_effort 'low' → thinking budget 2048, max_tokens 8192 + 2048, no temperature/top_p/top_k", async () => {
      const body = await sent({ model: MODEL, messages: USER, reasoning_effort: 'low', temperature: 0.5, top_p: 0.9, top_k: 3 })
      assert.deepStrictEqual(body, {
        model: MODEL,
        messages: [{ role: 'user', content: USER_TEXT }],
        max_tokens: 8192 + 2048,
        thinking: { type: 'enabled', budget_tokens: 2048 },
      })
      for (const [effort, budget] of [['minimal', 1024], ['medium', 8192], ['high', 16384]]) {
        const b = await sent({ model: MODEL, messages: USER, reasoning_effort: effort })
        assert.deepStrictEqual(b.thinking, { type: 'enabled', budget_tokens: budget }, effort)
        assert.equal(b.max_tokens, 8192 + budget, effort)
        assert.equal('reasoning_effort' in b, false)
      }
      const b = await sent({ model: MODEL, messages: USER, reasoning_effort: 'high', max_tokens: 20000 })
      assert.deepStrictEqual(b.thinking, { type: 'enabled', budget_tokens: 16384 })
      assert.equal(b.max_tokens, 20000)
    })

    test('response_format json_schema → a forced tool; its tool_use comes back as message.content, finish stop', async () => {
      const schema = {
        type: 'object',
        properties: { temp: { type: 'number' }, sky: { type: 'string' } },
        required: ['temp', 'sky'],
      }
      const request = {
        model: MODEL,
        messages: USER,
        response_format: { type: 'json_schema', json_schema: { name: 'weather', description: 'The weather report', schema } },
      }
      const answer = { temp: 21.5, sky: 'clear' }
      next = {
        body: {
          id: 'msg_json_1',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-4-5-20250929',
          content: [{ type: 'tool_use', id: 'toolu_json_1', name: 'weather', input: answer }],
          stop_reason: 'tool_use',
          stop_sequence: null,
          usage: { input_tokens: 40, output_tokens: 20 },
        },
      }
      const body = await sent(request)
      assert.deepStrictEqual(body, {
        model: MODEL,
        messages: [{ role: 'user', content: USER_TEXT }],
        max_tokens: 8192,
        tools: [{ name: 'weather', description: 'The weather report', input_schema: schema }],
        tool_choice: { type: 'tool', name: 'weather' },
      })
      const res = sent.res
      assert.equal(res.id, 'msg_json_1')
      const choice = res.choices[0]
      assert.equal(typeof choice.message.content, 'string')
      assert.deepStrictEqual(JSON.parse(choice.message.content), answer)
      assert.equal(choice.finish_reason, 'stop')
      assert.equal(choice.message.tool_calls ?? null, null)

      // The same answer streamed: the input's pieces arrive as content.
      const events = [
        { type: 'message_start', message: { id: 'msg_json_2', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 40, output_tokens: 1 } } },
        { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_json_2', name: 'weather', input: {} } },
        { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"temp": 21' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '.5, "sky": "cl' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: 'ear"}' } },
        { type: 'content_block_stop', index: 0 },
        { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } },
        { type: 'message_stop' },
      ]
      next = { headers: SSE_HEADERS, body: events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('') }
      const streamedBody = await sentStreamed(request)
      assert.deepStrictEqual(streamedBody, { ...body, stream: true })
      const got = assembleChunks(sentStreamed.chunks)
      assert.deepStrictEqual(JSON.parse(got.content), answer)
      assert.deepStrictEqual(got.toolCalls, [])
      assert.equal(got.finishReason, 'stop')
    })

    test('tool_choice and parallel_tool_calls without tools are left out', async () => {
      const body = await sent({ model: MODEL, messages: USER, tool_choice: 'auto', parallel_tool_calls: false })
      assert.deepStrictEqual(body, { model: MODEL, messages: [{ role: 'user', content: USER_TEXT }], max_tokens: 8192 })
    })
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: the answer sent back as history', () => {
  /** A provider that answers with `responses` in turn (each a Buffer of JSON or SSE). */
  async function serving(t, responses) {
    const queue = [...responses]
    const upstream = await startUpstream((req, socket) => {
      const [headers, body] = queue.shift()
      return writeResponse(socket, 200, headers, body)
    })
    t.after(() => upstream.close())
    return upstream
  }

  test('text + two tool calls, returned as is, then the two results → tool_use and tool_result blocks paired by id', async (t) => {
    const recorded = fixtureJson('anthropic/messages/text-and-two-tool-use.json')
    const upstream = await serving(t, [
      [JSON_HEADERS, fixture('anthropic/messages/text-and-two-tool-use.json')],
      [JSON_HEADERS, fixture('anthropic/messages/text.json')],
    ])
    const proxy = anthropicProxy(upstream)
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } } } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } } } },
    ]
    const history = [{ role: 'user', content: 'Weather and time in New York?' }]
    const first = await proxy.generate({ model: MODEL, messages: history, tools })
    const assistant = first.choices[0].message
    const [weather, time] = assistant.tool_calls
    const messages = [
      ...history,
      assistant,
      { role: 'tool', tool_call_id: weather.id, content: '{"temp_f":68}' },
      { role: 'tool', tool_call_id: time.id, content: '14:05' },
    ]
    const second = await proxy.generate({ model: MODEL, messages, tools })
    assert.equal(second.id, 'msg_01TPXhkPo8jy6yQMrMhjpiAE')

    const useBlocks = recorded.content.filter((b) => b.type === 'tool_use')
    const text = recorded.content.find((b) => b.type === 'text').text
    assert.equal(upstream.requests.length, 2)
    const body = upstream.requests[1].json
    assert.deepStrictEqual(body.messages, [
      { role: 'user', content: 'Weather and time in New York?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text },
          ...useBlocks.map((b) => ({ type: 'tool_use', id: b.id, name: b.name, input: b.input })),
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: useBlocks[0].id, content: '{"temp_f":68}' },
          { type: 'tool_result', tool_use_id: useBlocks[1].id, content: '14:05' },
        ],
      },
    ])
    assert.equal(useBlocks[0].id, 'toolu_012r6TBCWjRHG71j6zruYyUL')
    assert.equal(useBlocks[1].id, 'toolu_01SkeBKkLCNYWNuivqFerGDd')
  })

  test('thinking (generate): the returned thinking_blocks are sent back first in the assistant turn, signature intact', async (t) => {
    const recorded = fixtureJson('anthropic/messages/thinking.json')
    const upstream = await serving(t, [
      [JSON_HEADERS, fixture('anthropic/messages/thinking.json')],
      [JSON_HEADERS, fixture('anthropic/messages/text.json')],
    ])
    const proxy = anthropicProxy(upstream)
    const history = [{ role: 'user', content: 'How many r in strawberry?' }]
    const first = await proxy.generate({ model: MODEL, messages: history, reasoning_effort: 'low' })
    const messages = [...history, first.choices[0].message, { role: 'user', content: 'And in raspberry?' }]
    await proxy.generate({ model: MODEL, messages, reasoning_effort: 'low' })
    const body = upstream.requests[1].json
    assert.deepStrictEqual(body.messages, [
      { role: 'user', content: 'How many r in strawberry?' },
      { role: 'assistant', content: recorded.content },
      { role: 'user', content: 'And in raspberry?' },
    ])
    assert.equal(body.messages[1].content[0].type, 'thinking')
    assert.equal(body.messages[1].content[0].signature, recorded.content[0].signature)
  })

  test('thinking (stream): the thinking_blocks delta, sent back on the assistant message, comes first and unchanged', async (t) => {
    const sse = fixture('anthropic/sse/thinking.sse')
    const want = expectedFromAnthropicSse(sse)
    const upstream = await serving(t, [
      [SSE_HEADERS, sse],
      [JSON_HEADERS, fixture('anthropic/messages/text.json')],
    ])
    const proxy = anthropicProxy(upstream)
    const history = [{ role: 'user', content: 'How many r in strawberry?' }]
    const chunks = await collect(proxy.stream({ model: MODEL, messages: history, reasoning_effort: 'low' }))
    const got = assembleChunks(chunks)
    const more = extras(chunks)
    const assistant = {
      role: 'assistant',
      content: got.content,
      reasoning_content: more.reasoning,
      thinking_blocks: more.thinkingBlocks,
    }
    await proxy.generate({ model: MODEL, messages: [...history, assistant, { role: 'user', content: 'And in raspberry?' }] })
    const body = upstream.requests[1].json
    assert.deepStrictEqual(body.messages[1], {
      role: 'assistant',
      content: [...want.thinkingBlocks, { type: 'text', text: want.text }],
    })
  })

  test('redacted thinking (stream) is sent back as given', async (t) => {
    const sse = fixture('anthropic/sse/redacted-thinking.sse')
    const want = expectedFromAnthropicSse(sse)
    const upstream = await serving(t, [
      [SSE_HEADERS, sse],
      [JSON_HEADERS, fixture('anthropic/messages/text.json')],
    ])
    const proxy = anthropicProxy(upstream)
    const chunks = await collect(proxy.stream({ model: MODEL, messages: USER }))
    const assistant = { role: 'assistant', content: assembleChunks(chunks).content, thinking_blocks: extras(chunks).thinkingBlocks }
    await proxy.generate({ model: MODEL, messages: [...USER, assistant, { role: 'user', content: 'Ok.' }] })
    assert.deepStrictEqual(upstream.requests[1].json.messages[1].content, [...want.thinkingBlocks, { type: 'text', text: want.text }])
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: errors', () => {
  let upstream
  let proxy
  let next
  before(async () => {
    upstream = await startUpstream((req, socket) => writeResponse(socket, next.status, next.headers || JSON_HEADERS, next.body))
    proxy = anthropicProxy(upstream)
  })
  after(() => upstream.close())

  async function fail(via, request = { model: MODEL, messages: USER }) {
    return caught(async () => {
      if (via === 'generate') await proxy.generate(request)
      else for await (const c of proxy.stream(request)) assert.fail(`no chunk expected, got ${JSON.stringify(c)}`)
    })
  }

  for (const via of ['generate', 'stream']) {
    test(`529 with the overloaded fixture → overloaded, retryable, body kept (${via})`, async () => {
      next = { status: 529, body: fixture('anthropic/errors/529-overloaded.TEST-LITERAL.json') }
      const err = await fail(via)
      assertProxyError(err, {
        code: 'overloaded',
        status: 529,
        retryable: true,
        provider: 'anthropic',
        body: fixtureJson('anthropic/errors/529-overloaded.TEST-LITERAL.json'),
      })
      assert.match(err.message, /Overloaded/)
      assert.ok(err.message.startsWith('anthropic returned HTTP 529'), err.message)
    })

    const CASES = [
      [401, 'authentication_error', 'invalid x-api-key', 'authentication', false],
      [400, 'invalid_request_error', 'messages: roles must alternate', 'invalid_request', false],
      [403, 'permission_error', 'Your API key does not have permission to use the specified resource.', 'permission', false],
      [404, 'not_found_error', 'model: claude-nope', 'not_found', false],
      [500, 'api_error', 'Internal server error', 'server_error', true],
    ]
    for (const [status, type, message, code, retryable] of CASES) {
      test(`${status} ${type} → ${code} (${via})`, async () => {
        const body = { type: 'error', error: { type, message } }
        next = { status, body }
        const seen = upstream.requests.length
        const err = await fail(via)
        assertProxyError(err, { code, status, retryable, provider: 'anthropic', body, retryAfterMs: undefined })
        assert.ok(err.message.startsWith(`anthropic returned HTTP ${status}: ${message}`), err.message)
        assert.equal(upstream.requests.length, seen + 1)
      })
    }

    test(`429 rate_limit_error with retry-after: 7 → rate_limit, retryAfterMs 7000 (${via})`, async () => {
      const body = { type: 'error', error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' } }
      next = { status: 429, headers: { ...JSON_HEADERS, 'retry-after': '7' }, body }
      const err = await fail(via)
      assertProxyError(err, { code: 'rate_limit', status: 429, retryable: true, retryAfterMs: 7000, provider: 'anthropic', body })
      assert.match(err.message, /per-minute rate limit/)
    })

    test(`the key never appears in the error, even when the server echoes it (${via})`, async () => {
      next = {
        status: 401,
        body: {
          type: 'error',
          error: { type: 'authentication_error', message: `invalid x-api-key: ${KEY}` },
          echoed: { key: KEY, [KEY]: 'as a name too' },
        },
      }
      const err = await fail(via)
      assertProxyError(err, { code: 'authentication', status: 401, provider: 'anthropic' })
      assert.match(err.message, /invalid x-api-key/)
      for (const text of [err.message, JSON.stringify(err.body), JSON.stringify(err), String(err.stack)]) {
        assert.ok(!text.includes(KEY), `the API key leaked: ${text}`)
        assert.ok(!text.includes('sk-ant'), `an sk- key shape leaked: ${text}`)
      }
    })
  }

  test('a configured key of any shape, echoed by the server, is scrubbed (generate and a stream error event)', async (t) => {
    const apiKey = 'anthropic-private-token-0123456789'
    const echo = { type: 'error', error: { type: 'authentication_error', message: `key ${apiKey} revoked` } }
    const local = await startUpstream(async (req, socket) => {
      if (/event-stream/.test(req.headers.accept)) {
        const sse = await openSse(socket)
        await sse.send(`event: error\ndata: ${JSON.stringify(echo)}\n\n`)
        await sse.end()
      } else {
        await writeResponse(socket, 401, JSON_HEADERS, echo)
      }
    })
    t.after(() => local.close())
    const p = new LLMProxy({ anthropic: { apiKey, baseUrl: local.url } })
    for (const via of ['generate', 'stream']) {
      const err = await caught(async () => {
        if (via === 'generate') await p.generate({ model: MODEL, messages: USER })
        else for await (const _ of p.stream({ model: MODEL, messages: USER })) assert.fail('no chunk expected')
      })
      assertProxyError(err, { code: 'authentication', provider: 'anthropic' })
      assert.match(err.message, /revoked/)
      for (const text of [err.message, JSON.stringify(err.body), JSON.stringify(err), String(err.stack)]) {
        assert.ok(!text.includes(apiKey), `the API key leaked (${via}): ${text}`)
      }
    }
    assert.equal(local.requests[0].headers['x-api-key'], apiKey)
  })

  test('an error event inside a 200 stream echoing the key: scrubbed', async (t) => {
    const local = await startUpstream(async (req, socket) => {
      const sse = await openSse(socket)
      await sse.send(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `bad key ${KEY}` } })}\n\n`)
      await sse.end()
    })
    t.after(() => local.close())
    const { chunks, err } = await drain(anthropicProxy(local).stream({ model: MODEL, messages: USER }))
    assert.equal(chunks.length, 0)
    assertProxyError(err, { code: 'authentication', provider: 'anthropic' })
    for (const text of [err.message, JSON.stringify(err.body), JSON.stringify(err)]) assert.ok(!text.includes(KEY), text)
  })

  test('no anthropic.apiKey and no ANTHROPIC_API_KEY → config naming ANTHROPIC_API_KEY, nothing sent', async (t) => {
    assert.equal(process.env.ANTHROPIC_API_KEY, undefined, 'common.js clears the environment')
    const local = await startUpstream(replay(200, JSON_HEADERS, fixture('anthropic/messages/text.json')))
    t.after(() => local.close())
    const p = new LLMProxy({ anthropic: { baseUrl: local.url } })
    for (const model of ['claude-sonnet-4-5', 'anthropic/claude-3-5-haiku-20241022']) {
      for (const via of ['generate', 'stream']) {
        const err = await caught(() => (via === 'generate' ? p.generate({ model, messages: USER }) : p.stream({ model, messages: USER }).next()))
        assertProxyError(err, { code: 'config', retryable: false, provider: 'anthropic' })
        assert.match(err.message, /ANTHROPIC_API_KEY/)
      }
    }
    await sleep(20)
    assert.equal(local.requests.length, 0)
    assert.equal(local.connections.length, 0)
  })

  test('ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment are used', async (t) => {
    const local = await startUpstream(replay(200, JSON_HEADERS, fixture('anthropic/messages/text.json')))
    t.after(() => local.close())
    process.env.ANTHROPIC_API_KEY = 'sk-ant-from-env'
    process.env.ANTHROPIC_BASE_URL = local.url
    let p
    try {
      p = new LLMProxy()
    } finally {
      delete process.env.ANTHROPIC_API_KEY
      delete process.env.ANTHROPIC_BASE_URL
    }
    const res = await p.generate({ model: MODEL, messages: USER })
    assert.equal(res.id, 'msg_01TPXhkPo8jy6yQMrMhjpiAE')
    assert.equal(local.requests[0].headers['x-api-key'], 'sk-ant-from-env')
    assert.equal(local.requests[0].path, '/v1/messages')
  })

  describe('requests Anthropic cannot honour → invalid_request before any request', () => {
    let local
    let p
    before(async () => {
      local = await startUpstream(replay(500, JSON_HEADERS, { type: 'error', error: { type: 'api_error', message: 'must not be reached' } }))
      p = anthropicProxy(local)
    })
    after(() => {
      assert.equal(local.requests.length, 0, 'no request reached the provider')
      assert.equal(local.connections.length, 0, 'no connection was even opened')
      return local.close()
    })
    const CASES = [
      ['n: 2', { model: MODEL, messages: USER, n: 2 }, /`n`/],
      ['only a system message', { model: MODEL, messages: [{ role: 'system', content: 'You are terse.' }] }, /at least one/],
      [
        'tool_call arguments that are not JSON',
        {
          model: MODEL,
          messages: [
            { role: 'user', content: 'x' },
            { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{oops' } }] },
            { role: 'tool', tool_call_id: 'c1', content: '1' },
          ],
        },
        /messages\[1\]\.tool_calls\[0\]\.function\.arguments is not valid JSON/,
      ],
    ]
    for (const [name, request, message] of CASES) {
      for (const via of ['generate', 'stream']) {
        test(`${name} (${via})`, async () => {
          const err = await caught(() => (via === 'generate' ? p.generate(request) : p.stream(request).next()))
          assertProxyError(err, { code: 'invalid_request', retryable: false, message })
        })
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: leaving a stream early', () => {
  /** An Anthropic stream that sends its start and one text delta, then stalls until the test ends. */
  function stalls() {
    return async (req, socket) => {
      const sse = await openSse(socket)
      const send = (e) => sse.send(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
      await send({ type: 'message_start', message: { id: 'msg_stall', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } })
      await send({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
      await send({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'w1 ' } })
    }
  }

  async function assertClientClosed(upstream) {
    const conn = upstream.requests[0].conn
    await within(CLOSE_WITHIN_MS, conn.whenClosed, 'the client closing its upstream connection')
    assert.equal(conn.closed, true)
    assert.equal(conn.closedBy, 'client', 'the client, not the server, closed the connection')
  }

  test('break after the first chunk closes the upstream socket', async (t) => {
    const upstream = await startUpstream(stalls())
    t.after(() => upstream.close())
    let first
    for await (const c of anthropicProxy(upstream).stream({ model: MODEL, messages: USER })) {
      first = c
      break
    }
    assert.equal(first.choices[0].delta.role, 'assistant')
    assert.equal(first.id, 'msg_stall')
    await assertClientClosed(upstream)
  })

  test('abort mid-stream → aborted after the chunks so far, and the socket closes', async (t) => {
    const upstream = await startUpstream(stalls())
    t.after(() => upstream.close())
    const ac = new AbortController()
    const reason = new Error('stop it')
    const got = []
    const err = await caught(async () => {
      for await (const c of anthropicProxy(upstream).stream({ model: MODEL, messages: USER }, { signal: ac.signal })) {
        got.push(c)
        if (got.length === 2) setTimeout(() => ac.abort(reason), 20)
      }
    })
    assertProxyError(err, { code: 'aborted', retryable: false })
    assert.equal(err.cause, reason)
    assert.equal(got.length, 2)
    assert.equal(got[1].choices[0].delta.content, 'w1 ')
    await assertClientClosed(upstream)
  })

  test('abort while generate() waits → aborted, and the socket closes', async (t) => {
    const upstream = await startUpstream(() => {})
    t.after(() => upstream.close())
    const ac = new AbortController()
    const pending = anthropicProxy(upstream).generate({ model: MODEL, messages: USER }, { signal: ac.signal })
    await within(5000, upstream.waitForRequest(1), 'the request reaching the provider')
    ac.abort()
    assertProxyError(await caught(() => within(2000, pending, 'the rejection after abort')), { code: 'aborted' })
    await assertClientClosed(upstream)
  })
})

// ---------------------------------------------------------------------------------------------

describe('Anthropic: routing', () => {
  let upstream
  before(async () => {
    upstream = await startUpstream((req, socket) =>
      /event-stream/.test(req.headers.accept)
        ? writeResponse(socket, 200, SSE_HEADERS, fixture('anthropic/sse/text.sse'))
        : writeResponse(socket, 200, JSON_HEADERS, fixture('anthropic/messages/text.json')),
    )
  })
  after(() => upstream.close())

  for (const [model, upstreamModel] of [
    ['claude-sonnet-4-5', 'claude-sonnet-4-5'],
    ['anthropic/claude-3-5-haiku-20241022', 'claude-3-5-haiku-20241022'],
  ]) {
    test(`${model} reaches /v1/messages with model '${upstreamModel}'`, async () => {
      const proxy = anthropicProxy(upstream)
      assert.deepStrictEqual(
        { provider: proxy.resolve(model).provider, kind: proxy.resolve(model).kind, model: proxy.resolve(model).model },
        { provider: 'anthropic', kind: 'anthropic', model: upstreamModel },
      )
      const n = upstream.requests.length
      const res = await proxy.generate({ model, messages: USER })
      assert.equal(res.choices[0].finish_reason, 'stop')
      const chunks = await collect(proxy.stream({ model, messages: USER }))
      assert.equal(assembleChunks(chunks).finishReason, 'stop')
      assert.equal(upstream.requests.length, n + 2)
      for (const [i, stream] of [[n, false], [n + 1, true]]) {
        const req = upstream.requests[i]
        assertAnthropicRequest(req, { stream })
        assert.equal(req.json.model, upstreamModel)
        assert.equal(req.json.max_tokens, 8192)
        assert.equal(req.json.stream, stream ? true : undefined)
      }
    })
  }

  test('a base URL with a path and a trailing slash; anthropic.headers are sent', async () => {
    const proxy = new LLMProxy({
      anthropic: { apiKey: KEY, baseUrl: `${upstream.url}/gateway/anthropic/`, headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } },
    })
    const n = upstream.requests.length
    await proxy.generate({ model: MODEL, messages: USER })
    const req = upstream.requests[n]
    assert.equal(req.path, '/gateway/anthropic/v1/messages')
    assert.equal(req.headers['anthropic-beta'], 'prompt-caching-2024-07-31')
    assert.equal(req.headers['x-api-key'], KEY)
    assert.equal(req.headers['anthropic-version'], '2023-06-01')
  })
})
