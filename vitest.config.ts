import { defineConfig } from 'vitest/config';

// With TEST_DATABASE_URL each run gets its own throwaway database on that server and files run in
// parallel. Without it, one embedded PGlite serves the run; it is a single session, so files take turns.
const realPostgres = Boolean(process.env.TEST_DATABASE_URL);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    fileParallelism: realPostgres,
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
