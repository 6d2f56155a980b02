'use strict'

// The built-in mock/ provider (no network, no key) and resolve().

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const { LLMProxy, collect, assembleChunks, caught, assertProxyError } = require('./helpers/common')

describe('mock/', () => {
  const proxy = new LLMProxy()

  test('generate echoes the last user message', async () => {
    const before = Math.floor(Date.now() / 1000)
    const res = await proxy.generate({
      model: 'mock/echo',
      messages: [
        { role: 'system', content: 'sys words here' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: [{ type: 'text', text: 'second ' }, { type: 'text', text: 'question now' }] },
      ],
    })
    const afterT = Math.ceil(Date.now() / 1000)
    assert.match(res.id, /^chatcmpl-/)
    assert.equal(res.object, 'chat.completion')
    assert.ok(res.created >= before - 1 && res.created <= afterT + 1)
    assert.equal(res.model, 'mock/echo')
    assert.equal(res.choices.length, 1)
    assert.deepEqual(res.choices[0], {
      index: 0,
      message: { role: 'assistant', content: 'second question now', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    })
    // Words, not tokens: 3 + 2 + 1 + 3 in, 3 out.
    assert.deepEqual(res.usage, {
      prompt_tokens: 9,
      completion_tokens: 3,
      total_tokens: 12,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    })
  })

  test('mock_response is the reply', async () => {
    const res = await proxy.generate({ model: 'mock/x', messages: [{ role: 'user', content: 'q' }], mock_response: 'canned answer' })
    assert.equal(res.choices[0].message.content, 'canned answer')
    assert.equal(res.usage.completion_tokens, 2)
  })

  test('stream yields word pieces that join to the reply: role first, one stop, usage last', async () => {
    const reply = 'Hello  big\nworld, émoji 😄 ok'
    const chunks = await collect(proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'q' }], mock_response: reply }))
    const got = assembleChunks(chunks)
    assert.equal(got.content, reply)
    assert.equal(got.finishReason, 'stop')
    assert.deepEqual(got.usage, {
      prompt_tokens: 1,
      completion_tokens: 6,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    })
    const pieces = chunks.map((c) => c.choices[0] && c.choices[0].delta.content).filter((p) => p)
    assert.deepEqual(pieces, ['Hello', '  big', '\nworld,', ' émoji', ' 😄', ' ok'])
    assert.equal(chunks[0].choices[0].delta.role, 'assistant')
    assert.equal(chunks[0].model, 'mock/x')
    assert.deepEqual(chunks[chunks.length - 1].choices, [])
  })

  test('stream echoes the last user message too', async () => {
    const chunks = await collect(proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'say this back' }] }))
    assert.equal(assembleChunks(chunks).content, 'say this back')
  })

  test('an empty reply still streams role, finish and usage', async () => {
    const chunks = await collect(proxy.stream({ model: 'mock/x', messages: [{ role: 'user', content: 'q' }], mock_response: '' }))
    const got = assembleChunks(chunks)
    assert.equal(got.content, '')
    assert.equal(got.finishReason, 'stop')
    assert.equal(got.usage.completion_tokens, 0)
  })

  test("resolve('mock/x')", () => {
    assert.deepEqual(proxy.resolve('mock/x'), { provider: 'mock', kind: 'mock', model: 'x', matchedBy: 'prefix' })
  })
})

