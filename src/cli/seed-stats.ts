/**
 * What `sweep` and `train --seeds/--optimizers` report about one setting trained with several
 * seeds: each run's outcome, and the mean and sample standard deviation over the runs that did
 * not diverge (test accuracy, test loss, bits per character on text, train loss, time).
 */
import { TrainingDivergedError } from './errors.js';
import type { TrainResult } from './training.js';

/** How one run ended; the numbers are those of its last epoch (null when it diverged). */
export interface RunOutcome {
  diverged: boolean;
  testAccuracy: number | null;
  testLoss: number | null;
  trainLoss: number | null;
  /** Seconds in training steps per epoch (evaluation excluded). */
  secondsPerEpoch: number | null;
}

/** The statistics over the seeds of one setting, in the order the tables and JSON give them. */
export interface SeedStatistics {
  seeds: number;
  /** Runs that diverged; the statistics below are over the others. */
  diverged: number;
  testAccuracyMean: number | null;
  testAccuracyStd: number | null;
  testLossMean: number | null;
  testLossStd: number | null;
  /** Language models: the test loss in bits per character (nats / ln 2). */
  testBitsPerCharMean: number | null;
  testBitsPerCharStd: number | null;
  trainLossMean: number | null;
  secondsPerEpochMean: number | null;
}

export function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Sample standard deviation (n - 1); 0 for a single value, null for none. */
export function std(values: number[]): number | null {
  const m = mean(values);
  if (m === null) return null;
  if (values.length === 1) return 0;
  return Math.sqrt(values.reduce((s, v) => s + (v - m) ** 2, 0) / (values.length - 1));
}

/** A finished training's outcome; a non-finite last epoch counts as diverged. */
export function outcomeOf(result: Pick<TrainResult, 'metrics'>): RunOutcome {
  const last = result.metrics.at(-1)!;
  const finite = [last.testLoss, last.trainLoss].every(Number.isFinite);
  return {
    diverged: !finite,
    testAccuracy: finite ? last.testAccuracy : null,
    testLoss: finite ? last.testLoss : null,
    trainLoss: finite ? last.trainLoss : null,
    secondsPerEpoch: result.metrics.reduce((s, m) => s + m.trainSeconds, 0) / result.metrics.length,
  };
}

/** A run that stopped with TrainingDivergedError; anything else is rethrown. */
export function divergedOutcome(e: unknown): RunOutcome {
  if (!(e instanceof TrainingDivergedError)) throw e;
  return {
    diverged: true,
    testAccuracy: null,
    testLoss: null,
    trainLoss: null,
    secondsPerEpoch: null,
  };
}

export function seedStatistics(group: RunOutcome[], text: boolean): SeedStatistics {
  const ok = group.filter((g) => !g.diverged);
  const pick = (f: (g: RunOutcome) => number | null) =>
    ok.map(f).filter((v): v is number => v != null);
  const bits = pick((g) => (g.testLoss == null ? null : g.testLoss / Math.LN2));
  return {
    seeds: group.length,
    diverged: group.length - ok.length,
    testAccuracyMean: mean(pick((g) => g.testAccuracy)),
    testAccuracyStd: std(pick((g) => g.testAccuracy)),
    testLossMean: mean(pick((g) => g.testLoss)),
    testLossStd: std(pick((g) => g.testLoss)),
    testBitsPerCharMean: text ? mean(bits) : null,
    testBitsPerCharStd: text ? std(bits) : null,
    trainLossMean: mean(pick((g) => g.trainLoss)),
    secondsPerEpochMean: mean(pick((g) => g.secondsPerEpoch)),
  };
}

/** "71.3 +- 2.1", "diverged", or "70.2 +- 1.0 (1/3 diverged)"; one seed: the value alone. */
export function formatMeanStd(
  m: number | null,
  s: number | null,
  r: Pick<SeedStatistics, 'seeds' | 'diverged'>,
  scale: number,
  digits: number,
): string {
  if (m == null) return 'diverged';
  const text =
    r.seeds > 1
      ? `${(m * scale).toFixed(digits)} +- ${(s! * scale).toFixed(digits)}`
      : (m * scale).toFixed(digits);
  return r.diverged > 0 ? `${text} (${r.diverged}/${r.seeds} diverged)` : text;
}

/** The main column of a table: test accuracy in %, or bits per character on text. */
export function mainResult(r: SeedStatistics, text: boolean): string {
  return text
    ? formatMeanStd(r.testBitsPerCharMean, r.testBitsPerCharStd, r, 1, 3)
    : formatMeanStd(r.testAccuracyMean, r.testAccuracyStd, r, 100, 1);
}

export const mainHeader = (text: boolean): string => (text ? 'test bits/char' : 'test acc %');
