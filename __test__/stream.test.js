'use strict'

// Streamed answers: every recorded SSE body replayed byte for byte (in one write, and one byte per
// write) through stream(), held to the stream contract, and compared with what an independent
// reading of the recording says the answer is.

const { test, describe } = require('node:test')
const assert = require('node:assert/strict')
const { startUpstream, replay, openSse, chunk, sseBody, within, SSE_HEADERS } = require('./helpers/upstream')
const { LLMProxy, fixture, listFixtures, expectedFromSse, assembleChunks, collect, USER } = require('./helpers/common')

const FILES = [...listFixtures('openai/sse', '.sse'), ...listFixtures('openai-compatible/sse', '.sse')]

describe('stream() replays every recorded SSE body', () => {
  test('the recordings are all there', () => {
    assert.equal(FILES.length, 6)
  })

  for (const file of FILES) {
    const compatible = file.startsWith('openai-compatible/')
    for (const mode of ['whole', 'bytewise']) {
      test(`${file} (${mode})`, async (t) => {
        const body = fixture(file)
        const want = expectedFromSse(body)
        const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode }))
        t.after(() => upstream.close())
        const proxy = compatible
          ? new LLMProxy({ compatible: { gw: { baseUrl: upstream.baseUrl, apiKey: 'k-compat' } } })
          : new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
        const model = compatible ? 'gw/upstream-model' : 'gpt-4o'

        const before = Math.floor(Date.now() / 1000)
        const chunks = await collect(proxy.stream({ model, messages: USER }))
        const afterT = Math.ceil(Date.now() / 1000)

        // The request as the provider received it.
        assert.equal(upstream.requests.length, 1)
        const req = upstream.requests[0]
        assert.equal(req.method, 'POST')
        assert.equal(req.path, '/v1/chat/completions')
        assert.equal(req.headers.accept, 'text/event-stream')
        assert.match(req.headers['content-type'], /^application\/json\b/)
        assert.equal(req.headers.authorization, compatible ? 'Bearer k-compat' : 'Bearer sk-test')
        assert.deepEqual(req.json, {
          model: compatible ? 'upstream-model' : 'gpt-4o',
          messages: USER,
          stream: true,
          stream_options: { include_usage: true },
        })

        // The contract, and what the chunks assemble to.
        const got = assembleChunks(chunks)
        assert.equal(got.content, want.content)
        assert.equal(got.toolCalls.length, want.toolCalls.length)
        got.toolCalls.forEach((call, i) => {
          assert.equal(call.id, want.toolCalls[i].id)
          assert.equal(call.name, want.toolCalls[i].name)
          assert.equal(call.arguments, want.toolCalls[i].arguments)
          JSON.parse(call.arguments)
        })
        const wantFinish = want.toolCalls.length ? 'tool_calls' : 'stop'
        assert.equal(want.finishReason, wantFinish, 'the recording itself')
        assert.equal(got.finishReason, wantFinish)
        if (want.usage) {
          assert.deepEqual(got.usage, want.usage)
          assert.equal(chunks[chunks.length - 1].choices.length, 0)
        } else {
          assert.equal(got.usage, undefined)
          assert.ok(chunks.every((c) => c.usage === undefined || c.usage === null))
        }
        // The finish comes after all content, in the last chunk that has a choice.
        const withChoices = chunks.filter((c) => c.choices.length > 0)
        assert.ok(withChoices[withChoices.length - 1].choices[0].finish_reason, 'finish is on the last choice chunk')

        // Metadata is the provider's.
        assert.equal(chunks[0].id, want.id)
        assert.equal(chunks[0].model, want.model)
        if (want.created > 0) assert.equal(chunks[0].created, want.created)
        else assert.ok(chunks[0].created >= before - 1 && chunks[0].created <= afterT + 1)
        const passThrough = want.events[0]
        for (const c of withChoices) {
          if ('service_tier' in passThrough) assert.equal(c.service_tier, passThrough.service_tier)
          if ('system_fingerprint' in passThrough) assert.equal(c.system_fingerprint, passThrough.system_fingerprint)
        }
      })
    }
  }

  test('text-include-usage: the answer, 139 choice chunks and the usage chunk', async (t) => {
    const body = fixture('openai/sse/text-include-usage.sse')
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode: { chunks: 7 } }))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ openai: { apiKey: 'sk-test', baseUrl: upstream.baseUrl } })
    const chunks = await collect(proxy.stream({ model: 'gpt-4o-mini', messages: USER }))
    const got = assembleChunks(chunks)
    assert.ok(got.content.startsWith('I now can give a great answer'), got.content)
    assert.ok(got.content.endsWith('landmarks.'))
    assert.equal(chunks.length, 140)
    assert.deepEqual(got.usage, {
      prompt_tokens: 168,
      completion_tokens: 137,
      total_tokens: 305,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    })
    assert.equal(got.usage.prompt_tokens_details.cached_tokens, 0)
    assert.equal(got.usage.completion_tokens_details.reasoning_tokens, 0)
  })

  test('gateway tool call at upstream index 1 becomes index 0', async (t) => {
    const body = fixture('openai-compatible/sse/gateway-tool-call-index-1.sse')
    assert.deepEqual(expectedFromSse(body).upstreamToolIndexes, [1])
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body, { mode: 'bytewise' }))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { gw: { baseUrl: upstream.baseUrl } } })
    const chunks = await collect(proxy.stream({ model: 'haiku-via-gateway', messages: USER }))
    const indexes = chunks.flatMap((c) => c.choices.flatMap((ch) => (ch.delta.tool_calls || []).map((tc) => tc.index)))
    assert.ok(indexes.length > 0)
    assert.ok(indexes.every((i) => i === 0), JSON.stringify(indexes))
    const got = assembleChunks(chunks)
    assert.equal(got.content, 'Reading it.')
    assert.deepEqual(got.toolCalls, [{ id: 'toolu_sanitized', name: 'read_file', arguments: '{"path": "a.txt"}' }])
    assert.equal(got.finishReason, 'tool_calls')
  })

  test('deepseek usage on the finish chunk arrives as a separate last chunk', async (t) => {
    const body = fixture('openai-compatible/sse/deepseek-usage-in-final-choice-chunk.sse')
    const upstream = await startUpstream(replay(200, SSE_HEADERS, body))
    t.after(() => upstream.close())
    const proxy = new LLMProxy({ compatible: { deepseek: { baseUrl: upstream.baseUrl, apiKey: 'k' } } })
    const chunks = await collect(proxy.stream({ model: 'deepseek/deepseek-chat', messages: USER }))
    const got = assembleChunks(chunks)
    const last = chunks[chunks.length - 1]
    const finish = chunks[chunks.length - 2]
    assert.deepEqual(last.choices, [])
    assert.deepEqual(last.usage, {
      prompt_tokens: 12,
      completion_tokens: 89,
      total_tokens: 101,
      prompt_tokens_details: { cached_tokens: 0 },
      prompt_cache_hit_tokens: 0,
      prompt_cache_miss_tokens: 12,
    })
    assert.equal(finish.choices[0].finish_reason, 'stop')
    assert.ok(finish.usage === undefined || finish.usage === null, 'usage is not left on the finish chunk')
    assert.ok(got.content.startsWith('Sure! Here'))
    assert.ok(got.content.endsWith(' 😄'))
  })
})

