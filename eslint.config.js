import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'completions/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    // CommonJS: the command-line entry point (bin/package.json, bin/sark-fed.js), bench floors.
    files: ['bin/**/*.js', 'bench/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The engine is a library: it never writes to the terminal or ends the process.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['chalk', 'ora', 'cli-table3', '@inquirer/*', 'commander', '**/cli/**'] },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'exit', message: 'core/ never exits the process' },
        { object: 'process', property: 'stdout', message: 'core/ never writes to the terminal' },
        { object: 'process', property: 'stderr', message: 'core/ never writes to the terminal' },
      ],
    },
  },
);
