// Must NOT compile: `model` is a string. (__test__/types.test.js checks that tsc rejects each file here.)
import { LLMProxy } from '../../..'

const proxy = new LLMProxy()
void proxy.generate({ model: 1, messages: [{ role: 'user', content: 'x' }] })
