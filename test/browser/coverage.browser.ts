/**
 * The coverage suite (checkSecondOrder) in headless Chromium, whole, on webgl and on wasm, each in
 * its own page (test/browser/coverage-suite.ts; webgpu's run is coverage-webgpu.browser.ts). Run
 * with `npm run test:browser`.
 */
import { coverageSuite } from './coverage-suite.js';

coverageSuite('webgl');
coverageSuite('wasm');
