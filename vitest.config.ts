import { defineConfig } from 'vitest/config';

// Three projects, run one after another (groupOrder) so the 2-core CI machine is not oversubscribed:
// `unit` — in-process tests of every package (fast, parallel); `process` — cross-process tests that
// spawn real hypervisor/host/guest processes (one file at a time); `docker` — compose end to end.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['packages/*/test/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'process',
          sequence: { groupOrder: 1 },
          include: ['test/process/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        // docker compose end to end (test/docker): skipped without a Docker engine and compose
        test: {
          name: 'docker',
          sequence: { groupOrder: 2 },
          include: ['test/docker/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
