// Tool calls and their results, round trip: the model asks for a tool, the program runs it and sends
// the result back with the call's id, and the model answers with it. The same request works for every
// provider (Anthropic gets tool_use / tool_result blocks, Bedrock its own shapes).
//
//   node examples/tools.js
//   LLM_PROXY_MODEL=claude-sonnet-4-5 ANTHROPIC_API_KEY=… node examples/tools.js
//
// Against mock/, `mock_tool_calls` scripts the model's tool call, so the whole round trip (the
// call, its result sent back by id, and the final answer) runs through llm-proxy without a key.
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

  // 1. The model decides to call the tool. (mock/ is told which call to make; a real model ignores
  //    mock_tool_calls, which is never sent upstream.)
  const first = await proxy.generate({
    model,
    messages,
    tools,
    tool_choice: 'auto',
    mock_tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
  })
  const message = first.choices[0].message
  if (!message.tool_calls || message.tool_calls.length === 0) {
    console.log(`the model answered without calling the tool: ${message.content}`)
    return
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
