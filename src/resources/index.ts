import type { RegistryTypes } from '../rpc/action.ts';
import { actionItemActions } from './action-items/actions.ts';
import { agentActions } from './agents/actions.ts';
import { apiKeyActions } from './api-keys/actions.ts';
import { goalActions } from './goals/actions.ts';
import { webhookActions } from './webhooks/actions.ts';

/**
 * The API: every resource and its actions. Validation, the dispatcher, the REST-style routes, the OpenAPI
 * document and the typed client all derive from this object; nothing else decides what the API is.
 */
export const registry = {
  goals: goalActions,
  agents: agentActions,
  'api-keys': apiKeyActions,
  'action-items': actionItemActions,
  webhooks: webhookActions,
};

/** Input and output types of every action: `Registry['goals']['create']['input']`. */
export type Registry = RegistryTypes<typeof registry>;