describe('resolve()', () => {
  test('gpt-4o → openai from the catalogue', () => {
    const proxy = new LLMProxy()
    assert.deepEqual(proxy.resolve('gpt-4o'), { provider: 'openai', kind: 'openai', model: 'gpt-4o', matchedBy: 'catalogue' })
    for (const m of ['gpt-5-mini', 'o1', 'o3-mini', 'o4-mini', 'chatgpt-4o-latest']) {
      assert.equal(proxy.resolve(m).provider, 'openai', m)
    }
    assert.deepEqual(proxy.resolve('openai/gpt-4o'), { provider: 'openai', kind: 'openai', model: 'gpt-4o', matchedBy: 'prefix' })
  })

  test("'groq/llama' with a compatible groq endpoint → by prefix", () => {
    const proxy = new LLMProxy({ compatible: { groq: { baseUrl: 'https://api.groq.com/openai/v1', apiKey: 'gsk' } } })
    assert.deepEqual(proxy.resolve('groq/llama'), {
      provider: 'groq',
      kind: 'openai-compatible',
      model: 'llama',
      matchedBy: 'prefix',
    })
    assert.deepEqual(proxy.resolve('some-model'), {
      provider: 'groq',
      kind: 'openai-compatible',
      model: 'some-model',
      matchedBy: 'only-compatible',
    })
  })

  test('routes: exact names and prefix* patterns, before the catalogue', () => {
    const proxy = new LLMProxy({
      compatible: { a: { baseUrl: 'http://127.0.0.1:1/v1' }, b: { baseUrl: 'http://127.0.0.1:2/v1' } },
      routes: { 'gpt-4o': 'a/my-gpt', 'llama*': 'b/llama-hosted', 'llama-3*': 'a/llama3', fast: 'claude-haiku-4-5' },
    })
    assert.deepEqual(proxy.resolve('gpt-4o'), { provider: 'a', kind: 'openai-compatible', model: 'my-gpt', matchedBy: 'route' })
    assert.equal(proxy.resolve('llama-2').provider, 'b')
    assert.equal(proxy.resolve('llama-3.1').provider, 'a')
    assert.deepEqual(proxy.resolve('fast'), {
      provider: 'anthropic',
      kind: 'anthropic',
      model: 'claude-haiku-4-5',
      matchedBy: 'route',
    })
    assert.equal(proxy.resolve('gpt-4o-mini').matchedBy, 'catalogue')
  })

  test('a route to nowhere is a config error', () => {
    const proxy = new LLMProxy({ routes: { x: 'nowhere' } })
    assertProxyError(
      (() => {
        try {
          proxy.resolve('x')
        } catch (e) {
          return e
        }
      })(),
      { code: 'config', message: /provider\/model/ },
    )
  })

  test('claude-sonnet-4-5 → anthropic; eu.anthropic.claude-… → bedrock', () => {
    const proxy = new LLMProxy()
    assert.deepEqual(proxy.resolve('claude-sonnet-4-5'), {
      provider: 'anthropic',
      kind: 'anthropic',
      model: 'claude-sonnet-4-5',
      matchedBy: 'catalogue',
    })
    assert.deepEqual(proxy.resolve('eu.anthropic.claude-3-7-sonnet-20250219-v1:0'), {
      provider: 'bedrock',
      kind: 'bedrock',
      model: 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0',
      matchedBy: 'catalogue',
    })
    for (const m of ['anthropic.claude-3-5-sonnet-20240620-v1:0', 'meta.llama3-1-70b-instruct-v1:0', 'amazon.nova-pro-v1:0']) {
      assert.equal(proxy.resolve(m).provider, 'bedrock', m)
    }
    assert.deepEqual(proxy.resolve('bedrock-converse/anthropic.claude-3-haiku'), {
      provider: 'bedrock',
      kind: 'bedrock',
      model: 'anthropic.claude-3-haiku',
      matchedBy: 'prefix',
      converse: true,
    })
  })

  test('errors: unknown model, empty model, not a string', async () => {
    const proxy = new LLMProxy()
    const thrown = (fn) => {
      try {
        fn()
      } catch (e) {
        return e
      }
      assert.fail('expected a throw')
    }
    assertProxyError(thrown(() => proxy.resolve('my-model')), { code: 'unsupported_model', message: /'my-model'.*'openai\/…'/ })
    assertProxyError(thrown(() => proxy.resolve('')), { code: 'invalid_request' })
    assertProxyError(thrown(() => proxy.resolve(5)), { code: 'invalid_request' })
    assertProxyError(await caught(async () => proxy.resolve('o')), { code: 'unsupported_model' })
  })
})

describe('mock/ scripted tool calls (mock_tool_calls)', () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }]
  const request = {
    model: 'mock/tools',
    messages: [{ role: 'user', content: 'Weather in Paris and Rome?' }],
    tools,
    mock_tool_calls: [
      { name: 'get_weather', arguments: { city: 'Paris' } },
      { name: 'get_weather', arguments: '{"city":"Rome"}' },
    ],
  }
  const expected = [
    { id: 'call_mock_0', name: 'get_weather', arguments: '{"city":"Paris"}' },
    { id: 'call_mock_1', name: 'get_weather', arguments: '{"city":"Rome"}' },
  ]

  test('generate() answers with the tool calls, content null, finish_reason tool_calls', async () => {
    const res = await new LLMProxy().generate(request)
    const msg = res.choices[0].message
    assert.equal(msg.content, null)
    assert.deepEqual(
      msg.tool_calls.map((c) => ({ id: c.id, type: c.type, name: c.function.name, arguments: c.function.arguments })),
      expected.map((c) => ({ ...c, type: 'function' })),
    )
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
  })

  test('stream() delivers the same calls as OpenAI streams them, after any mock_response text', async () => {
    const got = assembleChunks(await collect(new LLMProxy().stream({ ...request, mock_response: 'Checking both.' })))
    assert.equal(got.content, 'Checking both.')
    assert.deepEqual(got.toolCalls, expected)
    assert.equal(got.finishReason, 'tool_calls')
  })

  test('a malformed mock_tool_calls is an invalid_request naming it', async () => {
    const err = await caught(() => new LLMProxy().generate({ ...request, mock_tool_calls: [{ arguments: {} }] }))
    assertProxyError(err, { code: 'invalid_request', message: /mock_tool_calls/ })
  })
})
