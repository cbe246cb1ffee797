/**
 * Runs pages in Debian's headless Chromium (driven by playwright-core) over a static file server
 * on 127.0.0.1. The loopback origin is a secure context, which WebGPU requires; SwiftShader gives
 * a software WebGL2 and WebGPU adapter on a machine with no GPU.
 *
 *   const session = await openPage('/tmp/bundle-dir');            // serves it, opens index.html
 *   const result = await session.page.evaluate(() => (window as any).run());
 *   assert.deepEqual(session.consoleErrors, []);
 *   await session.close();
 */
import { createServer, type Server } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags for headless Chromium on a machine without a GPU. Checked with Debian's Chromium 156 by
 * dropping one at a time: `--enable-unsafe-webgpu` is required (without it `requestAdapter()`
 * returns null; with it the adapter is SwiftShader's, Vulkan-backed), and so is
 * `--use-vulkan=swiftshader`: without it the adapter comes up and computes right, but tfjs-webgpu's
 * synchronous read (dataSync, a copy through a canvas) returns zeros and breaks every later
 * asynchronous read. WebGL2 comes up on ANGLE over SwiftShader anyway. The other SwiftShader flags stay because other
 * Chromium builds do not pick SwiftShader by themselves (newer ones refuse it for WebGL without
 * `--enable-unsafe-swiftshader`). The rest keep the run quiet and offline and let it run as root.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.bin': 'application/octet-stream',
  '.gz': 'application/gzip',
};

export interface StaticServer {
  /** Base URL with a trailing slash, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /**
   * Send the COOP/COEP headers that make the page cross-origin isolated (SharedArrayBuffer, so the
   * wasm backend may pick its threaded build). Off by default.
   */
  crossOriginIsolated?: boolean;
}

/** Serves the files under `dir` (read-only, no listing) on 127.0.0.1 at a free port. */
export async function serveDirectory(
  dir: string,
  options: ServeOptions = {},
): Promise<StaticServer> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new Error(`serveDirectory: '${dir}' is not a directory.`);
  }
  const server: Server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    let file = resolve(join(root, pathname));
    // Stay under the root whatever the request path says.
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) {
      // The browser asks for a favicon by itself; its 404 would land in consoleErrors.
      if (pathname === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${pathname}`);
      return;
    }
    const headers: Record<string, string> = {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    };
    if (options.crossOriginIsolated) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
    }
    res.writeHead(200, headers);
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

export interface LaunchOptions {
  /** Extra Chromium flags after CHROMIUM_ARGS. */
  extraArgs?: string[];
}

/** Launches headless Chromium with CHROMIUM_ARGS; throws one line if it is not installed. */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH).`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.extraArgs ?? [])],
  });
}

export interface PageSession {
  browser: Browser;
  page: Page;
  /** Base URL of the server, trailing slash. */
  url: string;
  /** Console errors, uncaught page errors and failed requests, in order, one line each. */
  consoleErrors: string[];
  /** Every console message as `type: text`, for diagnostics. */
  consoleMessages: string[];
  /** Closes the page, the browser and the server; safe to call twice. */
  close(): Promise<void>;
}

export interface OpenPageOptions extends ServeOptions, LaunchOptions {
  /** Path under the served directory to open; default `index.html`. */
  path?: string;
  /** Default timeout for page operations in ms (playwright's default is 30 s). */
  timeoutMs?: number;
}

/** Serves `dir`, launches Chromium and opens `path` in it, collecting console errors. */
export async function openPage(dir: string, options: OpenPageOptions = {}): Promise<PageSession> {
  const server = await serveDirectory(dir, options);
  let browser: Browser | undefined;
  try {
    browser = await launchChromium(options);
    const page = await browser.newPage();
    if (options.timeoutMs != null) page.setDefaultTimeout(options.timeoutMs);
    const consoleErrors: string[] = [];
    const consoleMessages: string[] = [];
    page.on('console', (msg) => {
      consoleMessages.push(`${msg.type()}: ${msg.text()}`);
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
    page.on('requestfailed', (req) =>
      consoleErrors.push(`request failed: ${req.url()} (${req.failure()?.errorText ?? '?'})`),
    );
    await page.goto(server.url + (options.path ?? 'index.html'));
    let closed = false;
    const openedBrowser = browser;
    return {
      browser: openedBrowser,
      page,
      url: server.url,
      consoleErrors,
      consoleMessages,
      close: async () => {
        if (closed) return;
        closed = true;
        await openedBrowser.close().catch(() => undefined);
        await server.close();
      },
    };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    await server.close();
    throw e;
  }
}
