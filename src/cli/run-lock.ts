/**
 * One training run per output directory: a lock file (.adahessian.lock) created exclusively
 * (O_EXCL) and holding the owner's pid and host. A second run on a busy directory is refused;
 * a lock whose process is gone (killed with SIGKILL, power cut) is stale and is taken over, so
 * it never blocks for good. Taking over renames the stale file away first and checks that what
 * it renamed is still the stale lock, so two runs taking over at once cannot both win.
 */
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CliUsageError } from './errors.js';

export const LOCK_FILE = '.adahessian.lock';

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
}

export interface RunLock {
  path: string;
  /** Removes the lock file if it is still ours; safe to call more than once. */
  release(): void;
}

/** Whether a process with this pid exists on this machine (EPERM: it exists, not ours). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): { text: string; owner: LockOwner | null } | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    return { text, owner: typeof owner?.pid === 'number' ? owner : null };
  } catch {
    // Written by a process killed between create and write: empty or partial.
    return { text, owner: null };
  }
}

/**
 * Takes the lock of `dir` (which must exist) for this process, or throws CliUsageError naming
 * the run that holds it. `onStale` hears about a dead owner's lock that was taken over.
 */
export function acquireRunLock(
  dir: string,
  option: string,
  onStale?: (message: string) => void,
): RunLock {
  const path = join(dir, LOCK_FILE);
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command: process.argv.slice(2).join(' '),
  };
  const text = JSON.stringify(me);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      return lockHandle(path, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = readOwner(path);
    if (held === null) continue; // released meanwhile: try again
    const { owner } = held;
    if (owner !== null && owner.host !== me.host) {
      throw new CliUsageError(
        `${option} ${dir} is in use by process ${owner.pid} on ${owner.host} (since ${owner.startedAt}); ` +
          `if that run is gone, delete ${path}.`,
      );
    }
    if (owner !== null && processAlive(owner.pid)) {
      throw new CliUsageError(
        `${option} ${dir} is in use by another run (process ${owner.pid}, started ${owner.startedAt}); ` +
          `wait for it to finish, stop it, or choose another directory (if no such run exists, delete ${path}).`,
      );
    }
    if (owner === null && Date.now() - safeMtime(path) < 5000) {
      // A lock being written right now by a starting run: not stale yet.
      throw new CliUsageError(`${option} ${dir} is in use by another run that is starting.`);
    }
    if (takeOverStale(path, held.text)) {
      onStale?.(
        owner !== null
          ? `Removed a stale lock of process ${owner.pid} (no longer running) from ${dir}.`
          : `Removed an unreadable stale lock from ${dir}.`,
      );
    }
  }
  throw new CliUsageError(`${option} ${dir}: could not take its lock (${path}); try again.`);
}

function safeMtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Moves the stale lock away; if what moved was not the stale lock, puts it back. */
function takeOverStale(path: string, staleText: string): boolean {
  const aside = `${path}.stale.${process.pid}.${Date.now()}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // someone else moved it
    throw e;
  }
  let moved = '';
  try {
    moved = readFileSync(aside, 'utf8');
  } catch {
    // vanished: treat as moved
  }
  if (moved !== staleText) {
    // A live run's fresh lock: restore it (fails only if yet another run has locked since).
    try {
      linkSync(aside, path);
    } catch {
      // the directory is locked by someone either way
    }
    rmSync(aside, { force: true });
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}

function lockHandle(path: string, text: string): RunLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    try {
      if (readFileSync(path, 'utf8') === text) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  };
  // process.exit() (a second Ctrl-C) skips finally blocks but runs exit listeners.
  process.on('exit', release);
  return { path, release };
}
