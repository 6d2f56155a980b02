// Must NOT compile: `timeouts.connectMs` belongs to the connection pool and cannot be set per call, and
// `retryOnFuturePromise` is a boolean (the call would be rejected with invalid_request).
import { LLMProxy } from '../../..'

const proxy = new LLMProxy()
const request = { model: 'mock/x', messages: [{ role: 'user' as const, content: 'x' }] }
void proxy.generate(request, { timeouts: { connectMs: 1000 } })
void proxy.stream(request, { retryOnFuturePromise: 'yes' })
