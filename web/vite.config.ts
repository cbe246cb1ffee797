/**
 * The playground's Vite config: `npm run web` serves web/ and prints its URL; `npm run build:web`
 * writes a static site to web/dist/ with relative asset paths, so it can be served from any
 * directory. The Fashion-MNIST slice and the wasm binaries come in as hashed assets.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webRoot = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: webRoot,
  base: './',
  publicDir: false,
  // The data files are gzipped IDX; serve them as bytes, never as content-encoded text.
  assetsInclude: ['**/*.gz'],
  server: { fs: { allow: [repoRoot] } },
  worker: { format: 'es' },
  // Pre-bundle what the worker imports too: found only when the worker first loads, these
  // would make the dev server re-optimise and reload the page in the middle of a first run.
  optimizeDeps: {
    include: [
      '@tensorflow/tfjs',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-webgpu',
      '@observablehq/plot',
    ],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // TensorFlow.js is one large chunk whatever we do; do not warn about it.
    chunkSizeWarningLimit: 4000,
  },
});
