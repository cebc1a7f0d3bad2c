// `parley dev`'s demo: a brand's sample site on an origin of its own (another port than the
// gateway's), whose pages carry the widget's snippet, so that a newcomer sees the widget work.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoSite {
  /** `http://127.0.0.1:<port>`: the origin the gateway must allow. */
  readonly origin: string;
  /** Tells the pages where the gateway is, once it listens. */
  setGateway(url: string): void;
  stop(): Promise<void>;
}

const PAGES: Record<string, { title: string; lang: string; heading: string; body: string }> = {
  '/': {
    title: 'Shop example',
    lang: 'en',
    heading: 'Shop example',
    body: 'A brand’s page with Parley’s chat widget. Click “Chat with us” at the bottom right, write a message, then browse: the widget follows you from page to page.',
  },
  '/tv/oled-55': {
    title: 'OLED 55" – Shop example',
    lang: 'en',
    heading: 'OLED 55" television',
    body: 'Another page of the same site: an open conversation and its unread answers come along.',
  },
  '/fr': {
    title: 'Boutique exemple',
    lang: 'fr',
    heading: 'Boutique exemple',
    body: 'La même boutique en français : le widget parle la langue de la page (son attribut lang).',
  },
};

const html = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(path: string, gateway: string): string | undefined {
  const p = PAGES[path];
  if (!p) return undefined;
  const nav = Object.entries(PAGES)
    .map(([href, q]) => `<a href="${href}">${html(q.heading)}</a>`)
    .join(' · ');
  return `<!doctype html>
<html lang="${p.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(p.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}nav{margin:1rem 0}</style>
</head>
<body>
<h1>${html(p.heading)}</h1>
<nav>${nav}</nav>
<p>${html(p.body)}</p>
<script>window.parley=window.parley||function(){(parley.q=parley.q||[]).push(arguments)};</script>
<script async src="${html(gateway)}/widget.js" data-color="#0b6e4f"></script>
</body>
</html>
`;
}

/** Serves the demo site on 127.0.0.1:`port` (0, or `port` taken: a free one). */
export async function startDemoSite(port: number): Promise<DemoSite> {
  let gateway = '';
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://demo').pathname;
    const body = gateway ? page(path, gateway) : undefined;
    if (!body) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    response
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' })
      .end(body);
  });
  const listen = (on: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(on, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen(port);
  } catch (error) {
    // The usual port taken (another Parley, say): any free one will do, the line names it.
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw error;
    await listen(0);
  }
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    setGateway(url) {
      gateway = url;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
