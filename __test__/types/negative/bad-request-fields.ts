// Must NOT compile: an unknown reasoning effort, an image part whose image_url is not an object, and a
// tool result without the id of the call it answers (each rejected at run time with invalid_request).
import { LLMProxy } from '../../..'

const proxy = new LLMProxy()
void proxy.generate({ model: 'o3', messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'extreme' })
void proxy.generate({ model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'https://x/y.png' }] }] })
void proxy.generate({ model: 'gpt-4o', messages: [{ role: 'tool', content: '20C' }] })
