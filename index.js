'use strict'

// The public JavaScript face of llm-proxy: a thin layer over the native core (native.js, generated
// by napi-rs). It turns requests into JSON text, native errors into LLMProxyError, AbortSignals
// into cancellation, and batches of streamed chunks into an async iterator. The 1.x API and the
// forced-tool retry (`retryOnFuturePromise`) live in legacy.js.

const native = require('./binding.js') // native.js, the napi-rs loader, with a clear error when no binary fits
const legacy = require('./legacy.js')

const ERROR_MARK = 'LLMPROXY_ERROR:'

class LLMProxyError extends Error {
  constructor(info, options) {
    super(info.message, options)
    this.name = 'LLMProxyError'
    this.code = info.code
    this.provider = info.provider
    this.status = info.status
    this.retryable = Boolean(info.retryable)
    this.retryAfterMs = info.retryAfterMs
    this.body = info.body
    // Only on some errors: which time limit fired, and the models a call with fallbacks tried.
    if (info.timeout !== undefined) this.timeout = info.timeout
    if (info.tried !== undefined) this.tried = info.tried
  }
}

/** Any error from the native side, as an LLMProxyError. */
function fromNative(err) {
  if (err instanceof LLMProxyError) return err
  const message = err && typeof err.message === 'string' ? err.message : String(err)
  if (message.startsWith(ERROR_MARK)) {
    try {
      return new LLMProxyError(JSON.parse(message.slice(ERROR_MARK.length)))
    } catch {
      // fall through: report it as a bug below
    }
  }
  return new LLMProxyError(
    {
      code: 'internal',
      message: `Unexpected failure inside llm-proxy: ${message}. This is a bug in llm-proxy; please report it.`,
      retryable: false,
    },
    { cause: err },
  )
}

function invalid(message, cause) {
  return new LLMProxyError({ code: 'invalid_request', message, retryable: false }, cause ? { cause } : undefined)
}

function abortedError(signal) {
  let reason
  try {
    reason = signal ? signal.reason : undefined
  } catch {
    // a signal-like object whose `reason` throws: no cause
  }
  const why = reason && reason.name === 'TimeoutError' ? ' (its timeout elapsed)' : ''
  return new LLMProxyError(
    { code: 'aborted', message: `The request was aborted by its AbortSignal${why}.`, retryable: false },
    reason === undefined ? undefined : { cause: reason },
  )
}

