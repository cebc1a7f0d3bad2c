// The size budget of what a brand's visitors download, gzipped: the loader every page runs (at
// most 3 KB) and the widget's frame (script and stylesheet together, at most 40 KB). Prints the
// figures; exits 1 when over budget.
//   node --import tsx scripts/web-size.ts [--dir web/dist] [--loader-max <bytes>] [--widget-max <bytes>]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const arg = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const dir = resolve(arg('--dir') ?? fileURLToPath(new URL('../web/dist', import.meta.url)));
const budget = {
  loader: Number(arg('--loader-max') ?? 3 * 1024),
  widget: Number(arg('--widget-max') ?? 40 * 1024),
};

let manifest: Record<string, string>;
try {
  manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, string>;
} catch {
  console.error(`no build in ${dir}: run npm run build:web first`);
  process.exit(1);
}
const gz = (name: string | undefined) => {
  const bytes = readFileSync(join(dir, name ?? ''));
  return { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
};
const loader = gz(manifest.loader);
const script = gz(manifest.widget);
const css = gz(manifest.widgetCss);
const widget = { raw: script.raw + css.raw, gzip: script.gzip + css.gzip };

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
const line = (what: string, s: { raw: number; gzip: number }, max: number) =>
  `${what.padEnd(28)} ${kb(s.gzip).padStart(8)} gzip (${kb(s.raw)} raw), budget ${kb(max)}: ${s.gzip <= max ? 'ok' : 'OVER'}`;
console.log(line(`loader (${manifest.loader})`, loader, budget.loader));
console.log(line('widget (script + stylesheet)', widget, budget.widget));
console.log(
  `  script ${manifest.widget}: ${kb(script.gzip)} gzip; stylesheet ${manifest.widgetCss}: ${kb(css.gzip)} gzip`,
);
if (loader.gzip > budget.loader || widget.gzip > budget.widget) process.exit(1);
