// Compiled by __test__/types.test.js (and `npm test`) with `strict: true` against index.d.ts: a user's
// program touching every part of the public API. It is type-checked only, never run.

import { LLMProxy, LLMProxyError, ERROR_CODES } from '../..'
import type {
  AbortSignalLike,
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  FinishReason,
  ChatRequest,
  LLMProxyErrorCode,
  LLMProxyOptions,
  LLMProxyServed,
  LLMProxyTimeout,
  ThinkingBlock,
  Route,
  Tool,
  ToolCall,
} from '../..'
// The 1.x API, as 1.x code imports it.
import {
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
} from '../..'
import type {
  BedrockAnthropicMessages,
  GenerateLLMResponseParams,
  LegacyCredentials,
  LLMAsJudgeResult,
  LLMResponse,
  LLMStreamChunk,
  Messages,
  OpenAIMessages,
  OpenAIResponse,
  OpenAIStreamResponse,
} from '../..'

// An options object with every provider and every field.
const options: LLMProxyOptions = {
  openai: {
    apiKey: 'sk-…',
    baseUrl: 'https://api.openai.com/v1',
    organization: 'org-1',
    project: 'proj-1',
    headers: { 'X-Trace': '1' },
  },
  anthropic: { apiKey: 'sk-ant-…', baseUrl: 'https://api.anthropic.com', headers: { 'anthropic-beta': 'x' } },
  bedrock: {
    region: 'eu-west-1',
    accessKeyId: 'AKIA…',
    secretAccessKey: '…',
    sessionToken: '…',
    endpoint: 'https://bedrock-runtime.eu-west-1.amazonaws.com',
  },
  compatible: {
    groq: { baseUrl: 'https://api.groq.com/openai/v1', apiKey: 'gsk_…' },
    local: { baseUrl: 'http://127.0.0.1:11434/v1' },
  },
  routes: { fast: 'groq/llama-3.1-8b-instant', 'gpt-4*': 'openai/gpt-4o' },
  timeouts: { requestMs: 30_000, connectMs: 5_000, firstChunkMs: 20_000, idleMs: 60_000 },
  retry: { maxRetries: 3, initialDelayMs: 250, maxDelayMs: 4_000 },
  fallbacks: { 'gpt-4o': ['claude-sonnet-4-5', 'bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0'] },
  retryOnFuturePromise: true,
}
// The old name of timeouts.requestMs.
const legacyTimeout: LLMProxyOptions = { timeoutMs: 30_000 }

const proxy = new LLMProxy(options)
const bare = new LLMProxy()

const tools: Tool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      strict: true,
    },
  },
]

const history: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'developer', content: [{ type: 'text', text: 'Rules.' }] },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'What is in this picture, and the weather in Paris?' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
    ],
  },
  {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
  },
  { role: 'tool', tool_call_id: 'call_1', content: '20C' },
  { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{}' } },
  { role: 'function', name: 'get_weather', content: '21C' },
]

const request: ChatRequest = {
  model: 'gpt-4o',
  messages: history,
  tools,
  tool_choice: { type: 'function', function: { name: 'get_weather' } },
  parallel_tool_calls: true,
  max_completion_tokens: 512,
  temperature: 0.2,
  top_p: 1,
  stop: ['END'],
  response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
  reasoning_effort: 'low',
  user: 'user-1',
  seed: 7,
  // Unmodelled OpenAI fields are allowed.
  logprobs: true,
}

// Provider-specific fields: Anthropic's (cache_control, is_error, top_k, thinking) and Bedrock Converse's.
const claudeRequest: ChatRequest = {
  model: 'claude-sonnet-4-5',
  messages: [
    { role: 'system', content: [{ type: 'text', text: 'Long instructions…', cache_control: { type: 'ephemeral' } }] },
    {
      role: 'user',
      content: [{ type: 'file', file: { file_data: 'data:application/pdf;base64,AAAA', filename: 'report.pdf' } }],
    },
    { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'toolu_1', content: 'failed', is_error: true },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } }, cache_control: { type: 'ephemeral', ttl: '1h' } }],
  tool_choice: 'required',
  top_k: 40,
  thinking: { type: 'enabled', budget_tokens: 2048 },
  max_tokens: 4096,
}
const converseRequest: ChatRequest = {
  model: 'bedrock-converse/amazon.nova-pro-v1:0',
  messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 's3://bucket/cat.png' } }] }],
  additionalModelRequestFields: { top_k: 20 },
  guardrailConfig: { guardrailIdentifier: 'g1', guardrailVersion: '1' },
  performanceConfig: { latency: 'optimized' },
  requestMetadata: { team: 'a' },
}