describe('stream() holds hand-written streams to the contract', () => {
  async function run(events, { raw } = {}) {
    const upstream = await startUpstream(async (req, socket) => {
      const sse = await openSse(socket)
      if (raw) await sse.send(raw)
      for (const e of events) await sse.event(e)
      await sse.done()
      await sse.end()
    })
    try {
      const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
      return await collect(proxy.stream({ model: 'local/m', messages: USER }))
    } finally {
      await upstream.close()
    }
  }

  test('[DONE] without a finish_reason gets one finish chunk (stop), usage still last', async () => {
    const chunks = await run([
      chunk({ delta: { content: 'hi' } }),
      chunk({ usage: { prompt_tokens: 2, completion_tokens: 1 } }),
    ])
    const got = assembleChunks(chunks)
    assert.equal(got.content, 'hi')
    assert.equal(got.finishReason, 'stop')
    assert.deepEqual(got.usage, { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 })
  })

  test('duplicate finish reasons are reduced to one; stop after tool calls becomes tool_calls', async () => {
    const chunks = await run([
      chunk({ delta: { tool_calls: [{ index: 3, id: 'c1', type: 'function', function: { name: 'f', arguments: '' } }] } }),
      chunk({ delta: { tool_calls: [{ index: 3, function: { arguments: '{}' } }] } }),
      chunk({ delta: {}, finish: 'stop' }),
      chunk({ delta: {}, finish: 'stop' }),
    ])
    const got = assembleChunks(chunks)
    assert.equal(got.finishReason, 'tool_calls')
    assert.deepEqual(got.toolCalls, [{ id: 'c1', name: 'f', arguments: '{}' }])
  })

  test('tool calls without index or id are numbered in order and get ids', async () => {
    const chunks = await run([
      chunk({ delta: { tool_calls: [{ id: 'x1', function: { name: 'a', arguments: '{' } }] } }),
      chunk({ delta: { tool_calls: [{ function: { arguments: '}' } }] } }),
      chunk({ delta: { tool_calls: [{ id: 'x2', function: { name: 'b', arguments: '{}' } }] } }),
      chunk({ delta: { tool_calls: [{ index: 5, function: { name: 'c', arguments: '[]' } }] } }),
      chunk({ delta: {}, finish: 'tool_use' }),
    ])
    const got = assembleChunks(chunks)
    assert.equal(got.toolCalls.length, 3)
    assert.deepEqual(got.toolCalls[0], { id: 'x1', name: 'a', arguments: '{}' })
    assert.deepEqual(got.toolCalls[1], { id: 'x2', name: 'b', arguments: '{}' })
    assert.match(got.toolCalls[2].id, /^call_/)
    assert.equal(got.toolCalls[2].arguments, '[]')
    assert.equal(got.finishReason, 'tool_calls')
  })

  test('two choices (n: 2): role on the first delta of each, one finish per choice; created in ms → s', async () => {
    const c = (choices, extra = {}) => ({ id: 'x', object: 'chat.completion.chunk', created: 1795561959577, model: 'm', choices, ...extra })
    const chunks = await run([
      c([{ index: 0, delta: { content: 'A' }, finish_reason: null }]),
      c([{ index: 1, delta: { content: 'B' }, finish_reason: null }]),
      c([{ index: 0, delta: { content: 'a' }, finish_reason: 'stop' }]),
      c([{ index: 1, delta: { content: 'b' }, finish_reason: 'length' }]),
      c([], { usage: { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 } }),
    ])
    const per = { 0: { text: '', roles: 0, finishes: [] }, 1: { text: '', roles: 0, finishes: [] } }
    for (const ch of chunks) {
      assert.equal(ch.created, 1795561959)
      for (const choice of ch.choices) {
        const p = per[choice.index]
        if (choice.delta.role) {
          assert.equal(p.text, '', 'the role comes on the first delta of the choice')
          p.roles++
        }
        p.text += choice.delta.content || ''
        if (choice.finish_reason) p.finishes.push(choice.finish_reason)
      }
    }
    assert.deepEqual(per, {
      0: { text: 'Aa', roles: 1, finishes: ['stop'] },
      1: { text: 'Bb', roles: 1, finishes: ['length'] },
    })
    assert.deepEqual(chunks[chunks.length - 1].choices, [])
    assert.equal(chunks[chunks.length - 1].usage.total_tokens, 5)
  })

  test('reasoning_content and refusal deltas pass through', async () => {
    const chunks = await run([
      chunk({ delta: { role: 'assistant', reasoning_content: 'Think' } }),
      chunk({ delta: { reasoning_content: 'ing.' } }),
      chunk({ delta: { refusal: 'No.' } }),
      chunk({ delta: {}, finish: 'content_filter' }),
    ])
    const got = assembleChunks(chunks)
    assert.equal(got.finishReason, 'content_filter')
    assert.equal(chunks.map((c) => c.choices[0].delta.reasoning_content || '').join(''), 'Thinking.')
    assert.equal(chunks.map((c) => c.choices[0].delta.refusal || '').join(''), 'No.')
  })

  test('a request with stream: false still streams, and asks for usage', async () => {
    let seen
    const upstream = await startUpstream((req, socket) => {
      seen = req.json
      return replay(200, SSE_HEADERS, sseBody(['a', 'b']))(req, socket)
    })
    try {
      const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
      const chunks = await collect(
        proxy.stream({ model: 'local/m', messages: USER, stream: false, stream_options: { include_usage: false } }),
      )
      assert.equal(assembleChunks(chunks).content, 'ab')
      assert.equal(seen.stream, true)
      assert.deepEqual(seen.stream_options, { include_usage: true })
    } finally {
      await upstream.close()
    }
  })
})

