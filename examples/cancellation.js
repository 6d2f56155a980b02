// Stopping a call: `break` out of a stream, abort it with an AbortSignal, or give it a deadline.
// Each closes the upstream request and its connection. An aborted call rejects with
// `code: 'aborted'` and the signal's reason as `cause`.
//
// mock/ answers at once, so the slow answers here come from a stand-in provider on 127.0.0.1
// (no key, no network) that streams a word every 50 ms, or never answers.
//
//   node examples/cancellation.js
//
// expect: break: stopped after 3 words
// expect: abort: code=aborted after 3 words
// expect: deadline: code=aborted (cause: TimeoutError)
// expect: timeouts.requestMs: code=timeout timeout=request
// expect: already aborted: code=aborted, nothing sent
'use strict'

const http = require('node:http')
const { LLMProxy } = require('..') // in your project: require('llm-proxy')

/** A stand-in provider on 127.0.0.1: streams a word every 50 ms, or (`silent`) never answers. */
async function slowProvider({ silent = false } = {}) {
  let requests = 0
  const server = http.createServer((req, res) => {
    requests++
    if (silent) return
    res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'close' })
    const chunk = (delta, finish = null) =>
      `data: ${JSON.stringify({ id: 'chatcmpl-slow', object: 'chat.completion.chunk', created: 0, model: 'slow', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    res.write(chunk({ role: 'assistant', content: '' }))
    let n = 0
    const timer = setInterval(() => {
      if (++n <= 100) return res.write(chunk({ content: ` word${n}` }))
      clearInterval(timer)
      res.end(`${chunk({}, 'stop')}data: [DONE]\n\n`)
    }, 50)
    res.on('close', () => clearInterval(timer))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    baseUrl: `http://127.0.0.1:${server.address().port}/v1`,
    requests: () => requests,
    close: () => {
      server.close()
      server.closeAllConnections?.()
    },
  }
}

const words = (chunk) => (chunk.choices[0]?.delta?.content ? 1 : 0)

async function main() {
  const messages = [{ role: 'user', content: 'Count to a hundred.' }]

  // 1. `break`: the stream stops, and with it the upstream request. No error.
  const proxy = new LLMProxy()
  let count = 0
  for await (const chunk of proxy.stream({ model: 'mock/x', messages, mock_response: 'one two three four five six' })) {
    count += words(chunk)
    if (count === 3) break
  }
  console.log(`break: stopped after ${count} words`)

  // 2. An AbortController: the iteration throws LLMProxyError code 'aborted'.
  const slow = await slowProvider()
  const viaSlow = new LLMProxy({ compatible: { slow: { baseUrl: slow.baseUrl } } })
  const controller = new AbortController()
  count = 0
  try {
    for await (const chunk of viaSlow.stream({ model: 'slow/model', messages }, { signal: controller.signal })) {
      count += words(chunk)
      if (count === 3) controller.abort()
    }
    console.log('abort: the stream ended before the abort')
  } catch (err) {
    console.log(`abort: code=${err.code} after ${count} words`)
  }
  slow.close()

  // 3. A deadline for the whole call: AbortSignal.timeout() (the cause is its TimeoutError)…
  const silent = await slowProvider({ silent: true })
  const viaSilent = new LLMProxy({ compatible: { silent: { baseUrl: silent.baseUrl } }, retry: { maxRetries: 0 } })
  try {
    await viaSilent.generate({ model: 'silent/model', messages }, { signal: AbortSignal.timeout(300) })
  } catch (err) {
    console.log(`deadline: code=${err.code} (cause: ${err.cause?.name})`)
  }
  // …or llm-proxy's own time limits, which are retried like any timeout (see the README, Timeouts).
  try {
    await viaSilent.generate({ model: 'silent/model', messages }, { timeouts: { requestMs: 300 } })
  } catch (err) {
    console.log(`timeouts.requestMs: code=${err.code} timeout=${err.timeout}`)
  }
  silent.close()

  // 4. A signal that has already fired: rejected at once, nothing is sent.
  try {
    await proxy.generate({ model: 'mock/x', messages }, { signal: AbortSignal.abort() })
  } catch (err) {
    console.log(`already aborted: code=${err.code}, nothing sent`)
  }
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
