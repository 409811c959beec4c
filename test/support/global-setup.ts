import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startEmbedded } from '../../src/db/client.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseKind: 'postgres' | 'embedded';
  }
}

/**
 * One migrated database for the whole run: a throwaway database on TEST_DATABASE_URL's server, or an
 * embedded PGlite in a temporary directory. Tests isolate themselves by creating their own users.
 */
export default async function setup(project: TestProject) {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (serverUrl) {
    const name = `goalpost_test_${Date.now()}_${Math.random().toString(36).slice(2, 8)}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    await migrate(url.toString());
    project.provide('databaseUrl', url.toString());
    project.provide('databaseKind', 'postgres');
    return async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'goalpost-test-'));
  const embedded = await startEmbedded(dir);
  await migrate(embedded.url, true);
  project.provide('databaseUrl', embedded.url);
  project.provide('databaseKind', 'embedded');
  return async () => {
    await embedded.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

/**
 * Migrates through the real CLI (`goalpost migrate`), the path operators use. Asynchronous: the
 * embedded database is served from this very process.
 */
async function migrate(databaseUrl: string, embedded = false) {
  await promisify(execFile)(process.execPath, ['bin/goalpost.mjs', 'migrate'], {
    // The embedded database's socket takes one connection: no deadline's probe beside it.
    env: { ...process.env, DATABASE_URL: databaseUrl, ...(embedded && { DB_UNAVAILABLE_TIMEOUT_MS: '0' }) },
  });
}