describe('chunks arrive as they are sent', () => {
  test('the consumer gets the first chunks while the provider is still paused', async (t) => {
    let release
    const gate = new Promise((resolve) => (release = resolve))
    let finished = false
    const upstream = await startUpstream(async (req, socket) => {
      const sse = await openSse(socket)
      await sse.event(chunk({ delta: { role: 'assistant', content: '' } }))
      await sse.event(chunk({ delta: { content: 'one' } }))
      await sse.event(chunk({ delta: { content: ' two' } }))
      await gate
      await sse.event(chunk({ delta: { content: ' three' } }))
      await sse.event(chunk({ delta: {}, finish: 'stop' }))
      await sse.done()
      await sse.end()
      finished = true
    })
    t.after(() => {
      release()
      return upstream.close()
    })
    const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
    const it = proxy.stream({ model: 'local/m', messages: USER })[Symbol.asyncIterator]()
    const early = []
    while (early.length < 3) {
      const step = await within(5000, it.next(), 'the first three chunks (the provider is paused)')
      assert.equal(step.done, false)
      early.push(step.value)
    }
    assert.equal(finished, false)
    assert.deepEqual(
      early.map((c) => c.choices[0].delta.content),
      ['', 'one', ' two'],
    )
    assert.equal(early[0].choices[0].delta.role, 'assistant')
    release()
    const rest = []
    for (let step = await it.next(); !step.done; step = await it.next()) rest.push(step.value)
    assert.equal(finished, true)
    const got = assembleChunks([...early, ...rest])
    assert.equal(got.content, 'one two three')
    assert.equal(got.finishReason, 'stop')
  })
})

describe('the iterator', () => {
  test('steps asked for without waiting are answered in order, before and after a batch arrives', async () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`)
    const request = { model: 'mock/x', messages: [{ role: 'user', content: words.join(' ') }] }
    // Two streams differ only in their id and time; what a chunk says is its choices and usage.
    const said = (c) => JSON.stringify([c.choices, c.usage])
    const expected = []
    for await (const c of new LLMProxy().stream(request)) expected.push(said(c))
    assert.ok(expected.length > 40)

    const it = new LLMProxy().stream(request)[Symbol.asyncIterator]()
    // Ten steps before anything has arrived, then one awaited, then the rest all at once.
    const early = Array.from({ length: 10 }, () => it.next())
    const middle = await it.next()
    const late = Array.from({ length: expected.length }, () => it.next())
    const results = [...(await Promise.all(early)), middle, ...(await Promise.all(late))]
    const got = results.filter((r) => !r.done).map((r) => said(r.value))
    assert.deepEqual(got, expected)
    assert.ok(results.slice(expected.length).every((r) => r.done), 'then only done')
  })
})
