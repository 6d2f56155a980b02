// Compiled by __test__/types.test.js with `strict: true` against index.d.ts and the official `openai`
// package's types (a devDependency), under moduleResolution node16 and bundler: code written for the
// OpenAI SDK takes llm-proxy's answers and chunks as its own `ChatCompletion` / `ChatCompletionChunk`,
// and hands llm-proxy the requests and messages it builds for the SDK. Type-checked only, never run.
//
// Every assignment is plain, with no cast and no `@ts-expect-error` (types.test.js checks there is
// none): where llm-proxy's types say what it does at run time, that is what OpenAI's say. In particular
// `finish_reason` is always one of OpenAI's words (never null in an answer; the provider's own word is
// in `native_finish_reason`), and OpenAI's `custom` tool calls are read in answers and accepted in the
// history, as the SDK's types allow.
//
// Not differences: `system_fingerprint` and `service_tier` are passed through as the provider sent them
// (null, or a compatible server's own tier such as Groq's `on_demand`), so llm-proxy types them
// `unknown` (its index signature) and the SDK's narrower declarations are the SDK's claim.

import type OpenAI from 'openai'
import { LLMProxy } from '../../..'
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  ChatRequest,
  ContentPart,
  FinishReason,
  ReasoningEffort,
  ResponseFormat,
  Tool,
  ToolCall,
  ToolChoice,
} from '../../..'

// ---- answers: generate() → OpenAI.ChatCompletion ----

export async function answers(proxy: LLMProxy, params: OpenAI.ChatCompletionCreateParamsNonStreaming): Promise<OpenAI.ChatCompletion> {
  const res = await proxy.generate(params)
  const completion: OpenAI.ChatCompletion = res
  const ours: ChatCompletion = res

  // And part by part.
  const choice = res.choices[0]
  const finish: OpenAI.ChatCompletion.Choice['finish_reason'] = choice.finish_reason
  const words: FinishReason = finish
  const native: string | undefined = choice.native_finish_reason
  const message: OpenAI.ChatCompletionMessage = choice.message
  const calls: OpenAI.ChatCompletionMessageToolCall[] | undefined = choice.message.tool_calls
  for (const call of calls ?? []) {
    const ourCall: ToolCall = call
    if (call.type === 'custom') void call.custom.input
    else void call.function.arguments
    void ourCall
  }
  const logprobs: OpenAI.ChatCompletion.Choice['logprobs'] = choice.logprobs
  const usage: OpenAI.CompletionUsage | undefined = res.usage
  const object: OpenAI.ChatCompletion['object'] = res.object
  void [ours, words, native, message, logprobs, usage, object]

  // The answer goes back into the SDK's history as it is.
  const next: OpenAI.ChatCompletionMessageParam = choice.message
  const history: OpenAI.ChatCompletionMessageParam[] = [...params.messages, next]
  void history
  return completion
}

// ---- chunks: stream() → OpenAI.ChatCompletionChunk ----

export async function chunks(proxy: LLMProxy, params: OpenAI.ChatCompletionCreateParamsStreaming): Promise<OpenAI.ChatCompletionChunk[]> {
  const out: OpenAI.ChatCompletionChunk[] = []
  for await (const chunk of proxy.stream(params)) {
    const sdkChunk: OpenAI.ChatCompletionChunk = chunk
    const ours: ChatCompletionChunk = chunk
    out.push(sdkChunk)

    const choice = chunk.choices[0]
    if (choice) {
      const delta: OpenAI.ChatCompletionChunk.Choice.Delta = choice.delta
      const toolCalls: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] | undefined = choice.delta.tool_calls
      const finish: OpenAI.ChatCompletionChunk.Choice['finish_reason'] = choice.finish_reason
      const logprobs: OpenAI.ChatCompletionChunk.Choice['logprobs'] = choice.logprobs
      void [delta, toolCalls, finish, logprobs, choice.native_finish_reason]
    }
    const usage: OpenAI.ChatCompletionChunk['usage'] = chunk.usage
    void [usage, ours]
  }
  return out
}

