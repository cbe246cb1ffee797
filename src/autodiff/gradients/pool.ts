/** Second-order gradients for the pool family (to be filled in). */
export function registerPoolGradients(): void {}
