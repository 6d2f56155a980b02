// Must NOT compile: 'rate_limited' is not an LLMProxyErrorCode.
import { LLMProxyError } from '../../..'

export function isRateLimit(err: unknown): boolean {
  return err instanceof LLMProxyError && err.code === 'rate_limited'
}
