import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The threads pool segfaults after the first file with the Temporal native bridge.
    pool: 'forks',
    // Two cores, real servers and QEMU guests under TCG: one file at a time keeps timings honest.
    // A root-only option in vitest 3, as is isolation: `npm run test:unit` runs the unit files one
    // worker per CPU in shared workers (`--fileParallelism --no-isolate`), a plain `vitest run` one by one.
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: {
          // Pure: no server, no inject() (test/unit/project-split.test.ts checks it). First in a full run.
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'domain/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [
            'test/integration/**/*.test.ts',
            'test/agent/**/*.test.ts',
            'test/e2e/**/*.test.ts',
            'test/infra/**/*.test.ts',
            'test/chaos/**/*.test.ts',
          ],
          // Real Temporal, PostgreSQL, etcd and InfluxDB, started once for the whole run.
          globalSetup: ['test/global-setup.ts'],
          setupFiles: ['test/secret-scan.setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
