/** SVG charts of the analysis results (browser-safe strings; write them wherever you like). */
export { spectralDensitySvg, PLOT_MARGIN_WIDTHS, type DensityPlotOptions } from './density-plot.js';
export { layerCurvatureSvg, type LayerPlotOptions } from './layer-plot.js';
export {
  landscape1dSvg,
  landscape2dSvg,
  contourSegments,
  type LandscapePlotOptions,
} from './landscape-plot.js';
