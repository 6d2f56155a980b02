// A streamed answer: `stream()` returns an async iterable of OpenAI `chat.completion.chunk`s,
// delivered as they arrive. The first delta has `role: 'assistant'`, exactly one chunk carries the
// `finish_reason`, and the usage comes alone in a last chunk with `choices: []`.
//
//   node examples/streaming.js
//   LLM_PROXY_MODEL=gpt-4o-mini OPENAI_API_KEY=… node examples/streaming.js
//
// expect: Streams arrive word by word
// expect: finish_reason: stop
// expect: usage: 
'use strict'

const { LLMProxy } = require('..') // in your project: require('llm-proxy')

async function main() {
  const proxy = new LLMProxy()
  const request = {
    model: process.env.LLM_PROXY_MODEL || 'mock/streaming',
    messages: [{ role: 'user', content: 'Describe streaming in one sentence.' }],
    mock_response: 'Streams arrive word by word, so the reader sees the answer as it is written.',
  }

  let chunks = 0
  let text = ''
  let finishReason = null
  let usage = null
  for await (const chunk of proxy.stream(request)) {
    chunks++
    const choice = chunk.choices[0]
    if (choice) {
      const piece = choice.delta.content ?? ''
      text += piece
      process.stdout.write(piece)
      if (choice.finish_reason) finishReason = choice.finish_reason
    }
    if (chunk.usage) usage = chunk.usage
  }
  process.stdout.write('\n')
  console.log(`chunks: ${chunks}, characters: ${text.length}`)
  console.log('finish_reason:', finishReason)
  console.log('usage:', usage)
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
