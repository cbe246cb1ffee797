#!/usr/bin/env node
// The `adahessian` command. In a clone of the repository it runs the TypeScript sources
// through tsx (a dev dependency, installed by `npm ci`); an installed package runs the build.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import(new URL('../dist/src/cli/main.js', import.meta.url).href);
}
await cli.main(process.argv.slice(2));
