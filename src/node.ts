/**
 * adahessian/node: everything in the main entry point plus the Node-only readers
 * (they use node:fs and node:zlib, so the browser entry point must not import them).
 */
export * from './index.js';
export * from './data/node/index.js';
export * from './native/index.js';
