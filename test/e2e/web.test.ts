// What the gateway serves browsers, over real HTTP: CORS for the widget's allowed origins only
// (the live configuration's, changed without a restart), the security headers of every page and
// script, caching of the built files, and the size budget script.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import type { Settings } from '../../actors/settings.ts';
import { ROOT } from '../helpers/cli.ts';
import { call, gatewaySettings, KEYS, startParley } from '../helpers/gateway.ts';

const BRAND = 'https://shop.example';
const OTHER = 'https://evil.example';
const settings = (): Settings => ({ ...gatewaySettings(), widget: { allowedOrigins: [BRAND] } });

t.test(
  'CORS: the allowed origin gets it on the visitor routes and their stream, no other',
  async (t) => {
    const { http } = await startParley(t, { settings: settings() });
    const widget = `/v1/widget?url=${encodeURIComponent(`${BRAND}/tv/1`)}`;

    const allowed = await call(http, 'GET', widget, { headers: { origin: BRAND } });
    t.equal(allowed.status, 200);
    t.equal(allowed.headers.get('access-control-allow-origin'), BRAND);
    t.match(allowed.headers.get('vary') ?? '', /origin/i, 'caches keep origins apart');
    t.equal(
      allowed.headers.get('access-control-allow-credentials'),
      null,
      'bearer tokens, no cookies',
    );

    const preflight = await fetch(`${http}/v1/visitor/conversations`, {
      method: 'OPTIONS',
      headers: {
        origin: BRAND,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    t.equal(preflight.status, 204, 'the preflight is answered');
    t.equal(preflight.headers.get('access-control-allow-origin'), BRAND);
    t.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    t.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/);
    t.match(preflight.headers.get('access-control-allow-headers') ?? '', /last-event-id/);
    t.equal(preflight.headers.get('access-control-max-age'), '600');

    const other = await call(http, 'GET', widget, { headers: { origin: OTHER } });
    t.equal(other.status, 200, 'answered, for clients that are not browsers');
    t.equal(other.headers.get('access-control-allow-origin'), null, 'but no CORS header');
    const otherPreflight = await fetch(`${http}/v1/visitor/conversations`, {
      method: 'OPTIONS',
      headers: { origin: OTHER, 'access-control-request-method': 'POST' },
    });
    t.equal(otherPreflight.status, 404);
    t.equal(otherPreflight.headers.get('access-control-allow-origin'), null);
    t.equal(otherPreflight.headers.get('access-control-allow-methods'), null);

    const agent = await call(http, 'GET', '/v1/agent/conversations', {
      token: KEYS.agents.alice,
      headers: { origin: BRAND },
    });
    t.equal(agent.status, 200);
    t.equal(agent.headers.get('access-control-allow-origin'), null, 'not on the agent routes');

    // The visitor's event stream, from the allowed origin.
    const { token } = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body;
    await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-cors', url: 'https://shop.example/tv/1' },
    });
    const stream = await fetch(`${http}/v1/visitor/conversations/c-cors/events`, {
      headers: { origin: BRAND, authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    });
    t.equal(stream.status, 200);
    t.equal(stream.headers.get('access-control-allow-origin'), BRAND, 'the stream too');
    await stream.body?.cancel();
  },
);

t.test('an origin added through the admin API is allowed at once, without a restart', async (t) => {
  const { http } = await startParley(t, { settings: settings() });
  const widget = `/v1/widget?url=${encodeURIComponent('https://shop.example/tv/1')}`;
  t.equal(
    (await call(http, 'GET', widget, { headers: { origin: OTHER } })).headers.get(
      'access-control-allow-origin',
    ),
    null,
  );
  const live = await call<{ config: Record<string, unknown> }>(http, 'GET', '/v1/admin/config', {
    token: KEYS.admin,
  });
  const bad = await call(http, 'PUT', '/v1/admin/config', {
    token: KEYS.admin,
    body: { ...live.body.config, widget: { allowedOrigins: ['https://Shop.example/'] } },
  });
  t.equal(bad.status, 400, 'not an origin: refused, naming the field');
  t.match(bad.body, { errors: [{ field: /widget\.allowedOrigins/ }] });
  const put = await call(http, 'PUT', '/v1/admin/config', {
    token: KEYS.admin,
    body: { ...live.body.config, widget: { allowedOrigins: [BRAND, OTHER] } },
  });
  t.equal(put.status, 200);
  let header: string | null = null;
  for (let i = 0; i < 50 && header === null; i++) {
    header = (await call(http, 'GET', widget, { headers: { origin: OTHER } })).headers.get(
      'access-control-allow-origin',
    );
    if (header === null) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(header, OTHER, 'the new origin gets CORS');
  const frame = await fetch(`${http}/widget/frame?origin=${encodeURIComponent(OTHER)}`);
  t.match(frame.headers.get('content-security-policy') ?? '', `frame-ancestors ${BRAND} ${OTHER}`);
});

t.test('every page and script carries security headers; built files are cached', async (t) => {
  const { http } = await startParley(t, { settings: settings() });

  const loader = await fetch(`${http}/widget.js`, { headers: { 'accept-encoding': 'gzip' } });
  t.equal(loader.status, 200);
  t.match(loader.headers.get('content-type') ?? '', /^text\/javascript/);
  t.equal(loader.headers.get('x-content-type-options'), 'nosniff');
  t.equal(loader.headers.get('referrer-policy'), 'no-referrer');
  t.equal(
    loader.headers.get('cross-origin-resource-policy'),
    'cross-origin',
    'the brand’s pages may load it',
  );
  t.equal(loader.headers.get('cache-control'), 'public, max-age=300');
  t.equal(loader.headers.get('content-encoding'), 'gzip');
  const loaderText = await loader.text();
  t.match(loaderText, /widget\/frame/);
  const etag = loader.headers.get('etag') ?? '';
  t.equal((await fetch(`${http}/widget.js`, { headers: { 'if-none-match': etag } })).status, 304);

  const frame = await fetch(
    `${http}/widget/frame?origin=${encodeURIComponent(BRAND)}&lang=fr&color=%23b00020`,
  );
  t.equal(frame.status, 200);
  t.match(frame.headers.get('content-type') ?? '', /^text\/html/);
  const csp = frame.headers.get('content-security-policy') ?? '';
  t.match(csp, "script-src 'self'", 'only the gateway’s own scripts');
  t.notMatch(csp, 'unsafe-inline');
  t.match(csp, "default-src 'none'");
  t.match(csp, `frame-ancestors ${BRAND}`, 'shown only inside the allowed origins');
  t.notMatch(csp, /frame-ancestors[^;]*\*/);
  t.equal(frame.headers.get('x-frame-options'), null, 'frame-ancestors decides, not SAMEORIGIN');
  t.equal(frame.headers.get('x-content-type-options'), 'nosniff');
  t.equal(frame.headers.get('referrer-policy'), 'no-referrer');
  t.equal(frame.headers.get('cache-control'), 'no-cache');
  const html = await frame.text();
  t.notMatch(html, /<script>|style=/, 'no inline script or style');
  const scripts = [...html.matchAll(/src="\/assets\/([^"]+)"/g)].map((m) => m[1]);
  t.equal(scripts.length, 1);

  const asset = await fetch(`${http}/assets/${scripts[0]}`);
  t.equal(asset.status, 200);
  t.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  t.equal(asset.headers.get('x-content-type-options'), 'nosniff');
  t.equal(asset.headers.get('cross-origin-resource-policy'), 'same-origin');
  t.match(asset.headers.get('content-security-policy') ?? '', "script-src 'self'");

  const badColour = await call(
    http,
    'GET',
    `/widget/frame?origin=${encodeURIComponent(BRAND)}&color=red`,
  );
  t.equal(badColour.status, 400);
  t.match(badColour.body, {
    code: 'PARLEY_ERR_VALIDATION',
    errors: [{ field: 'querystring.color' }],
  });
  const noOrigin = await call(http, 'GET', '/widget/frame');
  t.match(noOrigin.body, { status: 400, errors: [{ field: 'querystring.origin' }] });
  const missing = await call(http, 'GET', '/assets/nothing.js');
  t.equal(missing.status, 404);
  t.equal((await call(http, 'GET', '/assets/..%2Fmanifest.json')).status, 400);

  // The JSON API is not a page: unchanged.
  const api = await fetch(
    `${http}/v1/widget?url=${encodeURIComponent('https://shop.example/tv/1')}`,
  );
  t.equal(api.headers.get('content-security-policy'), null);
});

t.test('a gateway with no allowed origin lets no page frame the widget', async (t) => {
  const { http } = await startParley(t);
  const frame = await fetch(`${http}/widget/frame?origin=${encodeURIComponent(BRAND)}`);
  t.match(frame.headers.get('content-security-policy') ?? '', "frame-ancestors 'none'");
});

t.test('the size budget script prints the figures and fails over budget', async (t) => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'scripts/web-size.ts', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
    });
  const ok = run();
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /^loader \(loader\.\w+\.js\)\s+\d+\.\d KB gzip .*budget 3\.0 KB: ok$/m);
  t.match(ok.stdout, /^widget \(script \+ stylesheet\)\s+\d+\.\d KB gzip .*budget 40\.0 KB: ok$/m);
  const over = run('--loader-max', '100');
  t.equal(over.status, 1, 'over budget: a failure');
  t.match(over.stdout, /budget 0\.1 KB: OVER/);
  // Keep the figures in the test's output.
  t.comment(ok.stdout.trim());
});
