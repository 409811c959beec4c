import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { z } from 'zod';
import { plainJsonSchema, strictJsonSchema, withoutAddedNulls } from '../lib/json-schema.ts';
import {
  GENERATION_TEMPERATURE,
  ProviderError,
  type AiProvider,
  type GenerationOptions,
  type GoalSuggestionRequest,
  type RoadmapRequest,
} from './provider.ts';

export interface OpenAiProviderOptions {
  /** The server's OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1. */
  baseUrl: string;
  /** Optional: local servers (Ollama, vLLM, llama.cpp) usually need none. */
  apiKey?: string;
  model: string;
  /** How long to wait for the server to start answering, per attempt, and then between streamed chunks. */
  timeoutMs: number;
}

/** One structured-output request: messages, and the zod schema the answer's JSON must match. */
interface JsonTask {
  /** The `json_schema.name` the server sees. */
  schemaName: string;
  schema: z.ZodType;
  messages: ChatCompletionMessageParam[];
}

/** Where a provider's requests go: the SDK's client, the model, and how long a stream may stall. */
interface Upstream {
  client: OpenAI;
  model: string;
  timeoutMs: number;
}

/** One request under way: what it sends, and what aborts it (the caller's signal or the watchdog). */
interface Call {
  client: OpenAI;
  body: ChatCompletionCreateParamsNonStreaming;
  signal: AbortSignal;
  watchdog: Watchdog;
}

const GOAL_SYSTEM_PROMPT = `You configure goals for AI voice and chat agents that collect information from leads.
From the user's description, answer one JSON object matching the JSON schema you were given:
- name: a short name for the goal (at most 8 words).
- description: one or two sentences on what the agent collects and why.
- lead_fields: each piece of information the description asks the agent to collect, in the order mentioned.
  key: snake_case, unique, starting with a letter (full_name, email, preferred_contact_time).
  label: short and human-readable.
  type: email for email addresses; phone for phone numbers; url for websites and links; number for amounts,
  budgets, prices, counts, sizes and quantities; date for a day; datetime for a specific date and time;
  boolean for yes/no questions; select when the text lists the choices (put them in options); text otherwise.
  required: true unless the description says the field is optional.
  options: only for select, and always for select.
- The metric only where the text states a measurable target ("book 20 demos this month" gives goal_type
  "numeric", target_value 20, unit "demos"); otherwise null for goal_type, target_value, min_value, max_value
  and unit.
Answer with the JSON object only.`;

/**
 * An OpenAI-compatible chat-completions provider through the `openai` SDK: OpenAI itself, or any
 * server speaking the same API at `baseUrl` (Ollama, vLLM, llama.cpp). Temperature 0.5; structured
 * output with the JSON Schema derived from the zod schema (strict); `timeoutMs` per attempt; one retry
 * on a 5xx, a timeout or a dropped connection (the SDK's own retry, `maxRetries: 1`). With
 * `options.stream` the answer is streamed and each chunk reported as progress. The caller's signal
 * aborts the upstream request.
 *
 * @example createOpenAiProvider({ baseUrl: 'http://localhost:11434/v1', model: 'llama3.1', timeoutMs: 30_000 })
 */
export function createOpenAiProvider(options: OpenAiProviderOptions): AiProvider {
  const client = new OpenAI({
    baseURL: options.baseUrl,
    // The SDK insists on a key; local servers ignore the header.
    apiKey: options.apiKey ?? 'not-needed',
    timeout: options.timeoutMs,
    maxRetries: 1,
    fetch: withoutRetryAfter,
  });
  const model = options.model;
  const complete = (task: JsonTask, generation: GenerationOptions) =>
    completeJson({ client, model, timeoutMs: options.timeoutMs }, task, generation);

  return {
    name: 'openai',
    model,
    temperature: GENERATION_TEMPERATURE,
    suggestGoal: (request, generation) =>
      complete({ schemaName: 'goal_suggestion', schema: request.schema, messages: goalMessages(request) }, generation),
    suggestRoadmap: (request, generation) =>
      complete({ schemaName: 'goal_roadmap', schema: request.schema, messages: roadmapMessages(request) }, generation),
  };
}

