/**
 * Choosing a TensorFlow.js backend by name. Any registered backend works: 'cpu' and 'wasm'
 * everywhere (this module registers wasm), 'webgl' in a browser (@tensorflow/tfjs registers
 * it), 'webgpu' once the page imports @tensorflow/tfjs-backend-webgpu, and 'tensorflow' on
 * Node when the optional @tensorflow/tfjs-node package is installed (we never require it).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installWasmHeapGuard } from './wasm-heap.js';

// A full wasm heap throws a clear error at the allocation, not a later out-of-bounds crash.
installWasmHeapGuard();

/** Backends this package knows by name; any other registered backend name is accepted too. */
export type KnownBackendName = 'cpu' | 'wasm' | 'webgl' | 'webgpu' | 'tensorflow';
// `string & {}` keeps editor completion for the known names while accepting any other.
export type BackendName = KnownBackendName | (string & {});

/** The backends usable on Node (the command line's choices). */
export const BACKENDS: readonly BackendName[] = ['cpu', 'wasm', 'tensorflow'];

const TFJS_NODE = '@tensorflow/tfjs-node';

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/** Names of the backends registered with TensorFlow.js right now, highest priority first. */
function registeredBackends(): string[] {
  const registry = (
    tf.engine() as unknown as { registryFactory: Record<string, { priority: number }> }
  ).registryFactory;
  return Object.entries(registry)
    .sort(([, a], [, b]) => b.priority - a.priority)
    .map(([name]) => name);
}

/**
 * Loads the optional tfjs-node package. The specifier is a variable and the magic comments
 * tell webpack and Vite to leave the import alone: a browser bundle must not try to include it.
 */
async function loadTfjsNode(): Promise<boolean> {
  if (!isNode()) return false;
  const moduleName = TFJS_NODE;
  try {
    await import(/* webpackIgnore: true */ /* @vite-ignore */ moduleName);
    return true;
  } catch {
    return false;
  }
}

/**
 * Switches to `name` and waits until it is ready, loading @tensorflow/tfjs-node first for
 * 'tensorflow'. Throws one line naming the backend when it is not registered or cannot start.
 */
export async function useBackend(name: BackendName): Promise<void> {
  if (typeof name !== 'string' || name === '') {
    throw new Error(`useBackend: expected a backend name, got ${JSON.stringify(name)}.`);
  }
  if (name === 'tensorflow' && tf.findBackendFactory('tensorflow') == null) {
    if (!(await loadTfjsNode())) {
      throw new Error(
        "Backend 'tensorflow' needs the optional package @tensorflow/tfjs-node@4.22.0 (Node only); " +
          "install it or use 'cpu' or 'wasm'.",
      );
    }
  }
  if (tf.findBackendFactory(name) == null) {
    const hint =
      name === 'webgpu'
        ? " (import '@tensorflow/tfjs-backend-webgpu' first; it registers only where navigator.gpu exists)"
        : name === 'webgl'
          ? ' (TensorFlow.js registers webgl only in a browser)'
          : '';
    throw new Error(
      `Unknown backend '${name}'${hint}; registered: ${registeredBackends().join(', ')}.`,
    );
  }
  // Read without tf.getBackend(), which would start the default backend if none is running yet.
  const previous = (tf.engine() as unknown as { backendName: string | null }).backendName;
  const ok = await tf.setBackend(name);
  if (!ok) {
    // TF.js keeps the failed name as the current backend; go back to the one that was running.
    if (previous != null && previous !== name) await tf.setBackend(previous);
    const hint =
      name === 'wasm' && !isNode()
        ? "; in a browser, call setWasmPaths() from '@tensorflow/tfjs-backend-wasm' with the URL the .wasm files are served from"
        : '';
    throw new Error(`TensorFlow.js could not initialise the '${name}' backend${hint}.`);
  }
  await tf.ready();
}

/**
 * The backends registered in this process, highest priority first ('tensorflow' included when
 * @tensorflow/tfjs-node can be loaded). Registered is not the same as able to start: a browser
 * without WebGL2 still lists 'webgl', and useBackend then says it could not initialise it.
 */
export async function availableBackends(): Promise<BackendName[]> {
  if (tf.findBackendFactory('tensorflow') == null) await loadTfjsNode();
  return registeredBackends();
}
