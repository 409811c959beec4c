import { actionItemActions } from '../resources/action-items/actions.ts';
import { agentActions } from '../resources/agents/actions.ts';
import { apiKeyActions } from '../resources/api-keys/actions.ts';
import { goalActions } from '../resources/goals/actions.ts';
import type { RegistryTypes } from './action.ts';

/**
 * The API: every resource and its actions. Validation, the dispatcher, the REST-style routes, the
 * OpenAPI document and the typed client are all derived from this object.
 */
export const registry = {
  goals: goalActions,
  agents: agentActions,
  'api-keys': apiKeyActions,
  'action-items': actionItemActions,
};

/** Input and output types of every action: `Registry['goals']['create']['input']`. */
export type Registry = RegistryTypes<typeof registry>;