// ---- requests: what the SDK builds → generate() / stream() ----

// Every message param type of the SDK, one by one.
export function messages(
  system: OpenAI.ChatCompletionSystemMessageParam,
  developer: OpenAI.ChatCompletionDeveloperMessageParam,
  user: OpenAI.ChatCompletionUserMessageParam,
  assistant: OpenAI.ChatCompletionAssistantMessageParam,
  tool: OpenAI.ChatCompletionToolMessageParam,
  fn: OpenAI.ChatCompletionFunctionMessageParam,
  sdkMessages: OpenAI.ChatCompletionMessageParam[],
): ChatMessage[] {
  const each: ChatMessage[] = [system, developer, user, assistant, tool, fn]
  const parts: ContentPart[] = typeof user.content === 'string' ? [] : user.content
  // Function and custom tool calls alike.
  const calls: ToolCall[] = assistant.tool_calls ?? []
  const sdkHistory: ChatMessage[] = sdkMessages
  void [parts, calls, sdkHistory]
  return each
}

// Request fields of the SDK's types, one by one.
export function fields(
  tools: OpenAI.ChatCompletionTool[],
  toolChoice: OpenAI.ChatCompletionToolChoiceOption,
  responseFormat: NonNullable<OpenAI.ChatCompletionCreateParams['response_format']>,
  effort: NonNullable<OpenAI.ChatCompletionCreateParams['reasoning_effort']>,
  params: OpenAI.ChatCompletionCreateParamsNonStreaming,
  streamingParams: OpenAI.ChatCompletionCreateParamsStreaming,
): ChatRequest[] {
  const t: Tool[] = tools
  const c: ToolChoice = toolChoice
  const f: ResponseFormat = responseFormat
  const e: ReasoningEffort = effort
  void [t, c, f, e]
  return [params, streamingParams]
}

// A request written as the SDK's, with the common fields, passed unchanged.
export async function literal(proxy: LLMProxy): Promise<void> {
  const request = {
    model: 'gpt-4o',
    messages: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'system', content: [{ type: 'text', text: 'Answer in French.' }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in this picture, and the weather in Paris?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
          { type: 'file', file: { file_data: 'data:application/pdf;base64,AAAA', filename: 'a.pdf' } },
          { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
        ],
        name: 'ann',
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '20C' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_2', type: 'custom', custom: { name: 'sql', input: 'SELECT 1' } }],
      },
      { role: 'tool', tool_call_id: 'call_2', content: '1' },
      { role: 'assistant', content: [{ type: 'refusal', refusal: 'No.' }], refusal: 'No.' },
    ],
    tools: [
      {
        type: 'function',
        function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object' }, strict: true },
      },
      { type: 'custom', custom: { name: 'sql', description: 'A query', format: { type: 'text' } } },
    ],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    parallel_tool_calls: false,
    temperature: 0.2,
    top_p: 1,
    max_tokens: 100,
    max_completion_tokens: 200,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
    reasoning_effort: 'low',
    stop: ['END'],
    n: 1,
    seed: 7,
    user: 'user-1',
    metadata: { team: 'a' },
    stream_options: { include_usage: true },
    frequency_penalty: 0,
    presence_penalty: 0,
    logit_bias: { '50256': -100 },
    logprobs: true,
    top_logprobs: 2,
    service_tier: 'auto',
    store: false,
    prediction: { type: 'content', content: 'x' },
    modalities: ['text'],
    verbosity: 'low',
  } satisfies OpenAI.ChatCompletionCreateParamsNonStreaming
  const res = await proxy.generate(request)
  for await (const chunk of proxy.stream({ ...request, stream: true } satisfies OpenAI.ChatCompletionCreateParamsStreaming)) {
    void chunk
  }
  void res
}
