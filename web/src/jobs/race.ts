/**
 * The optimizer race: SGD, momentum, Adam, AdamW and AdaHessian minimise one 2-D function from
 * the same start, one step each per tick, with the library's optimizers (AdaHessian estimates
 * its diagonal with Hutchinson probes through the library's Hessian-vector products).
 * Runs on whatever TensorFlow.js backend is active; used by the page and, under Node, by the
 * browser test that checks the page computes the same numbers.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  AdamW,
  drawProbes,
  gradAndHvpMany,
  optimizerByName,
  RademacherGenerator,
} from '../../../src/index.js';
import { functionByName, type FunctionName, type TestFunction } from './functions.js';

export type RacerName = 'sgd' | 'momentum' | 'adam' | 'adamw' | 'adahessian';
export const RACERS: readonly RacerName[] = ['sgd', 'momentum', 'adam', 'adamw', 'adahessian'];
export const RACER_LABELS: Readonly<Record<RacerName, string>> = {
  sgd: 'SGD',
  momentum: 'Momentum',
  adam: 'Adam',
  adamw: 'AdamW',
  adahessian: 'AdaHessian',
};

export interface RaceSettings {
  fn: FunctionName;
  steps: number;
  /** Learning rate of each racer. */
  learningRates: Record<RacerName, number>;
  /** Betas of Adam, AdamW and AdaHessian. */
  beta1: number;
  beta2: number;
  /** AdaHessian's Hessian power k in (0, 1]. */
  hessianPower: number;
  /** AdaHessian computes its diagonal every this many steps. */
  hessianEvery: number;
  /** Hutchinson probes per AdaHessian diagonal. */
  probes: number;
  /** Seed of AdaHessian's probes and of the diagonal comparison's. */
  seed: number;
  /** AdamW's decoupled weight decay. */
  weightDecay?: number;
  /** Probes of the diagonal comparison at the start point (default 32). */
  diagonalProbes?: number;
}

export const DEFAULT_DIAGONAL_PROBES = 32;

/**
 * Starting rates per function: moderate values from a sweep of 1e-4..3 (200 steps) at which
 * every racer moves visibly and none diverges; not each method's best, and not tuned to make
 * any one of them win.
 */
export const DEFAULT_LEARNING_RATES: Readonly<Record<FunctionName, Record<RacerName, number>>> = {
  quadratic: { sgd: 0.01, momentum: 0.003, adam: 0.1, adamw: 0.1, adahessian: 0.3 },
  rosenbrock: { sgd: 0.001, momentum: 0.001, adam: 0.3, adamw: 0.3, adahessian: 1 },
  beale: { sgd: 0.01, momentum: 0.001, adam: 0.1, adamw: 0.1, adahessian: 0.3 },
  himmelblau: { sgd: 0.003, momentum: 0.001, adam: 0.1, adamw: 0.1, adahessian: 0.3 },
};

export function defaultRaceSettings(fn: FunctionName = 'rosenbrock'): RaceSettings {
  return {
    fn,
    steps: 200,
    learningRates: { ...DEFAULT_LEARNING_RATES[fn] },
    beta1: 0.9,
    beta2: 0.999,
    hessianPower: 1,
    hessianEvery: 1,
    probes: 1,
    seed: 1,
  };
}

