/**
 * Atomic file replacement: write a temporary file in the same directory, flush it to disk,
 * then rename it over the target. A reader (or a run resumed after a crash) sees the old file
 * or the new one, never a part of one: rename within a directory is atomic on POSIX file
 * systems, and the fsync before it makes sure the data is on disk before the name points at it.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliUsageError } from './errors.js';

const TEMP_SUFFIX = '.partial';
let counter = 0;

export interface AtomicWriteOptions {
  /** Called after the temporary file is written and before the rename (tests inject failures here). */
  beforeRename?: (tempPath: string) => void;
}

/** Replaces `path` with `data` atomically, creating the directory if needed. */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): void {
  const dir = dirname(path);
  makeDirectory(dir);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${counter++}${TEMP_SUFFIX}`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fd = openSync(temp, 'w');
    try {
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    options.beforeRename?.(temp);
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  syncDirectory(dir);
}

/** Makes the rename itself durable; some platforms cannot open a directory, which is fine. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows and some file systems refuse; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Removes temporary files that a killed writer left in `dir` (they are never the real file,
 * whose name only ever points at complete data). Returns the names removed.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const stale = names.filter((n) => n.startsWith('.') && n.endsWith(TEMP_SUFFIX));
  for (const n of stale) rmSync(join(dir, n), { force: true });
  return stale;
}

export function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_SUFFIX);
}

/**
 * mkdir -p, one level at a time. Node's recursive mkdirSync never returns on some paths
 * (e.g. /proc/x, where it loops between ENOENT and EEXIST); creating each missing level
 * ourselves fails there with a plain ENOENT instead.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let at = resolve(dir);
  for (;;) {
    let isDirectory: boolean | undefined;
    try {
      isDirectory = statSync(at).isDirectory();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (isDirectory === false) {
      const error = new Error(`${at} is not a directory`) as NodeJS.ErrnoException;
      error.code = 'ENOTDIR';
      throw error;
    }
    if (isDirectory) break;
    const parent = dirname(at);
    if (parent === at) break;
    missing.push(at);
    at = parent;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // a concurrent creator
    }
  }
}

/**
 * Makes sure `dir` exists (creating it) and that a file can be created, written, flushed and
 * removed in it, before any work is done. Returns null when it can, else the reason (e.g.
 * "is a file", "EACCES: permission denied ...").
 */
export function probeWritableDirectory(dir: string): string | null {
  try {
    const stat = statSync(dir, { throwIfNoEntry: false });
    if (stat !== undefined && !stat.isDirectory()) return 'is a file, not a directory';
    makeDirectory(dir);
    const probe = join(dir, `.write-probe.${process.pid}.${counter++}${TEMP_SUFFIX}`);
    try {
      const fd = openSync(probe, 'wx');
      try {
        writeSync(fd, 'probe');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(probe, { force: true });
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** probeWritableDirectory for an option's value: throws CliUsageError (exit 2) naming it. */
export function checkOutputDirectory(dir: string, option = '--out'): void {
  const problem = probeWritableDirectory(dir);
  if (problem !== null)
    throw new CliUsageError(`${option} ${dir} cannot be written to: ${problem}.`);
}
