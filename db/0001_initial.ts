import { sql, type Kysely } from 'kysely';

// Forward-only. Uses Kysely<any> and the schema builder; never imports app code.
export async function up(db: Kysely<any>): Promise<void> {
  // Millisecond timestamps: JavaScript dates carry milliseconds, and list cursors compare them exactly.
  const nowMs = sql`date_trunc('milliseconds', now())`;

  await db.schema
    .createTable('users')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('role', 'text', (c) =>
      c.notNull().defaultTo('standard_user').check(sql`role in ('standard_user', 'consumer', 'internal_admin')`),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .execute();
  await sql`create unique index if not exists users_email_key on users (lower(email))`.execute(db);

  await db.schema
    .createTable('api_keys')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await sql`create index if not exists api_keys_user_created_idx on api_keys (user_id, created_at desc, id desc)`.execute(db);

  await db.schema
    .createTable('agents')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('is_active', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .execute();
  // Serves every agents list (newest first, per owner) and every ownership check (id is the primary key).
  await sql`create index if not exists agents_owner_created_idx on agents (owner_id, created_at desc, id desc)`.execute(db);

  await db.schema
    .createTable('goals')
    .ifNotExists()
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('agent_id', 'uuid', (c) => c.references('agents.id').onDelete('set null'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('active').check(sql`status in ('active', 'inactive', 'completed', 'abandoned')`),
    )
    .addColumn('priority', 'integer')
    .addColumn('lead_fields', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('goal_type', 'text', (c) => c.notNull().defaultTo('scale').check(sql`goal_type in ('boolean', 'scale', 'numeric')`))
    .addColumn('target_value', 'double precision')
    .addColumn('current_value', 'double precision', (c) => c.notNull().defaultTo(0))
    .addColumn('min_value', 'double precision', (c) => c.notNull().defaultTo(0))
    .addColumn('max_value', 'double precision', (c) => c.notNull().defaultTo(10))
    .addColumn('unit', 'text')
    .addColumn('target_date', 'timestamptz')
    .addColumn('roadmap', 'jsonb')
    .addColumn('progress', 'double precision', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .execute();
  await sql`create index if not exists goals_owner_created_idx on goals (owner_id, created_at desc, id desc)`.execute(db);
  await sql`create index if not exists goals_agent_created_idx on goals (agent_id, created_at desc, id desc) where agent_id is not null`.execute(db);
  // The active-limit scope query: the active goals of one owner and agent, oldest first.
  await sql`create index if not exists goals_active_scope_idx on goals (owner_id, agent_id, created_at) where status = 'active'`.execute(db);

  // One attachment per agent, enforced by the primary key.
  await db.schema
    .createTable('agent_goal_attachments')
    .ifNotExists()
    .addColumn('agent_id', 'uuid', (c) => c.primaryKey().references('agents.id').onDelete('cascade'))
    .addColumn('goal_id', 'uuid', (c) => c.notNull().references('goals.id').onDelete('cascade'))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('attached_at', 'timestamptz', (c) => c.notNull().defaultTo(nowMs))
    .execute();
  await sql`create index if not exists agent_goal_attachments_goal_idx on agent_goal_attachments (goal_id)`.execute(db);

  // The shared rate-limit store (rate-limiter-flexible's Postgres schema), used when RATE_LIMIT_STORE=postgres.
  await sql`create table if not exists rate_limits (key varchar(255) primary key, points integer not null default 0, expire bigint)`.execute(db);
}
