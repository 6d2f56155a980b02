'use strict'

// What reaches the provider: the request body and headers for OpenAI and for OpenAI-compatible
// servers, after translation of legacy fields and of fields a model does not accept.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startUpstream, writeResponse, JSON_HEADERS, SSE_HEADERS, sseBody } = require('./helpers/upstream')
const { LLMProxy, USER, collect, assembleChunks } = require('./helpers/common')

const COMPLETION = {
  id: 'chatcmpl-req',
  object: 'chat.completion',
  created: 1700000000,
  model: 'echo',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
}

let upstream
before(async () => {
  upstream = await startUpstream((req, socket) =>
    /event-stream/.test(req.headers.accept)
      ? writeResponse(socket, 200, SSE_HEADERS, sseBody(['ok']))
      : writeResponse(socket, 200, JSON_HEADERS, COMPLETION),
  )
})
after(() => upstream.close())

/** Sends `request` through `proxy.generate` and returns the request the provider received. */
async function sent(proxy, request) {
  const n = upstream.requests.length
  const res = await proxy.generate(request)
  assert.equal(res.choices[0].message.content, 'ok')
  assert.equal(upstream.requests.length, n + 1)
  return upstream.requests[n]
}

describe('compatible endpoints', () => {
  test("reached as 'name/model': the prefix is stripped, the key sent", async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey: 'k' } } })
    const req = await sent(proxy, { model: 'local/some-model', messages: USER })
    assert.equal(req.method, 'POST')
    assert.equal(req.path, '/v1/chat/completions')
    assert.equal(req.headers.authorization, 'Bearer k')
    assert.match(req.headers['content-type'], /^application\/json\b/)
    assert.deepEqual(req.json, { model: 'some-model', messages: USER })
  })

  test('a bare unknown model goes whole to the only compatible endpoint', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl, apiKey: 'k' } } })
    let req = await sent(proxy, { model: 'some-model', messages: USER })
    assert.equal(req.json.model, 'some-model')
    assert.equal(req.headers.authorization, 'Bearer k')
    req = await sent(proxy, { model: 'meta-llama/Llama-3-70b', messages: USER })
    assert.equal(req.json.model, 'meta-llama/Llama-3-70b')
  })

  test('without an apiKey no authorization header is sent', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    const req = await sent(proxy, { model: 'local/m', messages: USER })
    assert.equal(req.headers.authorization, undefined)
    const streamed = await collect(proxy.stream({ model: 'local/m', messages: USER }))
    assert.equal(assembleChunks(streamed).content, 'ok')
    assert.equal(upstream.requests[upstream.requests.length - 1].headers.authorization, undefined)
  })

  test('max_completion_tokens is sent as max_tokens; developer becomes system', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    const req = await sent(proxy, {
      model: 'local/m',
      messages: [
        { role: 'developer', content: 'rules' },
        { role: 'user', content: 'x' },
      ],
      max_completion_tokens: 64,
      reasoning_effort: 'low',
    })
    assert.deepEqual(req.json, {
      model: 'm',
      messages: [
        { role: 'system', content: 'rules' },
        { role: 'user', content: 'x' },
      ],
      max_tokens: 64,
      reasoning_effort: 'low',
    })
    const req2 = await sent(proxy, { model: 'local/m', messages: USER, max_tokens: 32 })
    assert.equal(req2.json.max_tokens, 32)
    assert.equal('max_completion_tokens' in req2.json, false)
  })

  test('custom headers are sent; base URLs with a path or a trailing slash work', async () => {
    const proxy = new LLMProxy({
      compatible: {
        a: { baseUrl: `${upstream.url}/openai/v1/`, headers: { 'X-Team': 'blue' } },
        b: { baseUrl: `${upstream.url}/api` },
      },
    })
    let req = await sent(proxy, { model: 'a/m', messages: USER })
    assert.equal(req.path, '/openai/v1/chat/completions')
    assert.equal(req.headers['x-team'], 'blue')
    req = await sent(proxy, { model: 'b/m', messages: USER })
    assert.equal(req.path, '/api/chat/completions')
    assert.equal(req.headers['x-team'], undefined)
  })
})