/** A thrown value in a few words, for a message. Never throws itself: a hostile value may. */
function describeThrown(value) {
  let text
  try {
    text = value instanceof Error ? `${value.name}: ${value.message}` : String(value)
  } catch {
    text = 'a value that cannot be shown'
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/** `request.messages[0]['content-type']`: where a value stands, for a message (cut when long). */
function pathTo(parent, key) {
  const step =
    typeof key === 'number' ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`
  const path = parent + step
  return path.length > 200 ? `${path.slice(0, 200)}…` : path
}

/** Values the diagnosis below looks at before it gives up and reports what the engine said. */
const JSON_WALK_LIMIT = 1_000_000

/**
 * Why `JSON.stringify(value)` failed, found by going through `value` the way JSON.stringify does
 * (toJSON() first, then the own enumerable properties, depth first): the first getter or toJSON()
 * that throws, BigInt, or circular reference, with where it stands (`root` names the value). When
 * none is found, a RangeError is nesting too deep for the engine's stack. Runs only after a failure,
 * so a request that serialises costs nothing more.
 */
function jsonProblem(value, root) {
  const ancestors = new Map() // object → its path, for the objects that contain the current one
  const stack = [{ holder: undefined, key: '', path: root, depth: 0, value }]
  let visited = 0
  let deepest = { depth: 0, path: root }
  while (stack.length > 0) {
    const frame = stack.pop()
    if (frame.leave !== undefined) {
      ancestors.delete(frame.leave)
      continue
    }
    if (++visited > JSON_WALK_LIMIT) return { kind: 'unknown' }
    const { path, depth } = frame
    let v = frame.value
    try {
      if (frame.holder !== undefined) v = frame.holder[frame.key]
    } catch (thrown) {
      return { kind: 'getter', path, thrown }
    }
    if ((v !== null && typeof v === 'object') || typeof v === 'function' || typeof v === 'bigint') {
      let toJSON
      try {
        toJSON = v.toJSON
      } catch (thrown) {
        return { kind: 'getter', path: `${path}.toJSON`, thrown }
      }
      if (typeof toJSON === 'function') {
        try {
          v = toJSON.call(v, String(frame.key))
        } catch (thrown) {
          return { kind: 'toJSON', path, thrown }
        }
      }
    }
    if (typeof v === 'bigint' || (v !== null && typeof v === 'object' && Object.prototype.toString.call(v) === '[object BigInt]')) {
      return { kind: 'bigint', path }
    }
    if (v === null || typeof v !== 'object') continue
    if (ancestors.has(v)) return { kind: 'circular', path, target: ancestors.get(v) }
    if (depth > deepest.depth) deepest = { depth, path }
    let keys
    try {
      keys = Array.isArray(v) ? Array.from({ length: v.length }, (_, i) => i) : Object.keys(v)
    } catch (thrown) {
      return { kind: 'getter', path, thrown }
    }
    ancestors.set(v, path)
    stack.push({ leave: v })
    for (let i = keys.length - 1; i >= 0; i--) {
      stack.push({ holder: v, key: keys[i], path: pathTo(path, keys[i]), depth: depth + 1 })
    }
  }
  return { kind: 'none', deepest }
}

/**
 * The LLMProxyError for a value that `JSON.stringify` could not turn into JSON (it threw `err`):
 * what is wrong, where, and what to do. `what` names the value in the message (`The request`), `root`
 * in paths (`request`); the error thrown is the cause.
 */
function jsonError(value, err, { what, root, code }) {
  const problem = jsonProblem(value, root)
  let message
  switch (problem.kind) {
    case 'bigint':
      message = `${what} cannot be sent as JSON: ${problem.path} is a BigInt, which JSON has no form for. Convert it to a number (Number(value)) or a string (String(value)) first.`
      break
    case 'circular':
      message = `${what} cannot be sent as JSON: ${problem.path} refers back to ${problem.target}, which contains it (a circular reference). Pass a copy without the cycle.`
      break
    case 'toJSON':
      message = `${what} cannot be sent as JSON: the toJSON() method of ${problem.path} threw (${describeThrown(problem.thrown)}). Fix that method or pass plain data; the error it threw is this error's cause.`
      break
    case 'getter':
      message = `${what} cannot be read: reading ${problem.path} threw (${describeThrown(problem.thrown)}). Pass plain data; the error it threw is this error's cause.`
      break
    default:
      if (err instanceof RangeError) {
        const at = problem.kind === 'none' ? ` (${problem.deepest.depth + 1} levels, down to ${problem.deepest.path})` : ''
        message = `${what} cannot be sent as JSON: it is nested too deeply${at} for JSON.stringify (${describeThrown(err)}). Flatten it; no provider takes nesting that deep.`
      } else {
        message = `${what} cannot be sent as JSON (${describeThrown(err)}).`
      }
  }
  return new LLMProxyError({ code, message, retryable: false }, { cause: err })
}

function requestJson(request) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw invalid(
      `The request must be an object like { model, messages }, not ${request === null ? 'null' : Array.isArray(request) ? 'an array' : typeof request}.`,
    )
  }
  try {
    return JSON.stringify(request)
  } catch (err) {
    throw jsonError(request, err, { what: 'The request', root: 'request', code: 'invalid_request' })
  }
}

