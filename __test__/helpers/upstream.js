'use strict'

// A loopback "provider" for the tests, built on node:net rather than node:http so that every byte of
// a response (status line, headers, chunk framing, body split points, a cut in the middle) is exactly
// what the test wrote. It parses HTTP/1.1 requests (Content-Length or chunked bodies, several per
// connection), records them, and hands each to a handler that writes the raw response.

const net = require('node:net')

const REASONS = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  529: 'Site Overloaded',
}

const tick = () => new Promise((resolve) => setImmediate(resolve))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Resolves with `promise`'s value, or rejects with an Error saying `what` did not happen within `ms`.
 * The timer is cleared either way, so it never keeps the process alive.
 */
function within(ms, promise, what = 'the operation') {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Parses one request out of `buf`; returns null until the whole request is there. */
function parseRequest(buf) {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return null
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const [method, path, httpVersion] = lines[0].split(' ')
  const headers = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  let rest = buf.subarray(end + 4)
  let body
  if (/\bchunked\b/i.test(headers['transfer-encoding'] || '')) {
    const parts = []
    let pos = 0
    for (;;) {
      const lineEnd = rest.indexOf('\r\n', pos)
      if (lineEnd < 0) return null
      const size = parseInt(rest.subarray(pos, lineEnd).toString('latin1').split(';')[0], 16)
      if (Number.isNaN(size)) throw new Error('bad chunk size in request')
      if (size === 0) {
        // No trailers expected: the terminating CRLF follows.
        const trailerEnd = rest.indexOf('\r\n\r\n', lineEnd)
        if (trailerEnd < 0) return null
        pos = trailerEnd + 4
        break
      }
      if (rest.length < lineEnd + 2 + size + 2) return null
      parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
      pos = lineEnd + 2 + size + 2
    }
    body = Buffer.concat(parts)
    rest = rest.subarray(pos)
  } else {
    const length = parseInt(headers['content-length'] || '0', 10)
    if (rest.length < length) return null
    body = rest.subarray(0, length)
    rest = rest.subarray(length)
  }
  const text = body.toString('utf8')
  let json
  try {
    json = text ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  const request = { method, path, httpVersion, headers, body: text, json }
  // The body's exact bytes (for signature checks), kept out of deepEqual comparisons.
  Object.defineProperty(request, 'bodyBytes', { value: Buffer.from(body), enumerable: false })
  return { request, rest }
}

/**
 * Starts the provider. `handler(req, socket)` writes the response (it may be async). Returns
 * `{ url, baseUrl, port, requests, connections, errors, waitForRequest(n), close() }`.
 *
 * Each entry of `connections` tracks one TCP connection: `closed`, `closedBy` ('client' when the
 * client sent FIN/RST before the server ended it, 'server' when a helper here ended it), and the
 * promise `whenClosed`. Each recorded request has the (non-enumerable) `conn` it arrived on.
 */
async function startUpstream(handler) {
  const requests = []
  const connections = []
  const errors = []
  const waiters = []

  const notify = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (requests.length >= waiters[i].n) {
        waiters[i].resolve(requests[waiters[i].n - 1])
        waiters.splice(i, 1)
      }
    }
  }

  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    let onClosed
    const conn = {
      id: connections.length,
      socket,
      closed: false,
      closedBy: null,
      whenClosed: new Promise((resolve) => (onClosed = resolve)),
    }
    socket.llmConn = conn
    connections.push(conn)
    let buf = Buffer.alloc(0)
    socket.on('data', (data) => {
      buf = Buffer.concat([buf, data])
      for (;;) {
        let parsed
        try {
          parsed = parseRequest(buf)
        } catch (err) {
          errors.push(err)
          socket.destroy()
          return
        }
        if (!parsed) return
        buf = parsed.rest
        const req = parsed.request
        Object.defineProperty(req, 'conn', { value: conn, enumerable: false })
        requests.push(req)
        notify()
        Promise.resolve()
          .then(() => handler(req, socket))
          .catch((err) => {
            errors.push(err)
            markServerClose(socket)
            socket.destroy()
          })
      }
    })
    socket.on('end', () => {
      if (!conn.closedBy) conn.closedBy = 'client'
    })
    socket.on('error', () => {
      // ECONNRESET and the like: the client went away.
      if (!conn.closedBy) conn.closedBy = 'client'
    })
    socket.on('close', () => {
      if (!conn.closedBy) conn.closedBy = 'client'
      conn.closed = true
      onClosed(conn)
    })
  })

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address()
  const url = `http://127.0.0.1:${port}`
  let closing

  return {
    url,
    baseUrl: `${url}/v1`,
    port,
    requests,
    connections,
    errors,
    /** Resolves with the n-th request (1-based) once it has arrived. */
    waitForRequest(n = 1) {
      if (requests.length >= n) return Promise.resolve(requests[n - 1])
      return new Promise((resolve) => waiters.push({ n, resolve }))
    },
    close() {
      if (!closing) {
        closing = new Promise((resolve) => server.close(() => resolve()))
        for (const c of connections) {
          if (!c.closed) {
            markServerClose(c.socket)
            c.socket.destroy()
          }
        }
      }
      return closing
    },
  }
}

