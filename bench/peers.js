'use strict'

// The peers, each as plain code a user of that client would write. An adapter is
//   { name, route, create(env) → client }
// and a client is
//   { generate() → { text, finish, tokens },
//     stream(onFirst) → { text, chunks, finish, tokens } }
// where `chunks` counts the content chunks that reached this consumer (non-empty text deltas),
// `onFirst()` is called on the first of them, `finish` is the finish reason as the peer reports it,
// and `tokens` the completion tokens of the usage it delivered. bench/peer.js checks all of them.
//
// env: { origin, openaiBase, anthropicBase, pathPrefix, root } — the mock upstream's origin, the base
// URLs to give SDKs (with the stream-shape prefix, see bench/upstream.js), the bare path prefix, and
// the repository root (this package).

const path = require('node:path')
const C = require('./content.js')

const ROOT = path.join(__dirname, '..')

const OPENAI_MESSAGES = [
  { role: 'system', content: C.SYSTEM },
  { role: 'user', content: C.USER },
]
const MAX_TOKENS = 1024

// ---- raw undici: the floor ---------------------------------------------------------------------

/**
 * The minimal SSE reader a careful hand-written client would use: split the text into lines, take
 * `data:` lines, JSON.parse each (the mock never splits one event's data over several lines).
 */
async function* sseData(body) {
  body.setEncoding('utf8')
  let rest = ''
  for await (const piece of body) {
    const lines = (rest + piece).split('\n')
    rest = lines.pop()
    for (const line of lines) {
      if (line.startsWith('data: ')) {
        const data = line.slice(6)
        if (data === '[DONE]') return
        yield JSON.parse(data)
      }
    }
  }
}

async function undiciCall(pool, pathName, headers, request) {
  const res = await pool.request({ method: 'POST', path: pathName, headers, body: JSON.stringify(request) })
  if (res.statusCode !== 200) {
    const text = await res.body.text()
    throw new Error(`HTTP ${res.statusCode}: ${text}`)
  }
  return res.body
}