/**
 * The second argument of generate() and stream(), read once: `{ signal, retryOnFuturePromise, json }`,
 * `json` being the options the core reads (`fallbacks`, `timeouts`, `retry`) as JSON text, or
 * undefined. Anything wrong, a getter that throws included, is an `invalid_request` LLMProxyError.
 */
function readCallOptions(options) {
  if (options === undefined || options === null) return { signal: undefined, retryOnFuturePromise: undefined, json: undefined }
  if (typeof options !== 'object') {
    throw invalid('The second argument must be an options object like { signal }.')
  }
  let fields
  try {
    const { signal, retryOnFuturePromise, fallbacks, timeouts, retry } = options
    fields = { signal, retryOnFuturePromise, fallbacks, timeouts, retry }
  } catch (err) {
    throw invalid(
      `The call options cannot be read: reading them threw (${describeThrown(err)}). Pass a plain object like { signal, timeouts: { requestMs: 30000 } }; the error thrown is this error's cause.`,
      err,
    )
  }
  const { signal, retryOnFuturePromise, fallbacks, timeouts, retry } = fields
  if (retryOnFuturePromise !== undefined && typeof retryOnFuturePromise !== 'boolean') {
    throw invalid('`retryOnFuturePromise` must be true or false.')
  }
  if (signal !== undefined && signal !== null) {
    let isSignal
    try {
      isSignal = typeof signal.aborted === 'boolean' && typeof signal.addEventListener === 'function'
    } catch (err) {
      throw invalid(`\`signal\` cannot be read: reading it threw (${describeThrown(err)}). Pass an AbortSignal.`, err)
    }
    if (!isSignal) {
      throw invalid('`signal` must be an AbortSignal (for example from new AbortController().signal).')
    }
  }
  let json
  if (fallbacks !== undefined || timeouts !== undefined || retry !== undefined) {
    const core = { fallbacks, timeouts, retry }
    try {
      json = JSON.stringify(core)
    } catch (err) {
      throw jsonError(core, err, { what: 'The call options', root: 'options', code: 'invalid_request' })
    }
  }
  return { signal: signal === null ? undefined : signal, retryOnFuturePromise, json }
}

// One 'abort' listener per signal, however many calls share it (no MaxListenersExceededWarning, and
// nothing left on a long-lived signal by calls that have ended).
const signalTokens = new WeakMap()

/**
 * Connects the call's signal to a native cancel token: the function that disconnects it, or an
 * `aborted` LLMProxyError to fail the call with when the signal has fired already. A signal-like
 * object whose fields or methods throw is an `invalid_request` error, thrown.
 */
function listen(signal, token) {
  try {
    if (signal && signal.aborted) return abortedError(signal)
    return bridge(signal, token)
  } catch (err) {
    throw invalid(
      `\`signal\` cannot be listened to: using it threw (${describeThrown(err)}). Pass an AbortSignal (for example from new AbortController().signal); the error thrown is this error's cause.`,
      err,
    )
  }
}

/** Connects an AbortSignal to a native cancel token; returns the function that disconnects it. */
function bridge(signal, token) {
  if (!signal) return () => {}
  let tokens = signalTokens.get(signal)
  if (!tokens) {
    const set = new Set()
    signal.addEventListener(
      'abort',
      () => {
        for (const t of set) t.cancel()
        set.clear()
      },
      { once: true },
    )
    // Only once listening: a signal whose addEventListener threw is not taken as heard.
    tokens = set
    signalTokens.set(signal, set)
  }
  tokens.add(token)
  return () => tokens.delete(token)
}

async function* failed(err) {
  throw err
}

// A stream dropped without being finished (never iterated, say) releases its signal hook when it is
// garbage-collected; the native handle cancels the upstream request on its own collection.
const streamFinalizer = new FinalizationRegistry((release) => release())

/**
 * The async iterator `stream()` returns. Unlike an async generator, its `return()` stops the upstream
 * request even before the first `next()`.
 */
