'use strict'

// Non-streamed answers: every recorded `chat.completion` replayed byte for byte through generate(),
// the normalised result checked field by field, and the request checked as the provider received it.

const { test, describe, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { startUpstream, replay, writeResponse, JSON_HEADERS } = require('./helpers/upstream')
const { LLMProxy, fixture, fixtureJson, listFixtures, FIXTURES, USER } = require('./helpers/common')

const SENT_MESSAGES = [
  { role: 'system', content: 'You are funny.' },
  { role: 'user', content: 'Tell me a joke about opentelemetry' },
]

describe('fixture files', () => {
  test('are unchanged (sizes and SHA-256 from index.json)', () => {
    const index = JSON.parse(fixture('index.json').toString('utf8'))
    assert.ok(index.length >= 12)
    for (const entry of index) {
      const bytes = fixture(entry.file)
      assert.equal(bytes.length, entry.bytes, entry.file)
      assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), entry.sha256, entry.file)
    }
    assert.ok(FIXTURES.endsWith('fixtures'))
  })
})

describe('generate() replays every recorded chat.completion', () => {
  for (const file of listFixtures('openai/chat', '.json')) {
    for (const mode of ['whole', 'bytewise']) {
      test(`${file} (${mode})`, async (t) => {
        const body = fixture(file)
        const recorded = JSON.parse(body.toString('utf8'))
        const upstream = await startUpstream(replay(200, JSON_HEADERS, body, { mode }))
        t.after(() => upstream.close())
        const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
        const res = await proxy.generate({ model: 'gpt-4o', messages: SENT_MESSAGES })

        // What the provider received.
        assert.equal(upstream.requests.length, 1)
        const req = upstream.requests[0]
        assert.equal(req.method, 'POST')
        assert.equal(req.path, '/v1/chat/completions')
        assert.equal(req.headers.authorization, 'Bearer sk-test')
        assert.match(req.headers['content-type'], /^application\/json\b/)
        assert.equal(req.headers.accept, 'application/json')
        assert.equal(req.headers['content-length'], String(Buffer.byteLength(req.body)))
        assert.match(req.headers['user-agent'], /^llm-proxy\//)
        assert.deepEqual(req.json, { model: 'gpt-4o', messages: SENT_MESSAGES })

        // The normalised answer, field by field.
        const rc = recorded.choices[0]
        assert.equal(res.id, recorded.id)
        assert.equal(res.object, 'chat.completion')
        assert.equal(res.created, recorded.created)
        assert.ok(res.created < 1e10, 'created is in seconds')
        assert.equal(res.model, recorded.model)
        assert.equal(res.choices.length, 1)
        const choice = res.choices[0]
        assert.equal(choice.index, 0)
        assert.equal(choice.message.role, 'assistant')
        assert.equal(choice.message.content, rc.message.content)
        assert.equal(choice.message.refusal, null)
        assert.equal(choice.logprobs, null)
        assert.equal(choice.finish_reason, rc.finish_reason)
        if (rc.message.tool_calls) {
          assert.equal(choice.finish_reason, 'tool_calls')
          assert.equal(choice.message.content, null)
          assert.equal(choice.message.tool_calls.length, rc.message.tool_calls.length)
          choice.message.tool_calls.forEach((call, i) => {
            const want = rc.message.tool_calls[i]
            assert.equal(call.id, want.id)
            assert.equal(call.type, 'function')
            assert.equal(call.function.name, want.function.name)
            assert.equal(call.function.arguments, want.function.arguments)
            assert.equal(typeof JSON.parse(call.function.arguments).location, 'string')
          })
        } else {
          assert.equal(choice.finish_reason, 'stop')
          assert.equal(typeof choice.message.content, 'string')
          assert.equal(choice.message.tool_calls, undefined)
        }
        assert.equal(res.usage.prompt_tokens, recorded.usage.prompt_tokens)
        assert.equal(res.usage.completion_tokens, recorded.usage.completion_tokens)
        assert.equal(res.usage.total_tokens, recorded.usage.total_tokens)
        if (recorded.usage.prompt_tokens_details) {
          assert.equal(res.usage.prompt_tokens_details.cached_tokens, recorded.usage.prompt_tokens_details.cached_tokens)
          assert.equal(res.usage.completion_tokens_details.reasoning_tokens, 0)
          assert.deepEqual(res.usage.completion_tokens_details, recorded.usage.completion_tokens_details)
        } else {
          assert.equal(res.usage.prompt_tokens_details, undefined)
          assert.equal(res.usage.completion_tokens_details, undefined)
        }
        // Unmodelled provider fields pass through.
        assert.equal(res.service_tier, recorded.service_tier)
        assert.equal(res.system_fingerprint, recorded.system_fingerprint)
        if (rc.message.annotations) assert.deepEqual(choice.message.annotations, rc.message.annotations)

        // And nothing else changed: the recorded body plus `refusal: null` where it was missing.
        const expected = structuredClone(recorded)
        if (!('refusal' in expected.choices[0].message)) expected.choices[0].message.refusal = null
        assert.deepEqual(res, expected)
      })
    }
  }
})

describe('generate() normalises what compatible servers get wrong', () => {
  let upstream
  let reply
  after(() => upstream && upstream.close())

  test('missing id/model/created, milliseconds, tool calls without ids, stop after tool calls', async () => {
    upstream = await startUpstream((req, socket) => writeResponse(socket, 200, JSON_HEADERS, reply))
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    reply = {
      created: 1795561959577,
      choices: [
        {
          message: { content: null, tool_calls: [{ function: { name: 'f', arguments: '{}' } }] },
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 4 },
    }
    const res = await proxy.generate({ model: 'local/some-model', messages: USER })
    assert.match(res.id, /^chatcmpl-/)
    assert.equal(res.object, 'chat.completion')
    assert.equal(res.created, 1795561959)
    assert.equal(res.model, 'some-model')
    const call = res.choices[0].message.tool_calls[0]
    assert.match(call.id, /^call_/)
    assert.equal(call.type, 'function')
    assert.equal(res.choices[0].message.role, 'assistant')
    assert.equal(res.choices[0].finish_reason, 'tool_calls')
    assert.equal(res.usage.total_tokens, 7)
  })

  test('finish reasons in other vocabularies become OpenAI words; created 0 becomes now', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    for (const [given, want] of [
      ['end_turn', 'stop'],
      ['eos', 'stop'],
      ['max_tokens', 'length'],
      ['length', 'length'],
      ['tool_use', 'tool_calls'],
      ['safety', 'content_filter'],
    ]) {
      reply = {
        id: 'x-1',
        created: 0,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: 'cut' }, finish_reason: given }],
      }
      const before = Math.floor(Date.now() / 1000)
      const res = await proxy.generate({ model: 'local/m', messages: USER })
      const afterT = Math.ceil(Date.now() / 1000)
      assert.equal(res.choices[0].finish_reason, want, given)
      assert.equal(res.choices[0].native_finish_reason, given === want ? undefined : given, given)
      assert.ok(res.created >= before - 1 && res.created <= afterT + 1, `created ${res.created}`)
      assert.equal(res.usage, undefined)
    }
  })

  // Found by the types review: an unknown word was passed through, and an answer without a
  // finish_reason kept null; OpenAI's ChatCompletion allows neither.
  test('words with no OpenAI equivalent are stop, with the server word kept; none given is stop or tool_calls', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    const text = { role: 'assistant', content: 'x' }
    const call = { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }
    for (const [message, given, want, native] of [
      [text, 'abort', 'stop', 'abort'],
      [text, 'error', 'stop', 'error'],
      [text, null, 'stop', undefined],
      [text, undefined, 'stop', undefined],
      [call, undefined, 'tool_calls', undefined],
      [call, 'stop', 'tool_calls', 'stop'],
    ]) {
      reply = { id: 'x-2', created: 1, model: 'm', choices: [{ index: 0, message, finish_reason: given }] }
      const res = await proxy.generate({ model: 'local/m', messages: USER })
      assert.equal(res.choices[0].finish_reason, want, String(given))
      assert.equal(res.choices[0].native_finish_reason, native, String(given))
      if (native === undefined) assert.ok(!('native_finish_reason' in res.choices[0]))
    }
  })

  // Found by the types review: an answer holding an OpenAI custom tool call was a server_error, and
  // the same call sent back was invalid_request.
  test('custom tool calls come back as they are, and go back to OpenAI-format servers as they are', async () => {
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    const custom = { id: 'call_c', type: 'custom', custom: { name: 'sql', input: 'SELECT 1' } }
    reply = { id: 'x-3', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [custom] }, finish_reason: 'tool_calls' }] }
    const res = await proxy.generate({ model: 'local/m', messages: USER, tools: [{ type: 'custom', custom: { name: 'sql' } }] })
    assert.deepEqual(res.choices[0].message.tool_calls, [custom])
    assert.equal(res.choices[0].finish_reason, 'tool_calls')

    let sent
    const echo = await startUpstream((req, socket) => {
      sent = req.json
      writeResponse(socket, 200, JSON_HEADERS, { id: 'x-4', created: 1, model: 'm', choices: [{ index: 0, message: text(), finish_reason: 'stop' }] })
    })
    try {
      const history = [...USER, res.choices[0].message, { role: 'tool', tool_call_id: 'call_c', content: '1' }]
      await new LLMProxy({ compatible: { local: { baseUrl: echo.baseUrl } } }).generate({ model: 'local/m', messages: history })
      assert.deepEqual(sent.messages[USER.length].tool_calls, [custom])
    } finally {
      await echo.close()
    }

    // Anthropic takes no custom tool call, as it takes no custom tool: rejected before sending.
    const anthropic = new LLMProxy({ anthropic: { apiKey: 'sk-ant-test', baseUrl: 'http://127.0.0.1:9' }, retry: { maxRetries: 0 } })
    const history = [...USER, res.choices[0].message, { role: 'tool', tool_call_id: 'call_c', content: '1' }]
    await assert.rejects(anthropic.generate({ model: 'claude-sonnet-4-5', messages: history }), (err) => {
      assert.equal(err.code, 'invalid_request')
      assert.match(err.message, /messages\[1\]\.tool_calls\[0\] is a 'custom' tool call/)
      return true
    })
  })
})

function text() {
  return { role: 'assistant', content: 'ok' }
}
