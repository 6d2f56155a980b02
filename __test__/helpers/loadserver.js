'use strict'

// A fast loopback OpenAI-compatible provider for load and resource tests, on node:net.
//
// Unlike helpers/upstream.js (one exact response per connection, `Connection: close`), this server
// keeps connections alive the way real providers do, so the client's connection pool is exercised,
// and it records little per request so that tens of thousands of requests stay cheap.
//
// Every answer is derived from its request, so that an answer given to the wrong caller, or chunks
// reordered, lost or mixed between streams, are detectable:
//
// - the request's `model` (after the proxy has removed its provider prefix) says what to do:
//     `echo-<n>.<anything>`   stream n content chunks, then a finish chunk, a usage chunk and [DONE];
//                             the response is complete and the connection stays open for the next one
//     `stall-<n>.<anything>`  stream a role chunk and n content chunks, then nothing, ever: only the
//                             client can end this connection
//     `silent-0.<anything>`   accept the request and never answer it (no status line either)
//   Without `stream: true` in the body, `echo-<n>` answers a whole `chat.completion`.
// - the tag is the content of the last user message (e.g. `req-17`); content chunk k says
//   `<tag>:<k>;`, every chunk's id is `chatcmpl-<tag>`, and its `model` is the request's model.
//
// `chunkGap`: 'immediate' (default) writes each chunk after a setImmediate, so that concurrent
// streams interleave on the wire; 'none' writes the whole response in one write.
// `holdUntil`: answer nothing until this many requests have arrived, then all of them at once, so
// that that many streams are under way side by side (with a fast provider and a slower client,
// requests otherwise arrive at the pace the client sends them and finish nearly as soon).

const net = require('node:net')

const SSE_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n'
const CREATED = 1700000000

const frame = (text) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
const event = (obj) => frame(`data: ${JSON.stringify(obj)}\n\n`)

/** What a correct client must hand to the caller for tag `tag` and `n` chunks, content chunk by chunk. */
function expectedPieces(tag, n) {
  return Array.from({ length: n }, (_, k) => `${tag}:${k};`)
}

function parseModel(model) {
  const m = /^(echo|stall|silent)-(\d+)\./.exec(model || '')
  if (!m) return null
  return { mode: m[1], n: Number(m[2]) }
}

function tagOf(json) {
  const messages = (json && json.messages) || []
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'user' && typeof messages[i].content === 'string') return messages[i].content
  }
  return ''
}

/**
 * Starts the server. Returns
 * `{ url, baseUrl, port, stats, track(tag), openConnections(), busyConnections(), busyTags(), waitFor(pred, ms, what), close() }`.
 *
 * `stats`: `accepted` (connections ever), `open` (connections open now), `requests`, `finished`
 * (responses written whole), `closedByClient` (connections the client closed or reset),
 * `closedWhileBusy` (connections that closed while their response was unfinished: abandoned streams),
 * `maxOpen` (the most connections open at once), `busy` and `maxBusy` (responses under way now, and
 * the most at once), `errors` (bad requests: a bug in the client).
 * A connection is *busy* from the moment a request arrives until its response is written whole.
 * `track(tag)`, called before the request with that tag is sent, returns `{ received, answered, done }`:
 * `received` resolves once the request is taken up (with `holdUntil`, when the hold ends), `answered`
 * once the response has started, `done` with 'finished' once it is written whole or 'closed' if its
 * connection closes first.
 */
