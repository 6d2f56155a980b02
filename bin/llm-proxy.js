#!/usr/bin/env node
'use strict'

// `llm-proxy "question" -m <model>`: streams a model's answer to stdout. No dependencies: the
// arguments are parsed here, and the call goes through LLMProxy like any other.

const path = require('node:path')
const { once } = require('node:events')

const NAME = 'llm-proxy'

const USAGE = `Usage: ${NAME} [options] <question...>
       echo <question> | ${NAME} [options]`

const HELP = `${USAGE}

Streams a model's answer to stdout as it arrives.

Options:
  -m, --model <model>     the model to ask: gpt-4o, claude-sonnet-4-5, bedrock/…, mock/echo…
                          (default: $LLM_PROXY_MODEL)
  -s, --system <text>     a system message sent before the question
      --max-tokens <n>    the longest answer, in tokens
  -t, --temperature <x>   the sampling temperature, e.g. 0.2
      --json              print each chunk as one line of JSON instead of the text
  -h, --help              show this help
  -v, --version           show the version

The question is the arguments joined by spaces; with none (or "-"), it is read from stdin.

Keys and endpoints come from the environment, as for new LLMProxy(): OPENAI_API_KEY,
OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, AWS_REGION / AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_PROFILE (Bedrock)… mock/<anything> answers without a key or network.
LLM_PROXY_LOG=info (or debug) writes what each request did to stderr.

Exit status: 0 answered, 1 the call failed, 2 a usage error, 130 interrupted (Ctrl-C).`

/** Options that take a value, by every name they go by. */
const VALUE_OPTIONS = {
  '-m': 'model',
  '--model': 'model',
  '-s': 'system',
  '--system': 'system',
  '--max-tokens': 'maxTokens',
  '-t': 'temperature',
  '--temperature': 'temperature',
}
const FLAGS = {
  '--json': 'json',
  '-h': 'help',
  '--help': 'help',
  '-v': 'version',
  '--version': 'version',
}

class UsageError extends Error {}

/** The command line as `{ model, system, maxTokens, temperature, json, help, version, words }`. */
function parseArgs(argv) {
  const out = { words: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') {
      out.words.push(...argv.slice(i + 1))
      break
    }
    if (arg === '-' || !arg.startsWith('-')) {
      out.words.push(arg)
      continue
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const name = eq > 0 ? arg.slice(0, eq) : arg
    if (name in FLAGS) {
      if (eq > 0) throw new UsageError(`${name} takes no value`)
      out[FLAGS[name]] = true
    } else if (name in VALUE_OPTIONS) {
      let value
      if (eq > 0) value = arg.slice(eq + 1)
      else if (i + 1 < argv.length) value = argv[++i]
      else throw new UsageError(`${name} needs a value`)
      out[VALUE_OPTIONS[name]] = value
    } else {
      throw new UsageError(`unknown option ${name}`)
    }
  }
  return out
}

/** The request to send, from the parsed arguments and the question. */
function buildRequest(args, question) {
  const messages = []
  if (args.system !== undefined) messages.push({ role: 'system', content: args.system })
  messages.push({ role: 'user', content: question })
  const request = { model: args.model, messages }
  if (args.maxTokens !== undefined) {
    const n = Number(args.maxTokens)
    if (!/^\s*\d+\s*$/.test(args.maxTokens) || !Number.isSafeInteger(n) || n < 1) {
      throw new UsageError(`--max-tokens must be a whole number of at least 1, not '${args.maxTokens}'`)
    }
    request.max_tokens = n
  }
  if (args.temperature !== undefined) {
    const x = Number(args.temperature)
    if (args.temperature.trim() === '' || !Number.isFinite(x)) {
      throw new UsageError(`--temperature must be a number, not '${args.temperature}'`)
    }
    request.temperature = x
  }
  return request
}

/** Text for a one-line message: whitespace runs (newlines included) become one space. */
function oneLine(text) {
  const flat = String(text).replace(/\s+/g, ' ').trim()
  return flat.length > 2000 ? `${flat.slice(0, 2000)}…` : flat
}

function printError(message, code) {
  process.stderr.write(`${NAME}: ${oneLine(message)} (${code})\n`)
}

async function readStdin() {
  const parts = []
  for await (const part of process.stdin) parts.push(part)
  return Buffer.concat(parts).toString('utf8')
}

