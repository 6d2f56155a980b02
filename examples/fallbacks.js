// Fallbacks: when the requested model fails in a way another model may not (overloaded, 5xx,
// timeouts, rate limits…), after its own retries, the next model in its list is asked. The answer
// (a stream's first chunk) says who answered in `llm_proxy`; an error lists every model tried.
//
// The primary model here is a stand-in provider on 127.0.0.1 that is always overloaded (503); the
// fallback is mock/. No key, no network.
//
//   LLM_PROXY_LOG=debug node examples/fallbacks.js    # shows each attempt and each move
//
// expect: generate: answered by mock/backup (fallback: true) after primary/big-model failed with overloaded
// expect: stream: answered by mock/backup
// expect: without fallbacks: code=overloaded
// expect: tried: primary/big-model (overloaded), primary/other-model (overloaded)
'use strict'

const http = require('node:http')
const { LLMProxy } = require('..') // in your project: require('llm-proxy')

/** A stand-in OpenAI-compatible provider on 127.0.0.1 that is always overloaded. */
async function overloadedProvider() {
  const server = http.createServer((req, res) => {
    req.resume()
    res.writeHead(503, { 'content-type': 'application/json', connection: 'close' })
    res.end(JSON.stringify({ error: { message: 'The server is overloaded', type: 'server_error' } }))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { baseUrl: `http://127.0.0.1:${server.address().port}/v1`, close: () => server.close() }
}

async function main() {
  const primary = await overloadedProvider()
  const proxy = new LLMProxy({
    compatible: { primary: { baseUrl: primary.baseUrl } },
    // For every call to 'primary/big-model': the models to try next, in order.
    fallbacks: { 'primary/big-model': ['mock/backup'] },
    retry: { maxRetries: 1, initialDelayMs: 50 },
  })
  const request = {
    model: 'primary/big-model',
    messages: [{ role: 'user', content: 'Hello?' }],
    mock_response: 'Hello from the backup model.',
  }

  const res = await proxy.generate(request)
  const served = res.llm_proxy
  const failed = served.failed.map((f) => `${f.model} failed with ${f.code}`).join(', ')
  console.log(`generate: answered by ${served.model} (fallback: ${served.fallback}) after ${failed}`)
  console.log(`  ${res.choices[0].message.content}`)

  // A stream moves on only before its first chunk; the first chunk says who answered.
  let first = null
  let text = ''
  for await (const chunk of proxy.stream(request)) {
    first = first || chunk
    text += chunk.choices[0]?.delta?.content ?? ''
  }
  console.log(`stream: answered by ${first.llm_proxy.model}: ${text}`)

  // Per call: other fallbacks, or none.
  try {
    await proxy.generate(request, { fallbacks: [] })
  } catch (err) {
    console.log(`without fallbacks: code=${err.code}: ${err.message}`)
  }
  try {
    await proxy.generate(request, { fallbacks: ['primary/other-model'], retry: { maxRetries: 0 } })
  } catch (err) {
    console.log(`tried: ${err.tried.map((t) => `${t.model} (${t.code})`).join(', ')}`)
  }
  primary.close()
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
