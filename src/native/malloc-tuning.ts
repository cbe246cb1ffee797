/**
 * Whether this process's glibc malloc keeps freed memory instead of giving it back to the
 * system, so that step graphs are as fast without ONNX Runtime's arena as with it.
 *
 * Why (docs/PERFORMANCE.md, seventh and eighth sessions, ResNet-20's memory with step graphs):
 * the op-by-op capture step leaves ~420-480 MB (ResNet-20, batch 64) in glibc's heap, freed but
 * kept; ONNX Runtime's arena takes its own ~480 MB by mmap beside it and cannot reuse that, so
 * the peak is 1.8-2.0x PyTorch's (2.2x while a shape's confirming capture also ran op by op).
 * Without the arena, the graph's tensors come from glibc and reuse those holes (peak 1.5-1.7x),
 * but glibc trims its heap's top after every run and the next run faults it
 * back (~85,000 page faults a step, 15-45 % slower). glibc reads its thresholds only from the
 * environment at start (Node has no way to call mallopt): with
 *   MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=33554432
 * it never trims, tensors up to 32 MiB come from its heap, and the arena is not needed (ResNet-20
 * 1.5-1.8x PyTorch's memory, the transformer's and ResNet-20's steps as fast as with the arena).
 * Setting a trim threshold alone also fixes the mmap threshold at its 128 KiB default (glibc
 * then stops adjusting it), which maps and unmaps every large tensor: both are required.
 * Without that environment, big steps start without the arena anyway, and get it back if their
 * runs page-fault (step-graph/arena.ts: the ninth session); with it, no step has the arena and
 * none is watched.
 */

/** The values the rule was measured with; larger ones keep more, so they qualify too. */
export const MIN_TRIM_THRESHOLD = 2 ** 30;
export const MIN_MMAP_THRESHOLD = 2 ** 25;

export function mallocKeepsFreedMemory(
  env: Record<string, string | undefined> = process.env,
  platform: string = process.platform,
): boolean {
  if (platform !== 'linux') return false;
  const trim = Number(env['MALLOC_TRIM_THRESHOLD_']);
  const mmap = Number(env['MALLOC_MMAP_THRESHOLD_']);
  return trim >= MIN_TRIM_THRESHOLD && mmap >= MIN_MMAP_THRESHOLD;
}
