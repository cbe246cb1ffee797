/**
 * Saving a trained tf.layers model as TensorFlow.js's own format (model.json with the topology
 * and a weights manifest, plus one weights file), so tf.loadLayersModel and other TF.js tools
 * read it, and loading it back.
 *
 * The pair is replaced as one: each file alone is written atomically, but a crash between the
 * two writes could leave new weights beside the old model.json. So the weights file is named by
 * its content (weights-<sha-256 prefix>.bin): the new weights go to a new name, the old
 * model.json keeps naming the old weights until the new model.json is renamed in, and only then
 * are the previous weights files removed. A reader sees the old pair or the new one, never a
 * mix; a crash leaves at most an unnamed weights file, removed by the next save. The loader
 * checks the content against the name, so a pair mixed by other means is refused too.
 *
 * Loading builds our compact-gradient layers where the file names their stock classes
 * (LayerNormalization, Dense, BatchNormalization: they save under the stock names, see
 * src/models/compact-gradient-layers.ts and resnet-batch-norm.ts), so `analyze` of a saved char
 * transformer runs the same Hessian products as training does, not stock TF.js's long recorded
 * gradients. They take the stock code wherever they do not apply (other axes, activations,
 * inference batch norm). The classes go to TF.js's deserializer as its custom objects, for this
 * load only: tf.serialization's map, which users' own tf.loadLayersModel reads, is untouched.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  CompactGradientDense,
  CompactLayerNormalization,
  ResNetBatchNormalization,
} from '../models/index.js';
import { writeFileAtomic } from './atomic-file.js';
import { CliUsageError } from './errors.js';

export const MODEL_JSON = 'model.json';
/** The name saves before content naming used; removed (once unnamed) like any older weights. */
export const LEGACY_WEIGHTS_BIN = 'weights.bin';
const HASH_CHARS = 16;
const WEIGHTS_FILE = /^weights(?:-([0-9a-f]{16}))?\.bin$/;

/** The weights file's name for these bytes: weights-<first 16 hex digits of their SHA-256>.bin. */
export function weightsFileName(bytes: Uint8Array): string {
  return `weights-${sha256Prefix(bytes)}.bin`;
}

function sha256Prefix(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, HASH_CHARS);
}

/** Writes `dir`/model.json and the weights file it names; `metadata` goes to userDefinedMetadata. */
export async function saveModel(
  model: tf.LayersModel,
  dir: string,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = artifacts.weightData;
      const buffer =
        weights === undefined
          ? new ArrayBuffer(0)
          : Array.isArray(weights)
            ? tf.io.CompositeArrayBuffer.join(weights)
            : weights;
      const bytes = new Uint8Array(buffer);
      const weightsFile = weightsFileName(bytes);
      writeFileAtomic(join(dir, weightsFile), bytes);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        weightsManifest: [{ paths: [weightsFile], weights: artifacts.weightSpecs ?? [] }],
        userDefinedMetadata: metadata,
      };
      writeFileAtomic(join(dir, MODEL_JSON), JSON.stringify(json));
      // Only now that model.json names the new file are the others unreferenced.
      for (const name of readdirSync(dir)) {
        if (name !== weightsFile && WEIGHTS_FILE.test(name))
          rmSync(join(dir, name), { force: true });
      }
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

export interface LoadModelOptions {
  /** Build tf.layers' own classes, as tf.loadLayersModel does (default false: the compact ones). */
  stockLayers?: boolean;
}

/**
 * Our classes by the stock class name they save under, in the deserializer's custom-objects form
 * ([class, fromConfig], as tf.serialization's map holds them).
 */
function compactLayerClasses(): tf.serialization.ConfigDict {
  const classes = {
    LayerNormalization: CompactLayerNormalization,
    Dense: CompactGradientDense,
    BatchNormalization: ResNetBatchNormalization,
  };
  const stockMap = tf.serialization.SerializationMap.getMap().classNameMap;
  // The stock entry's fromConfig is Layer's, new cls(config): it builds the class it is given.
  return Object.fromEntries(
    Object.entries(classes).map(([name, cls]) => [name, [cls, stockMap[name]![1]]]),
  ) as unknown as tf.serialization.ConfigDict;
}

/**
 * Whether a topology holds a Sequential model (itself, or nested as a layer). TF.js 4.22's
 * Sequential.fromConfig drops the custom objects and then, finding their names in its global
 * table, reads an entry that is not there (`_GLOBAL_CUSTOM_OBJECTS['className']`, a literal) and
 * throws; so those load with the stock classes, as before. Our models with compact layers are
 * functional; the Sequential ones (mlp, small-cnn) hold no layer norm, GELU or batch norm.
 */
function holdsSequential(topology: unknown): boolean {
  if (Array.isArray(topology)) return topology.some(holdsSequential);
  if (topology === null || typeof topology !== 'object') return false;
  const node = topology as Record<string, unknown>;
  if (node['class_name'] === 'Sequential' || node['className'] === 'Sequential') return true;
  return Object.values(node).some(holdsSequential);
}