function describeError(err: unknown): string {
  if (!(err instanceof LLMProxyError)) return 'not ours'
  const code: LLMProxyErrorCode = err.code
  const provider: string | undefined = err.provider
  const status: number | undefined = err.status
  const retryable: boolean = err.retryable
  const wait: number | undefined = err.retryAfterMs
  const body: unknown = err.body
  const cause: unknown = err.cause
  const timeout: LLMProxyTimeout | undefined = err.timeout
  const tried: number = err.tried?.length ?? 0
  void [cause, timeout, tried]
  const name: 'LLMProxyError' = err.name
  void [provider, status, retryable, body, name]
  switch (code) {
    case 'rate_limit':
      return `retry in ${wait ?? 1000} ms`
    case 'invalid_request':
    case 'authentication':
    case 'permission':
    case 'not_found':
    case 'overloaded':
    case 'server_error':
    case 'timeout':
    case 'aborted':
    case 'connection':
    case 'stream_interrupted':
    case 'unsupported_model':
    case 'config':
    case 'internal':
      return err.message
    default: {
      // Every code is handled above: this only compiles while the union has no other member.
      const unreachable: never = code
      return unreachable
    }
  }
}

async function main(): Promise<void> {
  // `types: []` and lib es2022: no DOM AbortSignal here, so a hand-made one (Node's AbortSignal fits too).
  const listeners: Array<() => void> = []
  const signal: AbortSignalLike = {
    aborted: false,
    reason: undefined,
    addEventListener(_type, listener) {
      listeners.push(listener)
    },
    removeEventListener(_type, listener) {
      listeners.splice(listeners.indexOf(listener), 1)
    },
  }

  // generate
  const res: ChatCompletion = await proxy.generate(request, {
    signal,
    retryOnFuturePromise: false,
    fallbacks: ['mock/x'],
    timeouts: { requestMs: 10_000, firstChunkMs: 5_000, idleMs: 5_000 },
    retry: { maxRetries: 0 },
  })
  await proxy.generate(claudeRequest)
  await proxy.generate(converseRequest)
  void legacyTimeout
  const choice = res.choices[0]
  const text: string | null = choice.message.content
  const refusal: string | null = choice.message.refusal
  // The answer goes back into the history as it is (Claude's thinking blocks included).
  const continued: ChatMessage[] = [...history, choice.message, { role: 'tool', tool_call_id: 'call_1', content: '20C' }]
  const thinking: ThinkingBlock[] | undefined = choice.message.thinking_blocks
  const reasoningText: string | undefined = choice.message.reasoning_content
  const served: LLMProxyServed | undefined = res.llm_proxy
  const stopSequence: string | undefined = res.stop_sequence
  const extra: unknown = res.system_fingerprint
  void [continued, thinking, reasoningText, served?.failed.map((f) => f.code), stopSequence, extra]
  const calls: ToolCall[] | undefined = choice.message.tool_calls
  for (const call of calls ?? []) {
    const id: string = call.id
    if (call.type === 'custom') {
      // OpenAI's custom tools: free-form input.
      const input: string = call.custom.input
      void [id, input, call.custom.name]
      continue
    }
    const args: unknown = JSON.parse(call.function.arguments)
    const fname: string = call.function.name
    void [args, id, fname]
  }
  // Always one of OpenAI's words; the provider's own when it differs.
  const finish: FinishReason = choice.finish_reason
  const native: string | undefined = choice.native_finish_reason
  if (finish === 'tool_calls') void native
  const cached: number | undefined = res.usage?.prompt_tokens_details?.cached_tokens
  const reasoning: number | undefined = res.usage?.completion_tokens_details?.reasoning_tokens
  const created: number = res.created
  const object: 'chat.completion' = res.object
  void [text, refusal, finish, cached, reasoning, created, object, res.id, res.model, res.service_tier]

  // stream
  let out = ''
  const args: string[] = []
  for await (const chunk of proxy.stream({ model: 'groq/llama-3.1-70b', messages: [{ role: 'user', content: 'Hi' }] })) {
    const c: ChatCompletionChunk = chunk
    out += c.choices[0]?.delta?.content ?? ''
    for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
      const index: number = tc.index
      args[index] = (args[index] ?? '') + (tc.function?.arguments ?? '')
    }
    if (c.choices[0]?.finish_reason === 'tool_calls') break
    if (c.usage) out += ` (${c.usage.total_tokens} tokens)`
  }

  // the iterator by hand
  const it = bare.stream({ model: 'mock/echo', messages: [{ role: 'user', content: 'x' }], mock_response: 'y' })
  const step = await it.next()
  if (!step.done) out += step.value.id
  await it.return?.()

  // resolve
  const route: Route = proxy.resolve('claude-sonnet-4-5')
  const kind: 'openai' | 'openai-compatible' | 'anthropic' | 'bedrock' | 'mock' = route.kind
  const matched: 'prefix' | 'route' | 'catalogue' | 'only-compatible' = route.matchedBy
  const converse: boolean | undefined = route.converse
  void [kind, matched, converse, route.provider, route.model]

  // errors
  try {
    await proxy.generate({ model: 'my-model', messages: [{ role: 'user', content: 'x' }] })
  } catch (err) {
    out += describeError(err)
    if (err instanceof LLMProxyError && err.code === 'rate_limit' && err.retryAfterMs !== undefined) {
      out += String(err.retryAfterMs + 1)
    }
  }
  const codes: readonly LLMProxyErrorCode[] = ERROR_CODES
  out += codes.join(',')
  void out
}

