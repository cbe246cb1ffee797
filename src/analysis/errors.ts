/** Thrown for analysis arguments that cannot work; the message names the problem. */
export class AnalysisInputError extends Error {
  override name = 'AnalysisInputError';
}
