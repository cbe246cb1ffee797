/**
 * MaxPoolGradTranspose for windows that tile the input exactly (stride = filter, no padding,
 * H = oh * fh and W = ow * fw: the small CNN's 2x2 pools) as one GatherElements of dxBar by
 * each window's winner, instead of splitting dxBar into its fh * fw window positions and
 * choosing among them with a Where per position (translate-conv.ts's tiled form).
 *
 * translate-conv.ts's tiledWinners scans the window positions in TF.js's order and writes, for
 * each window, the winner's offset from the window's first element in x's flat NHWC layout,
 * (i * W + j) * C for position (i, j), or -1 where nothing won. Viewed as [N * oh, fh * W * C]
 * (one row of windows per row), window (r, b, c) starts at column b * fw * C + c of row r, so
 * the winner's column is that start plus the offset: one Add of a [1, ow * C] constant, a Cast
 * to int32, and GatherElements along axis 1 reads dxBar at each winner. Windows with no winner
 * (-1: a column one before their start, -1 for the row's first, which GatherElements reads
 * from the row's end; both valid) are set to 0 afterwards by Where, as the tiled form's chain of
 * Wheres starting from 0 gave them. The values are dxBar's own, so the output is the same bits.
 *
 * The offsets are float32 integers, exact below 2^24, so the rule needs fh * W * C <= 2^24.
 * `ADAHESSIAN_MAX_POOL_GRAD=scan` leaves it out (A/Bs: the per-position Wheres, as before).
 */
import type { TranslationContext } from './translate.js';

/** Whether the rule is on (see the header); read at each translation, for A/Bs. */
export function maxPoolGatherEnabled(): boolean {
  return process.env['ADAHESSIAN_MAX_POOL_GRAD'] !== 'scan';
}

/**
 * The largest integer below which every float32 integer is exact: the winners' offsets are
 * written as float32 only below it (translate-conv.ts's tiledWinners), so the gather needs it too.
 */
export const EXACT_FLOAT32_INTEGERS = 2 ** 24;

/**
 * Writes the call's MaxPoolGradTranspose output from the winners' offsets `winner` (float32,
 * [N * oh, 1, ow, C]); false, writing nothing, where the windows do not tile x exactly.
 */
export function gatheredMaxPoolGradTranspose(
  ctx: TranslationContext,
  winner: string,
  geometry: { fh: number; fw: number; oh: number; ow: number },
): boolean {
  const [n, h, w, c] = ctx.inputShape('input') as [number, number, number, number];
  const { fh, fw, oh, ow } = geometry;
  if (oh * fh !== h || ow * fw !== w || fh * w * c > EXACT_FLOAT32_INTEGERS) return false;
  const starts: number[] = [];
  for (let b = 0; b < ow; b++) for (let k = 0; k < c; k++) starts.push(b * fw * c + k);
  const rows = n * oh;
  const columnsF = ctx.temp();
  const columns = ctx.temp();
  const gathered = ctx.temp();
  const none = ctx.temp();
  const picked = ctx.temp();
  const offsets = ctx.temp();
  ctx.node('Reshape', [winner, ctx.int64s([rows, ow * c])], [offsets]);
  ctx.node('Add', [offsets, ctx.vector(starts, 'float32')], [columnsF]);
  ctx.node('Cast', [columnsF], [columns], { to: { kind: 'int', value: 6 } });
  ctx.node('GatherElements', [ctx.inputAs('dxBar', [rows, fh * w * c]), columns], [gathered], {
    axis: { kind: 'int', value: 1 },
  });
  ctx.node('Less', [offsets, ctx.scalar(0, 'float32')], [none]);
  ctx.node('Where', [none, ctx.scalar(0, 'float32'), gathered], [picked]);
  ctx.node('Reshape', [picked, ctx.int64s(ctx.outputShape())], [ctx.output()]);
  return true;
}
