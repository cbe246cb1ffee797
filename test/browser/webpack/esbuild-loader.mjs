// A minimal webpack loader for the test: strips the TypeScript of src/ with esbuild, as
// ts-loader or babel would in a user's project (they would import the built package instead).
import { transformSync } from 'esbuild';

export default function esbuildLoader(source) {
  return transformSync(source, {
    loader: 'ts',
    format: 'esm',
    target: 'es2022',
    sourcefile: this.resourcePath,
  }).code;
}
