/**
 * Node runs a signal handler (Ctrl-C's SIGINT) only when its event loop turns, and a command
 * that computes in one synchronous stretch, or awaits only promises that are already settled
 * (TF.js's cpu backend's data()), never lets it turn: Ctrl-C would wait for the end of the run.
 * Long commands await this between units of work (a training step, a timed window, a batch of
 * a Hessian-vector product), outside anything timed.
 */
export function letSignalsIn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}
