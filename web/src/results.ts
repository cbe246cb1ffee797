/**
 * Each panel's last result, on window.playground.results, so the browser test can compare the
 * page's numbers with the same job run under Node.
 */
declare global {
  interface Window {
    playground?: { results: Record<string, unknown> };
  }
}

export function publishResult(panel: 'race' | 'train' | 'hessian', result: unknown): void {
  window.playground ??= { results: {} };
  // A deep copy, so later runs or redraws cannot change what a reader already holds.
  window.playground.results[panel] = structuredClone(result);
}
