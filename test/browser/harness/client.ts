/** Typed calls from a node:test file into the page's `window.harness` (harness/entry.ts). */
import type { Page } from 'playwright-core';
import type { Harness } from './entry.js';

type Fn = (...args: any[]) => any;
type Call = <K extends keyof Harness>(
  name: K,
  ...args: Harness[K] extends Fn ? Parameters<Harness[K]> : never
) => Promise<Harness[K] extends Fn ? Awaited<ReturnType<Harness[K]>> : never>;

export function harnessOf(page: Page): Call {
  return ((name: string, ...args: unknown[]) =>
    page.evaluate(
      ([n, a]) => {
        const h = (window as unknown as { harness: Record<string, Fn> }).harness;
        return h[n as string]!(...(a as unknown[]));
      },
      [name, args] as const,
    )) as Call;
}
