// Must NOT compile under strict: a chunk's delta may carry no content (llm-proxy never sends null).
import { LLMProxy } from '../../..'

export async function lengths(): Promise<number> {
  let n = 0
  for await (const chunk of new LLMProxy().stream({ model: 'mock/x', messages: [{ role: 'user', content: 'x' }] })) {
    n += chunk.choices[0].delta.content.length
  }
  return n
}
