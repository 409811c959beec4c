// The requests of the benchmark: one `POST /v1` envelope per operation, sent byte for byte the same to
// Goalpost and to the floor. Each carries the owner's API key (Goalpost checks it) and `x-bench-owner`
// (the floor reads the owner from it; Goalpost ignores it).

/** What the seed step hands the load generator: every owner with its key, goals and agents. */
export interface Fixture {
  owners: { id: string; key: string; goals: string[]; agents: string[] }[];
}

export const OPERATIONS = {
  'goals.get': { label: 'goals.get', reads: true },
  'goals.list': { label: 'goals.list (limit 50)', reads: true },
  'goals.list-10': { label: 'goals.list (limit 10)', reads: true },
  'goals.create': { label: 'goals.create', reads: false },
  // The same create with an Idempotency-Key, new for every request (load.ts makes it): the cost of a key.
  'goals.create-keyed': { label: 'goals.create + Idempotency-Key', reads: false },
  'goals.attach': { label: 'goals.attach', reads: false },
  'goals.update': { label: 'goals.update (current_value)', reads: false },
  'action-items.create': { label: 'action-items.create', reads: false },
  'action-items.batch-create': { label: 'action-items.batch-create (50)', reads: false },
} as const;

export type Operation = keyof typeof OPERATIONS;

export interface BenchRequest {
  headers: Record<string, string>;
  body: string;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

const LEAD_FIELDS = [
  { key: 'full_name', label: 'Full name', type: 'text', required: true },
  { key: 'email', label: 'Email', type: 'email', required: true },
  { key: 'contact_time', label: 'Preferred time', type: 'select', required: false, options: ['morning', 'afternoon'] },
];

let serial = 0;

function envelope(op: Operation, owner: Fixture['owners'][number]): object {
  const goal = pick(owner.goals);
  const agent = pick(owner.agents);
  const n = serial++;
  switch (op) {
    case 'goals.get':
      return { resource: 'goals', action: 'get', id: goal };
    case 'goals.list':
      return { resource: 'goals', action: 'list', data: { limit: 50 } };
    case 'goals.list-10':
      return { resource: 'goals', action: 'list', data: { limit: 10 } };
    case 'goals.create':
    case 'goals.create-keyed':
      return {
        resource: 'goals',
        action: 'create',
        data: {
          name: `Bench goal ${n}`,
          description: 'Collect the caller details and book a callback',
          agent_id: agent,
          priority: n % 101,
          lead_fields: LEAD_FIELDS,
        },
      };
    case 'goals.attach':
      return { resource: 'goals', action: 'attach', data: { goalId: goal, agentId: agent } };
    case 'goals.update':
      // The seed's goals are numeric with target 20: a new current value moves progress (and the day's history point).
      return { resource: 'goals', action: 'update', id: goal, data: { current_value: n % 21 } };
    case 'action-items.create':
      return { resource: 'action-items', action: 'create', data: actionItem(n, 0, goal) };
    case 'action-items.batch-create':
      return {
        resource: 'action-items',
        action: 'batch-create',
        data: { action_items: Array.from({ length: 50 }, (_, i) => actionItem(n, i, goal)) },
      };
  }
}

function actionItem(n: number, i: number, goal: string) {
  return {
    description: `Follow up on call ${n}, point ${i + 1}`,
    goal_id: goal,
    conversation_id: `conv-${n}`,
    ...(i % 2 === 0 && { due_at: new Date(Date.UTC(2027, 0, 1 + (n % 300), 9)).toISOString() }),
  };
}

/**
 * `size` requests of `op`, each for a random owner and one of that owner's goals and agents, built
 * ahead of time so the load generator spends its CPU sending, not serialising.
 */
export function buildPool(op: Operation, fixture: Fixture, size: number): BenchRequest[] {
  const headersOf = new Map(
    fixture.owners.map((o) => [
      o.id,
      { 'content-type': 'application/json', authorization: `Bearer ${o.key}`, 'x-bench-owner': o.id },
    ]),
  );
  return Array.from({ length: size }, () => {
    const owner = pick(fixture.owners);
    return { headers: headersOf.get(owner.id)!, body: JSON.stringify(envelope(op, owner)) };
  });
}
