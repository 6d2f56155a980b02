// Must NOT compile: a compatible endpoint needs a baseUrl, and `openAI` is not an option.
import { LLMProxy } from '../../..'

export const a = new LLMProxy({ compatible: { groq: { apiKey: 'k' } } })
export const b = new LLMProxy({ openAI: { apiKey: 'k' } })
