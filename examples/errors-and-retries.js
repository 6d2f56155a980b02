// Errors and retries. Everything llm-proxy throws is an LLMProxyError with a `code` to branch on,
// `retryable`, the provider's `status` and `body`, and `retryAfterMs`. Rate limits, overloads, 5xx,
// timeouts and broken connections are retried (`retry: { maxRetries, initialDelayMs, maxDelayMs }`,
// honouring Retry-After); 400/401/403/404 are not.
//
// The provider here is a stand-in on 127.0.0.1 (no key, no network) that answers 429 twice, then 200.
// Run it with LLM_PROXY_LOG=debug to see each attempt, its status and the wait before the next:
//
//   LLM_PROXY_LOG=debug node examples/errors-and-retries.js
//
// expect: no-such-model: code=unsupported_model retryable=false
// expect: code=invalid_request retryable=false
// expect: answered after 3 requests: Third time lucky.
// expect: code=overloaded retryable=true status=503
// expect: code=authentication retryable=false status=401
'use strict'

const http = require('node:http')
const { LLMProxy, LLMProxyError } = require('..') // in your project: require('llm-proxy')

function completion(content) {
  return {
    id: 'chatcmpl-local',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'local-model',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
  }
}

/**
 * A stand-in OpenAI-compatible provider on 127.0.0.1 that answers the n-th request with
 * `responses[n]` (`[status, headers, body]`; the last one repeats).
 */
async function localProvider(responses) {
  let count = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const [status, headers, body] = responses[Math.min(count++, responses.length - 1)]
      res.writeHead(status, { 'content-type': 'application/json', connection: 'close', ...headers })
      res.end(JSON.stringify(body))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    baseUrl: `http://127.0.0.1:${server.address().port}/v1`,
    requests: () => count,
    close: () => server.close(),
  }
}

const describe = (err) => `code=${err.code} retryable=${err.retryable}${err.status ? ` status=${err.status}` : ''}`

/** What a program might do about an error, by its code. */
function whatToDo(err) {
  switch (err.code) {
    case 'rate_limit':
      return err.retryable ? `wait ${err.retryAfterMs ?? 'a while'} ms, then try again` : 'the quota is spent: check the plan'
    case 'authentication':
    case 'permission':
      return 'check the API key'
    case 'invalid_request':
    case 'unsupported_model':
      return 'fix the request'
    case 'aborted':
      return 'nothing: the caller cancelled'
    default:
      return err.retryable ? 'try again later, or another model (see fallbacks.js)' : 'report it'
  }
}

async function main() {
  const messages = [{ role: 'user', content: 'Hello?' }]

  // 1. Mistakes found before anything is sent.
  const proxy = new LLMProxy()
  for (const request of [
    { model: 'no-such-model', messages },
    { model: 'mock/x', messages: [{ role: 'user', content: 42 }] },
  ]) {
    try {
      await proxy.generate(request)
    } catch (err) {
      if (!(err instanceof LLMProxyError)) throw err
      console.log(`${request.model}: ${describe(err)} -> ${whatToDo(err)}`)
      console.log(`  ${err.message}`)
    }
  }

  // 2. Rate limited twice, then answered: retried, honouring the provider's retry-after-ms.
  const tooMany = [429, { 'retry-after-ms': '100' }, { error: { message: 'Rate limit reached', type: 'rate_limit' } }]
  let local = await localProvider([tooMany, tooMany, [200, {}, completion('Third time lucky.')]])
  let withLocal = new LLMProxy({ compatible: { local: { baseUrl: local.baseUrl } }, retry: { maxRetries: 2 } })
  const res = await withLocal.generate({ model: 'local/some-model', messages })
  console.log(`answered after ${local.requests()} requests: ${res.choices[0].message.content}`)
  local.close()

  // 3. Still overloaded when the retries are spent: the error says how many attempts were made.
  local = await localProvider([[503, {}, { error: { message: 'The server is overloaded', type: 'server_error' } }]])
  withLocal = new LLMProxy({ compatible: { local: { baseUrl: local.baseUrl } }, retry: { maxRetries: 1, initialDelayMs: 50 } })
  try {
    await withLocal.generate({ model: 'local/some-model', messages })
  } catch (err) {
    console.log(`${describe(err)} after ${local.requests()} requests -> ${whatToDo(err)}`)
    console.log(`  ${err.message}`)
  }
  local.close()

  // 4. A bad key is not retried; the provider's own error body comes with the error.
  local = await localProvider([[401, {}, { error: { message: 'Invalid API key', type: 'invalid_request_error', code: 'invalid_api_key' } }]])
  withLocal = new LLMProxy({ compatible: { local: { baseUrl: local.baseUrl, apiKey: 'not-a-real-key' } } })
  try {
    await withLocal.generate({ model: 'local/some-model', messages })
  } catch (err) {
    console.log(`${describe(err)} after ${local.requests()} request -> ${whatToDo(err)}`)
    console.log('  body:', JSON.stringify(err.body))
  }
  local.close()
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
