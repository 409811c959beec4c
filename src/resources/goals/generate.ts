import { z } from 'zod';
import { defineAction } from '../../rpc/action.ts';
import { AppError } from '../../rpc/errors.ts';
import { uuid } from '../shared.ts';

export const generate = defineAction({
  summary: 'Suggest a goal configuration from a description',
  description: [
    'Asks the configured AI provider (at temperature 0.5) for a goal — `name`, `description`, `lead_fields` and, where the text implies one, a metric — and answers `{ suggestion, provider, model, temperature }`.',
    'The suggestion is valid input for `goals.create` as it stands (with `agent_id` set when `agentId` names your agent); nothing is saved.',
    'With `Accept: text/event-stream` the answer is Server-Sent Events: `progress` events (with the OpenAI-compatible provider, the model output as it arrives), then one `result` or `error` event.',
    'A model that fails or answers something that does not validate is UPSTREAM_ERROR (502), the issues in `details`. Limited per user to GENERATE_RATE_LIMIT_PER_MINUTE (10) calls a minute, on top of the general limit.',
  ].join('\n\n'),
  streams: true,
  rateLimit: 'generate',
  input: z.strictObject({
    description: z
      .string()
      .trim()
      .min(1, 'describe the goal')
      .max(2000, 'at most 2000 characters')
      .describe('What the agent should collect or achieve, in plain words (1–2000 characters).'),
    agentId: uuid().optional().describe('The agent the goal is for: its name and description inform the suggestion, which then carries its `agent_id`.'),
  }),
  handler: async ({ input, ctx }) => {
    let agent: { id: string; name: string; description: string | null } | undefined;
    if (input.agentId !== undefined) {
      agent = await ctx.db
        .selectFrom('agents')
        .select(['id', 'name', 'description'])
        .where('id', '=', input.agentId)
        .$if(ctx.scope.ownerId !== null, (qb) => qb.where('owner_id', '=', ctx.scope.ownerId!))
        .executeTakeFirst();
      if (!agent) throw new AppError({ code: 'AGENT_NOT_FOUND' });
    }
    const ai = ctx.services.ai;
    const suggestion = await ai.suggestGoal(
      { description: input.description, ...(agent && { agent: { name: agent.name, description: agent.description } }) },
      { signal: ctx.signal, onProgress: ctx.progress, stream: ctx.streaming },
    );
    return {
      suggestion: agent ? { ...suggestion, agent_id: agent.id } : suggestion,
      provider: ai.name,
      model: ai.model,
      temperature: ai.temperature,
    };
  },
});
