/**
 * One line on stderr when a step graph gives up and its steps run op by op (several times
 * slower: ResNet-20's AdaHessian step ~5 s instead of ~0.9), saying why; once per run, however
 * many steps follow. Without it a refused graph (its check against op by op, a kernel without a
 * translation) only showed as a slow run.
 */
import { stepGraphsStatus } from '../native/index.js';
import { note, type CliIo } from './output.js';

/**
 * A function to call after each training step; it notes what gave up since the last call (not
 * what gave up before this function was made: an earlier run's compiled steps in the process).
 */
export function stepGraphNotices(io: CliIo): () => void {
  const told = countLines(stepGraphsStatus().gaveUp);
  return () => {
    const { enabled, gaveUp } = stepGraphsStatus();
    if (!enabled) return;
    for (const [line, count] of countLines(gaveUp)) {
      if ((told.get(line) ?? 0) >= count) continue;
      told.set(line, count);
      // On a terminal the progress bar holds the line: clear it first (the bar redraws below).
      note(io, `${io.interactive ? '\r\u001b[K' : ''}Step graphs: ${line}.`);
    }
  };
}

function countLines(lines: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
  return counts;
}
