// Two layers: `unit` needs no cluster; `cluster` runs against a real local control plane that its
// global setup starts (or reuses when one is already up) and its teardown stops if it started it.
// ESM throughout, because @kubernetes/client-node 2.x is ESM-only.
import { readFileSync } from 'node:fs';

// Imports name the .ts files themselves (Node runs them directly); keep them as they are under Jest.
const { compilerOptions: tsconfig } = JSON.parse(
  readFileSync(new URL('./tsconfig.json', import.meta.url), 'utf8'),
);
const tsJest = {
  '^.+\\.ts$': [
    'ts-jest',
    { useESM: true, tsconfig: { ...tsconfig, rewriteRelativeImportExtensions: false } },
  ],
};
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: tsJest,
  testEnvironment: 'node',
};

export default {
  cacheDirectory: '.jest-cache',
  // Jest's own output, then the failing tests a line each (a CI log may keep only its last lines).
  reporters: ['default', '<rootDir>/tools/jest-failures.mjs'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/operator/**/*.test.ts',
        '<rootDir>/tools/**/*.test.ts',
        '<rootDir>/examples/**/*.test.ts',
      ],
    },
    {
      // Real servers (Debian's redis-server and nginx, installed by tools/dataplane-deps.sh) on
      // loopback, driven by the configuration the operator generates.
      ...common,
      displayName: 'dataplane',
      testMatch: ['<rootDir>/server-tests/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/e2e/support/timeout.ts'],
    },
    {
      // The Helm charts: lint, schema and parity with the operator's builders. Needs only the helm
      // binary tools/toolchain.sh builds, no cluster.
      ...common,
      displayName: 'charts',
      testMatch: ['<rootDir>/charts/test/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/charts/test/timeout.ts'],
    },
    {
      ...common,
      displayName: 'cluster',
      testMatch: ['<rootDir>/e2e/**/*.test.ts'],
      globalSetup: '<rootDir>/e2e/support/global-setup.ts',
      globalTeardown: '<rootDir>/e2e/support/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/e2e/support/timeout.ts'],
    },
  ],
};
