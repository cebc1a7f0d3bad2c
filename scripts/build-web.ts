// Builds what people see (web/) with esbuild into web/dist: each entry minified, named by its
// content hash, and web/dist/manifest.json naming them (the gateway serves them from it).
//   node --import tsx scripts/build-web.ts [--out <folder>]
// Files are written whole and renamed into place, so a gateway reading web/dist meanwhile (another
// test run, say) never sees half a file; files of earlier builds are left for it.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The entries, by the name the manifest gives them. */
export const WEB_ENTRIES = {
  loader: 'web/widget/loader.ts',
  widget: 'web/widget/app.tsx',
  widgetCss: 'web/widget/widget.css',
} as const;

export type WebManifest = Record<keyof typeof WEB_ENTRIES, string>;

export async function buildWeb(out = join(ROOT, 'web', 'dist')): Promise<WebManifest> {
  mkdirSync(out, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: Object.values(WEB_ENTRIES),
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name].[hash]',
    outdir: out,
    metafile: true,
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const manifest: Partial<WebManifest> = {};
  for (const file of result.outputFiles) {
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  for (const [output, meta] of Object.entries(result.metafile.outputs)) {
    const entry = Object.entries(WEB_ENTRIES).find(([, source]) => source === meta.entryPoint);
    if (entry) manifest[entry[0] as keyof WebManifest] = basename(output);
  }
  const tmp = join(out, `manifest.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(tmp, join(out, 'manifest.json'));
  return manifest as WebManifest;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const out = at > 0 ? resolve(process.argv[at + 1] ?? '') : undefined;
  const manifest = await buildWeb(out);
  console.log(
    `web built into ${relative(process.cwd(), out ?? join(ROOT, 'web', 'dist')) || '.'}: ${Object.values(manifest).join(', ')}`,
  );
}
