/**
 * Builds a test page: the given entry bundled by esbuild for the browser (as a user's bundler
 * would, no shims), an index.html that loads it, and the wasm backend's .wasm files beside it
 * (the entry calls setWasmPaths with the page's own URL). Then serves and opens it in Chromium.
 */
import { mkdtempSync, copyFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { openPage, type OpenPageOptions, type PageSession } from './chromium.js';

const require = createRequire(import.meta.url);
const WASM_DIST = join(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'), '..', 'dist');

export interface BuiltPage {
  dir: string;
  /** Removes the directory. */
  remove(): void;
}

export interface BuildOptions {
  /** Copy the wasm backend's .wasm files beside the page (default true). */
  wasmFiles?: boolean;
}

/** Bundles `entry` into a fresh temporary directory with an index.html and the .wasm files. */
export async function buildPage(entry: string, options: BuildOptions = {}): Promise<BuiltPage> {
  const dir = mkdtempSync(join(tmpdir(), 'adahessian-browser-'));
  await build({
    entryPoints: [resolve(entry)],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    outfile: join(dir, 'entry.js'),
    logLevel: 'error',
    // Only ever loaded on Node, by a dynamic import the browser never reaches.
    external: ['@tensorflow/tfjs-node'],
  });
  if (options.wasmFiles ?? true) {
    for (const f of readdirSync(WASM_DIST)) {
      if (f.endsWith('.wasm')) copyFileSync(join(WASM_DIST, f), join(dir, f));
    }
  }
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html><meta charset="utf-8"><title>adahessian browser test</title>' +
      '<script type="module" src="entry.js"></script>\n',
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestPage extends PageSession {
  /** Closes the browser and the server and removes the built page. */
  close(): Promise<void>;
}

/**
 * Builds `entry`, opens it, and waits until it sets `window.harnessReady`. The entry reports a
 * failure to load as `window.harnessError`.
 */
export async function openTestPage(
  entry: string,
  options: OpenPageOptions & BuildOptions = {},
): Promise<TestPage> {
  const built = await buildPage(entry, options);
  let session: PageSession;
  try {
    session = await openPage(built.dir, options);
  } catch (e) {
    built.remove();
    throw e;
  }
  const close = async () => {
    await session.close();
    built.remove();
  };
  try {
    await session.page.waitForFunction(
      () => (window as any).harnessReady === true || (window as any).harnessError != null,
    );
    const error = await session.page.evaluate(() => (window as any).harnessError as string);
    if (error != null) throw new Error(`test page failed to load: ${error}`);
  } catch (e) {
    await close();
    const seen =
      session.consoleErrors.length > 0 ? ` (console: ${session.consoleErrors.join(' | ')})` : '';
    throw new Error(`${(e as Error).message.split('\n')[0]}${seen}`, { cause: e });
  }
  return { ...session, close };
}
