import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs in-process tests of every package (fast, parallel); `process` runs the
// cross-process tests under test/ that spawn real hypervisor/backend/frontend processes (slower,
// serialised so the 2-core CI machine is not oversubscribed).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'process',
          include: ['test/process/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
