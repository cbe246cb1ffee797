/** Errors the command line reports as a one-line message (no stack trace) and an exit code. */

/** Bad input from the user: an option value, a missing file, a conflicting setting. Exit code 2. */
export class CliUsageError extends Error {
  override name = 'CliUsageError';
  readonly exitCode = 2;
}

/** A run that could not finish (e.g. training diverged). Exit code 1. */
export class CliRunError extends Error {
  override name = 'CliRunError';
  readonly exitCode = 1;
}

/** Training produced a non-finite loss, gradient or Hessian estimate. Exit code 1. */
export class TrainingDivergedError extends CliRunError {
  override name = 'TrainingDivergedError';
}
