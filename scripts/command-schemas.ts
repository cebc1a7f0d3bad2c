// Writes the JSON Schema of every command, generated from lib/commands.ts's TypeBox schemas:
// docs/schemas/<CommandType>.json, and docs/schemas/command.json for any command.
//   node --import tsx scripts/command-schemas.ts [folder]    (default: docs/schemas)
// JSON files in the folder that no longer name a command are removed.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandJsonSchemas } from '../lib/commands.ts';

const folder = resolve(
  process.argv[2] ?? fileURLToPath(new URL('../docs/schemas', import.meta.url)),
);
mkdirSync(folder, { recursive: true });

const files = new Map(
  Object.entries(commandJsonSchemas()).map(([name, schema]) => [
    `${name}.json`,
    `${JSON.stringify(schema, null, 2)}\n`,
  ]),
);
for (const stale of readdirSync(folder).filter((f) => f.endsWith('.json') && !files.has(f))) {
  rmSync(join(folder, stale));
  console.log(`removed ${join(folder, stale)}`);
}
for (const [file, text] of files) writeFileSync(join(folder, file), text);
console.log(`wrote ${files.size} schemas to ${folder}`);
