/**
 * Step graphs' arena choice (src/native/step-graph/arena.ts): big steps start without ONNX
 * Runtime's arena and are opened again with it when their runs page-fault; small steps and
 * explicit choices keep what they get. Pinned here: the rule, the strike count, and a compiled
 * step that is reopened mid-training giving the same bits before and after, leaking nothing.
 * The fault counts are scripted (arenaTuning): real ones depend on the process's heap.
 */
import { afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { drawProbes } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import {
  ArenaChoice,
  arenaTuning,
  FAULT_LIMIT,
  STRIKES,
} from '../../../src/native/step-graph/arena.js';
import { onBackend } from '../../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# arena test skipped: ${unavailable}`);

const saved = { ...arenaTuning };
afterEach(() => Object.assign(arenaTuning, saved));

/** A recording of `elements` float32 values in one tensor each. */
const recordingOf = (...elements: number[]) => ({ values: elements.map((n) => ({ shape: [n] })) });

describe('step graph arena choice (rule)', () => {
  it('starts big steps (over 1 GiB recorded) without the arena, watched; the rest with it', () => {
    const big = new ArenaChoice(undefined, recordingOf(2 ** 27, 2 ** 27, 1));
    assert.deepEqual([big.arena, big.watched, big.watching], [false, true, true]);
    const small = new ArenaChoice(undefined, recordingOf(2 ** 27, 2 ** 27));
    assert.deepEqual([small.arena, small.watched, small.watching], [true, false, false]);
  });

  it('keeps an explicit choice, unwatched', () => {
    const off = new ArenaChoice(false, recordingOf(1));
    assert.deepEqual([off.arena, off.watching], [false, false]);
    assert.equal(off.observe(10 * FAULT_LIMIT), false);
    assert.equal(off.observe(10 * FAULT_LIMIT), false);
    assert.equal(off.observe(10 * FAULT_LIMIT), false);
    assert.equal(off.arena, false);
    const on = new ArenaChoice(true, recordingOf(2 ** 29));
    assert.deepEqual([on.arena, on.watching], [true, false]);
  });

  it('turns the arena on after STRIKES faulting runs in a row, not counting the first run', () => {
    assert.equal(STRIKES, 2);
    const choice = new ArenaChoice(undefined, recordingOf(2 ** 29));
    const high = FAULT_LIMIT + 1;
    // First run: placing the working set, not counted. Then one strike, a quiet run (reset).
    assert.equal(choice.observe(high), false);
    assert.equal(choice.observe(high), false);
    assert.equal(choice.observe(FAULT_LIMIT), false);
    assert.equal(choice.observe(high), false);
    assert.equal(choice.arena, false);
    assert.equal(choice.observe(high), true);
    assert.deepEqual([choice.arena, choice.watching], [true, false]);
    assert.equal(choice.observe(high), false, 'switches once');
  });
});

describe('step graph arena choice (compiled steps)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  /**
   * Hutchinson steps of one loss on the same batch and probes (the same values every step);
   * per step: whether replayed, the values as float32 bits; and the compiler's status.
   */
  function steps(count: number, options: { memoryArena?: boolean } = {}) {
    const w = tf.tidy(() => tf.variable(tf.randomNormal([32, 32], 0, 0.1, 'float32', 1)));
    const x = tf.randomNormal([16, 32], 0, 1, 'float32', 2);
    const f = () => tf.tidy(() => tf.sum(tf.tanh(tf.matMul(x, w)))) as tf.Scalar;
    const compiled = new CompiledSteps([w], { threads: 1, ...options });
    const out: { replayed: boolean; bits: Uint32Array[] }[] = [];
    for (let s = 0; s < count; s++) {
      const probes = drawProbes(new RademacherGenerator(5), [w], 1);
      const got = compiled.hutchinsonStep(f, probes);
      const all = [got.loss, ...got.grads, ...got.diagonal];
      out.push({
        replayed: got.replayed,
        bits: all.map((t) => new Uint32Array(Float32Array.from(t.dataSync()).buffer)),
      });
      tf.dispose([...all, ...probes.flat()]);
    }
    const status = { ...compiled.hutchinson.status };
    compiled.dispose();
    tf.dispose([w, x]);
    return { out, status };
  }

  /** A fault counter that moves by `perRead` each time it is read (two reads a watched run). */
  function scriptFaults(perRead: number): void {
    let count = 0;
    arenaTuning.minorPageFaults = () => (count += perRead);
  }

  it('reopens a faulting step with the arena, same bits before and after, nothing leaked', () => {
    arenaTuning.freeAboveBytes = 0; // this small step counts as big
    scriptFaults(FAULT_LIMIT + 1);
    const before = tf.memory().numTensors;
    const { out, status } = steps(6);
    // Runs: step 1's check (not counted), step 2's confirmation (strike 1), step 3 (strike 2:
    // reopened after it), steps 4-6 with the arena.
    assert.equal(status.arenaReopened, 1, status.lastReason);
    assert.equal(status.replays, 4, status.lastReason);
    assert.ok(out.slice(2).every((s) => s.replayed));
    for (let s = 2; s < out.length; s++) assert.deepEqual(out[s]!.bits, out[1]!.bits, `step ${s}`);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  it('keeps a quiet step without the arena, and an explicit choice however it faults', () => {
    arenaTuning.freeAboveBytes = 0;
    scriptFaults(100);
    const before = tf.memory().numTensors;
    assert.equal(steps(5).status.arenaReopened, 0);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked (quiet)');
    scriptFaults(FAULT_LIMIT + 1);
    assert.equal(steps(5, { memoryArena: false }).status.arenaReopened, 0);
    // Below the size threshold the arena is on from the start: nothing to reopen.
    arenaTuning.freeAboveBytes = saved.freeAboveBytes;
    assert.equal(steps(5).status.arenaReopened, 0);
  });
});
