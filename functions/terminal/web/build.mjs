// Builds the page into dist/ (committed; the Go binary embeds it): one JS and one CSS bundle with xterm.js and
// its fit addon, index.html, the bundled packages' licences, and SOURCES.sha256, the hashes of every input and
// output, which a Go test recomputes so `make test` knows, without npm, whether dist/ is current.
// Run it through `make page` (npm ci first, so the lock file decides the versions).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
await build({
  absWorkingDir: here,
  entryPoints: ['src/app.js'],
  outdir: 'dist',
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'none', // the licences go to dist/LICENSES.txt whole
  logLevel: 'warning',
});
// Whitespace between tags goes (the layout is flex with gaps): a smaller page, no second copy of the source.
const html = readFileSync(join(here, 'src/index.html'), 'utf8');
writeFileSync(join(dist, 'index.html'), html.replace(/>\s+</g, '><').trim() + '\n');

const licences = ['@xterm/xterm', '@xterm/addon-fit'].map((pkg) => {
  const meta = JSON.parse(readFileSync(join(here, 'node_modules', pkg, 'package.json'), 'utf8'));
  const text = readFileSync(join(here, 'node_modules', pkg, 'LICENSE'), 'utf8').trim();
  return `${pkg} ${meta.version}\n\n${text}\n`;
});
writeFileSync(join(dist, 'LICENSES.txt'), licences.join('\n---\n\n'));

// The same list and format as functions/terminal/page_test.go recomputes: "<sha256>  <path>" per file, sorted.
const files = ['build.mjs', 'package.json', 'package-lock.json',
  ...readdirSync(join(here, 'src')).map((f) => `src/${f}`),
  ...readdirSync(dist).map((f) => `dist/${f}`)].sort();
const sum = (p) => createHash('sha256').update(readFileSync(join(here, p))).digest('hex');
writeFileSync(join(dist, 'SOURCES.sha256'), files.map((p) => `${sum(p)}  ${p}\n`).join(''));
