// Vite's asset imports: `import url from './file?url'` gives the served URL of the file.
declare module '*?url' {
  const url: string;
  export default url;
}
