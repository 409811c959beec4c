import { defineAction } from '../../rpc/action.ts';
import { agentNotFound } from '../errors.ts';
import { findAgent } from '../agents/queries.ts';
import { generateInput, generateOutput } from './schemas.ts';
import { suggestGoal } from './suggestions.ts';

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
  input: generateInput,
  output: generateOutput,
  example: { description: 'Ask callers for their name, email and monthly budget' },
  handler: async ({ input, ctx }) => {
    const agent = input.agentId === undefined ? undefined : await findAgent(ctx.db, { ownerId: ctx.scope.ownerId, id: input.agentId });
    if (input.agentId !== undefined && !agent) throw agentNotFound();
    const suggestion = await suggestGoal(ctx, {
      description: input.description,
      ...(agent && { agent: { name: agent.name, description: agent.description } }),
    });
    const ai = ctx.services.ai;
    return {
      suggestion: agent ? { ...suggestion, agent_id: agent.id } : suggestion,
      provider: ai.name,
      model: ai.model,
      temperature: ai.temperature,
    };
  },
});
