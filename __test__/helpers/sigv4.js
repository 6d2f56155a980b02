'use strict'

// An independent AWS Signature Version 4 verifier for the tests, written from AWS's description of
// the algorithm ("Create a canonical request", "Create a string to sign", "Calculate the signature",
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) with node:crypto only.
// It shares nothing with the library's signer (AWS's aws-sigv4 crate): the loopback Bedrock
// upstream recomputes every signature from the bytes it received and compares.
//
// Settings are those of every AWS service but S3, which Bedrock Runtime is:
// - the canonical URI is the path as received, URI-encoded once more per segment ("double
//   encoding": a model id `a:b` is sent as `a%3Ab` and canonicalised as `a%253Ab`);
// - the payload hash is the hex SHA-256 of the body as received;
// - the canonical headers are exactly those the Authorization header's SignedHeaders names.

const crypto = require('node:crypto')

const ALGORITHM = 'AWS4-HMAC-SHA256'
const AUTHZ_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;._-]+), ?Signature=([0-9a-f]{64})$/
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

const sha256Hex = (data) => crypto.createHash('sha256').update(data).digest('hex')
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data, 'utf8').digest()

/**
 * RFC 3986 encoding as SigV4 defines it: unreserved characters (A–Z a–z 0–9 - . _ ~) are kept,
 * every other byte of the UTF-8 text becomes %XX (upper-case hex), '/' included unless `keepSlash`.
 */
function uriEncode(text, keepSlash = false) {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte)
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/**
 * The canonical URI of a path as it was received. With `doubleEncode` (every service but S3) each
 * segment is URI-encoded again, so an escape `%3A` becomes `%253A`; without it, the received path is
 * decoded and encoded once (what the AWS test suite's cases expect).
 */
function canonicalUri(rawPath, { doubleEncode = true } = {}) {
  const path = rawPath === '' ? '/' : rawPath
  return path
    .split('/')
    .map((segment) => (doubleEncode ? uriEncode(segment) : uriEncode(decodeURIComponent(segment))))
    .join('/')
}

/** Query parameters, each name and value URI-encoded, sorted by name then value, joined by '&'. */
function canonicalQuery(rawQuery) {
  if (!rawQuery) return ''
  const pairs = rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=')
      const name = eq < 0 ? p : p.slice(0, eq)
      const value = eq < 0 ? '' : p.slice(eq + 1)
      const dec = (s) => decodeURIComponent(s.replace(/\+/g, '%20'))
      return [uriEncode(dec(name)), uriEncode(dec(value))]
    })
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return pairs.map(([n, v]) => `${n}=${v}`).join('&')
}

/** A header value for the canonical request: outer whitespace trimmed, inner runs collapsed. */
const canonicalValue = (v) => String(v).trim().replace(/\s+/g, ' ')

/**
 * The canonical request, string to sign and signature of a request.
 * - `headers`: lower-case name → value, or an array of values (joined with ',').
 * - `signedHeaders`: the lower-case names to sign, in the order given (they must be sorted).
 * - `amzDate`: `yyyymmddThhmmssZ`; `credentialScope`: `{ date, region, service }`.
 */
function computeSignature({ method, path, headers, body, signedHeaders, amzDate, region, service, secretAccessKey, doubleEncode = true }) {
  const q = path.indexOf('?')
  const rawPath = q < 0 ? path : path.slice(0, q)
  const rawQuery = q < 0 ? '' : path.slice(q + 1)
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const value = headers[name]
      const values = Array.isArray(value) ? value : [value]
      return `${name}:${values.map(canonicalValue).join(',')}\n`
    })
    .join('')
  const canonicalRequest = [
    method,
    canonicalUri(rawPath, { doubleEncode }),
    canonicalQuery(rawQuery),
    canonicalHeaders,
    signedHeaders.join(';'),
    sha256Hex(body === undefined ? '' : body),
  ].join('\n')
  const date = amzDate.slice(0, 8)
  const scope = `${date}/${region}/${service}/aws4_request`
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n')
  const kDate = hmac(`AWS4${secretAccessKey}`, date)
  const kRegion = hmac(kDate, region)
  const kService = hmac(kRegion, service)
  const kSigning = hmac(kService, 'aws4_request')
  const signature = crypto.createHmac('sha256', kSigning).update(stringToSign, 'utf8').digest('hex')
  return { canonicalRequest, stringToSign, signature, scope }
}

function amzDateMs(amzDate) {
  const m = AMZ_DATE_RE.exec(amzDate)
  if (!m) return NaN
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])
}

