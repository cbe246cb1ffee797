/**
 * The coverage suite (checkSecondOrder) in headless Chromium, whole, on webgpu (SwiftShader's
 * adapter), in its own file so that it runs beside coverage.browser.ts's webgl run
 * (test/browser/coverage-suite.ts). Run with `npm run test:browser`.
 */
import { coverageSuite } from './coverage-suite.js';

coverageSuite('webgpu');
