// The floor: a bare Hono + postgres.js server answering the benchmark's `POST /v1` envelopes with one
// SQL statement each — no authentication, no validation, no envelope logic, no transactions. The owner
// comes from `x-bench-owner`. Goalpost cannot be faster than this; the ratio to it is what the
// benchmark reports.
//
//   DATABASE_URL=postgres://… PORT=0 DATABASE_POOL_MAX=10 node --import tsx bench/floor.ts
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';

/** Goalpost's MAX_ACTIVE_GOALS, which the benchmark leaves at its default. */
const MAX_ACTIVE_GOALS = Number(process.env.MAX_ACTIVE_GOALS ?? 3);

const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
  onnotice: () => {},
});

/** Every column of a goal but the roadmap, which lists leave out. */
const listColumns = sql`id, owner_id, agent_id, name, description, status, priority, lead_fields, goal_type,
  target_value, current_value, min_value, max_value, unit, target_date, progress, created_at, updated_at`;

interface Envelope {
  resource: string;
  action: string;
  id?: string;
  data?: any;
}

const app = new Hono();

app.post('/v1', async (c) => {
  const body = (await c.req.json()) as Envelope;
  const owner = c.req.header('x-bench-owner')!;
  const data = body.data ?? {};
  switch (`${body.resource}.${body.action}`) {
    case 'goals.get': {
      const [row] = await sql`select * from goals where id = ${body.id!} and owner_id = ${owner}`;
      return row ? c.json({ success: true, data: row }) : c.json({ success: false }, 404);
    }
    case 'goals.list': {
      // The page and the count of every match, in one statement, as Goalpost reads them: the count from
      // goal_counts, the per-owner counts the database keeps (db/0004); the page under a constant inner limit
      // (src/resources/shared.ts, PAGE_ROWS_MAX), so that Postgres keeps one generic plan.
      const rows = await sql`
        select *, (select coalesce(sum(n), 0) from goal_counts where owner_id = ${owner})::int as total
        from (select ${listColumns} from goals where owner_id = ${owner}
              order by created_at desc, id desc limit 101) as page
        order by created_at desc, id desc limit ${data.limit + 1}`;
      const count = rows[0]?.total ?? 0;
      const items = rows.slice(0, data.limit).map(({ total: _, ...row }) => row);
      return c.json({ success: true, data: { items, count, next_cursor: rows.length > data.limit ? 'more' : null } });
    }
    case 'goals.create': {
      // The same data work as Goalpost's create: the insert, and the active limit applied to the goal's
      // scope (the oldest active goals past the limit set inactive) in the same statement. What the floor
      // leaves out is the scope lock that keeps the limit exact under concurrent creates.
      const scope = data.agent_id ? sql`agent_id = ${data.agent_id}` : sql`agent_id is null`;
      const [row] = await sql`
        with deactivated as (
          update goals set status = 'inactive', updated_at = now()
          where status = 'active' and ${scope} and id in (
            select id from goals where owner_id = ${owner} and ${scope} and status = 'active'
            order by created_at desc, id desc offset ${MAX_ACTIVE_GOALS - 1}))
        insert into goals (owner_id, agent_id, name, description, priority, lead_fields)
        values (${owner}, ${data.agent_id ?? null}, ${data.name}, ${data.description ?? null}, ${data.priority ?? null},
                ${sql.json(data.lead_fields ?? [])})
        returning *`;
      return c.json({ success: true, data: row }, 201);
    }
    case 'goals.update': {
      // The same data work as Goalpost's update of a current value: the row written with the progress it gives
      // (a goal with a roadmap keeps the progress of its nodes), in one statement without Goalpost's transaction.
      const value = Number(data.current_value);
      const [row] = await sql`
        update goals set current_value = ${value}, updated_at = now(),
          progress = case when roadmap is not null then progress
                          when target_value is null or target_value = min_value then progress
                          else least(100, greatest(0, (${value} - min_value) / (target_value - min_value) * 100)) end
        where id = ${body.id!} and owner_id = ${owner}
        returning *`;
      return row ? c.json({ success: true, data: row }) : c.json({ success: false }, 404);
    }
    case 'goals.attach': {
      // The ownership of both checked in the statement that writes the attachment; the attachment it
      // replaces read in the same statement (without the agent lock that makes it exact under races).
      const [row] = await sql`
        with previous as (select goal_id from agent_goal_attachments where agent_id = ${data.agentId})
        insert into agent_goal_attachments (agent_id, goal_id, owner_id)
        select a.id, g.id, g.owner_id
        from goals g join agents a on a.id = ${data.agentId} and a.owner_id = g.owner_id
        where g.id = ${data.goalId} and g.owner_id = ${owner}
        on conflict (agent_id) do update set goal_id = excluded.goal_id, attached_at = now()
        returning agent_id, goal_id, attached_at, (select goal_id from previous) as replaced_goal_id`;
      return row ? c.json({ success: true, data: row }) : c.json({ success: false }, 404);
    }
    case 'action-items.create':
    case 'action-items.batch-create': {
      const items: any[] = body.action === 'create' ? [data] : data.action_items;
      const goalIds = [...new Set(items.map((i) => i.goal_id).filter(Boolean))] as string[];
      // One INSERT of every item, written only if every goal named is the owner's.
      const rows = await sql`
        insert into action_items (owner_id, description, due_at, conversation_id, goal_id)
        select ${owner}, t.description, t.due_at, t.conversation_id, t.goal_id
        from unnest(${items.map((i) => i.description)}::text[], ${items.map((i) => i.due_at ?? null)}::timestamptz[],
                    ${items.map((i) => i.conversation_id ?? null)}::text[], ${items.map((i) => i.goal_id ?? null)}::uuid[])
             as t(description, due_at, conversation_id, goal_id)
        where (select count(*) from goals where id = any(${goalIds}::uuid[]) and owner_id = ${owner}) = ${goalIds.length}
        returning *`;
      if (rows.length === 0) return c.json({ success: false }, 404);
      return body.action === 'create'
        ? c.json({ success: true, data: rows[0] }, 201)
        : c.json({ success: true, data: { action_items: rows, created_count: rows.length } }, 201);
    }
    default:
      return c.json({ success: false, error: `the floor does not serve ${body.resource}.${body.action}` }, 400);
  }
});

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' }, (info) => {
  console.log(`floor listening on http://127.0.0.1:${info.port}`);
});

const stop = () => {
  server.close();
  void sql.end({ timeout: 2 }).then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
