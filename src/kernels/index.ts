/**
 * Kernels registered for backends that lack them (wasm: Conv2DBackpropFilter, the depthwise
 * backprop kernels, UnsortedSegmentSum) or whose own version is pathologically slow
 * (cpu: Conv2DBackpropFilter). (To be filled in.)
 */
export function registerFastKernels(): void {}
