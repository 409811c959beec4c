import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Handler } from 'hono';
import { randomUUID } from 'node:crypto';
import { outputJsonSchema, plainJsonSchema } from '../lib/json-schema.ts';
import type { Action, ActionRegistry } from '../rpc/action.ts';
import type { Principal } from '../rpc/context.ts';
import { prepare, type DispatchDeps } from '../rpc/dispatch.ts';
import { AppError, errorEnvelope, logFailure, toAppError } from '../rpc/errors.ts';
import type { Logger } from '../logger.ts';
import { admit, headerCredentials, type AdmissionDeps } from './admission.ts';
import type { Env } from './answer.ts';

// The Model Context Protocol over the registry: one tool per action, called through `prepare` like every other
// transport (validation, roles, ownership, the action's own rate limit), answered with the action's output as
// `structuredContent` and as JSON text; a failure is a result with `isError: true` holding the error envelope.

type JsonSchema = Record<string, unknown>;

export interface McpTool {
  tool: Tool;
  resource: string;
  action: string;
  def: Action;
}

/** `goals.batch-create` → `goals_batch_create`: the MCP tool of an action. */
export const toolName = (resource: string, action: string) => `${resource}_${action}`.replaceAll('-', '_');

/** The tools of the registry, in its order: input = the action's `data` plus `id` where it takes one. */
export function mcpTools(registry: ActionRegistry): McpTool[] {
  return Object.entries(registry).flatMap(([resource, actions]) =>
    Object.entries(actions as Record<string, Action>).map(([action, def]) => ({
      resource,
      action,
      def,
      tool: {
        name: toolName(resource, action),
        title: def.summary,
        description: [def.summary, def.description].filter(Boolean).join('\n\n'),
        inputSchema: toolInput(resource, def) as Tool['inputSchema'],
        outputSchema: toolOutput(def) as Tool['outputSchema'],
        annotations: {
          title: def.summary,
          readOnlyHint: def.readOnly === true,
          // MCP assumes a tool that writes is destructive unless told: only deletes are.
          destructiveHint: !def.readOnly && action === 'delete',
          openWorldHint: def.rateLimit === 'generate',
        },
      },
    })),
  );
}

function toolInput(resource: string, def: Action): JsonSchema {
  const data = plainJsonSchema(def.input);
  if (!def.id) return { ...data, type: 'object' };
  const properties = (data.properties ?? {}) as JsonSchema;
  if ('id' in properties) throw new Error(`${resource}: an action that takes an id cannot have an input field named id`);
  return {
    ...data,
    type: 'object',
    properties: { id: { type: 'string', format: 'uuid', description: `The ${resource} record's id.` }, ...properties },
    required: ['id', ...((data.required as string[] | undefined) ?? [])],
  };
}

function toolOutput(def: Action): JsonSchema {
  const { schema, defs } = outputJsonSchema(def.output);
  return Object.keys(defs).length > 0 ? { ...schema, $defs: defs } : schema;
}

export interface McpDeps {
  dispatch: DispatchDeps;
  logger: Logger;
  /** Counts one point of the caller's rate limit per tool call (stdio; over HTTP each request is admitted instead). */
  countCall?: (principal: Principal) => Promise<unknown>;
}

/**
 * An MCP server acting for one caller: lists the tools the caller may use (a consumer sees the read-only ones)
 * and runs them through `prepare`, as every transport does.
 *
 * @example const server = createMcpServer(deps, principal); await server.connect(new StdioServerTransport());
 */
export function createMcpServer(deps: McpDeps, principal: Principal, requestId: () => string = randomUUID): Server {
  const all = mcpTools(deps.dispatch.registry);
  // A consumer is shown the read-only tools; calling another is FORBIDDEN (from `prepare`, as on every transport).
  const tools = all.filter((t) => principal.role !== 'consumer' || t.def.readOnly);
  const byName = new Map(all.map((t) => [t.tool.name, t]));
  const server = new Server({ name: 'goalpost', version: '1' }, { capabilities: { tools: {} } });

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: tools.map((t) => t.tool) }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const id = requestId();
    const found = byName.get(request.params.name);
    try {
      if (!found) throw new AppError({ code: 'INVALID_ACTION', message: `Unknown tool "${request.params.name.slice(0, 100)}"` });
      await deps.countCall?.(principal);
      const args = request.params.arguments ?? {};
      // `id` is the envelope's for an action that names a record; for any other, it is an unknown field of `data`.
      const { id: recordId, ...data } = args;
      const envelope = found.def.id ? { id: recordId, data } : { data: args };
      // A write's Idempotency-Key travels in the call's `_meta` (`{ "idempotencyKey": "…" }`), as HTTP's header would.
      const idempotencyKey = request.params._meta?.idempotencyKey;
      const call = await prepare(
        deps.dispatch,
        principal,
        { resource: found.resource, action: found.action, ...envelope },
        idempotencyKey === undefined ? undefined : { idempotencyKey: String(idempotencyKey) },
      );
      const progressToken = request.params._meta?.progressToken;
      let step = 0;
      const result = await call.run({
        signal: extra.signal,
        ...(progressToken !== undefined && {
          onProgress: (event) =>
            void extra
              .sendNotification({ method: 'notifications/progress', params: { progressToken, progress: ++step, message: event.stage } })
              .catch(() => {}),
        }),
      });
      return {
        content: [{ type: 'text', text: JSON.stringify(result.data) }],
        structuredContent: result.data as Record<string, unknown>,
        ...(result.replayed && { _meta: { idempotentReplayed: true } }),
      };
    } catch (error) {
      const appError = toAppError(error);
      logFailure(deps.logger, { message: 'mcp tool call failed', appError, thrown: error, fields: { request_id: id, tool: request.params.name } });
      return { isError: true, content: [{ type: 'text', text: JSON.stringify(errorEnvelope(appError, id)) }] };
    }
  });
  return server;
}

/**
 * `POST /mcp`: the Streamable HTTP transport, stateless (each request stands alone, answered as JSON). The caller
 * is admitted as on `/v1` — credentials, then one point of the rate limit — before any MCP message is read.
 */
export function mcpRoute(deps: AdmissionDeps & { logger: Logger }): Handler<Env> {
  const mcpDeps: McpDeps = { dispatch: deps.dispatch, logger: deps.logger };
  return async (c) => {
    const { principal } = await admit(deps, headerCredentials(c.req));
    const server = createMcpServer(mcpDeps, principal, () => c.get('requestId'));
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw);
    } finally {
      void server.close();
    }
  };
}