/**
 * Verifies the SigV4 signature of a request as the loopback upstream recorded it
 * (`{ method, path, headers: { lower-case name: value }, body }`). Returns
 * `{ ok, problems: [text], credential, signedHeaders, canonicalRequest, stringToSign, signature, expected }`.
 *
 * `expect`: `{ accessKeyId, secretAccessKey, sessionToken?, region, service, now? (ms),
 * maxSkewMs? (default 5 min), doubleEncode? (default true) }`. With a `sessionToken`, the request
 * must carry it in a signed `x-amz-security-token`; without one it must carry none.
 */
function verifySigV4(req, expect) {
  const problems = []
  const headers = req.headers || {}
  const result = { ok: false, problems, credential: null, signedHeaders: null }
  const authz = headers.authorization
  if (typeof authz !== 'string') {
    problems.push('no Authorization header')
    return result
  }
  const m = AUTHZ_RE.exec(authz)
  if (!m) {
    problems.push(`malformed Authorization header: ${authz}`)
    return result
  }
  const [, accessKeyId, date, region, service, signed, signature] = m
  result.credential = { accessKeyId, date, region, service }
  result.signature = signature
  const signedHeaders = signed.split(';')
  result.signedHeaders = signedHeaders

  if (accessKeyId !== expect.accessKeyId) problems.push(`Credential access key id is ${accessKeyId}, expected ${expect.accessKeyId}`)
  if (region !== expect.region) problems.push(`Credential region is ${region}, expected ${expect.region}`)
  if (service !== expect.service) problems.push(`Credential service is ${service}, expected ${expect.service}`)

  const amzDate = headers['x-amz-date']
  if (typeof amzDate !== 'string' || !AMZ_DATE_RE.test(amzDate)) {
    problems.push(`x-amz-date is missing or malformed: ${amzDate}`)
  } else {
    if (amzDate.slice(0, 8) !== date) problems.push(`Credential date ${date} is not the date of x-amz-date ${amzDate}`)
    if (expect.now !== null) {
      const now = expect.now === undefined ? Date.now() : expect.now
      const skew = Math.abs(amzDateMs(amzDate) - now)
      const max = expect.maxSkewMs === undefined ? 5 * 60 * 1000 : expect.maxSkewMs
      if (skew > max) problems.push(`x-amz-date ${amzDate} is ${Math.round(skew / 1000)} s away from now`)
    }
  }

  const sorted = [...signedHeaders].sort()
  if (sorted.join(';') !== signedHeaders.join(';')) problems.push(`SignedHeaders is not sorted: ${signed}`)
  if (new Set(signedHeaders).size !== signedHeaders.length) problems.push(`SignedHeaders repeats a name: ${signed}`)
  for (const required of ['host', 'x-amz-date']) {
    if (!signedHeaders.includes(required)) problems.push(`${required} is not signed (SignedHeaders=${signed})`)
  }
  for (const name of signedHeaders) {
    if (!(name in headers)) problems.push(`signed header ${name} was not sent`)
  }
  if (signedHeaders.includes('authorization')) problems.push('the Authorization header signs itself')

  const token = headers['x-amz-security-token']
  if (expect.sessionToken) {
    if (token !== expect.sessionToken) problems.push(`x-amz-security-token is ${token === undefined ? 'missing' : 'not the session token'}`)
    if (!signedHeaders.includes('x-amz-security-token')) problems.push('x-amz-security-token is not signed')
  } else if (token !== undefined) {
    problems.push('x-amz-security-token was sent, but no session token is configured')
  }

  if (typeof amzDate === 'string' && AMZ_DATE_RE.test(amzDate) && signedHeaders.every((n) => n in headers)) {
    const computed = computeSignature({
      method: req.method,
      path: req.path,
      headers,
      body: req.bodyBytes !== undefined ? req.bodyBytes : req.body,
      signedHeaders,
      amzDate,
      region: expect.region,
      service: expect.service,
      secretAccessKey: expect.secretAccessKey,
      doubleEncode: expect.doubleEncode !== false,
    })
    result.canonicalRequest = computed.canonicalRequest
    result.stringToSign = computed.stringToSign
    result.expected = computed.signature
    if (computed.signature !== signature) problems.push('the signature does not match the one computed from the request')
  }
  result.ok = problems.length === 0
  return result
}

module.exports = { uriEncode, canonicalUri, canonicalQuery, computeSignature, verifySigV4, sha256Hex, amzDateMs, ALGORITHM }
