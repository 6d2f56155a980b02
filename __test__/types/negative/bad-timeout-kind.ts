// Must NOT compile: the time limits are 'request', 'connect', 'firstChunk' and 'idle'.
import { LLMProxyError } from '../../..'

export function isFirstChunk(err: unknown): boolean {
  return err instanceof LLMProxyError && err.timeout === 'first_chunk'
}
