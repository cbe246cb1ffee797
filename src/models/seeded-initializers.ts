/**
 * Seeded weight initialisers for the model zoo. Each layer gets its own seed derived from
 * the model seed, so two layers of the same shape do not start identical, and the same
 * model seed gives the same weights bit for bit. Without a seed, TF.js draws fresh ones.
 */
import * as tf from '@tensorflow/tfjs';

type Initializer = ReturnType<typeof tf.initializers.heNormal>;

/** Hands out one initialiser per layer; call in layer order so seeds are stable. */
export class SeededInitializers {
  private next = 0;
  constructor(private readonly seed: number | undefined) {
    if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) {
      throw new Error(`Model seed must be a non-negative integer, got ${seed}.`);
    }
  }

  /** He normal (fan-in, scale 2): keeps activation variance steady through ReLU layers. */
  heNormal(): Initializer {
    return tf.initializers.heNormal(this.layerSeed());
  }

  /** Glorot uniform: the usual choice for the final linear (logits) layer. */
  glorotUniform(): Initializer {
    return tf.initializers.glorotUniform(this.layerSeed());
  }

  private layerSeed(): { seed?: number } {
    const index = this.next++;
    // +1: TF.js's initialisers treat seed 0 as "no seed" and would draw fresh weights.
    return this.seed === undefined ? {} : { seed: this.seed + 1000 * index + 1 };
  }
}
