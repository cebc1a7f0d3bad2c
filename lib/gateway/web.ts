// What people see, served by the gateway from web/dist (scripts/build-web.ts): the widget's loader
// at a stable URL (/widget.js, cached briefly), the widget's frame (/widget/frame, the page the
// loader puts in an iframe) and the content-hashed files (/assets/…, cached for a year). Every
// page and script carries security headers (@fastify/helmet): a CSP that runs the gateway's own
// scripts only, the frame shown only inside the widget's allowed origins, nosniff, no referrer.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import helmet from '@fastify/helmet';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** web/dist of this repository, wherever the process was started from. */
export const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

/** What scripts/build-web.ts writes to manifest.json: each entry's hashed file name. */
interface Manifest {
  readonly loader: string;
  readonly widget: string;
  readonly widgetCss: string;
}

interface Asset {
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly type: string;
  readonly etag: string;
}

export const CACHE = {
  /** The loader's URL is the snippet's: a change reaches pages within five minutes. */
  loader: 'public, max-age=300',
  /** Content-hashed: a new build has new names. */
  asset: 'public, max-age=31536000, immutable',
  /** The frame's page names the current hashed files: asked again each time (it is small). */
  frame: 'no-cache',
} as const;

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

function asset(body: Buffer, type: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), type, etag };
}

/** Reads the built files named by the manifest; undefined when web/dist is not built. */
function readBuild(
  dir: string,
  log: Logger,
): { manifest: Manifest; files: Map<string, Asset> } | undefined {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    const files = new Map<string, Asset>();
    for (const name of Object.values(manifest) as string[]) {
      const ext = name.slice(name.lastIndexOf('.'));
      files.set(
        name,
        asset(readFileSync(join(dir, name)), TYPES[ext] ?? 'application/octet-stream'),
      );
    }
    return { manifest, files };
  } catch (error) {
    log.warn(
      { err: error, dir },
      'the web files are not built (npm run build:web): the widget is not served',
    );
    return undefined;
  }
}

/** The frame's page: no inline script or style, nothing from the request in it. */
function framePage(m: Manifest): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat</title>
<link rel="stylesheet" href="/assets/${m.widgetCss}">
</head>
<body>
<div id="app"></div>
<script src="/assets/${m.widget}"></script>
</body>
</html>
`;
}

export interface WebOptions {
  /** Where the built files are (default web/dist). */
  readonly dir?: string;
  /** The origins allowed to embed the widget now. */
  readonly allowedOrigins: () => readonly string[];
  readonly log: Logger;
}

const FrameQuery = Type.Object(
  {
    origin: Type.String({
      pattern: '^https?://[^/?#\\s]+$',
      maxLength: 256,
      description: "The embedding page's origin: the only window the frame talks to.",
    }),
    lang: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$' })),
    color: Type.Optional(Type.String({ pattern: '^#[0-9a-fA-F]{3,8}$' })),
    position: Type.Optional(Type.Union([Type.Literal('left'), Type.Literal('right')])),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  },
  { additionalProperties: false },
);

/** The web routes, in a plugin of their own (helmet applies to them, not to the JSON API). */
export function webRoutes(options: WebOptions) {
  const dir = options.dir ?? WEB_DIST;
  return async (parent: FastifyInstance) => {
    const app = parent.withTypeProvider<TypeBoxTypeProvider>();
    const build = readBuild(dir, options.log);
    const origins = () => options.allowedOrigins().join(' ');
    const ancestors = (_req: IncomingMessage, _res: ServerResponse) => origins() || "'none'";
    const images = (_req: IncomingMessage, _res: ServerResponse) => origins() || "'self'";
    await app.register(helmet, {
      global: true,
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          'default-src': ["'none'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'connect-src': ["'self'"],
          // Attachments are URLs elsewhere: the web, or the brand's own sites.
          'img-src': ["'self'", 'https:', images],
          'base-uri': ["'none'"],
          'form-action': ["'none'"],
          'frame-ancestors': [ancestors],
        },
      },
      referrerPolicy: { policy: 'no-referrer' },
      crossOriginResourcePolicy: { policy: 'same-origin' },
      crossOriginEmbedderPolicy: false,
    });

    const send = (request: FastifyRequest, reply: FastifyReply, file: Asset, cache: string) => {
      reply
        .header('cache-control', cache)
        .header('etag', file.etag)
        .header('vary', 'accept-encoding');
      reply.type(file.type);
      if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
      if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
        return reply.header('content-encoding', 'gzip').send(file.gzip);
      }
      return reply.send(file.body);
    };
    const built = () => {
      if (!build)
        throw new ParleyError('PARLEY_ERR_NOT_FOUND', [
          'the widget (not built: npm run build:web)',
        ]);
      return build;
    };

    app.get(
      '/widget.js',
      {
        // A script the brand's pages load from another origin.
        helmet: { crossOriginResourcePolicy: { policy: 'cross-origin' } },
        schema: { hide: true },
      },
      async (request, reply) => {
        const b = built();
        return send(request, reply, b.files.get(b.manifest.loader)!, CACHE.loader);
      },
    );

    const frame = build
      ? asset(Buffer.from(framePage(build.manifest)), TYPES['.html']!)
      : undefined;
    app.get(
      '/widget/frame',
      { helmet: { xFrameOptions: false }, schema: { hide: true, querystring: FrameQuery } },
      async (request, reply) => {
        built();
        return send(request, reply, frame!, CACHE.frame);
      },
    );

    app.get(
      '/assets/:file',
      {
        schema: {
          hide: true,
          params: Type.Object({ file: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' }) }),
        },
      },
      async (request, reply) => {
        const file = built().files.get(request.params.file);
        if (!file) throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`asset ${request.params.file}`]);
        return send(request, reply, file, CACHE.asset);
      },
    );
  };
}
