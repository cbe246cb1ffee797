/**
 * Page-wide helpers of the panels. Each panel publishes its last result on
 * window.playground.results, so the browser test can compare the page's numbers with the same
 * job run under Node.
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

/** Calls `redraw` after the window's width has changed and settled (not on height changes). */
export function onWidthChange(redraw: () => void): void {
  let width = window.innerWidth;
  let timer = 0;
  window.addEventListener('resize', () => {
    if (window.innerWidth === width) return;
    width = window.innerWidth;
    clearTimeout(timer);
    timer = window.setTimeout(redraw, 150);
  });
}
