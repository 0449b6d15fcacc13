import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{libvirt,lib,app,ingest,api,schema,dashboard,docs}/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**'],
    globalSetup: ['lib/testing/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
