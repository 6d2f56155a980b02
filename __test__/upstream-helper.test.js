'use strict'

// The loopback provider of helpers/upstream.js checked on its own, with Node's http client, so that
// a failure elsewhere is the library's and not the harness's.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { startUpstream, replay, within, SSE_HEADERS, JSON_HEADERS } = require('./helpers/upstream')

function post(url, body, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        headers: chunked ? { 'Content-Type': 'application/json' } : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        agent: false,
      },
      (res) => {
        const parts = []
        res.on('data', (d) => parts.push(d))
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    if (chunked) {
      req.write(body.slice(0, 5))
      req.end(body.slice(5))
    } else req.end(body)
  })
}

test('records Content-Length and chunked requests; replays whole, bytewise and chunked bodies', async (t) => {
  const body = 'data: {"a":1}\n\ndata: [DONE]\n\n'
  let mode = 'whole'
  const upstream = await startUpstream((req, socket) =>
    replay(200, req.json.sse ? SSE_HEADERS : JSON_HEADERS, req.json.sse ? body : { ok: true, é: 'ü' }, { mode })(req, socket),
  )
  t.after(() => upstream.close())

  let res = await post(`${upstream.baseUrl}/chat/completions`, '{"model":"m","sse":false}')
  assert.equal(res.status, 200)
  assert.deepEqual(JSON.parse(res.body), { ok: true, é: 'ü' })
  assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)))
  assert.equal(upstream.requests[0].path, '/v1/chat/completions')
  assert.equal(upstream.requests[0].method, 'POST')
  assert.deepEqual(upstream.requests[0].json, { model: 'm', sse: false })
  assert.equal(upstream.requests[0].headers['content-type'], 'application/json')

  for (const m of ['whole', 'bytewise', { chunks: 3 }]) {
    mode = m
    res = await post(`${upstream.url}/x`, '{"sse":true,"n":"ü"}', { chunked: true })
    assert.equal(res.body, body, JSON.stringify(m))
    assert.equal(res.headers['transfer-encoding'], 'chunked')
    const req = upstream.requests[upstream.requests.length - 1]
    assert.equal(req.headers['transfer-encoding'], 'chunked')
    assert.deepEqual(req.json, { sse: true, n: 'ü' })
  }
})

test('cutAt delivers the first bytes and then breaks the response', async (t) => {
  const upstream = await startUpstream(replay(200, SSE_HEADERS, 'data: 0123456789\n\n', { mode: { cutAt: 8 } }))
  t.after(() => upstream.close())
  const received = []
  const err = await new Promise((resolve) => {
    const req = http.request(`${upstream.url}/`, { method: 'POST', agent: false }, (res) => {
      res.on('data', (d) => received.push(d))
      res.on('error', resolve)
      res.on('aborted', () => resolve(new Error('aborted')))
      res.on('end', () => resolve(undefined))
    })
    req.end()
  })
  assert.ok(err, 'the response did not complete')
  assert.equal(Buffer.concat(received).toString(), 'data: 01')
  const conn = upstream.requests[0].conn
  await within(2000, conn.whenClosed, 'close')
  assert.equal(conn.closedBy, 'server')
})
