/** Panel 1: the optimizer race, stepped on the main thread and drawn frame by frame. */
import * as Plot from '@observablehq/plot';
import * as tf from '@tensorflow/tfjs';
import { FUNCTIONS, type FunctionName, type TestFunction } from '../jobs/functions.js';
import {
  DEFAULT_LEARNING_RATES,
  Race,
  RACER_LABELS,
  RACERS,
  checkRaceSettings,
  type DiagonalComparison,
  type RaceSettings,
  type RacerName,
} from '../jobs/race.js';
import { fmt, FormError, readNumber, readText, setStatus, tableHtml, writeValue } from '../form.js';
import { onWidthChange, publishResult } from '../results.js';

export const RACER_COLORS: Readonly<Record<RacerName, string>> = {
  sgd: '#6b6b6b',
  momentum: '#8e44ad',
  adam: '#1f77b4',
  adamw: '#12a4b6',
  adahessian: '#d62728',
};

const MARGINS = { marginLeft: 44, marginRight: 12, marginTop: 22, marginBottom: 34 };

function readSettings(form: HTMLFormElement): RaceSettings {
  const settings: RaceSettings = {
    fn: readText(form, 'fn') as FunctionName,
    steps: readNumber(form, 'steps', true),
    learningRates: Object.fromEntries(
      RACERS.map((r) => [r, readNumber(form, `lr-${r}`)]),
    ) as Record<RacerName, number>,
    beta1: readNumber(form, 'beta1'),
    beta2: readNumber(form, 'beta2'),
    hessianPower: readNumber(form, 'hessianPower'),
    hessianEvery: readNumber(form, 'hessianEvery', true),
    probes: readNumber(form, 'probes', true),
    seed: readNumber(form, 'seed', true),
    diagonalProbes: readNumber(form, 'diagonalProbes', true),
  };
  const problems = checkRaceSettings(settings);
  if (problems.length > 0) throw new FormError(problems[0]);
  return settings;
}

function chartSize(el: HTMLElement): { width: number; height: number } {
  const width = Math.max(280, Math.min(760, el.clientWidth || 640));
  return { width, height: Math.round(width * 0.62) };
}

/**
 * 24 levels of log(1 + f) from 0 up, so the band around the minimum is filled too (Plot's own
 * thresholds start above the smallest value and leave it blank).
 */
function contourLevels(fn: TestFunction): number[] {
  let top = 0;
  const [x1, x2] = fn.domain.x;
  const [y1, y2] = fn.domain.y;
  for (let i = 0; i <= 40; i++) {
    for (let j = 0; j <= 40; j++) {
      const v = Math.log1p(fn.value(x1 + ((x2 - x1) * i) / 40, y1 + ((y2 - y1) * j) / 40));
      if (v > top) top = v;
    }
  }
  return Array.from({ length: 24 }, (_, k) => (top * k) / 24);
}

function background(fnName: FunctionName, size: { width: number; height: number }): Element {
  const fn = FUNCTIONS[fnName];
  const [x1, x2] = fn.domain.x;
  const [y1, y2] = fn.domain.y;
  const levels = contourLevels(fn);
  return Plot.plot({
    ...size,
    ...MARGINS,
    x: { domain: [x1, x2], label: 'x' },
    y: { domain: [y1, y2], label: 'y' },
    // Opaque bands (d3's contours are nested, so translucent ones would darken the high ground),
    // light in the valleys; the top of the domain is kept off the darkest blue.
    color: { type: 'linear', scheme: 'blues', domain: [0, levels.at(-1)! * 1.4] },
    marks: [
      Plot.contour({
        fill: (x: number, y: number) => Math.log1p(fn.value(x, y)),
        x1,
        x2,
        y1,
        y2,
        thresholds: levels,
        stroke: 'white',
        strokeOpacity: 0.5,
        strokeWidth: 0.6,
      }),
      Plot.text(fn.minima, {
        x: (d: number[]) => d[0],
        y: (d: number[]) => d[1],
        text: () => '★',
        fontSize: 16,
        fill: '#222',
      }),
      Plot.text([fn.start], {
        x: (d: number[]) => d[0],
        y: (d: number[]) => d[1],
        text: () => '✕',
        fontSize: 14,
        fill: '#222',
      }),
      Plot.frame(),
    ],
  });
}

