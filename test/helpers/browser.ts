// A real browser for the widget's tests: Debian's Chromium, headless, driven by playwright-core,
// with the flags a root user on a machine without network needs; a page server on an origin of
// its own (the brand's site); screenshots saved under test/browser/screenshots/.
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Frame, type FrameLocator, type Page } from 'playwright-core';
import type { Teardown } from './nats-server.ts';

export const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';

/** Where the tests save what they show, for people to look at. */
export const SCREENSHOTS = fileURLToPath(new URL('../browser/screenshots/', import.meta.url));

/** Why the browser tests cannot run here, or undefined when they can. */
export function noBrowser(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set PARLEY_CHROMIUM): browser tests skipped`;
}

/**
 * Chromium, closed with the test. playwright-core gives it a fresh temporary profile
 * (--user-data-dir) of its own, removed when it closes; each `newContext()` is a clean one.
 */
export async function launchBrowser(t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}

export interface Site {
  /** `http://127.0.0.1:<port>`: another origin than the gateway's. */
  readonly origin: string;
  /** Serves `body` at `path` from now on (HTML unless `type` says otherwise). */
  page(path: string, body: string, type?: string): void;
}

/** A brand's site on a free port, closed with the test. */
export async function startSite(t: Teardown): Promise<Site> {
  const pages = new Map<string, { body: string; type: string }>();
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://site').pathname;
    const page = pages.get(path);
    if (page === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': page.type }).end(page.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    page(path, body, type = 'text/html; charset=utf-8') {
      pages.set(path, { body, type });
    },
  };
}

/** A brand's page with the widget's snippet (the stub that queues calls, and the loader). */
export function brandPage(
  gateway: string,
  options: {
    title?: string;
    lang?: string;
    data?: Record<string, string>;
    head?: string;
    body?: string;
    calls?: string;
  } = {},
): string {
  const data = Object.entries(options.data ?? {})
    .map(([k, v]) => ` data-${k}="${v}"`)
    .join('');
  return `<!doctype html>
<html lang="${options.lang ?? 'en'}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${options.title ?? 'Shop'}</title>${options.head ?? ''}</head>
<body>
<h1>${options.title ?? 'Shop'}</h1>
${options.body ?? ''}
<script>window.parley=window.parley||function(){(parley.q=parley.q||[]).push(arguments)};${options.calls ?? ''}</script>
<script async src="${gateway}/widget.js"${data}></script>
</body>
</html>`;
}

/** The widget's frame on `page`, to find its elements by role and name. */
export function widget(page: Page): FrameLocator {
  return page.frameLocator('iframe[src*="/widget/frame"]');
}

/** The widget's frame itself, once loaded. */
export async function widgetFrame(page: Page): Promise<Frame> {
  const handle = await page.waitForSelector('iframe[src*="/widget/frame"]', { state: 'attached' });
  const frame = await handle.contentFrame();
  if (!frame) throw new Error('the widget frame has no content');
  return frame;
}

/** Saves a screenshot of `page` as `<name>.png` under SCREENSHOTS. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
