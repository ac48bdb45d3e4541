// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const cryptoPrimitives = {
  regex: '^((node:)?crypto|otplib|@node-rs/argon2)$',
  message: 'Only src/platform/crypto touches cipher primitives; use its index.',
};
const vaultStores = {
  regex: 'customers\\.(store|keys)\\.js$',
  message: 'Only the customers vault reads or writes the customer store and the key store.',
};
const otherModulesInternals = {
  regex: '^(\\.\\./(?!platform/)[a-z-]+|(\\.\\./)+modules/[a-z-]+)/(?!index\\.js$)[^/]+$',
  message: 'Import another module only through its index.ts.',
};
// From src/platform, `../db/…` is a sibling platform part; modules stay behind their index.
const modulesInternals = {
  regex: '^(\\.\\./)+modules/[a-z-]+/(?!index\\.js$)[^/]+$',
  message: otherModulesInternals.message,
};

// Application code reaches the stores through `batch.run(scope, …)` and `read(scope, …)`, which
// name the workspace that PostgreSQL's row-level security lets them see.
const unscopedStore = {
  selector: "MemberExpression[property.name='db'][object.property.name=/^(data|keys)$/]",
  message: 'Use the store through batch.run or read, which set the row scope.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
      'no-restricted-imports': [
        'error',
        { patterns: [cryptoPrimitives, vaultStores, otherModulesInternals] },
      ],
      'no-restricted-syntax': ['error', unscopedStore],
    },
  },
  {
    // Platform parts import each other's files; modules only through their index.
    files: ['src/platform/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [cryptoPrimitives, vaultStores, modulesInternals] },
      ],
    },
  },
  {
    files: ['src/platform/crypto/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [vaultStores, modulesInternals] }],
    },
  },
  {
    files: ['src/modules/customers/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [cryptoPrimitives, otherModulesInternals] }],
    },
  },
  {
    files: ['**/*.test.ts', 'src/testing/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-imports': ['error', { patterns: [cryptoPrimitives, vaultStores] }],
      'no-restricted-syntax': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
