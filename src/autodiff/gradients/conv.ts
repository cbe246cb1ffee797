/** Second-order gradients for the conv family (to be filled in). */
export function registerConvGradients(): void {}