function undiciClient(route, env) {
  const { Pool } = require('undici')
  const pool = new Pool(env.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 })
  if (route === 'openai') {
    const pathName = `${env.pathPrefix}/v1/chat/completions`
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${C.OPENAI_KEY}` }
    return {
      async generate() {
        const body = await undiciCall(pool, pathName, headers, { model: C.OPENAI_MODEL, messages: OPENAI_MESSAGES, max_tokens: MAX_TOKENS })
        const res = await body.json()
        const choice = res.choices[0]
        return { text: choice.message.content, finish: choice.finish_reason, tokens: res.usage.completion_tokens }
      },
      async stream(onFirst) {
        const body = await undiciCall(pool, pathName, headers, {
          model: C.OPENAI_MODEL,
          messages: OPENAI_MESSAGES,
          max_tokens: MAX_TOKENS,
          stream: true,
          stream_options: { include_usage: true },
        })
        let text = ''
        let chunks = 0
        let finish = null
        let tokens = null
        for await (const chunk of sseData(body)) {
          const choice = chunk.choices[0]
          if (choice !== undefined) {
            const piece = choice.delta.content
            if (piece) {
              if (chunks++ === 0) onFirst()
              text += piece
            }
            if (choice.finish_reason) finish = choice.finish_reason
          }
          if (chunk.usage) tokens = chunk.usage.completion_tokens
        }
        return { text, chunks, finish, tokens }
      },
    }
  }
  const pathName = `${env.pathPrefix}/v1/messages`
  const headers = {
    'content-type': 'application/json',
    'x-api-key': C.ANTHROPIC_KEY,
    'anthropic-version': '2023-06-01',
  }
  const request = () => ({
    model: C.ANTHROPIC_MODEL,
    max_tokens: MAX_TOKENS,
    system: C.SYSTEM,
    messages: [{ role: 'user', content: C.USER }],
  })
  return {
    async generate() {
      const body = await undiciCall(pool, pathName, headers, request())
      const res = await body.json()
      let text = ''
      for (const block of res.content) if (block.type === 'text') text += block.text
      return { text, finish: res.stop_reason, tokens: res.usage.output_tokens }
    },
    async stream(onFirst) {
      const body = await undiciCall(pool, pathName, headers, { ...request(), stream: true })
      let text = ''
      let chunks = 0
      let finish = null
      let tokens = null
      let stopped = false
      for await (const event of sseData(body)) {
        if (event.type === 'content_block_delta') {
          if (event.delta.type === 'text_delta' && event.delta.text) {
            if (chunks++ === 0) onFirst()
            text += event.delta.text
          }
        } else if (event.type === 'message_delta') {
          finish = event.delta.stop_reason
          tokens = event.usage.output_tokens
        } else if (event.type === 'message_stop') {
          stopped = true
        } else if (event.type === 'error') {
          throw new Error(`stream error: ${JSON.stringify(event.error)}`)
        }
      }
      if (!stopped) throw new Error('the stream ended before message_stop')
      return { text, chunks, finish, tokens }
    },
  }
}

// ---- llm-proxy (this package) ------------------------------------------------------------------

async function consumeOpenAIChunks(iterable, onFirst) {
  let text = ''
  let chunks = 0
  let finish = null
  let tokens = null
  for await (const chunk of iterable) {
    const choice = chunk.choices[0]
    if (choice !== undefined) {
      const piece = choice.delta.content
      if (piece) {
        if (chunks++ === 0) onFirst()
        text += piece
      }
      if (choice.finish_reason) finish = choice.finish_reason
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens
  }
  return { text, chunks, finish, tokens }
}

function llmProxyClient(route, env) {
  const { LLMProxy } = require(env.root || ROOT)
  const proxy = new LLMProxy({
    openai: { apiKey: C.OPENAI_KEY, baseUrl: env.openaiBase },
    anthropic: { apiKey: C.ANTHROPIC_KEY, baseUrl: env.anthropicBase },
  })
  const model = route === 'openai' ? `openai/${C.OPENAI_MODEL}` : `anthropic/${C.ANTHROPIC_MODEL}`
  const request = () => ({ model, messages: OPENAI_MESSAGES, max_tokens: MAX_TOKENS })
  return {
    async generate() {
      const res = await proxy.generate(request())
      const choice = res.choices[0]
      return { text: choice.message.content, finish: choice.finish_reason, tokens: res.usage.completion_tokens }
    },
    stream(onFirst) {
      return consumeOpenAIChunks(proxy.stream(request()), onFirst)
    },
  }
}

// ---- the official openai SDK -------------------------------------------------------------------

function openaiSdkClient(route, env) {
  if (route !== 'openai') throw new Error('the openai SDK peer has only the openai route')
  const OpenAI = require('openai')
  const client = new OpenAI({ apiKey: C.OPENAI_KEY, baseURL: env.openaiBase })
  return {
    async generate() {
      const res = await client.chat.completions.create({ model: C.OPENAI_MODEL, messages: OPENAI_MESSAGES, max_tokens: MAX_TOKENS })
      const choice = res.choices[0]
      return { text: choice.message.content, finish: choice.finish_reason, tokens: res.usage.completion_tokens }
    },
    async stream(onFirst) {
      const stream = await client.chat.completions.create({
        model: C.OPENAI_MODEL,
        messages: OPENAI_MESSAGES,
        max_tokens: MAX_TOKENS,
        stream: true,
        stream_options: { include_usage: true },
      })
      return consumeOpenAIChunks(stream, onFirst)
    },
  }
}

// ---- llm-proxy 1.17.0 --------------------------------------------------------------------------

// 1.17.0 builds a new official SDK client for every call (createService in its dist/index.js), and
// those read the base URL from the environment: OPENAI_BASE_URL (openai v4) and ANTHROPIC_BASE_URL
// (@anthropic-ai/sdk 0.31). bench/peer.js sets both before this module is loaded.
function llmProxy1Client(route, env) {
  if (process.env.OPENAI_BASE_URL !== env.openaiBase || process.env.ANTHROPIC_BASE_URL !== env.anthropicBase) {
    throw new Error('llm-proxy-1 needs OPENAI_BASE_URL / ANTHROPIC_BASE_URL set to the mock upstream')
  }
  const v1 = require('llm-proxy-1')
  const params = () => ({
    model: route === 'openai' ? C.OPENAI_MODEL : C.ANTHROPIC_MODEL,
    messages: OPENAI_MESSAGES,
    max_tokens: MAX_TOKENS,
    credentials: { apiKey: route === 'openai' ? C.OPENAI_KEY : C.ANTHROPIC_KEY },
  })
  return {
    async generate() {
      const res = await v1.generateLLMResponse(params())
      const choice = res.choices[0]
      return { text: choice.message.content, finish: choice.finish_reason, tokens: res.usage.completion_tokens }
    },
    async stream(onFirst) {
      return consumeOpenAIChunks(await v1.generateLLMStreamResponse(params()), onFirst)
    },
  }
}

// The peers, in table order. `package` is what the import-time and installed-size figures measure.
const PEERS = {
  undici: { label: 'raw undici', routes: ['openai', 'anthropic'], create: undiciClient, package: 'undici' },
  'llm-proxy': { label: 'llm-proxy 2.x', routes: ['openai', 'anthropic'], create: llmProxyClient, package: '.' },
  openai: { label: 'openai SDK', routes: ['openai'], create: openaiSdkClient, package: 'openai' },
  'llm-proxy-1': { label: 'llm-proxy 1.17.0', routes: ['openai', 'anthropic'], create: llmProxy1Client, package: 'llm-proxy-1' },
}

// What each route's peers must report as the finish reason of a complete answer.
function expectedFinish(peer, route) {
  return peer === 'undici' && route === 'anthropic' ? 'end_turn' : 'stop'
}

module.exports = { PEERS, expectedFinish, sseData, ROOT }