describe('OpenAI request translation', () => {
  let proxy
  before(() => {
    proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
  })

  test('legacy functions / function_call / role: function become tools / tool_choice / tool_calls + role: tool', async () => {
    const req = await sent(proxy, {
      model: 'gpt-4o',
      functions: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } }],
      function_call: { name: 'get_weather' },
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { role: 'function', name: 'get_weather', content: '20C' },
      ],
    })
    const body = req.json
    assert.equal('functions' in body, false)
    assert.equal('function_call' in body, false)
    assert.deepEqual(body.tools, [
      {
        type: 'function',
        function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } },
      },
    ])
    assert.deepEqual(body.tool_choice, { type: 'function', function: { name: 'get_weather' } })
    assert.equal(body.messages.length, 3)
    assert.deepEqual(body.messages[0], { role: 'user', content: 'Weather in Paris?' })
    const call = body.messages[1]
    assert.equal(call.role, 'assistant')
    assert.equal('function_call' in call, false)
    assert.equal(call.tool_calls.length, 1)
    assert.equal(call.tool_calls[0].type, 'function')
    assert.deepEqual(call.tool_calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' })
    assert.equal(typeof call.tool_calls[0].id, 'string')
    assert.ok(call.tool_calls[0].id.length > 0)
    assert.deepEqual(body.messages[2], { role: 'tool', tool_call_id: call.tool_calls[0].id, content: '20C' })
  })

  test("legacy function_call: 'auto' / 'none' become tool_choice strings", async () => {
    for (const choice of ['auto', 'none']) {
      const req = await sent(proxy, {
        model: 'gpt-4o',
        functions: [{ name: 'f' }],
        function_call: choice,
        messages: USER,
      })
      assert.equal(req.json.tool_choice, choice)
      assert.deepEqual(req.json.tools, [{ type: 'function', function: { name: 'f' } }])
    }
  })

  test('two legacy calls to the same function are matched to their results in order', async () => {
    const req = await sent(proxy, {
      model: 'gpt-4o',
      functions: [{ name: 'f' }],
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{"n":1}' } },
        { role: 'function', name: 'f', content: 'one' },
        { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{"n":2}' } },
        { role: 'function', name: 'f', content: 'two' },
      ],
    })
    const m = req.json.messages
    assert.notEqual(m[1].tool_calls[0].id, m[3].tool_calls[0].id)
    assert.equal(m[2].tool_call_id, m[1].tool_calls[0].id)
    assert.equal(m[4].tool_call_id, m[3].tool_calls[0].id)
  })

  test('tool_calls / tool_call_id history, tools, content parts are sent verbatim', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
        ],
      },
      {
        role: 'assistant',
        content: 'Checking both.',
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: '20C' },
      { role: 'tool', tool_call_id: 'call_b', content: '25C' },
    ]
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' }, strict: true } }]
    const req = await sent(proxy, {
      model: 'gpt-4o',
      messages,
      tools,
      tool_choice: 'required',
      parallel_tool_calls: false,
    })
    assert.deepEqual(req.json, {
      model: 'gpt-4o',
      messages,
      tools,
      tool_choice: 'required',
      parallel_tool_calls: false,
    })
  })

  test('tool call arguments given as an object are sent as JSON text', async () => {
    const req = await sent(proxy, {
      model: 'gpt-4o',
      messages: [
        { role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: { a: 1 } } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'ok' },
      ],
    })
    assert.equal(req.json.messages[0].tool_calls[0].function.arguments, '{"a":1}')
  })

  test('tool_choice and parallel_tool_calls without tools are not sent', async () => {
    const req = await sent(proxy, { model: 'gpt-4o', messages: USER, tool_choice: 'auto', parallel_tool_calls: true })
    assert.deepEqual(req.json, { model: 'gpt-4o', messages: USER })
  })

  for (const model of ['gpt-5', 'gpt-5-mini', 'o3-mini', 'o1']) {
    test(`${model}: max_completion_tokens instead of max_tokens, no sampling parameters`, async () => {
      const req = await sent(proxy, {
        model,
        messages: USER,
        max_tokens: 100,
        temperature: 0.2,
        top_p: 0.9,
        stop: ['END'],
        presence_penalty: 0.5,
        logprobs: true,
        reasoning_effort: 'high',
        n: 1,
      })
      assert.deepEqual(req.json, {
        model,
        messages: USER,
        max_completion_tokens: 100,
        reasoning_effort: 'high',
        n: 1,
      })
    })
  }

  test('gpt-4o: max_tokens and sampling parameters kept, reasoning_effort dropped', async () => {
    const req = await sent(proxy, {
      model: 'gpt-4o',
      messages: USER,
      max_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      stop: 'END',
      seed: 7,
      user: 'u-1',
      response_format: { type: 'json_object' },
      reasoning_effort: 'low',
    })
    assert.deepEqual(req.json, {
      model: 'gpt-4o',
      messages: USER,
      max_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      stop: 'END',
      seed: 7,
      user: 'u-1',
      response_format: { type: 'json_object' },
    })
  })

  test('unknown extra fields pass through; mock_response and stream never do', async () => {
    const req = await sent(proxy, {
      model: 'gpt-4o',
      messages: USER,
      logprobs: true,
      top_logprobs: 2,
      n: 2,
      store: true,
      metadata: { team: 'a' },
      mock_response: 'never sent',
      stream: true,
      stream_options: { include_usage: true },
    })
    assert.deepEqual(req.json, {
      model: 'gpt-4o',
      messages: USER,
      logprobs: true,
      top_logprobs: 2,
      n: 2,
      store: true,
      metadata: { team: 'a' },
    })
  })

  test("'openai/…' prefix is stripped; organization, project and custom headers are sent", async () => {
    const p = new LLMProxy({
      openai: {
        apiKey: 'sk-test',
        baseUrl: upstream.baseUrl,
        organization: 'org-1',
        project: 'proj-1',
        headers: { 'X-Trace': 't-1' },
      },
    })
    const req = await sent(p, { model: 'openai/gpt-4o', messages: USER })
    assert.equal(req.json.model, 'gpt-4o')
    assert.equal(req.headers['openai-organization'], 'org-1')
    assert.equal(req.headers['openai-project'], 'proj-1')
    assert.equal(req.headers['x-trace'], 't-1')
    assert.equal(req.headers.authorization, 'Bearer sk-test')
  })

  test('routes send a model name to another provider and model', async () => {
    const p = new LLMProxy({
      openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl },
      compatible: { local: { baseUrl: `${upstream.url}/local/v1` } },
      routes: { fast: 'local/tiny-model', 'gpt-4*': 'openai/gpt-4o-mini' },
    })
    let req = await sent(p, { model: 'fast', messages: USER })
    assert.equal(req.path, '/local/v1/chat/completions')
    assert.equal(req.json.model, 'tiny-model')
    req = await sent(p, { model: 'gpt-4-turbo', messages: USER })
    assert.equal(req.path, '/v1/chat/completions')
    assert.equal(req.json.model, 'gpt-4o-mini')
  })
})
