/**
 * Parsers for option values, for commander's argParser: each throws InvalidArgumentError
 * with a message that says what was expected, which commander prefixes with the option name.
 */
import { InvalidArgumentError } from 'commander';

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'.`);
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
