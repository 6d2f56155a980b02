// The ESM entry: the CommonJS module loaded with a plain require, its exports named. (Importing
// index.js directly also works, but Node then loads it, and everything it requires, through the
// ESM loader: about 8 ms more at startup.) The same instance serves require and import.
import { createRequire } from 'node:module'

const cjs = createRequire(import.meta.url)('./index.js')

export const {
  LLMProxy,
  LLMProxyError,
  generateLLMResponse,
  generateLLMStreamResponse,
  llmAsJudge,
  responseContainsFuturePromise,
  Providers,
  OpenAISupportedLLMs,
  AnthropicSupportedLLMs,
  BedrockAnthropicSupportedLLMs,
  BedrockAnthropicContentType,
  Llama3_1SupportedLLMs,
  ERROR_CODES,
} = cjs

export default cjs
