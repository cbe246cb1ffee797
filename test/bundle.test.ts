/**
 * The main entry must work in a browser bundle: no Node built-ins anywhere in its import
 * graph. esbuild's browser platform honours the packages' "browser" fields (which map
 * TF.js's optional Node helpers to nothing), so anything left that is a Node built-in is ours.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import { build, type Plugin } from 'esbuild';

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

async function nodeBuiltinsReachedFrom(entry: string): Promise<string[]> {
  const reached: string[] = [];
  const failures: string[] = [];
  const spy: Plugin = {
    name: 'node-builtin-spy',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (builtins.has(args.path)) reached.push(`${args.path} (imported by ${args.importer})`);
        return undefined;
      });
    },
  };
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [spy],
    external: ['@tensorflow/tfjs-node'],
  }).catch((e: Error) => {
    failures.push(`bundle failed: ${e.message}`);
  });
  // Imports that a package's "browser" field maps away are still seen by the spy; a Node
  // built-in that is not mapped away makes the browser build fail, which we report whole.
  return [...reached.filter((r) => !r.includes('/node_modules/')), ...failures];
}

describe('browser bundle of the main entry', () => {
  it('reaches no Node built-in', async () => {
    const reached = await nodeBuiltinsReachedFrom('src/index.ts');
    assert.deepEqual(reached, []);
  });

  it('would catch one (the Node-only entry does import them)', async () => {
    const reached = await nodeBuiltinsReachedFrom('test/fixtures/uses-node-builtin.ts');
    assert.ok(reached.length > 0);
  });
});
