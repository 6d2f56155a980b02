// Streams an answer from the built-in mock/ provider: no API key, no network.
// Run with `npm run demo`. Swap the model for 'gpt-4o' (with OPENAI_API_KEY set) to ask a real one.
//
// expect: Hello! This answer was streamed word by word
const { LLMProxy } = require('..')

async function main() {
  const proxy = new LLMProxy()
  const request = {
    model: 'mock/demo',
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Say hello.' },
    ],
    mock_response: 'Hello! This answer was streamed word by word by the built-in mock provider, in the OpenAI chunk format.',
  }
  console.log('route:', proxy.resolve(request.model))
  let usage
  for await (const chunk of proxy.stream(request)) {
    process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
    if (chunk.usage) usage = chunk.usage
  }
  process.stdout.write('\n')
  console.log('usage:', usage)
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exit(1)
})