async function startLoadServer({ chunkGap = 'immediate', holdUntil = 0 } = {}) {
  const stats = {
    accepted: 0,
    open: 0,
    maxOpen: 0,
    busy: 0,
    maxBusy: 0,
    requests: 0,
    finished: 0,
    closedByClient: 0,
    closedWhileBusy: 0,
    errors: [],
  }
  const live = new Set()
  const tracked = new Map()
  let held = holdUntil > 0 ? [] : null

  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    const conn = { socket, busy: false, tag: null, entry: null, requests: 0, closedByServer: false }
    live.add(conn)
    stats.accepted++
    stats.open++
    if (stats.open > stats.maxOpen) stats.maxOpen = stats.open
    let buf = null
    socket.on('data', (data) => {
      buf = buf ? Buffer.concat([buf, data]) : data
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.toString('latin1', 0, end)
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        if (!m || /\r\ntransfer-encoding:/i.test(head)) {
          stats.errors.push(new Error(`request without Content-Length: ${head.split('\r\n')[0]}`))
          socket.destroy()
          return
        }
        const length = Number(m[1])
        if (buf.length < end + 4 + length) return
        const body = buf.toString('utf8', end + 4, end + 4 + length)
        buf = buf.length === end + 4 + length ? null : buf.subarray(end + 4 + length)
        let json
        try {
          json = JSON.parse(body)
        } catch (err) {
          stats.errors.push(err)
          socket.destroy()
          return
        }
        if (conn.busy) {
          stats.errors.push(new Error('a second request arrived before the first response was complete'))
        }
        stats.requests++
        conn.requests++
        if (held) {
          held.push([conn, json])
          if (stats.requests >= holdUntil) {
            const all = held
            held = null
            for (const [c, j] of all) if (!c.socket.destroyed) respond(c, j)
          }
        } else {
          respond(conn, json)
        }
        if (!buf) return
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      live.delete(conn)
      stats.open--
      if (!conn.closedByServer) stats.closedByClient++
      if (conn.busy) {
        stats.closedWhileBusy++
        stats.busy--
      }
      if (conn.entry) conn.entry.onDone('closed')
    })
  })

  function write(socket, text) {
    if (!socket.destroyed) socket.write(text)
  }

  function respond(conn, json) {
    const { socket } = conn
    const plan = parseModel(json.model)
    const tag = tagOf(json)
    if (!plan) {
      stats.errors.push(new Error(`unknown model ${json.model}`))
      const text = JSON.stringify({ error: { message: `unknown model ${json.model}`, type: 'invalid_request_error' } })
      write(socket, `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`)
      return
    }
    conn.busy = true
    if (++stats.busy > stats.maxBusy) stats.maxBusy = stats.busy
    conn.tag = tag
    const entry = tracked.get(tag)
    if (entry) tracked.delete(tag)
    conn.entry = entry || null
    if (entry) entry.onReceived()
    const answered = () => {
      if (entry) entry.onAnswered()
    }
    const finished = () => {
      conn.busy = false
      stats.busy--
      stats.finished++
      if (entry) {
        conn.entry = null
        entry.onDone('finished')
      }
    }
    // Busy, and never answered: only the client can end this.
    if (plan.mode === 'silent') return
    const id = `chatcmpl-${tag}`
    const model = json.model
    const pieces = expectedPieces(tag, plan.n)
    if (!json.stream) {
      const text = JSON.stringify({
        id,
        object: 'chat.completion',
        created: CREATED,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: pieces.join('') }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: plan.n, total_tokens: plan.n + 1 },
      })
      const finish = () => {
        write(socket, `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`)
        answered()
        finished()
      }
      if (chunkGap === 'none') finish()
      else setImmediate(finish)
      return
    }
    const chunk = (delta, finish = null) => ({
      id,
      object: 'chat.completion.chunk',
      created: CREATED,
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
    const parts = [SSE_HEAD + event(chunk({ role: 'assistant', content: '' }))]
    for (const p of pieces) parts.push(event(chunk({ content: p })))
    if (plan.mode === 'echo') {
      parts.push(
        event(chunk({}, 'stop')) +
          event({ id, object: 'chat.completion.chunk', created: CREATED, model, choices: [], usage: { prompt_tokens: 1, completion_tokens: plan.n, total_tokens: plan.n + 1 } }) +
          frame('data: [DONE]\n\n') +
          '0\r\n\r\n',
      )
    }
    const done = () => {
      if (plan.mode === 'echo') finished()
    }
    if (chunkGap === 'none') {
      write(socket, parts.join(''))
      answered()
      done()
      return
    }
    write(socket, parts[0])
    answered()
    let k = 1
    const next = () => {
      if (socket.destroyed) return
      write(socket, parts[k++])
      // Finished as soon as the last byte is written: the client may send its next request at once.
      if (k >= parts.length) done()
      else setImmediate(next)
    }
    setImmediate(next)
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    // A deep accept queue: thousands of connections arrive at once.
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve)
  })
  const { port } = server.address()
  const url = `http://127.0.0.1:${port}`
  let closing

  return {
    url,
    baseUrl: `${url}/v1`,
    port,
    stats,
    track(tag) {
      const entry = {}
      entry.received = new Promise((resolve) => (entry.onReceived = resolve))
      entry.answered = new Promise((resolve) => (entry.onAnswered = resolve))
      entry.done = new Promise((resolve) => (entry.onDone = resolve))
      tracked.set(tag, entry)
      return entry
    },
    /** Connections open now. */
    openConnections: () => live.size,
    /** Connections open now whose response is unfinished. */
    busyConnections: () => {
      let n = 0
      for (const c of live) if (c.busy) n++
      return n
    },
    /** The tags of the requests whose responses are unfinished on connections still open. */
    busyTags: () => {
      const tags = []
      for (const c of live) if (c.busy) tags.push(c.tag)
      return tags
    },
    /** Resolves once `pred()` is true (checked every 10 ms), or rejects after `ms`. */
    waitFor(pred, ms, what = 'the condition') {
      const started = Date.now()
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred()) return resolve(Date.now() - started)
          if (Date.now() - started > ms) return reject(new Error(`${what} did not happen within ${ms} ms`))
          setTimeout(check, 10)
        }
        check()
      })
    },
    close() {
      if (!closing) {
        closing = new Promise((resolve) => server.close(() => resolve()))
        for (const c of live) {
          c.closedByServer = true
          c.socket.destroy()
        }
      }
      return closing
    },
  }
}

module.exports = { startLoadServer, expectedPieces }
