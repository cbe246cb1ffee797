/**
 * The CIFAR-10 binary format (cifar-10-batches-bin): records of 1 label byte followed by a
 * 32x32 RGB image as 3072 bytes in CHW order (1024 red, then 1024 green, then 1024 blue,
 * each row-major). Browser-safe; the images are returned in NHWC order, as TF.js wants.
 */
import { IdxFormatError } from './idx.js';
import type { ImageDataset } from './image-dataset.js';

export const CIFAR10_SIDE = 32;
export const CIFAR10_CHANNELS = 3;
export const CIFAR10_IMAGE_BYTES = CIFAR10_SIDE * CIFAR10_SIDE * CIFAR10_CHANNELS;
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
] as const;

/** Raised for bytes that are not CIFAR-10 binary records; the message names the source. */
export class Cifar10FormatError extends IdxFormatError {
  override name = 'Cifar10FormatError';
}

/**
 * Parses CIFAR-10 binary records (one data_batch_N.bin or several concatenated).
 * `source` names the input in error messages; `limit` keeps at most the first records.
 */
export function parseCifar10(
  bytes: Uint8Array,
  source = 'CIFAR-10 data',
  options: { limit?: number } = {},
): ImageDataset {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    throw new Cifar10FormatError(
      `${source}: is gzip-compressed (starts with 1f 8b); extract the .bin files from the ` +
        'cifar-10-binary.tar.gz archive first.',
    );
  }
  if (bytes.length === 0) {
    throw new Cifar10FormatError(`${source}: is empty; expected records of ${CIFAR10_RECORD_BYTES} bytes.`);
  }
  if (bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / CIFAR10_RECORD_BYTES);
    throw new Cifar10FormatError(
      `${source}: size ${bytes.length} bytes is not a whole number of ${CIFAR10_RECORD_BYTES}-byte ` +
        `records (1 label + 3072 image bytes): ${whole} records and ` +
        `${bytes.length - whole * CIFAR10_RECORD_BYTES} bytes left over. Truncated, or not the binary version?`,
    );
  }
  const total = bytes.length / CIFAR10_RECORD_BYTES;
  const { limit } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new RangeError(`limit must be a non-negative integer, got ${limit}.`);
  }
  const count = Math.min(total, limit ?? total);
  const plane = CIFAR10_SIDE * CIFAR10_SIDE;
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  for (let r = 0; r < count; r++) {
    const record = r * CIFAR10_RECORD_BYTES;
    const label = bytes[record]!;
    if (label >= CIFAR10_CLASSES.length) {
      throw new Cifar10FormatError(
        `${source}: record ${r} (byte ${record}) has label ${label}; CIFAR-10 labels are 0-9. ` +
          'Is this CIFAR-100 (2 label bytes per record) or another format?',
      );
    }
    labels[r] = label;
    const chw = record + 1;
    const hwc = r * CIFAR10_IMAGE_BYTES;
    // CHW -> HWC: pixel p of channel c moves to p * 3 + c.
    for (let c = 0; c < CIFAR10_CHANNELS; c++) {
      const from = chw + c * plane;
      for (let p = 0; p < plane; p++) images[hwc + p * CIFAR10_CHANNELS + c] = bytes[from + p]!;
    }
  }
  return {
    images,
    labels,
    count,
    height: CIFAR10_SIDE,
    width: CIFAR10_SIDE,
    channels: CIFAR10_CHANNELS,
  };
}
