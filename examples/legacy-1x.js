// The llm-proxy 1.x API, unchanged: code written for 1.x keeps working on 2.x (see "Migrating from
// 1.x" in the README). New code should use LLMProxy. mock/ models work here too, without
// credentials; with a real model, pass `credentials` as 1.x did.
//
//   node examples/legacy-1x.js
//
// expect: generateLLMResponse: Hello from the 1.x API.
// expect: generateLLMStreamResponse: Streamed the 1.x way.
// expect: Unsupported model: not-a-model
'use strict'

const {
  generateLLMResponse,
  generateLLMStreamResponse,
  OpenAISupportedLLMs,
  LLMProxyError,
} = require('..') // in your project: require('llm-proxy')

async function main() {
  const messages = [{ role: 'user', content: 'Hello?' }]

  const res = await generateLLMResponse({
    messages,
    model: 'mock/legacy', // with a key: OpenAISupportedLLMs.GPT_4_O_MINI and credentials: { apiKey }
    max_tokens: 100,
    temperature: 0,
    credentials: {},
    mock_response: 'Hello from the 1.x API.',
  })
  console.log('generateLLMResponse:', res.choices[0].message.content)

  const stream = await generateLLMStreamResponse({
    messages,
    model: 'mock/legacy',
    credentials: {},
    mock_response: 'Streamed the 1.x way.',
  })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  console.log('generateLLMStreamResponse:', text)

  // 1.x's routing and messages; the error is an LLMProxyError (it extends Error).
  try {
    await generateLLMResponse({ messages, model: 'not-a-model', credentials: {} })
  } catch (err) {
    console.log(`${err.message} (LLMProxyError: ${err instanceof LLMProxyError}, code: ${err.code})`)
  }
  console.log('a 1.x model name:', OpenAISupportedLLMs.GPT_4_O_MINI)
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
