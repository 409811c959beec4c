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
    database = await openDatabase({ databaseUrl: databaseUrl(), poolMax: databaseKind() === 'embedded' ? 1 : 4 });
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
