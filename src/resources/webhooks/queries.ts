import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../db/client.ts';
import type { DeliveryRow, DeliveryStatus, WebhookEventType, WebhookRow } from '../../db/schema.ts';
import { nowMs, ownedBy } from '../../db/sql.ts';
import { AppError } from '../../rpc/errors.ts';
import { newestPage, type CursorPosition } from '../pagination.ts';
import type { StoredEvent } from './model.ts';

// Every statement on webhooks, their events and deliveries, and the reminders that become events. `ownerId` null is
// admin mode across accounts (see `ownedBy`). The queue's rules (claims, leases, retries) are in delivery.ts.

export const MAX_WEBHOOKS = 10;

type Page = { after: CursorPosition | undefined; limit: number };

/** Creates a webhook, refusing an eleventh of the owner's with CONFLICT (the user row locked, so two cannot pass together). */
export function insertWebhook(
  db: Db,
  webhook: { owner_id: string; url: string; events: WebhookEventType[]; description: string | null; enabled: boolean; secret: string },
): Promise<WebhookRow> {
  return db.transaction().execute(async (trx) => {
    const user = await trx.selectFrom('users').select('id').where('id', '=', webhook.owner_id).forNoKeyUpdate().executeTakeFirst();
    if (!user) throw new AppError({ code: 'NOT_FOUND', message: 'User not found' });
    const { n } = await trx
      .selectFrom('webhooks')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('owner_id', '=', webhook.owner_id)
      .executeTakeFirstOrThrow();
    if (Number(n) >= MAX_WEBHOOKS) {
      throw new AppError({ code: 'CONFLICT', message: `A user may have at most ${MAX_WEBHOOKS} webhooks; delete one first` });
    }
    return trx.insertInto('webhooks').values(webhook).returningAll().executeTakeFirstOrThrow();
  });
}

export function findWebhook(db: Db, target: { ownerId: string | null; id: string }): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhooks').selectAll().where('id', '=', target.id).$call(ownedBy(target.ownerId)).executeTakeFirst();
}

