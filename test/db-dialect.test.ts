import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../src/db/client.ts';
import { PostgresJsDialect } from '../src/db/dialect.ts';
import { databaseKind, databaseUrl } from './support/harness.ts';

/**
 * Kysely's dialect over postgres.js (src/db/dialect.ts): connections handed back out once released, transactions with
 * their settings, write counts, cursors. Recovery from a database that goes away is in errors.test.ts.
 */
describe('the postgres.js dialect', () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    // The embedded database's socket takes one connection: no deadline's probe beside it there.
    const embedded = databaseKind() === 'embedded';
    database = await openDatabase({ databaseUrl: databaseUrl(), poolMax: embedded ? 1 : 4, unavailableTimeoutMs: embedded ? 0 : undefined });
  });
  afterAll(async () => {
    await database?.close();
  });

  it('hands a released connection out again: Kysely sees as many as ran at once, not one per query', async () => {
    // Kysely's runtime keeps every connection a driver hands out in a WeakSet; one per query made each query
    // dearer (dialect.ts). The driver alone, on a client that is never asked a query.
    const driver = new PostgresJsDialect(postgres('postgres://nobody@127.0.0.1:1/none', { max: 1 })).createDriver();
    const first = await driver.acquireConnection();
    await driver.releaseConnection(first);
    expect(await driver.acquireConnection()).toBe(first);

    const together = [first, await driver.acquireConnection(), await driver.acquireConnection()];
    expect(new Set(together).size).toBe(3);
    for (const connection of together) await driver.releaseConnection(connection);
    const again = [await driver.acquireConnection(), await driver.acquireConnection(), await driver.acquireConnection()];
    expect(new Set([...together, ...again]).size).toBe(3);
  });

  it('a connection reused after a transaction, committed or rolled back, runs outside it', async () => {
    const db = database.db;
    const email = `driver-${randomUUID()}@example.com`;
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('users').values({ email }).execute();
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await db.selectFrom('users').select('id').where('email', '=', email).execute()).toEqual([]);

    const id = await db.transaction().execute(async (trx) => {
      const row = await trx.insertInto('users').values({ email }).returning('id').executeTakeFirstOrThrow();
      return row.id;
    });
    // The next statements, one after the other on the connection the transaction released, are each their own
    // transaction: no transaction is left open on it.
    const xid = sql<{ xid: string }>`select txid_current()::text as xid`;
    const a = await xid.execute(db);
    const b = await xid.execute(db);
    expect(a.rows[0]!.xid).not.toBe(b.rows[0]!.xid);
    const deleted = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    expect(deleted.numDeletedRows).toBe(1n);
    const none = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
    expect(none.numDeletedRows).toBe(0n);
  });

  it('a commit that fails reports its own error (Kysely then rolls back a transaction already ended)', async () => {
    // A deferred foreign key is checked at COMMIT: the commit fails, with the violation's code.
    const failed = database.db.transaction().execute(async (trx) => {
      await sql`create temp table driver_parent (id int primary key) on commit drop`.execute(trx);
      await sql`create temp table driver_child (parent int references driver_parent deferrable initially deferred) on commit drop`.execute(trx);
      await sql`insert into driver_child values (1)`.execute(trx);
    });
    await expect(failed).rejects.toMatchObject({ code: '23503' });
    const { rows } = await sql<{ ok: number }>`select 1 as ok`.execute(database.db);
    expect(rows).toEqual([{ ok: 1 }]);
  });

  it('begins a transaction with the isolation level and access mode asked for', async () => {
    const settings = await database.db
      .transaction()
      .setIsolationLevel('serializable')
      .setAccessMode('read only')
      .execute(async (trx) => {
        const { rows } = await sql<{ isolation: string; readOnly: string }>`
          select current_setting('transaction_isolation') as isolation, current_setting('transaction_read_only') as "readOnly"
        `.execute(trx);
        return rows[0];
      });
    expect(settings).toEqual({ isolation: 'serializable', readOnly: 'on' });
    const { rows } = await sql<{ isolation: string }>`select current_setting('transaction_isolation') as isolation`.execute(database.db);
    expect(rows[0]!.isolation).toBe('read committed');
  });

  it('under concurrency, no statement runs in another caller\'s transaction, and rollbacks take only their own writes', async () => {
    // Sessions are handed out again as soon as they are released (dialect.ts). Mixed at once, on a pool smaller than
    // the callers: transactions that commit, that throw, that fail on a statement, and single statements. A
    // statement sent into someone else's open transaction would see that transaction's id, and would vanish with it
    // if it rolled back; a rolled-back write that leaked out of its transaction would stay.
    const db = database.db;
    const run = randomUUID().slice(0, 8);
    const email = (kind: string, i: number) => `stress-${run}-${kind}-${i}@example.com`;
    const rounds = databaseKind() === 'embedded' ? 10 : 40;
    const outsideXids: (string | null)[] = [];
    const tasks = Array.from({ length: rounds * 4 }, async (_, n) => {
      const i = Math.floor(n / 4);
      switch (n % 4) {
        case 0:
          return db.transaction().execute(async (trx) => {
            await trx.insertInto('users').values({ email: email('committed', i) }).execute();
            await sql`select pg_sleep(0.002)`.execute(trx);
          });
        case 1:
          return db.transaction().execute(async (trx) => {
            await trx.insertInto('users').values({ email: email('thrown', i) }).execute();
            await sql`select pg_sleep(0.002)`.execute(trx);
            throw new Error('changed my mind');
          });
        case 2:
          return db.transaction().execute(async (trx) => {
            await trx.insertInto('users').values({ email: email('failed', i) }).execute();
            await trx.insertInto('users').values({ email: email('failed', i) }).execute(); // unique violation
          });
        default: {
          const { rows } = await sql<{ xid: string | null }>`select pg_current_xact_id_if_assigned()::text as xid`.execute(db);
          outsideXids.push(rows[0]!.xid);
          await db.insertInto('users').values({ email: email('alone', i) }).execute();
        }
      }
    });
    const settled = await Promise.allSettled(tasks);
    const outcome = (n: number) => settled.filter((s, k) => k % 4 === n).map((s) => s.status);
    expect(new Set(outcome(0))).toEqual(new Set(['fulfilled']));
    expect(new Set(outcome(1))).toEqual(new Set(['rejected']));
    expect(new Set(outcome(2))).toEqual(new Set(['rejected']));
    expect(new Set(outcome(3))).toEqual(new Set(['fulfilled']));
    expect(settled.filter((s, k) => k % 4 === 2).map((s) => (s as PromiseRejectedResult).reason?.code)).toEqual(
      Array.from({ length: rounds }, () => '23505'),
    );
    // Single statements ran in no transaction that had written.
    expect(outsideXids).toEqual(Array.from({ length: rounds }, () => null));

    const { rows } = await sql<{ kind: string; n: number }>`
      select split_part(email, '-', 3) as kind, count(*)::int as n from users
      where email like ${`stress-${run}-%`} group by 1 order by 1`.execute(db);
    expect(rows).toEqual([
      { kind: 'alone', n: rounds },
      { kind: 'committed', n: rounds },
    ]);
    await db.deleteFrom('users').where('email', 'like', `stress-${run}-%`).execute();
  });

  it('streams rows through a cursor outside a transaction, and refuses one inside', async () => {
    const seen: number[] = [];
    const series = (db: typeof database.db) => db.selectFrom(sql`generate_series(1, 25)`.as('n')).select(sql<number>`n`.as('n'));
    for await (const row of series(database.db).stream(10)) seen.push(row.n);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));

    await expect(
      database.db.transaction().execute(async (trx) => {
        for await (const _ of series(trx).stream(10)) {
          // never reached
        }
      }),
    ).rejects.toThrow('outside transactions only');
  });
});
