/**
 * The main entry bundles with webpack 5 for the web with no warnings and no errors (a user's
 * set-up as the README gives it): in particular no "Critical dependency" warning for the optional
 * @tensorflow/tfjs-node import, and no Node built-in to polyfill.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import webpack from 'webpack';

const here = fileURLToPath(new URL('./webpack/', import.meta.url));

it('webpack 5 bundles the main entry for the web with no warnings', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'adahessian-webpack-'));
  try {
    const stats = await new Promise<webpack.Stats>((ok, fail) =>
      webpack(
        {
          // Development mode: the warnings are the same, and no minifier pass (a minute on 2 cores).
          mode: 'development',
          devtool: false,
          target: 'web',
          context: here,
          entry: './user-app.ts',
          output: { path: out, library: { type: 'module' } },
          experiments: { outputModule: true },
          resolve: { extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } },
          module: {
            rules: [{ test: /\.ts$/, loader: join(here, 'esbuild-loader.mjs') }],
          },
          // TF.js alone is over webpack's 244 KiB advice; that hint is about size, not set-up.
          performance: { hints: false },
        },
        (err, s) => (err != null || s == null ? fail(err) : ok(s)),
      ),
    );
    const { warnings, errors } = stats.toJson({ all: false, warnings: true, errors: true });
    assert.deepEqual(errors?.map((e) => e.message) ?? [], []);
    assert.deepEqual(warnings?.map((w) => w.message) ?? [], []);
    const files = readdirSync(out);
    const bytes = files.reduce((s, f) => s + statSync(join(out, f)).size, 0);
    t.diagnostic(`${files.length} files, ${(bytes / 1e6).toFixed(2)} MB: ${files.join(', ')}`);
    assert.ok(files.some((f) => f.endsWith('.mjs')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