/** A page of the owner's webhooks (`limit + 1` rows, newest first, after the cursor), and how many there are. */
export async function listWebhooks(db: Db, ownerId: string | null, page: Page): Promise<{ rows: WebhookRow[]; total: number }> {
  const owned = db.selectFrom('webhooks').$call(ownedBy(ownerId));
  const [rows, total] = await Promise.all([
    newestPage(db, owned.selectAll(), page),
    owned.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(total.count) };
}

export function updateWebhook(
  db: Db,
  target: { ownerId: string | null; id: string },
  changes: { url?: string; events?: WebhookEventType[]; description?: string | null; enabled?: boolean },
): Promise<WebhookRow | undefined> {
  return db
    .updateTable('webhooks')
    .set({ ...changes, updated_at: nowMs })
    .where('id', '=', target.id)
    .$call(ownedBy(target.ownerId))
    .returningAll()
    .executeTakeFirst();
}

/** Deletes the webhook and its delivery log (the cascade); answers its id. */
export async function deleteWebhook(db: Db, target: { ownerId: string | null; id: string }): Promise<string | undefined> {
  const row = await db.deleteFrom('webhooks').where('id', '=', target.id).$call(ownedBy(target.ownerId)).returning('id').executeTakeFirst();
  return row?.id;
}

/** A page of a webhook's delivery log, newest first, and how many rows match. */
export async function listDeliveries(
  db: Db,
  filter: { webhookId: string; status?: DeliveryStatus },
  page: Page,
): Promise<{ rows: DeliveryRow[]; total: number }> {
  const filtered = db
    .selectFrom('webhook_deliveries')
    .where('webhook_id', '=', filter.webhookId)
    .$if(filter.status !== undefined, (qb) => qb.where('status', '=', filter.status!));
  const [rows, total] = await Promise.all([
    newestPage(db, filtered.selectAll(), page),
    filtered.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(total.count) };
}

export function findDelivery(db: Db, target: { webhookId: string; id: string }): Promise<DeliveryRow | undefined> {
  return db.selectFrom('webhook_deliveries').selectAll().where('id', '=', target.id).where('webhook_id', '=', target.webhookId).executeTakeFirst();
}

/** A delivery whose attempt this process holds: where to send it, and what. */
export interface ClaimedDelivery {
  id: string;
  claim: string;
  /** Attempts so far, this one included. */
  attempts: number;
  webhook_id: string;
  url: string;
  secret: string;
  enabled: boolean;
  event: StoredEvent;
}

/** A claimed delivery as the statement answers it: the event's columns flat. */
type ClaimedRow = Omit<ClaimedDelivery, 'event'> & {
  event_id: string;
  event_type: StoredEvent['type'];
  event_created_at: Date;
  event_data: Record<string, unknown>;
};

/** The claimed rows (`claimed` a CTE of the deliveries claimed) with their webhooks and events. */
async function withWebhookAndEvent(db: Db, claimed: ReturnType<typeof sql>): Promise<ClaimedDelivery[]> {
  const { rows } = await sql<ClaimedRow>`
    with claimed as (${claimed})
    select c.id, c.claim, c.attempts, c.webhook_id, w.url, w.secret, w.enabled,
           e.id as event_id, e.type as event_type, e.created_at as event_created_at, e.data as event_data
    from claimed c join webhooks w on w.id = c.webhook_id join webhook_events e on e.id = c.event_id`.execute(db);
  return rows.map(({ event_id, event_type, event_created_at, event_data, ...delivery }) => ({
    ...delivery,
    event: { id: event_id, type: event_type, created_at: event_created_at, data: event_data },
  }));
}

const leaseUntil = (leaseMs: number) => sql`now() + make_interval(secs => ${leaseMs}::float8 / 1000)`;

/**
 * Claims up to `limit` pending deliveries that are due, skipping those another process holds: each gets a fresh
 * `claim`, one more attempt counted, and `next_attempt_at` moved to the end of its lease, so that if this process dies
 * during the attempt another one retries it after the lease.
 */
export function claimDueDeliveries(db: Db, options: { limit: number; leaseMs: number; maxAttempts: number }): Promise<ClaimedDelivery[]> {
  return withWebhookAndEvent(
    db,
    sql`
      update webhook_deliveries d
      set attempts = d.attempts + 1, next_attempt_at = ${leaseUntil(options.leaseMs)}, claim = gen_random_uuid()
      where d.id in (
        select id from webhook_deliveries
        where status = 'pending' and next_attempt_at <= now() and attempts < ${options.maxAttempts}
        order by next_attempt_at limit ${options.limit}
        for update skip locked)
      returning d.id, d.claim, d.attempts, d.webhook_id, d.event_id`,
  );
}

/**
 * Deliveries whose last attempt was claimed but never recorded (the process died during it) and that have no attempt
 * left: failed, so they do not stay pending for ever.
 */
export async function failAbandoned(db: Db, maxAttempts: number): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'failed', claim: null, next_attempt_at: null, last_error: 'no outcome was recorded for the last attempt (the worker stopped during it)' })
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', sql<Date>`now()`)
    .where('attempts', '>=', maxAttempts)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A `webhook.test` event for one webhook, and its delivery claimed by the caller (it attempts it at once). */
export function createTestDelivery(db: Db, options: { webhookId: string; ownerId: string; leaseMs: number }): Promise<ClaimedDelivery> {
  return db.transaction().execute(async (trx) => {
    const eventId = `evt_${randomUUID().replaceAll('-', '')}`;
    await trx
      .insertInto('webhook_events')
      .values({ id: eventId, owner_id: options.ownerId, type: 'webhook.test', data: { webhook_id: options.webhookId } })
      .execute();
    const [claimed] = await withWebhookAndEvent(
      trx,
      sql`
        insert into webhook_deliveries (webhook_id, event_id, event_type, attempts, next_attempt_at, claim)
        values (${options.webhookId}, ${eventId}, 'webhook.test', 1, ${leaseUntil(options.leaseMs)}, gen_random_uuid())
        returning id, claim, attempts, webhook_id, event_id`,
    );
    return claimed!;
  });
}

/**
 * Claims a failed delivery of the webhook for one more attempt; nothing when there is no such failed delivery. Its
 * attempts count as spent (at least `maxAttempts`): if this process dies during the attempt, the worker fails the
 * delivery after the lease rather than starting a series of retries.
 */
export async function claimFailedDelivery(
  db: Db,
  target: { webhookId: string; id: string; leaseMs: number; maxAttempts: number },
): Promise<ClaimedDelivery | undefined> {
  const [claimed] = await withWebhookAndEvent(
    db,
    sql`
      update webhook_deliveries
      set status = 'pending', attempts = greatest(attempts + 1, ${target.maxAttempts}),
          next_attempt_at = ${leaseUntil(target.leaseMs)}, claim = gen_random_uuid()
      where id = ${target.id} and webhook_id = ${target.webhookId} and status = 'failed'
      returning id, claim, attempts, webhook_id, event_id`,
  );
  return claimed;
}

/** How an attempt ended, as the log keeps it. */
export interface Outcome {
  status: DeliveryStatus;
  statusCode: number | null;
  error: string | null;
  /** For a delivery left pending: when to try again. */
  retryInMs?: number;
}

