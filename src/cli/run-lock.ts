/**
 * One training run per output directory: a lock file (.adahessian.lock) created exclusively
 * (O_EXCL) and holding the owner's pid and host. A second run on a busy directory is refused;
 * a lock whose process is gone (killed with SIGKILL, power cut) is stale and is taken over, so
 * it never blocks for good. Taking over renames the stale file away first and checks that what
 * it renamed is still the stale lock, so two runs taking over at once cannot both win.
 *
 * A pid alone does not say the owner is alive: after a kill -9 (or a reboot) the pid may be
 * reused by an unrelated process, and the directory would stay locked for as long as that one
 * lives. On Linux the lock also records the kernel's boot id and the owner's start time (field
 * 22 of /proc/<pid>/stat, clock ticks since boot); a live pid whose boot id or start time
 * differs is another process, and the lock is stale. Elsewhere (no /proc) only the pid counts.
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
  /** Linux: /proc/sys/kernel/random/boot_id when the lock was taken (absent elsewhere). */
  bootId?: string;
  /** Linux: the owner's start time, field 22 of /proc/<pid>/stat (absent elsewhere). */
  processStart?: string;
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

/** This boot's id (Linux), or undefined where the kernel does not expose one. */
export function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * When process `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat), or
 * undefined where that cannot be read (not Linux, process gone). The command name (field 2) may
 * hold spaces and parentheses, so the fields are counted from its closing parenthesis.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return afterName[22 - 3]; // afterName[0] is field 3 (state)
}

/**
 * Why the lock's owner is no longer running, or null if it may be: its pid is gone, or (Linux)
 * the machine has rebooted since, or the pid now belongs to a process started at another time.
 */
function whyOwnerGone(owner: LockOwner): string | null {
  if (!processAlive(owner.pid)) return 'no longer running';
  const bootId = currentBootId();
  if (owner.bootId !== undefined && bootId !== undefined && owner.bootId !== bootId) {
    return 'no longer running: the machine has restarted since';
  }
  const start = processStartTime(owner.pid);
  if (owner.processStart !== undefined && start !== undefined && owner.processStart !== start) {
    return `no longer running: pid ${owner.pid} now belongs to another process`;
  }
  return null;
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
    bootId: currentBootId(),
    processStart: processStartTime(process.pid),
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
    const gone = owner === null ? null : whyOwnerGone(owner);
    if (owner !== null && gone === null) {
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
          ? `Removed a stale lock of process ${owner.pid} (${gone}) from ${dir}.`
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
