'use strict'

// Many calls at once on one proxy: each gets its own answer, whole and in order.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { startUpstream, openSse, chunk, writeResponse, tick, JSON_HEADERS } = require('./helpers/upstream')
const { LLMProxy, collect, assembleChunks } = require('./helpers/common')

const N = 50

/** The answer the provider gives to a question: derived from it, different for each request. */
function answerTo(question) {
  const n = Number(/#(\d+)/.exec(question)[1])
  return Array.from({ length: 5 + (n % 7) }, (_, i) => `${question.replace(/\s/g, '_')}-w${i}`).join(' ')
}

test(`${N} concurrent streams on one proxy each get their own answer`, async (t) => {
  const upstream = await startUpstream(async (req, socket) => {
    const question = req.json.messages[0].content
    const id = `chatcmpl-${question.replace(/\W/g, '')}`
    const sse = await openSse(socket)
    await sse.event(chunk({ id, delta: { role: 'assistant', content: '' } }))
    const words = answerTo(question).split(' ')
    for (let i = 0; i < words.length; i++) {
      await tick()
      await sse.event(chunk({ id, delta: { content: (i ? ' ' : '') + words[i] } }))
    }
    await sse.event(chunk({ id, delta: {}, finish: 'stop' }))
    await sse.event(chunk({ id, usage: { prompt_tokens: 1, completion_tokens: words.length, total_tokens: words.length + 1 } }))
    await sse.done()
    await sse.end()
  })
  t.after(() => upstream.close())
  const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })

  const questions = Array.from({ length: N }, (_, i) => `question #${i}`)
  const results = await Promise.all(
    questions.map((q) => collect(proxy.stream({ model: 'local/m', messages: [{ role: 'user', content: q }] }))),
  )
  assert.equal(upstream.requests.length, N)
  results.forEach((chunks, i) => {
    const got = assembleChunks(chunks)
    assert.equal(got.content, answerTo(questions[i]), `stream ${i}`)
    assert.equal(chunks[0].id, `chatcmpl-question${i}`)
    assert.equal(got.finishReason, 'stop')
    assert.equal(got.usage.completion_tokens, answerTo(questions[i]).split(' ').length)
  })
})

test(`${N} concurrent generate calls on one proxy each get their own answer`, async (t) => {
  const upstream = await startUpstream(async (req, socket) => {
    const question = req.json.messages[0].content
    await tick()
    await writeResponse(socket, 200, JSON_HEADERS, {
      id: `chatcmpl-${question.replace(/\W/g, '')}`,
      object: 'chat.completion',
      created: 1700000000,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: answerTo(question) }, finish_reason: 'stop' }],
    }, { mode: { chunks: 3 } })
  })
  t.after(() => upstream.close())
  const proxy = new LLMProxy({ compatible: { local: { baseUrl: upstream.baseUrl } } })
  const questions = Array.from({ length: N }, (_, i) => `question #${i}`)
  const results = await Promise.all(
    questions.map((q) => proxy.generate({ model: 'local/m', messages: [{ role: 'user', content: q }] })),
  )
  results.forEach((res, i) => {
    assert.equal(res.id, `chatcmpl-question${i}`)
    assert.equal(res.choices[0].message.content, answerTo(questions[i]))
  })
})
