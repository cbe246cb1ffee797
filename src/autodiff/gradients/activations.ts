/** Second-order gradients for the activations family (to be filled in). */
export function registerActivationGradients(): void {}
