// Builds the canvas bundles into static/dist/, where Django's staticfiles finds them.
// Two entry points share React and React Flow through esbuild's code splitting (ES modules):
//   editor.js  - the workflow editor (workflows/<id>/edit/, workflows/new/)
//   canvas.js  - read-only graphs: the live run view, the compare page, previews
// `node build.mjs --watch` rebuilds on change while developing.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: { editor: path.join(here, "src/editor.jsx"), canvas: path.join(here, "src/canvas.jsx") },
  outdir: path.join(here, "../static/dist"),
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2020"],
  minify: !watch,
  sourcemap: true,
  jsx: "automatic",
  loader: { ".js": "jsx" },
  define: { "process.env.NODE_ENV": watch ? '"development"' : '"production"' },
  chunkNames: "chunks/[name]-[hash]",
  logLevel: process.argv.includes("--quiet") ? "warning" : "info",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
