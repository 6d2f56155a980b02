'use strict'

// The benchmark's mock upstream: one loopback HTTP/1.1 server (node:http, keep-alive) that answers
//
//   POST …/v1/chat/completions   OpenAI Chat Completions: a JSON answer, or with `stream: true` an SSE
//                                stream (role chunk, N content chunks, finish chunk, a usage chunk when
//                                `stream_options.include_usage` is set, `data: [DONE]`)
//   POST …/v1/messages           Anthropic Messages: a JSON answer, or with `stream: true` an event
//                                stream (message_start, content_block_start, ping, N
//                                content_block_delta, content_block_stop, message_delta, message_stop)
//   GET  /_stats                 requests served and this process's CPU time, for the harness
//
// shaped like the recorded traffic in tests/fixtures/ (openai/chat/text-gpt35-2026.json,
// openai/sse/text-include-usage.sse, anthropic/messages/text.json, anthropic/sse/*.sse).
//
// The number of content chunks N and the delay between chunks (ms) are, by precedence:
//   a path prefix  /bench/c<N>-d<ms>/…  (so a client that only takes a base URL can choose them),
//   the query      ?chunks=N&delay=ms,
//   the headers    x-mock-chunks, x-mock-delay-ms,
//   the CLI        --chunks N --delay ms   (defaults 20 and 0).
//
// Requests are checked (path, key, JSON body with model and messages, Anthropic's max_tokens and
// anthropic-version) and answered 400/401/404 otherwise, so a peer that sends something wrong fails.
// Bodies are built once per shape and cached; with no delay a stream is written in one write (its
// events still separate SSE events), so the server is cheap next to any client.
//
//   node bench/upstream.js [--port 0] [--chunks 20] [--delay 0] [--exit-with-stdin]
// prints {"port":…,"pid":…} on its first stdout line once listening.

const http = require('node:http')
const C = require('./content.js')

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', chunks: 20, delay: 0, exitWithStdin: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--port') opts.port = Number(next())
    else if (a === '--host') opts.host = next()
    else if (a === '--chunks') opts.chunks = Number(next())
    else if (a === '--delay') opts.delay = Number(next())
    else if (a === '--exit-with-stdin') opts.exitWithStdin = true
    else throw new Error(`unknown argument ${a}`)
  }
  return opts
}

const CREATED = 1765398836
const MAX_CHUNKS = 1_000_000

// A deterministic stand-in for OpenAI's `obfuscation` padding, whose length varies per chunk.
function pad(i) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  let s = ''
  for (let k = 0; k < 1 + ((i * 7) % 11); k++) s += alphabet[(i * 31 + k * 17) % alphabet.length]
  return s
}

// ---- OpenAI ----------------------------------------------------------------------------------

const OPENAI_ID = 'chatcmpl-BenchMockUpstream0000000000'

function openaiJson() {
  return Buffer.from(
    JSON.stringify(
      {
        id: OPENAI_ID,
        object: 'chat.completion',
        created: CREATED,
        model: C.OPENAI_MODEL_SERVED,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: C.ANSWER, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage: {
          prompt_tokens: 27,
          completion_tokens: C.ANSWER_TOKENS,
          total_tokens: 27 + C.ANSWER_TOKENS,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: {
            reasoning_tokens: 0,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
          },
        },
        service_tier: 'default',
        system_fingerprint: 'fp_b3nchm0ck0',
      },
      null,
      2, // OpenAI answers non-streamed calls pretty-printed
    ),
  )
}

function openaiEvents(chunks, includeUsage) {
  const head = `{"id":"${OPENAI_ID}","object":"chat.completion.chunk","created":${CREATED},"model":"${C.OPENAI_MODEL_SERVED}","service_tier":"default","system_fingerprint":"fp_b3nchm0ck0","choices":`
  const event = (choices, usage, i) => `data: ${head}${choices},"usage":${usage},"obfuscation":"${pad(i)}"}\n\n`
  const events = [
    event(`[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`, 'null', 0),
  ]
  for (let i = 0; i < chunks; i++) {
    const delta = JSON.stringify({ content: C.streamPiece(i) })
    events.push(event(`[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":null}]`, 'null', i + 1))
  }
  events.push(event(`[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`, 'null', chunks + 1))
  if (includeUsage) {
    const usage = JSON.stringify({
      prompt_tokens: 27,
      completion_tokens: chunks,
      total_tokens: 27 + chunks,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    })
    events.push(event('[]', usage, chunks + 2))
  }
  events.push('data: [DONE]\n\n')
  return events
}

