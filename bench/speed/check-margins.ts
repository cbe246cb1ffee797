/**
 * How close new step graphs come to being refused by their check against op by op
 * (disagreement() in src/native/step-graph/step-graph.ts): for each model, step kind, thread
 * count and seed, one fresh compiler's first step (captured op by op, compiled, checked), and the
 * check's margins: the largest L2 error / L2 tolerance and element error / element tolerance over
 * the step's outputs (1 = refused), with the outputs they occur at.
 *
 *   npx tsx bench/speed/check-margins.ts --models small-cnn,transformer --threads 1,2 --seeds 1,2,3
 *   npx tsx bench/speed/check-margins.ts --models resnet20 --kinds adahessian --threads 2 --seeds 1
 *   npx tsx bench/speed/check-margins.ts --models resnet20 --batch 8 --detail
 *
 * Seeds change the weights, the batch and the probes. Batches as bench/speed/step.ts (small CNN
 * 128, ResNet-20 and the char transformer 64; --batch for all); images uniform in [0, 1), ids uniform. Op by op
 * runs on the native kernels with the same thread count, as in the CLI.
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { CompiledSteps } from '../../src/native/step-graph/hutchinson-step.js';
import { drawProbes, hutchinsonDiagonal } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const models = arg('models', 'small-cnn,transformer').split(',');
const kinds = arg('kinds', 'adahessian,first-order').split(',');
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
// --detail: AdaHessian's outputs also op by op twice more, on the native kernels (what the
// check compared with) and on TF.js's stock cpu kernels: per output whose graph-vs-op-by-op L2
// ratio passes 0.05, that ratio beside the stock-vs-native one (the spread of two right
// answers that differ only in rounding), and how many elements differ by more than 1e-2 of the
// output's largest value.
const detail = process.argv.includes('--detail');
const VOCAB = 96;
const CONTEXT = 64;

await useBackend('cpu');

function setUp(name: string, seed: number) {
  const image = name !== 'transformer';
  const batch = Number(arg('batch', name === 'small-cnn' ? '128' : '64'));
  const model =
    name === 'resnet20'
      ? buildResNet20({ inputShape: [28, 28, 1], seed })
      : name === 'small-cnn'
        ? buildSmallCnn({ seed })
        : buildCharTransformer({ vocabSize: VOCAB, contextLength: CONTEXT, seed });
  const classes = image ? 10 : VOCAB;
  const { x, y } = tf.tidy(() => ({
    x: image
      ? tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 100 + seed)
      : tf.randomUniform([batch, CONTEXT], 0, VOCAB, 'int32', 100 + seed),
    y: tf.oneHot(
      tf.randomUniform(image ? [batch] : [batch, CONTEXT], 0, classes, 'int32', 200 + seed),
      classes,
    ),
  }));
  const f = () =>
    softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
  return { model, x, y, f };
}

const fmt = (r: number) => r.toExponential(1);
console.log('model, kind, threads, seed: l2 ratio (output), element ratio (output), ms; reason');
for (const threads of threadCounts) {
  const native = enableNativeKernels({ threads, stepGraphs: false });
  if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
  for (const name of models) {
    for (const kind of kinds) {
      for (const seed of seeds) {
        const { model, x, y, f } = setUp(name, seed);
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const steps = new CompiledSteps(vars, { threads });
        const t0 = performance.now();
        let compiler;
        if (kind === 'adahessian') {
          const probes = drawProbes(new RademacherGenerator(seed), vars, 1);
          const r = steps.hutchinsonStep(f, probes);
          if (detail) {
            const graphValues = [r.loss, ...r.grads, ...r.diagonal];
            const est = hutchinsonDiagonal(f, vars, { probes, checkFinite: false });
            const native = [est.loss, ...est.grads, ...est.diagonal];
            disableNativeKernels();
            const stockEst = hutchinsonDiagonal(f, vars, { probes, checkFinite: false });
            enableNativeKernels({ threads, stepGraphs: false });
            const stock = [stockEst.loss, ...stockEst.grads, ...stockEst.diagonal];
            // The weights and the batch moved by one unit in the last place each, at random: how
            // far float32 rounding of the inputs alone moves the outputs (op by op, native).
            const kept = vars.map((v) => v.clone());
            const keptX = x.clone();
            const nudge = (t: tf.Tensor, k: number) => {
              const a = Float32Array.from(t.dataSync());
              const bits = new Int32Array(a.buffer);
              let state = 12345 + k;
              for (let i = 0; i < a.length; i++) {
                state = (state * 1103515245 + 12345) >>> 0;
                if (a[i] !== 0) bits[i]! += state & 0x10000 ? 1 : -1;
              }
              return tf.tensor(a, t.shape, t.dtype);
            };
            vars.forEach((v, k) => {
              const n = nudge(v, k);
              v.assign(n);
              n.dispose();
            });
            const nudgedX = x.dtype === 'float32' ? nudge(x, -1) : x.clone();
            const fNudged = () =>
              softmaxCrossEntropy(
                y,
                model.apply(nudgedX, { training: true }) as tf.Tensor,
              ) as tf.Scalar;
            const nudgedEst = hutchinsonDiagonal(fNudged, vars, { probes, checkFinite: false });
            const nudged = [nudgedEst.loss, ...nudgedEst.grads, ...nudgedEst.diagonal];
            vars.forEach((v, k) => v.assign(kept[k]!));
            tf.dispose([...kept, keptX, nudgedX]);
            const overall = Math.max(...native.map((t) => largestOf(t.dataSync())));
            let graphWorst = 0;
            let stockWorst = 0;
            let nudgedWorst = 0;
            // The same against the graph's values: which of the four is the odd one out.
            const fromGraph = { stock: 0, nudged: 0 };
            const graphOverall = Math.max(...graphValues.map((t) => largestOf(t.dataSync())));
            native.forEach((t, k) => {
              const b = t.dataSync();
              const g = l2Ratio(graphValues[k]!.dataSync(), b, overall);
              const st = l2Ratio(stock[k]!.dataSync(), b, overall);
              graphWorst = Math.max(graphWorst, g.ratio);
              stockWorst = Math.max(stockWorst, st.ratio);
              nudgedWorst = Math.max(nudgedWorst, l2Ratio(nudged[k]!.dataSync(), b, overall).ratio);
              const gk = graphValues[k]!.dataSync();
              fromGraph.stock = Math.max(
                fromGraph.stock,
                l2Ratio(stock[k]!.dataSync(), gk, graphOverall).ratio,
              );
              fromGraph.nudged = Math.max(
                fromGraph.nudged,
                l2Ratio(nudged[k]!.dataSync(), gk, graphOverall).ratio,
              );
              if (g.ratio < 0.05) return;
              console.log(
                `  output ${k}: graph ${fmt(g.ratio)} (${g.far} of ${b.length} elements > 1e-2), ` +
                  `stock cpu ${fmt(st.ratio)} (${st.far} > 1e-2), against native op by op`,
              );
            });
            console.log(
              `  largest L2 ratio against native op by op: graph ${fmt(graphWorst)}, stock cpu ${fmt(stockWorst)}, ` +
                `inputs moved 1 ulp ${fmt(nudgedWorst)}; against the graph: stock cpu ` +
                `${fmt(fromGraph.stock)}, inputs moved ${fmt(fromGraph.nudged)}`,
            );
            tf.dispose([...native, ...stock, ...nudged]);
          }
          tf.dispose([r.loss, ...r.grads, ...r.diagonal, ...probes.flat()]);
          compiler = steps.hutchinson;
        } else {
          const r = steps.gradientStep(f);
          tf.dispose([r.loss, ...r.grads.filter((g) => g != null)]);
          compiler = steps.gradient;
        }
        const ms = performance.now() - t0;
        const m = compiler.status.lastCheck;
        // Output k: the loss, then a gradient per variable, then (AdaHessian) a diagonal each.
        const what = (k: number) =>
          k === 0
            ? 'loss'
            : k <= vars.length
              ? `grad ${vars[k - 1]!.name}`
              : k <= 2 * vars.length
                ? `diag ${vars[k - 1 - vars.length]!.name}`
                : 'assigned or kept';
        console.log(
          `${name}, ${kind}, ${threads}, ${seed}: ` +
            (m == null
              ? 'no check'
              : `${fmt(m.l2)} (${m.l2Output}: ${what(m.l2Output)}), ` +
                `${fmt(m.element)} (${m.elementOutput}: ${what(m.elementOutput)})`) +
            `, ${ms.toFixed(0)} ms; ${compiler.status.lastReason || 'accepted'}`,
        );
        steps.dispose();
        tf.dispose([x, y]);
        model.dispose();
      }
    }
  }
}

function largestOf(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** As disagreement(): L2 error / L2 tolerance, and elements off by > 1e-2 of the largest. */
function l2Ratio(a: ArrayLike<number>, b: ArrayLike<number>, overall: number) {
  const largest = largestOf(b);
  let err = 0;
  let norm = 0;
  let far = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    err += d * d;
    norm += b[i]! * b[i]!;
    if (d > 1e-2 * largest) far++;
  }
  const tolerance = 2e-2 * Math.sqrt(norm) + 1e-4 * overall * Math.sqrt(b.length);
  return { ratio: Math.sqrt(err) / tolerance, far };
}
