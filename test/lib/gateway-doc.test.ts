// docs/gateway.md, the HTTP contract, says what the gateway serves: every route of its tables
// exists, under the persona the OpenAPI document tags it with, every documented route of the
// OpenAPI document is in a table, every route named anywhere on the page exists, the limits are
// the code's, and its links land. The gateway is built (not listening) on a real nats-server.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { buildGateway, DEFAULT_LIMITS } from '../../lib/gateway/server.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import { ensureStreams } from '../../lib/nats/streams.ts';
import { gatewaySettings, testCredentials } from '../helpers/gateway.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { testLog } from '../helpers/runtime.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const docPath = join(root, 'docs', 'gateway.md');
const doc = readFileSync(docPath, 'utf8');

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
const ROUTE = new RegExp(`\`(${METHODS.join('|')}) (/[^\`\\s?]*)\``, 'g');

interface DocRoute {
  readonly method: string;
  /** In the OpenAPI form: `/v1/agent/conversations/{id}`. */
  readonly path: string;
  /** The `###` heading the table sits under. */
  readonly heading: string;
  readonly line: number;
}

/** `:id` (fastify) and `{id}` (OpenAPI) name the same parameter. */
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const fastifyPath = (path: string) => path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
const key = (method: string, path: string) => `${method.toUpperCase()} ${openApiPath(path)}`;

/** The routes of the tables under `## Routes`: a row per route, its first cell `METHOD /path`. */
function documentedRoutes(): DocRoute[] {
  const lines = doc.split('\n');
  const start = lines.indexOf('## Routes');
  const routes: DocRoute[] = [];
  let heading = '';
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('## '); i++) {
    const line = lines[i]!;
    if (line.startsWith('### ')) heading = line.slice(4);
    const row = /^\| `([A-Z]+) (\/[^`\s]*)` \|/.exec(line);
    if (row) routes.push({ method: row[1]!, path: openApiPath(row[2]!), heading, line: i + 1 });
  }
  return routes;
}

/** GitHub's anchor of a heading. */
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');

const server = await startNatsServer({ t });
const nc = await connectNats(server.url);
// The gateway reads the buckets the workers create.
await ensureStreams(nc);
const app = await buildGateway({
  nc,
  settings: gatewaySettings(),
  credentials: testCredentials(),
  log: testLog,
});
await app.ready();
t.teardown(async () => {
  await app.close();
  await nc.close();
});

interface Operation {
  readonly tags?: readonly string[];
}
const openapi = app.swagger() as { paths: Record<string, Record<string, Operation>> };
const operations = new Map<string, Operation>();
for (const [path, item] of Object.entries(openapi.paths)) {
  for (const [method, operation] of Object.entries(item)) {
    if ((METHODS as readonly string[]).includes(method.toUpperCase())) {
      operations.set(key(method, path), operation);
    }
  }
}

t.test('the page has a route table per persona', async (t) => {
  const routes = documentedRoutes();
  t.ok(routes.length > 0, 'routes found under ## Routes');
  const headings = new Set(routes.map((r) => r.heading));
  for (const persona of ['visitor', 'agent', 'admin']) {
    t.ok(
      [...headings].some((h) => h.toLowerCase().includes(persona)),
      `a table under a heading naming ${persona}`,
    );
  }
  const keys = routes.map((r) => key(r.method, r.path));
  t.same(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    'no route is listed twice',
  );
});

t.test('every route of the tables is in the OpenAPI document, under its persona', async (t) => {
  for (const route of documentedRoutes()) {
    const name = key(route.method, route.path);
    const operation = operations.get(name);
    t.ok(operation, `line ${route.line}: ${name} is in the OpenAPI document`);
    t.ok(
      app.hasRoute({ method: route.method as 'GET', url: fastifyPath(route.path) }),
      `line ${route.line}: ${name} is a route of the gateway`,
    );
    const tag = operation?.tags?.[0];
    t.ok(
      tag !== undefined && route.heading.toLowerCase().includes(tag),
      `line ${route.line}: ${name} (tagged ${tag}) is under a heading naming it ("${route.heading}")`,
    );
  }
});

t.test('every documented route of the OpenAPI document is in a table of the page', async (t) => {
  t.ok(operations.size > 0, 'the OpenAPI document has routes');
  const documented = new Set(documentedRoutes().map((r) => key(r.method, r.path)));
  for (const name of operations.keys()) t.ok(documented.has(name), `${name} is documented`);
});

t.test('every route named anywhere on the page is served', async (t) => {
  for (const match of doc.matchAll(ROUTE)) {
    const [, method, path] = match;
    const line = doc.slice(0, match.index).split('\n').length;
    t.ok(
      app.hasRoute({ method: method as 'GET', url: fastifyPath(path!) }),
      `line ${line}: ${method} ${path}`,
    );
  }
});

t.test('GET /openapi.json serves the same document', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(response.statusCode, 200);
  t.same(Object.keys(response.json().paths).sort(), Object.keys(openapi.paths).sort());
});

t.test('the limits of the page are the defaults of lib/gateway/server.ts', async (t) => {
  const rowOf = (label: string) => doc.split('\n').find((l) => l.startsWith(`| ${label} |`));
  const limits: [string, string][] = [
    ['request body', `${DEFAULT_LIMITS.bodyBytes / 1024} KiB`],
    ['requests per IP on the visitor routes', `${DEFAULT_LIMITS.perIpPerMinute} a minute`],
    [
      'requests per visitor on the visitor routes',
      `${DEFAULT_LIMITS.perVisitorPerMinute} a minute`,
    ],
    ["wait for a command's outcome", `${DEFAULT_LIMITS.outcomeMs / 1000} s`],
    ['presence grace period', `${DEFAULT_LIMITS.presenceGraceMs / 1000} s`],
    ['SSE heartbeat', `every ${DEFAULT_LIMITS.heartbeatMs / 1000} s`],
  ];
  for (const [label, value] of limits) {
    const row = rowOf(label);
    t.ok(row, `the Limits table has a row "${label}"`);
    t.ok(row?.includes(value), `${label}: ${value}`);
  }
});

t.test('every relative link of the page points to a file and a heading that exist', async (t) => {
  const base = dirname(docPath);
  const headingsOf = (file: string) =>
    new Set(
      [...readFileSync(file, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) => anchor(m[1]!.trim())),
    );
  for (const match of doc.matchAll(/\]\(([^)\s#]*)(?:#([^)\s]+))?\)/g)) {
    const [, target, hash] = match;
    if (target && /^[a-z]+:/.test(target)) continue;
    const file = target ? resolve(base, target) : docPath;
    t.ok(existsSync(file), `${target || '(this page)'} exists`);
    if (hash && file.endsWith('.md') && existsSync(file)) {
      t.ok(headingsOf(file).has(hash), `#${hash} is a heading of ${target || 'the page'}`);
    }
  }
});