// ---- Anthropic -------------------------------------------------------------------------------

const ANTHROPIC_ID = 'msg_01BenchMockUpstream00000'

function anthropicJson() {
  return Buffer.from(
    JSON.stringify({
      id: ANTHROPIC_ID,
      type: 'message',
      role: 'assistant',
      model: C.ANTHROPIC_MODEL,
      content: [{ type: 'text', text: C.ANSWER }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: 27,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: C.ANSWER_TOKENS,
        service_tier: 'standard',
      },
    }),
  )
}

function anthropicEvents(chunks) {
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  const events = [
    ev('message_start', {
      message: {
        model: C.ANTHROPIC_MODEL,
        id: ANTHROPIC_ID,
        type: 'message',
        role: 'assistant',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: 27,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          output_tokens: 1,
          service_tier: 'standard',
        },
      },
    }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    'event: ping\ndata: {"type": "ping"}\n\n',
  ]
  for (let i = 0; i < chunks; i++) {
    events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: C.streamPiece(i) } }))
  }
  events.push(ev('content_block_stop', { index: 0 }))
  events.push(
    ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: chunks } }),
  )
  events.push(ev('message_stop', {}))
  return events
}

// ---- bodies, built once per shape ----------------------------------------------------------

const jsonBodies = { openai: openaiJson(), anthropic: anthropicJson() }
const streamCache = new Map()

function streamBody(format, chunks, includeUsage) {
  const key = `${format}:${chunks}:${includeUsage}`
  let body = streamCache.get(key)
  if (!body) {
    const events = (format === 'openai' ? openaiEvents(chunks, includeUsage) : anthropicEvents(chunks)).map((e) =>
      Buffer.from(e),
    )
    body = { events, whole: Buffer.concat(events) }
    if (streamCache.size > 64) streamCache.clear()
    streamCache.set(key, body)
  }
  return body
}

const JSON_HEADERS = {
  openai: (len) => [
    'content-type', 'application/json',
    'content-length', String(len),
    'openai-processing-ms', '212',
    'x-request-id', 'req_b3nchm0ck0',
  ],
  anthropic: (len) => [
    'content-type', 'application/json',
    'content-length', String(len),
    'request-id', 'req_01BenchMock',
  ],
}
const SSE_HEADERS = {
  openai: ['content-type', 'text/event-stream; charset=utf-8', 'cache-control', 'no-cache', 'x-request-id', 'req_b3nchm0ck0'],
  anthropic: ['content-type', 'text/event-stream; charset=utf-8', 'cache-control', 'no-cache', 'request-id', 'req_01BenchMock'],
}

// ---- the server --------------------------------------------------------------------------------

const stats = { requests: 0, json: 0, streams: 0, rejected: 0, chunks: 0, connections: 0 }

function reject(res, status, format, message) {
  stats.rejected++
  const body =
    format === 'anthropic'
      ? JSON.stringify({ type: 'error', error: { type: status === 401 ? 'authentication_error' : 'invalid_request_error', message } })
      : JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } })
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))])
  res.end(body)
  process.stderr.write(`upstream: ${status} ${message}\n`)
}

const PREFIX = /^\/bench\/c(\d+)-d(\d+(?:\.\d+)?)(\/.*)$/

