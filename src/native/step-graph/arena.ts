/**
 * Whether a step graph's ONNX Runtime session keeps its memory arena, and the way back to it.
 *
 * Why (docs/PERFORMANCE.md, ninth session, ResNet-20's memory): the op-by-op capture step
 * leaves its high-water mark in glibc's heap, freed but kept (ResNet-20's AdaHessian step at
 * batch 64: ~450 MB, of which ~100 MB in use after the step). ONNX Runtime's arena maps its
 * own regions (1, 2, 4, ... MB) beside that and cannot reuse it: ~235 MB more resident. Without
 * the arena, the graph's tensors come from glibc and fill those holes (since common
 * subexpression elimination is left out of big graphs, step-graph.ts, their working set is
 * half what it was and fits): ResNet-20's peak RSS 921-928 -> 666-719 MB (PyTorch's 620), the
 * char transformer's (context 64, batch 64) 758 -> 661 MB, with no more page faults per replay
 * than with the arena and no measurable change in step time.
 *
 * That holds only while the graph's working set fits in what the capture left: when it does
 * not, glibc trims its heap's top after each run and the next run faults it back (7,000-85,000
 * minor faults a run, 15-45 % slower: seventh session, and first-order graphs, which keep less
 * than op by op did). So:
 *   - by default, only a big step (recorded values over 1 GiB, as ResNet-20's and the
 *     transformer's AdaHessian steps: 3.4 and 2.7 GB; their first-order steps 1.0 and 0.75 GB
 *     and the small CNN's keep the arena) starts without the arena;
 *   - such a session counts the process's minor page faults during each run after its first,
 *     and after STRIKES runs in a row above FAULT_LIMIT it is opened again with the arena (the
 *     same model and kernels: the same bits), for good;
 *   - an explicit choice (enableNativeKernels' stepGraphMemoryArena, or glibc tuned at start:
 *     malloc-tuning.ts) is kept as given, unwatched.
 */

/**
 * What the rule reads, in one object so that tests can move the size threshold and script the
 * fault counts (as reloadOnnxRuntimeForTesting does for the binding). Not part of the API.
 */
export const arenaTuning = {
  /** Recorded values above this (bytes, 4 per element) start without the arena: 1 GiB. */
  freeAboveBytes: 2 ** 30,
  /** Minor page faults of this process so far (getrusage). */
  minorPageFaults: (): number => process.resourceUsage().minorPageFault,
};
/**
 * Minor page faults in one run above which the run counts against going without the arena:
 * 16 MiB of 4 KiB pages. Replays that fit take 250-800 (the whole step, JS included); runs
 * that do not, 7,000 and more.
 */
export const FAULT_LIMIT = 4096;
/** Runs in a row above FAULT_LIMIT that turn the arena on. */
export const STRIKES = 2;

/** The bytes of a recording's values (4 per element, the most a step dtype takes). */
export function recordedBytes(recording: { values: readonly { shape: number[] }[] }): number {
  return recording.values.reduce((sum, v) => sum + 4 * v.shape.reduce((a, b) => a * b, 1), 0);
}

/** One session's arena choice and, when it may change, its watch over the runs' page faults. */
export class ArenaChoice {
  /** Whether the session is (to be) opened with the arena. */
  arena: boolean;
  /** Whether runs are watched (the default choice without the arena, not switched yet). */
  readonly watched: boolean;
  private runs = 0;
  private strikes = 0;

  /**
   * `explicit`: the caller's choice (kept, unwatched); undefined: by the recording's size.
   */
  constructor(
    explicit: boolean | undefined,
    recording: { values: readonly { shape: number[] }[] },
  ) {
    this.arena = explicit ?? recordedBytes(recording) <= arenaTuning.freeAboveBytes;
    this.watched = explicit == null && !this.arena;
  }

  /** Whether the session's runs should be counted now. */
  get watching(): boolean {
    return this.watched && !this.arena;
  }

  /**
   * Takes one run's minor page faults; true when the session must now be opened again with
   * the arena (then `arena` is true and nothing is watched any more). A session's first run
   * is not counted: it places the graph's working set.
   */
  observe(faults: number): boolean {
    if (!this.watching) return false;
    if (this.runs++ === 0) return false;
    this.strikes = faults > FAULT_LIMIT ? this.strikes + 1 : 0;
    if (this.strikes < STRIKES) return false;
    this.arena = true;
    return true;
  }
}

/** Minor page faults of this process so far. */
export function minorPageFaults(): number {
  return arenaTuning.minorPageFaults();
}
