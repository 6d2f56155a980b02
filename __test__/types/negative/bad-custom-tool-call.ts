// Must NOT compile: a tool call may be one of OpenAI's custom tool calls, which has no `function`;
// `type` must be checked first.
import { LLMProxy } from '../../..'

export async function firstFunctionName(): Promise<string | undefined> {
  const res = await new LLMProxy().generate({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })
  return res.choices[0].message.tool_calls?.[0].function.name
}