function handle(req, res, raw, defaults) {
  let url = req.url
  let query = ''
  const q = url.indexOf('?')
  if (q >= 0) {
    query = url.slice(q + 1)
    url = url.slice(0, q)
  }
  let chunks = defaults.chunks
  let delay = defaults.delay
  if (req.headers['x-mock-chunks'] !== undefined) chunks = Number(req.headers['x-mock-chunks'])
  if (req.headers['x-mock-delay-ms'] !== undefined) delay = Number(req.headers['x-mock-delay-ms'])
  if (query) {
    const params = new URLSearchParams(query)
    if (params.has('chunks')) chunks = Number(params.get('chunks'))
    if (params.has('delay')) delay = Number(params.get('delay'))
  }
  const m = PREFIX.exec(url)
  if (m) {
    chunks = Number(m[1])
    delay = Number(m[2])
    url = m[3]
  }
  const format = url === '/v1/chat/completions' ? 'openai' : url === '/v1/messages' ? 'anthropic' : null
  if (req.method !== 'POST' || format === null) return reject(res, 404, 'openai', `no route for ${req.method} ${req.url}`)
  if (!Number.isInteger(chunks) || chunks < 0 || chunks > MAX_CHUNKS || !(delay >= 0)) {
    return reject(res, 400, format, `bad chunks/delay: ${chunks}/${delay}`)
  }
  if (format === 'openai') {
    if (req.headers.authorization !== `Bearer ${C.OPENAI_KEY}`) return reject(res, 401, format, 'bad or missing Authorization')
  } else {
    if (req.headers['x-api-key'] !== C.ANTHROPIC_KEY) return reject(res, 401, format, 'bad or missing x-api-key')
    if (!req.headers['anthropic-version']) return reject(res, 400, format, 'missing anthropic-version')
  }
  let body
  try {
    body = JSON.parse(raw)
  } catch {
    return reject(res, 400, format, 'the body is not JSON')
  }
  if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0) {
    return reject(res, 400, format, 'model and messages are required')
  }
  if (format === 'anthropic' && typeof body.max_tokens !== 'number') return reject(res, 400, format, 'max_tokens is required')

  stats.requests++
  if (body.stream !== true) {
    stats.json++
    const buf = jsonBodies[format]
    res.writeHead(200, JSON_HEADERS[format](buf.length))
    res.end(buf)
    return
  }
  stats.streams++
  stats.chunks += chunks
  const includeUsage = format === 'openai' && body.stream_options != null && body.stream_options.include_usage === true
  const { events, whole } = streamBody(format, chunks, includeUsage)
  res.writeHead(200, SSE_HEADERS[format])
  if (delay === 0) {
    res.end(whole)
    return
  }
  // Paced: the events before the first content chunk at once, then one event per `delay` ms.
  const lead = format === 'openai' ? 1 : 3
  res.write(Buffer.concat(events.slice(0, lead)))
  let i = lead
  let closed = false
  res.on('close', () => {
    closed = true
  })
  const tick = () => {
    if (closed) return
    if (i >= events.length) return void res.end()
    res.write(events[i++])
    setTimeout(tick, delay)
  }
  setTimeout(tick, delay)
}

function start(opts) {
  const defaults = { chunks: opts.chunks, delay: opts.delay }
  const server = http.createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, (req, res) => {
    if (req.method === 'GET' && req.url === '/_stats') {
      const body = JSON.stringify({ ...stats, cpu: process.cpuUsage(), rss: process.memoryUsage.rss() })
      res.writeHead(200, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))])
      res.end(body)
      return
    }
    const parts = []
    req.on('data', (c) => parts.push(c))
    req.on('end', () => handle(req, res, parts.length === 1 ? parts[0] : Buffer.concat(parts), defaults))
  })
  server.on('connection', () => stats.connections++)
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 125_000
  server.maxRequestsPerSocket = 0
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => resolve(server))
  })
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2))
  start(opts).then(
    (server) => {
      process.stdout.write(`${JSON.stringify({ port: server.address().port, pid: process.pid })}\n`)
      if (opts.exitWithStdin) {
        process.stdin.on('end', () => process.exit(0))
        process.stdin.on('error', () => process.exit(0))
        process.stdin.resume()
      }
      process.on('SIGTERM', () => process.exit(0))
    },
    (err) => {
      process.stderr.write(`upstream: ${err.stack || err}\n`)
      process.exit(1)
    },
  )
}

module.exports = { start, streamBody, jsonBodies }
