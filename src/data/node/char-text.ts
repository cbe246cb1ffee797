/** Node-only: a character-level dataset from a UTF-8 text file. */
import { readFileSync } from 'node:fs';
import { charDataset, type CharDataset, type CharDatasetOptions } from '../char-text.js';

/** Reads `path` as UTF-8 and cuts it into sequences (see charDataset); errors name the file. */
export function loadCharText(
  path: string,
  seqLength: number,
  options: CharDatasetOptions = {},
): CharDataset {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`Cannot read text file ${path}: ${(error as Error).message}`, { cause: error });
  }
  let text: string;
  try {
    // fatal: refuse invalid UTF-8 rather than silently turning it into U+FFFD characters.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${path} is not valid UTF-8 text.`);
  }
  try {
    return charDataset(text, seqLength, options);
  } catch (error) {
    throw new RangeError(`${path}: ${(error as Error).message}`, { cause: error });
  }
}