void main

// ---- the 1.x API: code written for llm-proxy 1.17.0 compiles unchanged ----

async function legacyMain(): Promise<string> {
  const credentials: LegacyCredentials = { apiKey: 'sk-…' }
  const messages: OpenAIMessages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: '', function_call: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    { role: 'function', name: 'get_weather', content: '20C' },
    { role: 'tool', tool_call_id: 'call_1', content: '20C' },
  ]
  const functions = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }]

  // generateLLMResponse with an enum model and every 1.x parameter
  const params: GenerateLLMResponseParams = {
    messages,
    model: OpenAISupportedLLMs.GPT_4_O,
    functions,
    max_tokens: 256,
    temperature: 0,
    credentials,
  }
  const res: OpenAIResponse = await generateLLMResponse(params)
  const message = res.choices[0].message
  let out: string = message.content
  if (message.function_call) out += `${message.function_call.name}(${String(message.function_call.arguments)})`
  for (const call of message.tool_calls ?? []) out += call.id + call.function.name + call.function.arguments
  const total: number = res.usage.total_tokens
  const fingerprint: string = res.system_fingerprint
  const asUnion: LLMResponse = res
  void [total, fingerprint, asUnion]

  // Bedrock, Llama and compatible credentials; Anthropic-format messages
  const bedrockMessages: BedrockAnthropicMessages = [
    { role: 'user', content: [{ type: BedrockAnthropicContentType.TEXT, text: 'Hi' }] },
  ]
  const anyMessages: Messages = bedrockMessages
  await generateLLMResponse({
    messages: anyMessages,
    model: BedrockAnthropicSupportedLLMs.CLAUDE_SONNET_4_5_GLOBAL,
    credentials: { awsConfig: { accessKeyId: 'AKIA…', secretAccessKey: '…', region: 'eu-west-1' } },
  })
  await generateLLMResponse({ messages, model: Llama3_1SupportedLLMs.LLAMA_3_1_70B_2, credentials: { awsConfig: { accessKeyId: 'a', secretAccessKey: 'b', region: 'us-east-1' } } })
  await generateLLMResponse({
    messages,
    model: 'llama-3.1-70b-versatile',
    credentials: { openAICompatibleProviderConfig: { openAICompatibleProviderKey: 'gsk_…', baseUrl: 'https://api.groq.com/openai/v1' } },
  })
  await generateLLMResponse({ messages, model: 'mock/echo', credentials: {}, mock_response: 'hello' })

  // generateLLMStreamResponse: 1.x's element type, and the run-time chunk type
  const stream = await generateLLMStreamResponse({ messages, model: AnthropicSupportedLLMs.CLAUDE_SONNET_4_5_20250929, credentials })
  for await (const chunk of stream) {
    const typed = chunk as unknown as LLMStreamChunk
    const delta = typed.choices[0]?.delta
    out += delta?.content ?? ''
    if (delta?.function_call) out += delta.function_call.name + delta.function_call.arguments
    if (typed.usage) out += String(typed.usage.total_tokens)
    const old = chunk as unknown as OpenAIStreamResponse
    out += old.choices.delta.content ?? ''
  }

  // llmAsJudge, with 1.x's parameters (provider included)
  const verdict: LLMAsJudgeResult = await llmAsJudge({
    messages,
    judgePrompt: 'Judge {{messages[-1]}} in {{trajectory}}',
    model: OpenAISupportedLLMs.GPT_4_O_MINI,
    provider: Providers.OPENAI,
    credentials,
    maxTokens: 300,
    temperature: 0,
  })
  const passed: boolean = verdict.passed
  const score: number | null = verdict.score
  out += `${passed} ${score ?? 'none'} ${verdict.judgeResponse}`

  const promised: boolean = responseContainsFuturePromise(message.content) || responseContainsFuturePromise(null)
  const provider: Providers = Providers.ANTHROPIC_BEDROCK
  return `${out}${promised}${provider}`
}

void legacyMain