export interface LoadedModel {
  model: tf.LayersModel;
  /** The userDefinedMetadata saved with it (e.g. the dataset it was trained on). */
  metadata: Record<string, unknown>;
  path: string;
}

/**
 * Loads a model saved by saveModel (or any TF.js layers model.json with its weight files beside
 * it). `path` is a model.json, a directory holding one, or a training output directory
 * (which holds model/model.json).
 */
export async function loadModel(
  path: string,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  const jsonPath = resolveModelJson(path);
  const dir = join(jsonPath, '..');
  let json: {
    modelTopology?: unknown;
    weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
    userDefinedMetadata?: Record<string, unknown>;
  };
  try {
    json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new CliUsageError(`${jsonPath} is not a readable model.json: ${(e as Error).message}`);
  }
  if (json.modelTopology == null || !Array.isArray(json.weightsManifest)) {
    throw new CliUsageError(
      `${jsonPath} is not a TF.js layers model (no modelTopology or weightsManifest).`,
    );
  }
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: ArrayBuffer[] = [];
  /** Weights files whose content is not the one their name records. */
  const mismatched: string[] = [];
  for (const group of json.weightsManifest) {
    if (!Array.isArray(group?.weights) || !Array.isArray(group?.paths)) {
      throw new CliUsageError(`${jsonPath}: a weightsManifest entry lacks its weights or paths.`);
    }
    weightSpecs.push(...group.weights);
    for (const p of group.paths) {
      const file = join(dir, p);
      if (!existsSync(file)) {
        throw new CliUsageError(`${jsonPath} names the weight file ${p}, which is missing.`);
      }
      const bytes = readFileSync(file);
      const named = WEIGHTS_FILE.exec(basename(p))?.[1];
      if (named !== undefined && sha256Prefix(bytes) !== named) mismatched.push(file);
      parts.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    }
  }
  const expected = manifestBytes(weightSpecs);
  const found = parts.reduce((sum, p) => sum + p.byteLength, 0);
  if (expected !== null && found !== expected) {
    const files = json.weightsManifest.flatMap((g) => g.paths.map((p) => join(dir, p)));
    throw new CliUsageError(
      `${files.join(', ')}: ${found} bytes, but ${jsonPath} describes ${expected} ` +
        `(truncated, or not the weights of this model).`,
    );
  }
  if (mismatched.length > 0) {
    throw new CliUsageError(
      `${mismatched.join(', ')}: the content is not the one the name records ` +
        `(damaged, or replaced by other weights); ${jsonPath} cannot be loaded with it.`,
    );
  }
  let model: tf.LayersModel | undefined;
  try {
    // tf.loadLayersModel takes no custom objects; tf.models.modelFromJSON does, and the weights
    // are then set as tf.loadLayersModel sets them (strictly, by name, optimizer's left out).
    model = await tf.models.modelFromJSON(
      { modelTopology: json.modelTopology } as Parameters<typeof tf.models.modelFromJSON>[0],
      options.stockLayers === true || holdsSequential(json.modelTopology)
        ? undefined
        : compactLayerClasses(),
    );
    const named = tf.io.decodeWeights(tf.io.CompositeArrayBuffer.join(parts), weightSpecs);
    try {
      const modelWeights = Object.fromEntries(
        weightSpecs.filter((s) => s.group !== 'optimizer').map((s) => [s.name, named[s.name]!]),
      );
      model.loadWeights(modelWeights, true);
    } finally {
      tf.dispose(Object.values(named));
    }
  } catch (e) {
    model?.dispose();
    // A topology or manifest TF.js cannot build (an edited or foreign file): bad input.
    throw new CliUsageError(`${jsonPath} cannot be loaded: ${(e as Error).message}`, { cause: e });
  }
  return { model, metadata: json.userDefinedMetadata ?? {}, path: jsonPath };
}

const BYTES_PER_VALUE: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** The bytes the manifest's weights take, or null where that is not fixed (string weights). */
function manifestBytes(specs: tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const spec of specs) {
    const bytes = BYTES_PER_VALUE[spec.quantization?.dtype ?? spec.dtype];
    if (bytes === undefined || !Array.isArray(spec.shape)) return null;
    total += spec.shape.reduce((n, d) => n * d, 1) * bytes;
  }
  return total;
}

function resolveModelJson(path: string): string {
  if (!existsSync(path)) throw new CliUsageError(`Model ${path} does not exist.`);
  if (!statSync(path).isDirectory()) return path;
  for (const candidate of [join(path, MODEL_JSON), join(path, 'model', MODEL_JSON)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new CliUsageError(
    `No model.json in ${path} (nor in ${join(path, 'model')}); pass the --out directory of 'adahessian train' or a model.json.`,
  );
}
