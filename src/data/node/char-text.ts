/** Node-only: a character-level dataset from a UTF-8 text file or a directory of them. */
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { charDataset, type CharDataset, type CharDatasetOptions } from '../char-text.js';

export interface TextSource {
  text: string;
  /** The files read, in the order their texts were joined. */
  files: string[];
  /** Files of a directory left out: not valid UTF-8, or holding NUL bytes (binary). */
  skipped: string[];
}

/**
 * The text of `path`: a UTF-8 file, or every text file directly in a directory, in name order
 * (code-point order, the same on every machine), joined as they are. In a directory, symbolic
 * links and subdirectories are not followed (Debian's fortunes has an `x.u8` link beside each
 * file `x`, which would count it twice) and binary files (not valid UTF-8, or with NUL bytes,
 * such as fortune's `.dat` indexes) are skipped and listed. Errors name the path.
 */
export function readTextSource(path: string): TextSource {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (error) {
    throw new Error(`Cannot read text file ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!isDirectory) {
    const text = decodeUtf8(readBytes(path));
    if (text === null) throw new Error(`${path} is not valid UTF-8 text.`);
    return { text, files: [path], skipped: [] };
  }
  const names = readdirSync(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const texts: string[] = [];
  const files: string[] = [];
  const skipped: string[] = [];
  for (const name of names) {
    const file = join(path, name);
    if (!lstatSync(file).isFile()) continue;
    const text = decodeUtf8(readBytes(file));
    if (text === null || text.includes('\0')) {
      skipped.push(file);
      continue;
    }
    texts.push(text);
    files.push(file);
  }
  if (files.length === 0) {
    throw new Error(
      `${path} holds no UTF-8 text files (${skipped.length} binary file(s) skipped; links and subdirectories are not followed).`,
    );
  }
  return { text: texts.join(''), files, skipped };
}

function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`Cannot read text file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The text, or null when the bytes are not valid UTF-8 (refused, not turned into U+FFFD). */
function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Reads `path` (a file or a directory, see readTextSource) and cuts it into sequences (see
 * charDataset); errors name the path.
 */
export function loadCharText(
  path: string,
  seqLength: number,
  options: CharDatasetOptions = {},
): CharDataset {
  const { text } = readTextSource(path);
  try {
    return charDataset(text, seqLength, options);
  } catch (error) {
    throw new RangeError(`${path}: ${(error as Error).message}`, { cause: error });
  }
}