async function main(argv) {
  let args
  try {
    args = parseArgs(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    return usageError(err.message)
  }
  if (args.help) {
    process.stdout.write(`${HELP}\n`)
    return 0
  }
  if (args.version) {
    process.stdout.write(`${NAME} ${require(path.join(__dirname, '..', 'package.json')).version}\n`)
    return 0
  }
  if (args.model === undefined && process.env.LLM_PROXY_MODEL) args.model = process.env.LLM_PROXY_MODEL
  if (args.model === undefined || args.model.trim() === '') {
    return usageError('no model: pass -m <model> or set LLM_PROXY_MODEL (mock/echo answers without a key)')
  }

  // Ctrl-C (or a termination signal) aborts the request; a second one exits at once.
  const controller = new AbortController()
  let stopped = null
  const onSignal = (signal, status) => {
    if (stopped !== null) process.exit(status)
    stopped = { signal, status }
    controller.abort()
  }
  const onSigint = () => onSignal('SIGINT', 130)
  const onSigterm = () => onSignal('SIGTERM', 143)
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigterm)

  let question
  const fromStdin = args.words.length === 0 || (args.words.length === 1 && args.words[0] === '-')
  if (fromStdin) {
    if (process.stdin.isTTY) {
      return usageError('no question: give it as arguments, or pipe it on stdin')
    }
    const reading = readStdin()
    reading.catch(() => {}) // once aborted, how the reading ends does not matter
    const aborted = once(controller.signal, 'abort').then(() => null)
    question = await Promise.race([reading, aborted])
    if (question === null) {
      process.stdin.destroy()
      return stopped.status
    }
  } else {
    question = args.words.join(' ')
  }
  if (question.trim() === '') return usageError('the question is empty')

  let request
  try {
    request = buildRequest(args, fromStdin ? question.replace(/\s+$/, '') : question)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    return usageError(err.message)
  }

  let LLMProxy
  try {
    ;({ LLMProxy } = require(path.join(__dirname, '..')))
  } catch (err) {
    printError(`could not load llm-proxy: ${err && err.message}`, 'internal')
    return 1
  }

  // A reader that went away (`| head -1`) ends the answer quietly.
  process.stdout.on('error', (err) => {
    if (err && err.code === 'EPIPE') {
      if (stopped === null) stopped = { signal: 'EPIPE', status: 0 }
      controller.abort()
      return
    }
    printError(`cannot write the answer: ${err && err.message}`, 'internal')
    process.exit(1)
  })
  // Waits while stdout is full (a slow reader), but not past Ctrl-C.
  const write = async (text) => {
    if (!process.stdout.write(text)) await once(process.stdout, 'drain', { signal: controller.signal })
  }

  let lastText = null
  // The answer so far stays on its own line.
  const endLine = () => {
    if (lastText !== null && !lastText.endsWith('\n') && !(stopped && stopped.signal === 'EPIPE')) process.stdout.write('\n')
  }
  try {
    const proxy = new LLMProxy()
    for await (const chunk of proxy.stream(request, { signal: controller.signal })) {
      // Chunks already received when the signal came are not printed.
      if (stopped !== null) break
      if (args.json) {
        await write(`${JSON.stringify(chunk)}\n`)
        continue
      }
      const choice = chunk.choices && chunk.choices[0]
      const text = choice && choice.delta && choice.delta.content
      if (typeof text === 'string' && text !== '') {
        lastText = text
        await write(text)
      }
    }
    if (stopped !== null) {
      endLine()
      return stopped.status
    }
    if (!args.json && (lastText === null || !lastText.endsWith('\n'))) await write('\n')
    return 0
  } catch (err) {
    endLine()
    if (stopped !== null) return stopped.status
    const code = err && typeof err.code === 'string' && err.name === 'LLMProxyError' ? err.code : 'internal'
    printError(err instanceof Error ? err.message : String(err), code)
    return 1
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
  }
}

function usageError(message) {
  process.stderr.write(`${NAME}: ${oneLine(message)} (usage)\n${USAGE}\nRun '${NAME} --help' for the options.\n`)
  return 2
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status
    },
    (err) => {
      printError(`unexpected failure: ${err && err.message}`, 'internal')
      process.exitCode = 1
    },
  )
}

module.exports = { parseArgs, buildRequest, main }