/** Asks for JSON matching `task.schema`; answers it parsed, with the nulls strict mode added removed. */
async function completeJson(upstream: Upstream, task: JsonTask, generation: GenerationOptions): Promise<unknown> {
  // The SDK's timeout covers each attempt up to the response headers; after them this watchdog does,
  // re-armed on every streamed chunk.
  const watchdog = stallWatchdog(upstream.timeoutMs);
  const signal = AbortSignal.any([generation.signal, watchdog.signal]);
  const body: ChatCompletionCreateParamsNonStreaming = {
    model: upstream.model,
    temperature: GENERATION_TEMPERATURE,
    messages: task.messages,
    response_format: {
      type: 'json_schema',
      json_schema: { name: task.schemaName, strict: true, schema: strictJsonSchema(task.schema) },
    },
  };
  generation.onProgress({ stage: 'requesting', provider: 'openai', model: upstream.model });
  const call: Call = { client: upstream.client, body, signal, watchdog };
  let text: string;
  try {
    text = generation.stream ? await streamedText(call, generation) : await wholeText(call);
  } catch (error) {
    throw upstreamFailure(error, { cancelled: generation.signal.aborted, stalled: watchdog.signal.aborted, timeoutMs: upstream.timeoutMs });
  } finally {
    watchdog.disarm();
  }
  generation.onProgress({ stage: 'validating' });
  return withoutAddedNulls(parseJson(text), plainJsonSchema(task.schema));
}

/** The answer of a request that is not streamed. */
async function wholeText({ client, body, signal, watchdog }: Call): Promise<string> {
  const response = await client.chat.completions.create(body, { signal }).asResponse();
  watchdog.arm();
  return contentOf(await response.json());
}

/** The answer streamed, each chunk reported as progress. */
async function streamedText({ client, body, signal, watchdog }: Call, generation: GenerationOptions): Promise<string> {
  const { data: stream, response } = await client.chat.completions
    .create({ ...body, stream: true }, { signal })
    .withResponse();
  watchdog.arm();
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    // A server that ignored `stream: true` and answered the whole completion at once.
    return contentOf(await response.json());
  }
  let text = '';
  for await (const chunk of stream) {
    watchdog.arm();
    const choice = chunk.choices?.[0];
    if (choice?.delta?.refusal) throw refused(choice.delta.refusal);
    const delta = choice?.delta?.content;
    if (delta) {
      text += delta;
      generation.onProgress({ stage: 'generating', delta });
    }
  }
  // The SDK ends the iteration quietly when the signal aborts; the answer is then incomplete.
  if (signal.aborted) throw new Error('the stream was aborted');
  return text;
}

/** An abort signal that fires once `timeoutMs` pass after the latest `arm()`; `disarm()` stops it. */
function stallWatchdog(timeoutMs: number) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  return {
    signal: controller.signal,
    arm() {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), timeoutMs);
    },
    disarm() {
      clearTimeout(timer);
    },
  };
}

type Watchdog = ReturnType<typeof stallWatchdog>;

const ROADMAP_SYSTEM_PROMPT = `You plan roadmaps for goals: the milestones that reach a goal, and which must come before which.
Answer one JSON object matching the JSON schema you were given:
- milestones: 3 to 12 milestones, in the order they would be reached; the last one is the goal achieved.
  id: short, lowercase and unique (m1, m2, …).
  label: what has been achieved at the milestone, in at most 12 words. With a target date, end the label with
  "by YYYY-MM-DD" where a date helps.
  depends_on: the ids of the milestones that must be reached first. The first milestone depends on nothing;
  work that can happen in parallel depends on the same earlier milestone; never a cycle.
Base the plan on the goal's name, description, the information its agent collects (lead fields), its metric and
its target date, and follow the user's instructions. Answer with the JSON object only.`;