class LLMProxyStream {
  #handle
  #signal
  #release
  #batch = null
  #index = 0
  #done = false
  #queue = Promise.resolve()
  /** Steps asked for and not yet answered. */
  #waiting = 0

  constructor(handle, signal, release) {
    this.#handle = handle
    this.#signal = signal
    this.#release = release
    streamFinalizer.register(this, release, this)
  }

  [Symbol.asyncIterator]() {
    return this
  }

  /** The next chunk. Calls made without waiting are answered in order. */
  next() {
    // Fast path, taken for most chunks: a chunk of the current batch, with no step still pending.
    if (this.#waiting === 0 && this.#batch !== null && this.#index < this.#batch.length && !this.#abortRequested()) {
      return Promise.resolve({ done: false, value: this.#batch[this.#index++] })
    }
    this.#waiting++
    const result = this.#queue.then(() => this.#next())
    const settled = () => {
      this.#waiting--
    }
    this.#queue = result.then(settled, settled)
    return result
  }

  /** Whether the signal has fired; a signal whose `aborted` throws is left to `#next` to report. */
  #abortRequested() {
    if (!this.#signal) return false
    try {
      return this.#signal.aborted !== false
    } catch {
      return true
    }
  }

  async #next() {
    for (;;) {
      if (this.#done) return { done: true, value: undefined }
      // Chunks already received are not handed out once the caller has aborted, as with fetch.
      if (this.#signal?.aborted) {
        this.#finish(true)
        throw abortedError(this.#signal)
      }
      if (this.#batch !== null && this.#index < this.#batch.length) {
        return { done: false, value: this.#batch[this.#index++] }
      }
      let text
      try {
        text = await this.#handle.nextBatch()
      } catch (err) {
        this.#finish(true)
        const e = fromNative(err)
        throw e.code === 'aborted' && this.#signal ? abortedError(this.#signal) : e
      }
      if (text === null) {
        this.#finish(false)
        return { done: true, value: undefined }
      }
      this.#batch = JSON.parse(text)
      this.#index = 0
    }
  }

  /** Stops the stream and its upstream request (what `break` calls). */
  return(value) {
    this.#finish(true)
    return Promise.resolve({ done: true, value })
  }

  throw(err) {
    this.#finish(true)
    return Promise.reject(err)
  }

  #finish(cancel) {
    if (this.#done) return
    this.#done = true
    this.#batch = null
    streamFinalizer.unregister(this)
    this.#release()
    if (cancel) this.#handle.cancel()
  }
}

class LLMProxy {
  #native

  #retryOnFuturePromise

  /**
   * @param {object} [options] providers' keys and endpoints; every field is optional and falls back
   *   to the official SDKs' environment variables. `retryOnFuturePromise: true` turns the forced-tool
   *   retry on for every call (see `generate`).
   */
  constructor(options = {}) {
    const configError = (message, cause) =>
      new LLMProxyError({ code: 'config', message, retryable: false }, cause === undefined ? undefined : { cause })
    let retryOnFuturePromise, coreOptions
    try {
      if (options === null || typeof options !== 'object' || Array.isArray(options)) {
        throw configError('LLMProxy options must be an object like { openai: { apiKey } }.')
      }
      ;({ retryOnFuturePromise = false, ...coreOptions } = options)
    } catch (err) {
      if (err instanceof LLMProxyError) throw err
      throw configError(
        `The LLMProxy options cannot be read: reading them threw (${describeThrown(err)}). Pass a plain object like { openai: { apiKey } }; the error thrown is this error's cause.`,
        err,
      )
    }
    if (typeof retryOnFuturePromise !== 'boolean') {
      throw configError('`retryOnFuturePromise` must be true or false.')
    }
    this.#retryOnFuturePromise = retryOnFuturePromise
    let json
    try {
      json = JSON.stringify(coreOptions)
    } catch (err) {
      throw jsonError(coreOptions, err, { what: 'The LLMProxy options', root: 'options', code: 'config' })
    }
    try {
      this.#native = new native.NativeProxy(json)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Whether a call with these (read) options uses the forced-tool retry. */
  #retries(call) {
    return typeof call.retryOnFuturePromise === 'boolean' ? call.retryOnFuturePromise : this.#retryOnFuturePromise
  }

  /**
   * Sends a chat request and resolves with an OpenAI `chat.completion`. With `retryOnFuturePromise`
   * (per call, or for the proxy), an answer that promises an action ("Let me check that for you.")
   * without calling one of the request's tools is asked again once with `tool_choice: 'required'`, and
   * the second answer is returned if it calls a tool.
   */
  async generate(request, options) {
    const call = readCallOptions(options)
    if (!this.#retries(call)) return this.#generateOnce(request, call)
    return legacy.internal.generateWithForcedToolRetry((req) => this.#generateOnce(req, call), request)
  }

  async #generateOnce(request, call) {
    const json = requestJson(request)
    const { signal } = call
    const token = new native.CancelToken()
    const unbridge = listen(signal, token)
    if (unbridge instanceof LLMProxyError) throw unbridge
    try {
      return JSON.parse(await this.#native.generate(json, token, call.json))
    } catch (err) {
      const e = fromNative(err)
      throw e.code === 'aborted' && signal ? abortedError(signal) : e
    } finally {
      unbridge()
    }
  }

  /**
   * Sends a chat request and returns an async iterable of OpenAI `chat.completion.chunk`s. It never
   * throws itself: errors, including an invalid request or options, are thrown from the iteration.
   * With `retryOnFuturePromise`, a stream that ends promising an action without a tool call is
   * followed by the tool call of a second request with `tool_choice: 'required'` (its text left out:
   * the promise was already streamed).
   */
  stream(request, options) {
    let call
    try {
      call = readCallOptions(options)
    } catch (err) {
      return failed(err)
    }
    if (!this.#retries(call)) return this.#streamOnce(request, call)
    return legacy.internal.streamWithForcedToolRetry((req) => this.#streamOnce(req, call), request)
  }

  #streamOnce(request, call) {
    const { signal } = call
    let json, token, unbridge
    try {
      json = requestJson(request)
      token = new native.CancelToken()
      unbridge = listen(signal, token)
    } catch (err) {
      return failed(err)
    }
    if (unbridge instanceof LLMProxyError) return failed(unbridge)
    const handle = this.#native.stream(json, token, call.json)
    return new LLMProxyStream(handle, signal, unbridge)
  }

  /** Which provider and upstream model a request for `model` would go to. */
  resolve(model) {
    if (typeof model !== 'string') throw invalid(`resolve() takes a model name string, not ${typeof model}.`)
    try {
      return JSON.parse(this.#native.resolve(model))
    } catch (err) {
      throw fromNative(err)
    }
  }
}

// The llm-proxy 1.x API (legacy.js), served by the same core.
const {
  generateLLMResponse,
  generateLLMStreamResponse,
  llmAsJudge,
  responseContainsFuturePromise,
  Providers,
  OpenAISupportedLLMs,
  AnthropicSupportedLLMs,
  BedrockAnthropicSupportedLLMs,
  BedrockAnthropicContentType,
  Llama3_1SupportedLLMs,
} = legacy

// Names only (shorthand) first, so that Node's ESM loader finds every one of them as a named export.
module.exports = {
  LLMProxy,
  LLMProxyError,
  generateLLMResponse,
  generateLLMStreamResponse,
  llmAsJudge,
  responseContainsFuturePromise,
  Providers,
  OpenAISupportedLLMs,
  AnthropicSupportedLLMs,
  BedrockAnthropicSupportedLLMs,
  BedrockAnthropicContentType,
  Llama3_1SupportedLLMs,
  ERROR_CODES: Object.freeze(native.errorCodes()),
}
