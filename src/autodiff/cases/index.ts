/** Every case the coverage table and checkSecondOrder() run, by family. */
import { basicCases } from './basic.js';
import { convCases } from './conv.js';
import { everydayCases } from './everyday.js';
import { modelCases } from './models.js';
import { nnCases } from './nn.js';
import type { SecondOrderCase } from './types.js';

export type { SecondOrderCase, SecondOrderProblem } from './types.js';

export function allSecondOrderCases(): SecondOrderCase[] {
  return [...basicCases, ...nnCases, ...convCases, ...everydayCases, ...modelCases];
}
