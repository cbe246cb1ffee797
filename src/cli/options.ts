/**
 * Parsers for option values, for commander's argParser: each throws InvalidArgumentError
 * with a message that says what was expected, which commander prefixes with the option name.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isOptimizerName, OPTIMIZER_NAMES, type OptimizerName } from '../optimizers/index.js';
import { SCHEDULE_NAMES } from '../optimizers/learning-rate.js';
import { autoThreads, MAX_THREADS } from '../native/threads.js';
import { CliUsageError } from './errors.js';

/**
 * A file or directory path: an empty one (an unset shell variable, `--out "$DIR"`) would mean
 * the current directory, and a run would write its files there.
 */
export function nonEmptyPath(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected a path, got an empty string.');
  return value;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'.`);
  }
  return n;
}

/**
 * --threads: a positive integer up to MAX_THREADS, or 'auto' (resolved here to the count it
 * means on this machine, so that what runs and what a checkpoint records is a number).
 */
export function threadCount(value: string): number {
  if (value.trim() === 'auto') return autoThreads();
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new InvalidArgumentError(
      `expected a positive integer up to ${MAX_THREADS}, or 'auto', got '${value}'.`,
    );
  }
  return n;
}

export function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`expected an integer >= 0, got '${value}'.`);
  }
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a finite number > 0, got '${value}'.`);
  }
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a finite number >= 0, got '${value}'.`);
  }
  return n;
}

/** The Hessian power k of AdaHessian, in (0, 1]. */
export function hessianPower(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0 && n <= 1)) {
    throw new InvalidArgumentError(`expected a number in (0, 1], got '${value}'.`);
  }
  return n;
}

/** A seed for the model, data order and probes: an integer in [0, 2^32 - 1]. */
export function seed(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new InvalidArgumentError(`expected an integer in [0, 4294967295], got '${value}'.`);
  }
  return n;
}

/** A comma-separated list, each entry parsed by `item` (errors name the entry). */
export function listOf<T>(item: (value: string) => T): (value: string) => T[] {
  return (value: string) => {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.length === 0 || parts.some((p) => p === '')) {
      throw new InvalidArgumentError(`expected a comma-separated list, got '${value}'.`);
    }
    return parts.map((p) => {
      try {
        return item(p);
      } catch (e) {
        throw new InvalidArgumentError(`entry '${p}': ${(e as Error).message}`);
      }
    });
  };
}

/** One of `choices` (for lists; single values use commander's Option.choices). */
export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`'${value}' is not one of ${choices.join(', ')}.`);
    }
    return value as T;
  };
}

/** --schedule and --warmup-steps, for train and sweep (one declaration so their help agrees). */
export function addScheduleOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--schedule <name>',
        "learning-rate shape after the warm-up: constant; step (x0.1 at 50% and 75% of the steps); cosine (to 0 at the end); inverse-sqrt (fairseq's) (default: constant)",
      ).choices(SCHEDULE_NAMES),
    )
    .option(
      '--warmup-steps <n>',
      'linear learning-rate warm-up over the first n steps (default: 0)',
      nonNegativeInteger,
    );
}

/** --hessian-warmup-steps of train and sweep. */
export const HESSIAN_WARMUP_HELP =
  'AdaHessian: compute the Hessian on every one of the first n steps, then every --hessian-every-th (default: 0; with f > 1, short runs need it)';

/** An optimizer with an optional base learning rate: `adam` or `adam=0.001`. */
export interface OptimizerWithRate {
  optimizer: OptimizerName;
  lr?: number;
}

/** One entry of --optimizers: a name, or name=rate (the base rate the scales multiply). */
export function optimizerWithRate(value: string): OptimizerWithRate {
  const [name, rate, ...extra] = value.split('=').map((s) => s.trim());
  if (extra.length > 0 || name === undefined || !isOptimizerName(name)) {
    throw new InvalidArgumentError(
      `expected an optimizer (${OPTIMIZER_NAMES.join(', ')}), optionally with =rate, got '${value}'.`,
    );
  }
  if (rate === undefined) return { optimizer: name };
  return { optimizer: name, lr: positiveNumber(rate) };
}

/** The list as given, refused when it names an optimizer twice. */
export function distinctOptimizers<T extends OptimizerWithRate>(list: T[]): T[] {
  const repeated = list.find((o, i) => list.findIndex((p) => p.optimizer === o.optimizer) !== i);
  if (repeated) throw new CliUsageError(`--optimizers lists ${repeated.optimizer} twice.`);
  return list;
}

/** A comma-separated list of seeds, each at most once. */
export function seedList(value: string): number[] {
  const seeds = listOf(seed)(value);
  const repeated = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (repeated !== undefined) {
    throw new InvalidArgumentError(`seed ${repeated} is listed twice in '${value}'.`);
  }
  return seeds;
}