function foreground(race: Race, size: { width: number; height: number }): Element {
  const fn = race.fn;
  const rows = RACERS.flatMap((r) =>
    race.trajectories[r].points.map(([x, y], step) => ({ racer: RACER_LABELS[r], x, y, step })),
  );
  const last = RACERS.map((r) => {
    const p = race.trajectories[r].points.at(-1)!;
    return { racer: RACER_LABELS[r], x: p[0], y: p[1] };
  });
  return Plot.plot({
    ...size,
    ...MARGINS,
    style: { background: 'transparent' },
    x: { domain: fn.domain.x, axis: null },
    y: { domain: fn.domain.y, axis: null },
    color: {
      domain: RACERS.map((r) => RACER_LABELS[r]),
      range: RACERS.map((r) => RACER_COLORS[r]),
    },
    marks: [
      Plot.line(rows, {
        x: 'x',
        y: 'y',
        z: 'racer',
        stroke: 'racer',
        strokeWidth: 2,
        clip: true,
        curve: 'linear',
      }),
      Plot.dot(last, { x: 'x', y: 'y', fill: 'racer', r: 4, stroke: 'white', clip: true }),
    ],
  });
}

function resultsTable(race: Race): string {
  return tableHtml(
    ['optimizer', 'learning rate', 'f at the end', 'x', 'y', 'steps'],
    RACERS.map((r) => {
      const t = race.trajectories[r];
      const p = t.points.at(-1)!;
      return [
        RACER_LABELS[r],
        race.settings.learningRates[r],
        t.diverged ? 'diverged' : fmt(t.losses.at(-1)!),
        fmt(p[0]),
        fmt(p[1]),
        t.points.length - 1,
      ];
    }),
  );
}

function diagonalChart(d: DiagonalComparison, el: HTMLElement): Element {
  const rows = d.estimates.flatMap((e, k) => [
    { entry: 'H₁₁ (∂²f/∂x²)', probes: k + 1, value: e[0] },
    { entry: 'H₂₂ (∂²f/∂y²)', probes: k + 1, value: e[1] },
  ]);
  const exact = [
    { entry: 'H₁₁ (∂²f/∂x²)', value: d.exact[0] },
    { entry: 'H₂₂ (∂²f/∂y²)', value: d.exact[1] },
  ];
  const width = Math.max(280, Math.min(760, el.clientWidth || 640));
  return Plot.plot({
    width,
    height: 200,
    marginLeft: 52,
    marginBottom: 36,
    x: { label: 'probes', domain: [1, Math.max(2, d.estimates.length)] },
    y: { label: 'estimate', grid: true, nice: true },
    fx: { label: null },
    marks: [
      Plot.ruleY(exact, { fx: 'entry', y: 'value', stroke: '#222', strokeDasharray: '5,4' }),
      Plot.line(rows, {
        fx: 'entry',
        z: 'entry',
        x: 'probes',
        y: 'value',
        stroke: RACER_COLORS.adahessian,
      }),
      Plot.dot(rows, {
        fx: 'entry',
        x: 'probes',
        y: 'value',
        fill: RACER_COLORS.adahessian,
        r: 2.5,
      }),
      Plot.frame({ stroke: '#ccc' }),
    ],
  });
}

