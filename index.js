'use strict'

// The public JavaScript face of llm-proxy: a thin layer over the native core (native.js, generated
// by napi-rs). It turns requests into JSON text, native errors into LLMProxyError, AbortSignals
// into cancellation, and batches of streamed chunks into an async iterator. The 1.x API and the
// forced-tool retry (`retryOnFuturePromise`) live in legacy.js.

const native = require('./native.js')
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
  const reason = signal && signal.reason
  const why = reason && reason.name === 'TimeoutError' ? ' (its timeout elapsed)' : ''
  return new LLMProxyError(
    { code: 'aborted', message: `The request was aborted by its AbortSignal${why}.`, retryable: false },
    reason === undefined ? undefined : { cause: reason },
  )
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
    throw invalid(`The request cannot be sent as JSON (${err.message}); remove BigInt values and circular references.`, err)
  }
}

function checkSignal(options) {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object') {
    throw invalid('The second argument must be an options object like { signal }.')
  }
  if (options.retryOnFuturePromise !== undefined && typeof options.retryOnFuturePromise !== 'boolean') {
    throw invalid('`retryOnFuturePromise` must be true or false.')
  }
  const { signal } = options
  if (signal === undefined || signal === null) return undefined
  if (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw invalid('`signal` must be an AbortSignal (for example from new AbortController().signal).')
  }
  return signal
}

/** The call options the core reads (`fallbacks`, `timeouts`, `retry`) as JSON text, or undefined. */
function callOptionsJson(options) {
  if (options === undefined || options === null) return undefined
  const { fallbacks, timeouts, retry } = options
  if (fallbacks === undefined && timeouts === undefined && retry === undefined) return undefined
  try {
    return JSON.stringify({ fallbacks, timeouts, retry })
  } catch (err) {
    throw invalid(`The call options cannot be read (${err.message}).`, err)
  }
}

// One 'abort' listener per signal, however many calls share it (no MaxListenersExceededWarning, and
// nothing left on a long-lived signal by calls that have ended).
const signalTokens = new WeakMap()

/** Connects an AbortSignal to a native cancel token; returns the function that disconnects it. */
function bridge(signal, token) {
  if (!signal) return () => {}
  let tokens = signalTokens.get(signal)
  if (!tokens) {
    const set = new Set()
    tokens = set
    signalTokens.set(signal, set)
    signal.addEventListener(
      'abort',
      () => {
        for (const t of set) t.cancel()
        set.clear()
      },
      { once: true },
    )
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
    const result = this.#queue.then(() => this.#next())
    this.#queue = result.catch(() => {})
    return result
  }

  async #next() {
    for (;;) {
      if (this.#done) return { done: true, value: undefined }
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
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new LLMProxyError({
        code: 'config',
        message: 'LLMProxy options must be an object like { openai: { apiKey } }.',
        retryable: false,
      })
    }
    const { retryOnFuturePromise = false, ...coreOptions } = options
    if (typeof retryOnFuturePromise !== 'boolean') {
      throw new LLMProxyError({ code: 'config', message: '`retryOnFuturePromise` must be true or false.', retryable: false })
    }
    this.#retryOnFuturePromise = retryOnFuturePromise
    let json
    try {
      json = JSON.stringify(coreOptions)
    } catch (err) {
      throw new LLMProxyError({ code: 'config', message: `LLMProxy options cannot be read: ${err.message}.`, retryable: false })
    }
    try {
      this.#native = new native.NativeProxy(json)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Whether a call with these options uses the forced-tool retry. */
  #retries(options) {
    const perCall = options !== null && typeof options === 'object' ? options.retryOnFuturePromise : undefined
    return typeof perCall === 'boolean' ? perCall : this.#retryOnFuturePromise
  }

  /**
   * Sends a chat request and resolves with an OpenAI `chat.completion`. With `retryOnFuturePromise`
   * (per call, or for the proxy), an answer that promises an action ("Let me check that for you.")
   * without calling one of the request's tools is asked again once with `tool_choice: 'required'`, and
   * the second answer is returned if it calls a tool.
   */
  async generate(request, options) {
    if (!this.#retries(options)) return this.#generateOnce(request, options)
    return legacy.internal.generateWithForcedToolRetry((req) => this.#generateOnce(req, options), request)
  }

  async #generateOnce(request, options) {
    const json = requestJson(request)
    const signal = checkSignal(options)
    const optionsJson = callOptionsJson(options)
    if (signal && signal.aborted) throw abortedError(signal)
    const token = new native.CancelToken()
    const unbridge = bridge(signal, token)
    try {
      return JSON.parse(await this.#native.generate(json, token, optionsJson))
    } catch (err) {
      const e = fromNative(err)
      throw e.code === 'aborted' && signal ? abortedError(signal) : e
    } finally {
      unbridge()
    }
  }

  /**
   * Sends a chat request and returns an async iterable of OpenAI `chat.completion.chunk`s. Errors,
   * including invalid requests, are thrown from the iteration. With `retryOnFuturePromise`, a stream
   * that ends promising an action without a tool call is followed by the tool call of a second request
   * with `tool_choice: 'required'` (its text left out: the promise was already streamed).
   */
  stream(request, options) {
    if (!this.#retries(options)) return this.#streamOnce(request, options)
    return legacy.internal.streamWithForcedToolRetry((req) => this.#streamOnce(req, options), request)
  }

  #streamOnce(request, options) {
    let json, signal, optionsJson
    try {
      json = requestJson(request)
      signal = checkSignal(options)
      optionsJson = callOptionsJson(options)
    } catch (err) {
      return failed(err)
    }
    if (signal && signal.aborted) return failed(abortedError(signal))
    const token = new native.CancelToken()
    const handle = this.#native.stream(json, token, optionsJson)
    const unbridge = bridge(signal, token)
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
