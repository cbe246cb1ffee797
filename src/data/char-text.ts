/**
 * A character-level text dataset: a vocabulary of the characters in a text, and training
 * sequences of length L whose targets are the next characters (the input shifted by one).
 * Characters are Unicode code points, so a surrogate pair counts as one. Browser-safe.
 */
import * as tf from '@tensorflow/tfjs';

/** The characters of a text, sorted by code point, each with an id 0..size-1. */
export class CharVocabulary {
  readonly chars: readonly string[];
  private readonly ids: Map<string, number>;

  constructor(chars: Iterable<string>) {
    const unique = [...new Set(chars)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    for (const c of unique) {
      if ([...c].length !== 1) {
        throw new RangeError(`CharVocabulary: entries must be single characters, got ${JSON.stringify(c)}.`);
      }
    }
    if (unique.length === 0) throw new RangeError('CharVocabulary: no characters given.');
    this.chars = unique;
    this.ids = new Map(unique.map((c, i) => [c, i]));
  }

  /** The vocabulary of every character that occurs in `text`. */
  static fromText(text: string): CharVocabulary {
    return new CharVocabulary(text);
  }

  get size(): number {
    return this.chars.length;
  }

  /** Character ids; throws naming the first character that is not in the vocabulary. */
  encode(text: string): Int32Array {
    const chars = [...text];
    const out = new Int32Array(chars.length);
    chars.forEach((c, i) => {
      const id = this.ids.get(c);
      if (id === undefined) {
        throw new RangeError(
          `CharVocabulary.encode: character ${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) at position ${i} is not in the vocabulary.`,
        );
      }
      out[i] = id;
    });
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let text = '';
    for (let i = 0; i < ids.length; i++) {
      const c = this.chars[ids[i]!];
      if (c === undefined) {
        throw new RangeError(
          `CharVocabulary.decode: id ${ids[i]} at position ${i} is outside 0..${this.size - 1}.`,
        );
      }
      text += c;
    }
    return text;
  }
}

export interface CharDataset {
  vocab: CharVocabulary;
  /** [count, seqLength] character ids, row-major. */
  inputs: Int32Array;
  /** [count, seqLength]: targets[i][t] is the character after inputs[i][t]. */
  targets: Int32Array;
  count: number;
  seqLength: number;
}

export interface CharDatasetOptions {
  /** Characters between the starts of consecutive sequences (default seqLength: no overlap). */
  stride?: number;
  /** Use this vocabulary (e.g. the training text's) instead of the text's own. */
  vocab?: CharVocabulary;
}

/** Cuts `text` into sequences of `seqLength` characters with next-character targets. */
export function charDataset(
  text: string,
  seqLength: number,
  options: CharDatasetOptions = {},
): CharDataset {
  const stride = options.stride ?? seqLength;
  if (!Number.isInteger(seqLength) || seqLength < 1) {
    throw new RangeError(`charDataset: seqLength must be a positive integer, got ${seqLength}.`);
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new RangeError(`charDataset: stride must be a positive integer, got ${stride}.`);
  }
  const vocab = options.vocab ?? CharVocabulary.fromText(text);
  const ids = vocab.encode(text);
  if (ids.length < seqLength + 1) {
    throw new RangeError(
      `charDataset: the text has ${ids.length} characters; sequences of ${seqLength} with a ` +
        `next-character target need at least ${seqLength + 1}.`,
    );
  }
  const count = Math.floor((ids.length - seqLength - 1) / stride) + 1;
  const inputs = new Int32Array(count * seqLength);
  const targets = new Int32Array(count * seqLength);
  for (let i = 0; i < count; i++) {
    const start = i * stride;
    inputs.set(ids.subarray(start, start + seqLength), i * seqLength);
    targets.set(ids.subarray(start + 1, start + 1 + seqLength), i * seqLength);
  }
  return { vocab, inputs, targets, count, seqLength };
}

/**
 * The dataset as tensors (new, the caller disposes them): x int32 [count, seqLength] ids,
 * y int32 [count, seqLength] ids, or float32 [count, seqLength, vocab] with oneHot.
 */
export function charTensors(
  dataset: CharDataset,
  options: { oneHot?: boolean } = {},
): { x: tf.Tensor2D; y: tf.Tensor } {
  const shape: [number, number] = [dataset.count, dataset.seqLength];
  const x = tf.tensor2d(dataset.inputs, shape, 'int32');
  const y = options.oneHot
    ? tf.tidy(() => tf.oneHot(tf.tensor2d(dataset.targets, shape, 'int32'), dataset.vocab.size).toFloat())
    : tf.tensor2d(dataset.targets, shape, 'int32');
  return { x, y };
}
