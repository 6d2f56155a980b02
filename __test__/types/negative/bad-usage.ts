// Must NOT compile under strict: only the last chunk of a stream carries usage, and an answer has none
// when the provider reported none.
import { LLMProxy } from '../../..'

export async function tokens(): Promise<number> {
  const proxy = new LLMProxy()
  const request = { model: 'mock/x', messages: [{ role: 'user' as const, content: 'x' }] }
  let n = (await proxy.generate(request)).usage.total_tokens
  for await (const chunk of proxy.stream(request)) {
    n += chunk.usage.total_tokens
  }
  return n
}