/** Writes an attempt's outcome, if the caller still holds the claim; answers the delivery as it now is. */
export async function recordOutcome(db: Db, delivery: ClaimedDelivery, outcome: Outcome): Promise<DeliveryRow | undefined> {
  const next = outcome.status === 'pending' ? sql`now() + make_interval(secs => ${outcome.retryInMs ?? 0}::float8 / 1000)` : sql`null`;
  const { rows } = await sql<DeliveryRow>`
    update webhook_deliveries
    set status = ${outcome.status}, last_status_code = ${outcome.statusCode}, last_error = ${outcome.error},
        next_attempt_at = ${next}, delivered_at = ${outcome.status === 'delivered' ? nowMs : null}, claim = null
    where id = ${delivery.id} and claim = ${delivery.claim}
    returning *`.execute(db);
  return rows[0];
}

/** A 410 Gone: the webhook is disabled (its owner re-enables it with `update`). */
export async function disableWebhook(db: Db, id: string): Promise<void> {
  await db.updateTable('webhooks').set({ enabled: false, updated_at: nowMs }).where('id', '=', id).execute();
}

/**
 * Turns up to `limit` reminders that are due into `action_item.due` events (webhooks_emit, db/0006): the items whose
 * `remind_at` has come, each taken by one process only (SKIP LOCKED), their `remind_at` cleared in the same statement.
 * An item completed, or due at another time, by now sends nothing (the triggers keep `remind_at` right; this is the
 * check at delivery time). Answers how many reminders it took.
 */
export async function fireDueReminders(db: Db, limit: number): Promise<number> {
  const { rows } = await sql<{ taken: string }>`
    with picked as (
      select id, remind_at from action_items where remind_at <= now()
      order by remind_at limit ${limit} for update skip locked
    ), taken as (
      -- By primary key (= any): a join to \`picked\` is planned as a hash join over the whole table.
      update action_items set remind_at = null
      where id = any (array(select id from picked))
      returning *
    ), emitted as (
      select webhooks_emit(t.owner_id, 'action_item.due', to_jsonb(t) - 'remind_at')
      from taken t join picked p on p.id = t.id
      where not t.completed and t.due_at = p.remind_at
    )
    select (select count(*) from taken) as taken, (select count(*) from emitted) as emitted`.execute(db);
  return Number(rows[0]!.taken);
}

/**
 * How long until the next reminder or delivery attempt is due, by the database's clock (0 when one is due now), or
 * null when none is waiting (a delivery out of attempts waits for `failAbandoned`, not for a claim). Both ends of the
 * queue have an index on their due time: two index probes.
 */
export async function msUntilNextDue(db: Db, maxAttempts: number): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    select case when next is null then null else greatest(0, extract(epoch from next - now()) * 1000)::float8 end as ms
    from (select least(
      (select min(remind_at) from action_items where remind_at is not null),
      (select min(next_attempt_at) from webhook_deliveries where status = 'pending' and attempts < ${maxAttempts})) as next) as due`.execute(db);
  return rows[0]!.ms;
}

/**
 * Deletes up to `batch` delivered and failed deliveries older than `days` (oldest first, by their own index), then
 * the events of that age none of whose deliveries remain; answers how many deliveries it deleted.
 */
export async function pruneDeliveries(db: Db, options: { days: number; batch: number }): Promise<number> {
  const cutoff = sql<Date>`now() - make_interval(days => ${options.days})`;
  const { rows } = await sql<{ n: number }>`
    with gone as (
      delete from webhook_deliveries where id = any (array(
        select id from webhook_deliveries where status <> 'pending' and created_at < ${cutoff}
        order by created_at limit ${options.batch}))
      returning 1)
    select count(*)::int as n from gone`.execute(db);
  await sql`
    delete from webhook_events e where e.id = any (array(
      select id from webhook_events where created_at < ${cutoff} order by created_at limit ${options.batch}))
      and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)`.execute(db);
  return rows[0]!.n;
}

/**
 * The queue's depth for `/metrics`: deliveries pending (first attempt or retry) and reminders whose time has come.
 * Both counts read the partial indexes the worker uses, which hold only waiting rows.
 */
export async function queueDepth(db: Db): Promise<{ deliveries: number; reminders: number }> {
  const { rows } = await sql<{ deliveries: number; reminders: number }>`
    select (select count(*)::int from webhook_deliveries where status = 'pending' and next_attempt_at is not null) as deliveries,
           (select count(*)::int from action_items where remind_at <= now()) as reminders`.execute(db);
  return rows[0]!;
}
