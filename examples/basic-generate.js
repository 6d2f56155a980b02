// One question, one answer: `generate()` resolves with an OpenAI `chat.completion`, whatever the
// provider. Runs as it is against the built-in mock/ provider (no key, no network); to ask a real
// model, set LLM_PROXY_MODEL (e.g. gpt-4o, claude-sonnet-4-5) and its key (OPENAI_API_KEY,
// ANTHROPIC_API_KEY…).
//
//   node examples/basic-generate.js
//
// expect: route: mock
// expect: answer: Paris is the capital of France.
// expect: finish_reason: stop
'use strict'

const { LLMProxy } = require('..') // in your project: require('llm-proxy')

async function main() {
  const proxy = new LLMProxy() // keys and base URLs from the environment
  const model = process.env.LLM_PROXY_MODEL || 'mock/basic'

  // Where the model goes, without sending anything.
  const route = proxy.resolve(model)
  console.log(`route: ${route.provider} (upstream model ${route.model}, matched by ${route.matchedBy})`)

  const res = await proxy.generate({
    model,
    messages: [
      { role: 'system', content: 'Answer in one sentence.' },
      { role: 'user', content: 'What is the capital of France?' },
    ],
    max_tokens: 60,
    temperature: 0,
    // What mock/ answers (by default it echoes the last user message); never sent to a real provider.
    mock_response: 'Paris is the capital of France.',
  })

  const choice = res.choices[0]
  console.log('answer:', choice.message.content)
  console.log('finish_reason:', choice.finish_reason)
  console.log('usage:', res.usage)
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