export function setupRacePanel(): void {
  const section = document.getElementById('race')!;
  const form = document.getElementById('race-form') as HTMLFormElement;
  const status = document.getElementById('race-status')!;
  const runButton = document.getElementById('race-run') as HTMLButtonElement;
  const stopButton = document.getElementById('race-stop') as HTMLButtonElement;
  const plotEl = document.getElementById('race-plot')!;
  const tableEl = document.getElementById('race-table')!;
  const diagonalEl = document.getElementById('race-diagonal')!;
  const legend = Plot.legend({
    color: {
      domain: RACERS.map((r) => RACER_LABELS[r]),
      range: RACERS.map((r) => RACER_COLORS[r]),
    },
  });
  plotEl.before(legend);

  let race: Race | null = null;
  let lastDiagonal: DiagonalComparison | null = null;
  let frame = 0;
  let backgroundFor = '';

  const fillRates = () => {
    const fn = readText(form, 'fn') as FunctionName;
    for (const r of RACERS) writeValue(form, `lr-${r}`, DEFAULT_LEARNING_RATES[fn][r]);
  };
  const drawBackground = (fnName: FunctionName) => {
    const size = chartSize(plotEl);
    backgroundFor = `${fnName}@${size.width}`;
    plotEl.replaceChildren(background(fnName, size));
  };
  fillRates();
  drawBackground(readText(form, 'fn') as FunctionName);
  (form.elements.namedItem('fn') as HTMLSelectElement).addEventListener('change', () => {
    fillRates();
    drawBackground(readText(form, 'fn') as FunctionName);
  });

  const finish = (text: string, state: 'done' | 'stopped' | 'error') => {
    clearTimeout(frame);
    runButton.disabled = false;
    stopButton.disabled = true;
    section.dataset.state = state;
    setStatus(status, text, state === 'error');
  };

  const draw = (r: Race) => {
    const size = chartSize(plotEl);
    if (backgroundFor !== `${r.settings.fn}@${size.width}`) drawBackground(r.settings.fn);
    const [bg] = plotEl.children;
    plotEl.replaceChildren(bg!, foreground(r, size));
    tableEl.innerHTML = resultsTable(r);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let settings: RaceSettings;
    try {
      settings = readSettings(form);
    } catch (e) {
      finish((e as Error).message, 'error');
      return;
    }
    race?.dispose();
    race = null;
    try {
      // Set, never asked (getBackend would first start the best backend, webgl, for nothing).
      if (!(await tf.setBackend('cpu'))) {
        throw new Error('the cpu backend did not start');
      }
      race = new Race(settings);
    } catch (e) {
      finish(`Could not start: ${(e as Error).message}`, 'error');
      return;
    }
    const current = race;
    section.dataset.state = 'running';
    runButton.disabled = true;
    stopButton.disabled = false;
    setStatus(status, `Running ${settings.steps} steps…`);
    // About 120 frames whatever the number of steps (timers, not animation frames: headless
    // and background tabs deliver those rarely).
    const perFrame = Math.max(1, Math.ceil(settings.steps / 120));
    const tick = () => {
      try {
        for (let i = 0; i < perFrame && !current.done; i++) current.step();
        draw(current);
        if (!current.done) {
          setStatus(status, `Step ${current.steps} of ${settings.steps}…`);
          frame = window.setTimeout(tick, 16);
          return;
        }
        const diagonal = current.diagonalAtStart();
        lastDiagonal = diagonal;
        diagonalEl.replaceChildren(diagonalChart(diagonal, diagonalEl));
        const last = diagonal.estimates.at(-1)!;
        document.getElementById('race-diagonal-caption')!.textContent =
          `Hessian diagonal at the start (${current.fn.start.join(', ')}): exact [${diagonal.exact.map((v) => fmt(v)).join(', ')}] ` +
          `(dashed; from the products H e₁ and H e₂) against the Hutchinson estimate, the running mean of ` +
          `z ⊙ Hz over ${diagonal.estimates.length} Rademacher probe${diagonal.estimates.length > 1 ? 's' : ''} z ` +
          `(seed ${settings.seed}): [${last.map((v) => fmt(v)).join(', ')}] after the last. ` +
          `AdaHessian uses the absolute value of such an estimate from ${settings.probes} probe${settings.probes > 1 ? 's' : ''} per step.`;
        publishResult('race', { settings, trajectories: current.trajectories, diagonal });
        finish(`Done: ${settings.steps} steps on ${current.fn.label}.`, 'done');
      } catch (e) {
        finish(`Failed: ${(e as Error).message}`, 'error');
      }
    };
    frame = window.setTimeout(tick, 0);
  });
  // Charts are drawn for the width they have; draw them again when it changes (phone rotation).
  onWidthChange(() => {
    if (race) draw(race);
    else drawBackground(readText(form, 'fn') as FunctionName);
    if (lastDiagonal) diagonalEl.replaceChildren(diagonalChart(lastDiagonal, diagonalEl));
  });
  stopButton.addEventListener('click', () => {
    if (race) finish(`Stopped after ${race.steps} steps.`, 'stopped');
  });
}
