/**
 * Repair of the engine's tape order (upstream tensorflow/tfjs#3252).
 *
 * When a kernel saves its *output* for the backward pass, the engine clones that output
 * while the kernel is still running, and the clone's tape node is pushed *before* the
 * kernel's own node. The engine's tape filter walks forward from the variables, so when
 * it reaches the clone its input (the kernel's output) is not yet known to depend on the
 * variables and the clone is dropped: every second-order path through a saved output
 * (tanh, sigmoid, exp, softmax, ...) silently vanishes. We move the kernel's node in
 * front of the clones of its outputs, which is the order the computation really ran in.
 * First-order results are unaffected: the first backward pass never needs the clones.
 */
import { privateEngine, type TapeNode } from './engine.js';

const PATCHED = Symbol.for('adahessian.tapeOrderRepair');

export function installTapeOrderRepair(): void {
  const engine = privateEngine() as ReturnType<typeof privateEngine> & { [PATCHED]?: boolean };
  if (engine[PATCHED]) return;
  const original = engine.addTapeNode;
  engine.addTapeNode = function (this: typeof engine, ...args: Parameters<typeof original>) {
    original.apply(this, args);
    const saved = args[4];
    const tape = this.state.activeTape;
    if (tape == null || saved == null || saved.length === 0) return;
    // The clones of the saved tensors were pushed just before this node; put the node first.
    const savedIds = new Set(saved.map((t) => t.id));
    let first = tape.length - 1;
    while (first > 0 && producesAny(tape[first - 1]!, savedIds)) {
      first--;
      // The engine names a clone's node after the enclosing scope; it is an Identity.
      tape[first]!.kernelName = 'Identity';
    }
    if (first === tape.length - 1) return;
    const node = tape.pop()!;
    tape.splice(first, 0, node);
  };
  engine[PATCHED] = true;
}

function producesAny(node: TapeNode, ids: Set<number>): boolean {
  return node.outputs.length === 1 && ids.has(node.outputs[0]!.id);
}
