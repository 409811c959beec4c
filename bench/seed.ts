// Seeding in bulk SQL (generate_series, unnest): never a loop of API calls. Owners get an API key each,
// generated here and stored as Goalpost stores them (the SHA-256 of the key, src/auth/keys.ts).
import type postgres from 'postgres';
import { displayPrefix, generateApiKey, hashApiKey } from '../src/auth/keys.ts';
import type { Fixture } from './requests.ts';

const LEAD_FIELDS = [
  { key: 'full_name', label: 'Full name', type: 'text', required: true },
  { key: 'email', label: 'Email', type: 'email', required: true },
  { key: 'phone', label: 'Phone', type: 'phone', required: false },
  { key: 'budget', label: 'Budget', type: 'select', required: false, options: ['< 1k', '1k–10k', '> 10k'] },
];

/** A small roadmap, on every fifth goal: `goals.get` answers it. */
const ROADMAP = {
  nodes: [
    { id: 'n1', label: 'Qualify', completed: true, position: { x: 0, y: 0 } },
    { id: 'n2', label: 'Demo', completed: false, position: { x: 250, y: 0 } },
    { id: 'n3', label: 'Proposal', completed: false, position: { x: 500, y: 0 } },
    { id: 'n4', label: 'Close', completed: false, position: { x: 750, y: 0 } },
  ],
  edges: [
    { id: 'e1', source: 'n1', target: 'n2' },
    { id: 'e2', source: 'n2', target: 'n3' },
    { id: 'e3', source: 'n3', target: 'n4' },
  ],
};

/** Owners (users) with one API key each, and `agentsPerOwner` agents each. Answers id → key. */
export async function seedOwners(sql: postgres.Sql, owners: number, agentsPerOwner: number): Promise<Map<string, string>> {
  const users = await sql<{ id: string }[]>`
    insert into users (email, name)
    select 'owner-' || i || '@bench.goalpost.local', 'Bench owner ' || i from generate_series(1, ${owners}) as i
    returning id`;
  const keys = users.map(() => generateApiKey());
  await sql`
    insert into api_keys (user_id, name, prefix, key_hash)
    select * from unnest(${users.map((u) => u.id)}::uuid[], ${keys.map(() => 'bench')}::text[],
                         ${keys.map(displayPrefix)}::text[], ${keys.map(hashApiKey)}::text[])`;
  await sql`
    insert into agents (owner_id, name, description)
    select u.id, 'Agent ' || a, 'Inbound calls' from users u cross join generate_series(1, ${agentsPerOwner}) as a`;
  return new Map(users.map((u, i) => [u.id, keys[i]!]));
}

/**
 * Goals number `from`..`to` of every owner, in one INSERT: a third without an agent, the rest spread
 * over the owner's agents; mixed statuses; `created_at` spread over the past year (lists sort by it).
 */
export async function seedGoals(sql: postgres.Sql, from: number, to: number): Promise<void> {
  await sql`
    insert into goals (owner_id, agent_id, name, description, status, priority, lead_fields, goal_type,
                       target_value, current_value, unit, roadmap, progress, created_at, updated_at)
    select o.id,
           case when g % 3 = 0 then null else o.agents[1 + g % cardinality(o.agents)] end,
           'Seed goal ' || g,
           'Qualify inbound leads and book a demo call, variant ' || g,
           (array['active', 'inactive', 'completed', 'abandoned'])[1 + g % 4],
           g % 101,
           ${sql.json(LEAD_FIELDS)},
           'numeric', 20, g % 20, 'callbacks',
           case when g % 5 = 0 then ${sql.json(ROADMAP)}::jsonb end,
           case when g % 5 = 0 then 25 else (g % 20) * 5 end,
           t.at, t.at
    from (select u.id, array_agg(a.id order by a.id) as agents
          from users u join agents a on a.owner_id = u.id group by u.id) as o
    cross join generate_series(${from}::int, ${to}::int) as g
    cross join lateral (select date_trunc('milliseconds', now() - random() * interval '365 days' + g * interval '0 s') as at) as t`;
}

/** Removes what the write operations created, leaving the seed. */
export async function removeWrites(sql: postgres.Sql): Promise<void> {
  await sql`delete from action_items`;
  await sql`delete from agent_goal_attachments`;
  await sql`delete from goals where name like 'Bench goal %'`;
}

/**
 * The load generator's view: every owner with its key, agents, and up to `goalsPerOwner` of its goals
 * chosen at random over the whole table (not the first ones inserted, which would be the hot pages).
 */
export async function fixtureOf(sql: postgres.Sql, keys: Map<string, string>, goalsPerOwner: number): Promise<Fixture> {
  const goals = await sql<{ owner_id: string; ids: string[] }[]>`
    select owner_id, array_agg(id) as ids
    from (select owner_id, id, row_number() over (partition by owner_id order by random()) as r from goals) as t
    where r <= ${goalsPerOwner} group by owner_id`;
  const agents = await sql<{ owner_id: string; ids: string[] }[]>`
    select owner_id, array_agg(id) as ids from agents group by owner_id`;
  const goalsOf = new Map(goals.map((r) => [r.owner_id, r.ids]));
  const agentsOf = new Map(agents.map((r) => [r.owner_id, r.ids]));
  return {
    owners: [...keys].map(([id, key]) => ({ id, key, goals: goalsOf.get(id) ?? [], agents: agentsOf.get(id) ?? [] })),
  };
}
