/** Second-order gradients for the nn family (to be filled in). */
export function registerNnGradients(): void {}
