import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector:
            'CallExpression[callee.property.name="exit"][callee.object.name="process"][arguments.0.value=1]',
          message:
            'Do not process.exit(1) from library code; throw with { cause } and let the entry point decide.',
        },
      ],
    },
  },
  {
    // Cluster and chart tests read arbitrary API JSON (live objects, rendered manifests); typing every
    // field they touch would add noise, not safety.
    files: ['e2e/**', 'charts/test/**', 'tools/**/*.test.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['tools/**', 'operator/main.ts', 'bench/**'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