function markServerClose(socket) {
  const conn = socket.llmConn
  if (conn && !conn.closedBy) conn.closedBy = 'server'
}

function headText(status, headers) {
  let text = `HTTP/1.1 ${status} ${REASONS[status] || 'Status'}\r\n`
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`
  }
  return `${text}\r\n`
}

function write(socket, data) {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(false)
    socket.write(data, (err) => resolve(!err))
  })
}

const chunkFrame = (buf) => Buffer.concat([Buffer.from(`${buf.length.toString(16)}\r\n`), buf, Buffer.from('\r\n')])

function toBuffer(body) {
  if (Buffer.isBuffer(body)) return body
  if (typeof body === 'string') return Buffer.from(body, 'utf8')
  if (body === undefined || body === null) return Buffer.alloc(0)
  return Buffer.from(JSON.stringify(body), 'utf8')
}

/**
 * Writes a complete raw HTTP/1.1 response on `socket` and then closes the connection
 * (`Connection: close`, so no connection is ever reused between requests).
 *
 * - `body`: Buffer, string, or a value sent as JSON.
 * - `mode`: 'whole' (one write), 'bytewise' (one write per body byte, each after a setImmediate
 *   pause), `{ chunks: n }` (n writes of about equal size), `{ sizes: [a, b, …] }` (writes of a, b, …
 *   bytes, the list repeated until the body is out), `{ cutAt: n }` (the first n body bytes, then the
 *   socket is destroyed: the response never completes).
 * - `framing`: 'chunked' (default for `text/event-stream`), 'length' (Content-Length; the default
 *   otherwise), or 'close' (no length: the body ends when the connection closes).
 * - `delayMs`: wait this long before the status line.
 * - `intervalMs`: pause between writes in 'bytewise' and `chunks` modes (default: one setImmediate).
 */
async function writeResponse(socket, status, headers, body, options = {}) {
  const { mode = 'whole', delayMs = 0, intervalMs } = options
  const bytes = toBuffer(body)
  const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type')
  const isSse = Boolean(contentType && /event-stream/i.test(contentType[1]))
  const framing = options.framing || (isSse ? 'chunked' : 'length')
  if (delayMs) await sleep(delayMs)
  if (socket.destroyed) return

  const allHeaders = { ...headers }
  if (framing === 'chunked') allHeaders['Transfer-Encoding'] = 'chunked'
  if (framing === 'length') allHeaders['Content-Length'] = String(bytes.length)
  allHeaders.Connection = 'close'
  const frame = (piece) => (framing === 'chunked' ? chunkFrame(piece) : piece)
  const pause = () => (intervalMs ? sleep(intervalMs) : tick())

  if (mode === 'whole') {
    const parts = [Buffer.from(headText(status, allHeaders), 'latin1')]
    if (bytes.length) parts.push(frame(bytes))
    if (framing === 'chunked') parts.push(Buffer.from('0\r\n\r\n'))
    await write(socket, Buffer.concat(parts))
  } else if (mode === 'bytewise' || (mode && (typeof mode.chunks === 'number' || Array.isArray(mode.sizes)))) {
    await write(socket, headText(status, allHeaders))
    const fixed = mode === 'bytewise' ? 1 : mode.sizes ? 0 : Math.max(1, Math.ceil(bytes.length / mode.chunks))
    let k = 0
    for (let i = 0; i < bytes.length; ) {
      const size = fixed || Math.max(1, mode.sizes[k++ % mode.sizes.length])
      await pause()
      if (!(await write(socket, frame(bytes.subarray(i, i + size))))) return
      i += size
    }
    await pause()
    if (framing === 'chunked') await write(socket, '0\r\n\r\n')
  } else if (mode && typeof mode.cutAt === 'number') {
    await write(socket, headText(status, allHeaders))
    const piece = bytes.subarray(0, mode.cutAt)
    if (piece.length) await write(socket, frame(piece))
    // Let the bytes reach the client before the connection goes.
    await sleep(20)
    markServerClose(socket)
    socket.destroy()
    return
  } else {
    throw new Error(`unknown mode ${JSON.stringify(mode)}`)
  }
  markServerClose(socket)
  socket.end()
}

/** A handler that answers every request with the same response (see `writeResponse`). */
function replay(status, headers, body, options = {}) {
  return (req, socket) => writeResponse(socket, status, headers, body, options)
}

/** Headers of an SSE response as providers send it. */
const SSE_HEADERS = Object.freeze({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' })
const JSON_HEADERS = Object.freeze({ 'Content-Type': 'application/json' })

/**
 * For handlers that stream by hand: writes the head of a chunked SSE response and returns
 * `{ send(text), event(obj), done(), end(), cut() }`; every method resolves once the bytes are written.
 */
async function openSse(socket, { status = 200, headers = SSE_HEADERS } = {}) {
  await write(socket, headText(status, { ...headers, 'Transfer-Encoding': 'chunked', Connection: 'close' }))
  const send = (text) => write(socket, chunkFrame(toBuffer(text)))
  return {
    send,
    event: (obj) => send(`data: ${JSON.stringify(obj)}\n\n`),
    done: () => send('data: [DONE]\n\n'),
    async end() {
      await write(socket, '0\r\n\r\n')
      markServerClose(socket)
      socket.end()
    },
    cut() {
      markServerClose(socket)
      socket.destroy()
    },
  }
}

/** A `chat.completion.chunk` with one choice (or none, for a usage chunk). */
function chunk({ id = 'chatcmpl-test', model = 'test-model', created = 1700000000, delta, finish = null, usage, choices } = {}) {
  const c = {
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    choices: choices || (delta === undefined && finish === null ? [] : [{ index: 0, delta: delta || {}, finish_reason: finish }]),
  }
  if (usage !== undefined) c.usage = usage
  return c
}

/** The SSE body of a whole streamed answer: role, one event per piece of text, finish, usage, [DONE]. */
function sseBody(pieces, { id = 'chatcmpl-test', model = 'test-model', usage } = {}) {
  const events = [chunk({ id, model, delta: { role: 'assistant', content: '' } })]
  for (const p of pieces) events.push(chunk({ id, model, delta: { content: p } }))
  events.push(chunk({ id, model, delta: {}, finish: 'stop' }))
  if (usage) events.push(chunk({ id, model, usage }))
  return events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n'
}

/** A port on 127.0.0.1 with nothing listening on it. */
async function closedPort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

module.exports = {
  startUpstream,
  writeResponse,
  replay,
  openSse,
  chunk,
  sseBody,
  closedPort,
  within,
  sleep,
  tick,
  SSE_HEADERS,
  JSON_HEADERS,
}