/** One problem for each line of settings that is wrong, or [] when all are fine. */
export function checkRaceSettings(s: RaceSettings): string[] {
  const problems: string[] = [];
  const integer = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got ${v}.`);
    }
  };
  functionByName(s.fn);
  integer('steps', s.steps, 1, 5000);
  integer('hessianEvery', s.hessianEvery, 1, 100);
  integer('probes', s.probes, 1, 64);
  integer('seed', s.seed, 0, 0xffffffff);
  integer('diagonal probes', s.diagonalProbes ?? DEFAULT_DIAGONAL_PROBES, 1, 1024);
  for (const r of RACERS) {
    const lr = s.learningRates[r];
    if (!(typeof lr === 'number' && Number.isFinite(lr) && lr > 0)) {
      problems.push(`the learning rate of ${RACER_LABELS[r]} must be a number > 0, got ${lr}.`);
    }
  }
  for (const [name, v] of [
    ['beta1', s.beta1],
    ['beta2', s.beta2],
  ] as const) {
    if (!(v >= 0 && v < 1)) problems.push(`${name} must be in [0, 1), got ${v}.`);
  }
  if (!(s.hessianPower > 0 && s.hessianPower <= 1)) {
    problems.push(`the Hessian power must be in (0, 1], got ${s.hessianPower}.`);
  }
  return problems;
}

function makeOptimizer(name: RacerName, s: RaceSettings): tf.Optimizer {
  const lr = s.learningRates[name];
  switch (name) {
    case 'sgd':
    case 'momentum':
      return optimizerByName(name, lr);
    case 'adam':
      return tf.train.adam(lr, s.beta1, s.beta2);
    case 'adamw':
      return new AdamW({
        learningRate: lr,
        beta1: s.beta1,
        beta2: s.beta2,
        ...(s.weightDecay != null ? { weightDecay: s.weightDecay } : {}),
      });
    case 'adahessian':
      return new AdaHessian({
        learningRate: lr,
        beta1: s.beta1,
        beta2: s.beta2,
        hessianPower: s.hessianPower,
        hessianEvery: s.hessianEvery,
        samples: s.probes,
        seed: s.seed,
      });
  }
}

/**
 * TF.js 4.22's MomentumOptimizer.dispose() does not call SGD's, so its learning-rate scalar
 * leaks; free it here.
 */
function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  if (optimizer instanceof tf.MomentumOptimizer) {
    const rate = (optimizer as unknown as { c?: tf.Tensor }).c;
    if (rate != null && !rate.isDisposed) rate.dispose();
  }
}

export interface Trajectory {
  /** Points visited, the start first: [x, y]. */
  points: [number, number][];
  /** f at each point. */
  losses: number[];
  /** Set when the racer left the finite numbers (its line stops there). */
  diverged: boolean;
}

/** A trainable [x, y]; tidy frees the initial tensor (the variable keeps its own reference). */
function pointVariable(point: [number, number], name: string): tf.Variable<tf.Rank.R1> {
  return tf.tidy(() => tf.variable(tf.tensor1d(point), true, name));
}

/** A race in progress: call step() until done, read trajectories, then dispose(). */
export class Race {
  readonly fn: TestFunction;
  readonly trajectories: Record<RacerName, Trajectory>;
  private readonly racers: {
    name: RacerName;
    point: tf.Variable<tf.Rank.R1>;
    optimizer: tf.Optimizer;
  }[];
  private stepsTaken = 0;

  constructor(readonly settings: RaceSettings) {
    const problems = checkRaceSettings(settings);
    if (problems.length > 0) throw new RangeError(problems[0]);
    this.fn = functionByName(settings.fn);
    const start = this.fn.start;
    const f0 = this.fn.value(...start);
    this.trajectories = Object.fromEntries(
      RACERS.map((r) => [r, { points: [[...start]], losses: [f0], diverged: false }]),
    ) as unknown as Record<RacerName, Trajectory>;
    this.racers = RACERS.map((name) => ({
      name,
      point: pointVariable(start, `race_${name}`),
      optimizer: makeOptimizer(name, settings),
    }));
  }

  get done(): boolean {
    return this.stepsTaken >= this.settings.steps;
  }

  get steps(): number {
    return this.stepsTaken;
  }

  /** One step of every racer that has not diverged. */
  step(): void {
    if (this.done) return;
    this.stepsTaken++;
    for (const r of this.racers) {
      const t = this.trajectories[r.name];
      if (t.diverged) continue;
      try {
        r.optimizer.minimize(() => this.fn.tensor(r.point), false, [r.point]);
      } catch {
        // AdaHessian refuses non-finite numbers; the others would just produce them.
        t.diverged = true;
        continue;
      }
      const [x, y] = r.point.dataSync() as Float32Array;
      const loss = this.fn.value(x!, y!);
      if (!Number.isFinite(x!) || !Number.isFinite(y!) || !Number.isFinite(loss)) {
        t.diverged = true;
        continue;
      }
      t.points.push([x!, y!]);
      t.losses.push(loss);
    }
  }

  /** The exact Hessian diagonal at the start point against Hutchinson's estimate. */
  diagonalAtStart(): DiagonalComparison {
    const s = this.settings;
    return compareDiagonal(
      s.fn,
      this.fn.start,
      s.diagonalProbes ?? DEFAULT_DIAGONAL_PROBES,
      s.seed,
    );
  }

  dispose(): void {
    for (const r of this.racers) {
      disposeOptimizer(r.optimizer);
      r.point.dispose();
    }
  }
}

export interface DiagonalComparison {
  point: [number, number];
  /** The exact diagonal [H11, H22], from two Hessian-vector products with e1 and e2. */
  exact: [number, number];
  /** Hutchinson estimate after 1, 2, ..., probes Rademacher probes (running means). */
  estimates: [number, number][];
}

/**
 * The Hessian diagonal at `point`: exact (H e1, H e2) against Hutchinson's running estimate,
 * probe by probe, with the Rademacher probes a generator seeded `seed` draws (as AdaHessian's).
 */
export function compareDiagonal(
  fnName: FunctionName,
  point: [number, number],
  probes: number,
  seed: number,
): DiagonalComparison {
  const fn = functionByName(fnName);
  if (!Number.isInteger(probes) || probes < 1 || probes > 1024) {
    throw new RangeError(`probes must be an integer from 1 to 1024, got ${probes}.`);
  }
  const p = pointVariable(point, 'diagonal_point');
  const lossFn = () => fn.tensor(p);
  const units = [tf.tensor1d([1, 0]), tf.tensor1d([0, 1])];
  const zs = drawProbes(new RademacherGenerator(seed), [p], probes);
  try {
    const exactRun = gradAndHvpMany(
      lossFn,
      [p],
      units.map((u) => [u]),
    );
    const exact: [number, number] = [
      exactRun.hvps[0]![0]!.dataSync()[0]!,
      exactRun.hvps[1]![0]!.dataSync()[1]!,
    ];
    tf.dispose([exactRun.loss, ...exactRun.grads, ...exactRun.hvps.flat()]);
    const run = gradAndHvpMany(lossFn, [p], zs);
    const sum = [0, 0];
    const estimates = zs.map(([z], k): [number, number] => {
      const zHz = tf.tidy(() => tf.mul(z!, run.hvps[k]![0]!).dataSync());
      sum[0]! += zHz[0]!;
      sum[1]! += zHz[1]!;
      return [sum[0]! / (k + 1), sum[1]! / (k + 1)];
    });
    tf.dispose([run.loss, ...run.grads, ...run.hvps.flat()]);
    return { point: [point[0], point[1]], exact, estimates };
  } finally {
    tf.dispose([p, ...units, ...zs.flat()]);
  }
}

export interface RaceResult {
  trajectories: Record<RacerName, Trajectory>;
  diagonal: DiagonalComparison;
}

/** The whole race at once (what the test compares between the page and Node). */
export function runRace(settings: RaceSettings): RaceResult {
  const race = new Race(settings);
  try {
    while (!race.done) race.step();
    return {
      trajectories: race.trajectories,
      diagonal: race.diagonalAtStart(),
    };
  } finally {
    race.dispose();
  }
}
