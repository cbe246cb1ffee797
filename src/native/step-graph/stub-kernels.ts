/**
 * The replay's stubbed forward pass (step-graph.ts, step 4) at less cost per kernel call. The
 * stub runs every step, and its checks ran per call: a JSON string of the call's attributes,
 * two joined strings per input shape, and all ~170 kernels of the backend unregistered and
 * registered again around it (~0.35 ms a step). Here, with the same outcome:
 *
 *   - interceptKernels: the kernel registry's lookup is diverted while the stub runs, and a
 *     kernel is wrapped only when the forward pass first asks for it; the registry itself is
 *     not changed. Where the registry cannot be reached (another tfjs-core layout), every
 *     kernel is re-registered wrapped as before (capture.ts's wrapAllKernels).
 *   - sameAttrs: a call's attributes against the recorded JSON without stringifying them, when
 *     they are plain values or arrays of them (then equal values give equal JSON); anything
 *     else (nested objects, typed arrays, undefined, NaN, infinities) is compared as JSON.
 *   - sameShape: element by element.
 */
import type * as tf from '@tensorflow/tfjs';
import { wrapAllKernels } from './capture.js';

type Registry = Map<string, tf.KernelConfig> & { get?: (key: string) => unknown };

/** tfjs-core's kernel registry (a Map on its global namespace), or null if not found there. */
function kernelRegistry(): Registry | null {
  const globals = (globalThis as { _tfGlobals?: Map<string, unknown> })._tfGlobals;
  const registry = globals?.get('kernelRegistry');
  return registry instanceof Map ? (registry as Registry) : null;
}

/**
 * Every kernel of `backendName` runs through `wrap(config)` until the returned undo is called
 * (as wrapAllKernels, without re-registering them).
 */
export function interceptKernels(
  backendName: string,
  wrap: (config: tf.KernelConfig) => tf.KernelFunc,
): () => void {
  const registry = kernelRegistry();
  if (registry == null || Object.prototype.hasOwnProperty.call(registry, 'get')) {
    return wrapAllKernels(backendName, wrap);
  }
  const prefix = `${backendName}_`;
  const wrapped = new Map<string, tf.KernelConfig>();
  const lookup = Map.prototype.get;
  Object.defineProperty(registry, 'get', {
    configurable: true,
    value(key: string) {
      const config = lookup.call(registry, key) as tf.KernelConfig | undefined;
      if (config == null || !key.startsWith(prefix)) return config;
      let w = wrapped.get(key);
      if (w == null) {
        w = { ...config, kernelFunc: wrap(config) };
        wrapped.set(key, w);
      }
      return w;
    },
  });
  return () => {
    delete (registry as { get?: unknown }).get;
  };
}

/** Whether `live` attributes stringify to `json` (`parsed` is JSON.parse(json), for speed). */
export function sameAttrs(live: object | undefined, json: string, parsed: unknown): boolean {
  const fast = plainEqual(live ?? {}, parsed);
  return fast === true || (fast == null && JSON.stringify(live ?? {}) === json);
}

/** true/false when decided on plain values (string, finite number, boolean, null, arrays). */
function plainEqual(live: object, parsed: unknown): boolean | null {
  if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const recorded = parsed as Record<string, unknown>;
  const keys = Object.keys(live);
  const recordedKeys = Object.keys(recorded);
  if (keys.length !== recordedKeys.length) return null;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key !== recordedKeys[i]) return null;
    const a = (live as Record<string, unknown>)[key];
    const b = recorded[key];
    if (Array.isArray(a)) {
      if (!Array.isArray(b) || a.length !== b.length) return null;
      for (let j = 0; j < a.length; j++) if (!plainValueEqual(a[j], b[j])) return null;
    } else if (!plainValueEqual(a, b)) {
      return null;
    }
  }
  return true;
}

/** Equal plain values, each of which JSON writes as itself (so equal JSON). */
function plainValueEqual(a: unknown, b: unknown): boolean {
  if (a === null || typeof a === 'string' || typeof a === 'boolean') return a === b;
  return typeof a === 'number' && Number.isFinite(a) && a === b;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