function roadmapMessages(request: RoadmapRequest): ChatCompletionMessageParam[] {
  const { goal } = request;
  const lines = [`Goal: ${goal.name}`];
  if (goal.description) lines.push(`Description: ${goal.description}`);
  if (goal.lead_fields.length > 0) {
    lines.push(`Information the agent collects: ${goal.lead_fields.map((f) => `${f.label}${f.required ? ' (required)' : ''}`).join(', ')}`);
  }
  if (goal.target_value !== null) {
    lines.push(`Metric (${goal.goal_type}): from ${goal.current_value} to ${goal.target_value}${goal.unit ? ` ${goal.unit}` : ''}`);
  }
  if (goal.target_date) lines.push(`Target date: ${goal.target_date.slice(0, 10)} (the goal was created ${goal.created_at.slice(0, 10)})`);
  if (request.instructions) lines.push(`Instructions: ${request.instructions}`);
  return [
    { role: 'system', content: ROADMAP_SYSTEM_PROMPT },
    { role: 'user', content: lines.join('\n') },
  ];
}

function goalMessages(request: GoalSuggestionRequest): ChatCompletionMessageParam[] {
  const agent = request.agent
    ? `\n\nThe goal is for the agent "${request.agent.name}"${request.agent.description ? `: ${request.agent.description}` : ''}.`
    : '';
  return [
    { role: 'system', content: GOAL_SYSTEM_PROMPT },
    { role: 'user', content: `${request.description}${agent}` },
  ];
}

/** The text of a (non-streamed) chat completion, or UPSTREAM_ERROR for a refusal or a body of another shape. */
function contentOf(completion: unknown): string {
  const message = (completion as { choices?: { message?: { content?: unknown; refusal?: unknown } }[] } | null)?.choices?.[0]?.message;
  if (typeof message?.refusal === 'string' && message.refusal) throw refused(message.refusal);
  if (typeof message?.content !== 'string') {
    throw new ProviderError('The AI provider answered something that is not a chat completion');
  }
  return message.content;
}

function refused(reason: string): ProviderError {
  return new ProviderError(`The model refused: ${reason.slice(0, 300)}`);
}

/** The model's answer as JSON. Code fences (some local models add them) are tolerated; anything else is UPSTREAM_ERROR. */
function parseJson(text: string): unknown {
  const trimmed = text.trim().replace(/^```(?:json)?\s*\n?([\s\S]*?)\n?```$/i, '$1').trim();
  if (trimmed === '') {
    throw new ProviderError('The AI provider answered nothing', {
      details: [{ path: ['suggestion'], message: 'empty answer', type: 'invalid_json' }],
    });
  }
  try {
    return JSON.parse(trimmed);
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'not JSON';
    throw new ProviderError(`The AI provider answered malformed JSON: ${reason}`, {
      details: [{ path: ['suggestion'], message: reason, type: 'invalid_json' }],
    });
  }
}

/** Any failure of the call → a ProviderError with a message an operator can act on; the cause goes to the log. */
function upstreamFailure(error: unknown, state: { cancelled: boolean; stalled: boolean; timeoutMs: number }): ProviderError {
  if (error instanceof ProviderError) return error;
  const fail = (message: string) => new ProviderError(message, { cause: error });
  if (state.cancelled) return fail('Generation was cancelled: the client went away');
  if (state.stalled) return fail(`The AI provider stopped answering for ${state.timeoutMs} ms`);
  if (error instanceof APIConnectionTimeoutError) {
    return fail(`The AI provider did not answer within ${state.timeoutMs} ms (tried twice)`);
  }
  if (error instanceof APIConnectionError) return fail('Could not reach the AI provider (tried twice)');
  if (error instanceof APIError && error.status !== undefined) {
    const detail = error.message.replace(/^\d{3}\s*/, '').slice(0, 300);
    const retried = error.status >= 500 || error.status === 429 || error.status === 408 ? ' (tried twice)' : '';
    return fail(`The AI provider answered ${error.status}${retried}${detail ? `: ${detail}` : ''}`);
  }
  return fail(`The AI provider failed: ${error instanceof Error ? error.message.slice(0, 300) : 'unknown error'}`);
}

/**
 * `fetch` for the SDK, minus a failed response's Retry-After: the SDK would sleep as long as the server
 * asks (minutes, uncancellable) before its one retry; without the header it backs off for about half a
 * second.
 */
async function withoutRetryAfter(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const response = await fetch(input, init);
  if (response.ok || (!response.headers.has('retry-after') && !response.headers.has('retry-after-ms'))) return response;
  const headers = new Headers(response.headers);
  headers.delete('retry-after');
  headers.delete('retry-after-ms');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
