/**
 * Screenshots of the playground's panels for the README (docs/img/playground-*.png): builds
 * web/, runs each panel with settings a little larger than the browser test's, and shoots
 * each panel at 1280x800 and the race's chart at phone width (390x844).
 *
 *   npx tsx scripts/playground-screenshots.ts [outDir] [--only race,phone]   (default docs/img)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { openPage } from '../test/browser/chromium.js';

const args = process.argv.slice(2);
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? new Set(args.splice(onlyAt, 2)[1]?.split(',')) : null;
const wanted = (shot: string) => only == null || only.has(shot);
const outDir = resolve(args[0] ?? 'docs/img');
const siteDir = mkdtempSync(join(tmpdir(), 'adahessian-web-shots-'));
const JOB_TIMEOUT_MS = 15 * 60_000;

await build({
  configFile: fileURLToPath(new URL('../web/vite.config.ts', import.meta.url)),
  logLevel: 'error',
  build: { outDir: siteDir, emptyOutDir: true },
});
mkdirSync(outDir, { recursive: true });
// See test/browser/playground.browser.ts: GPU compositing on SwiftShader stalls screenshots.
const session = await openPage(siteDir, {
  timeoutMs: JOB_TIMEOUT_MS,
  extraArgs: ['--disable-gpu'],
});
const { page } = session;
try {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForSelector('body[data-ready="true"]');
  const run = async (panel: string, values: Record<string, string>) => {
    for (const [name, value] of Object.entries(values)) {
      const selector = `#${panel}-form [name="${name}"]`;
      if ((await page.locator(selector).evaluate((el) => el.tagName)) === 'SELECT') {
        await page.selectOption(selector, value);
      } else {
        await page.fill(selector, value);
      }
    }
    await page.click(`#${panel}-run`);
    await page.waitForSelector(`#${panel}:is([data-state="done"], [data-state="error"])`, {
      timeout: JOB_TIMEOUT_MS,
    });
    console.log(`${panel}: ${await page.textContent(`#${panel}-status`)}`);
    if (wanted(panel)) {
      await page.locator(`#${panel}`).screenshot({ path: join(outDir, `playground-${panel}.png`) });
    }
  };
  await run('race', { fn: 'rosenbrock', diagonalProbes: '32' });
  if (wanted('train') || wanted('hessian')) {
    await run('train', { backend: 'wasm', trainSize: '1000', testSize: '500', epochs: '2' });
  }
  if (wanted('hessian')) await run('hessian', { model: 'adahessian', batchSize: '100' });
  // At phone width the controls stack above the charts; show the race's chart and table.
  if (wanted('phone')) {
    await page.setViewportSize({ width: 390, height: 844 });
    // The charts are redrawn for the new width 150 ms after the resize settles.
    await page.waitForTimeout(1000);
    await page.locator('#race .output').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(outDir, 'playground-phone.png') });
  }
  if (session.consoleErrors.length > 0) {
    throw new Error(`console errors: ${session.consoleErrors.join(' | ')}`);
  }
} finally {
  await session.close();
  rmSync(siteDir, { recursive: true, force: true });
}
