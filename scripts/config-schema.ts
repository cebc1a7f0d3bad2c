// Prints the JSON Schema of the configuration file, generated from lib/config.ts's TypeBox schema:
//   node --import tsx scripts/config-schema.ts > config/schema.json
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../lib/config.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const json = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;

// Formatted as biome formats the committed file, so `biome check` stays clean; plain JSON if
// biome is not installed.
const biome = spawnSync(
  fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url)),
  ['format', '--stdin-file-path=config/schema.json'],
  { cwd: root, input: json, encoding: 'utf8' },
);
process.stdout.write(biome.status === 0 && biome.stdout ? biome.stdout : json);
