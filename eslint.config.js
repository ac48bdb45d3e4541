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
    },
  },
  {
    files: ['src/platform/crypto/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [vaultStores, otherModulesInternals] }],
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
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
