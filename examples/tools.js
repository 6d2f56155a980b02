// Tool calls and their results, round trip: the model asks for a tool, the program runs it and sends
// the result back with the call's id, and the model answers with it. The same request works for every
// provider (Anthropic gets tool_use / tool_result blocks, Bedrock its own shapes).
//
//   node examples/tools.js
//   LLM_PROXY_MODEL=claude-sonnet-4-5 ANTHROPIC_API_KEY=… node examples/tools.js
//
// The mock/ provider answers in text only: it cannot make a tool call. Against it, this example
// stands in for the model with the call a real model makes here, so the rest of the round trip (the
// tool result sent back, matched by id, and the final answer) still runs through llm-proxy.
//
// expect: tool call: get_weather({"city":"Paris"})
// expect: answer: It is sunny and 21 °C in Paris.
'use strict'

const { LLMProxy } = require('..') // in your project: require('llm-proxy')

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The current weather in a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', description: 'The city, e.g. Paris' } },
        required: ['city'],
      },
    },
  },
]

/** The tools this program has, by name. */
const handlers = {
  get_weather: ({ city }) => ({ city, temperature_c: 21, sky: 'sunny' }),
}

async function main() {
  const proxy = new LLMProxy()
  const model = process.env.LLM_PROXY_MODEL || 'mock/tools'
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }]

  // 1. The model decides to call the tool.
  const first = await proxy.generate({ model, messages, tools, tool_choice: 'auto', mock_response: 'Let me check.' })
  let message = first.choices[0].message
  if (!message.tool_calls || message.tool_calls.length === 0) {
    console.log(`(the model answered in text: ${JSON.stringify(message.content)}; using the tool call a real model makes here)`)
    message = {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_weather_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
    }
  }
  // The assistant message goes back into the history as it came, tool calls and all.
  messages.push(message)

  // 2. The program runs each call and answers it, by id.
  for (const call of message.tool_calls) {
    const handler = handlers[call.function.name]
    const result = handler ? handler(JSON.parse(call.function.arguments)) : { error: `no tool ${call.function.name}` }
    console.log(`tool call: ${call.function.name}(${call.function.arguments}) -> ${JSON.stringify(result)}`)
    messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify(result) })
  }

  // 3. The model answers with the results.
  const final = await proxy.generate({ model, messages, tools, mock_response: 'It is sunny and 21 °C in Paris.' })
  console.log('answer:', final.choices[0].message.content)
  console.log('finish_reason:', final.choices[0].finish_reason)
}

main().catch((err) => {
  console.error(`${err.name} [${err.code}]: ${err.message}`)
  process.exitCode = 1
})
