// Who is calling: visitors carry a token the gateway signed for their anonymous id; agents,
// supervisors and admins carry keys from the credentials (a file or the environment, never the
// code). Keys are compared by their SHA-256 digests in constant time.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { ParleyError } from '../errors.ts';

export interface Credentials {
  /** Signs visitors' tokens; at least 32 characters. */
  readonly visitorSecret: string;
  readonly adminKeys: readonly string[];
  readonly supervisorKeys: readonly string[];
  /** Agent id → that agent's API key. */
  readonly agentKeys: Readonly<Record<string, string>>;
  /**
   * Shared with the brand's backend, which signs with it the ids of the customers its site has
   * logged in (see `identifiedVisitor`); at least 32 characters. Without it, visitors are anonymous.
   */
  readonly identitySecret?: string;
}

export type Caller =
  | { readonly kind: 'visitor'; readonly visitor: string }
  | { readonly kind: 'agent'; readonly agent: string }
  | { readonly kind: 'supervisor' }
  | { readonly kind: 'admin' };

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Checks a presented credential against the known ones. */
export class Authenticator {
  readonly #secret: Buffer;
  readonly #agents: Map<string, string>;
  readonly #admins: Buffer[];
  readonly #supervisors: Buffer[];
  readonly #identity: Buffer | undefined;

  constructor(credentials: Credentials) {
    if (credentials.visitorSecret.length < 32) {
      throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
        'credentials',
        'visitorSecret',
        'the visitor secret must be at least 32 characters',
      ]);
    }
    this.#secret = Buffer.from(credentials.visitorSecret);
    if (credentials.identitySecret !== undefined && credentials.identitySecret.length < 32) {
      throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
        'credentials',
        'identitySecret',
        'the identity secret must be at least 32 characters',
      ]);
    }
    this.#identity =
      credentials.identitySecret === undefined
        ? undefined
        : Buffer.from(credentials.identitySecret);
    this.#agents = new Map(
      Object.entries(credentials.agentKeys).map(([agent, key]) => [
        digest(key).toString('hex'),
        agent,
      ]),
    );
    this.#admins = credentials.adminKeys.map(digest);
    this.#supervisors = credentials.supervisorKeys.map(digest);
  }

  /** A new anonymous visitor: its id and the token that proves it. */
  newVisitor(): { visitor: string; token: string } {
    const visitor = `v-${randomBytes(12).toString('base64url')}`;
    return { visitor, token: this.visitorToken(visitor) };
  }

  /**
   * The visitor of a customer the brand's site has logged in: the same id on every device, so their
   * conversations, history and unread messages follow them. `signature` is the hex HMAC-SHA256 of
   * `<user>.<expires>` under the identity secret, made by the brand's backend; `expires` (ms since
   * the epoch) bounds how long that signature may be used. The id is derived from `user` and the
   * identity secret (so rotating the visitor secret, which revokes every token, keeps customers'
   * histories); it does not show `user`.
   */
  identifiedVisitor(
    user: string,
    expires: number,
    signature: string,
    now = Date.now(),
  ): { visitor: string; token: string } {
    if (!this.#identity) {
      throw new ParleyError('PARLEY_ERR_VALIDATION', [
        'logged-in visitors are not set up on this gateway (no identity secret): leave out user and signature',
      ]);
    }
    const expected = createHmac('sha256', this.#identity).update(`${user}.${expires}`).digest();
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', [
        'the signature does not match (HMAC-SHA256 of "<user>.<expires>" under the identity secret, in hex)',
      ]);
    }
    if (expires <= now) {
      throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', ['the signature has expired']);
    }
    const id = createHmac('sha256', this.#identity).update(`visitor:${user}`).digest('base64url');
    const visitor = `u-${id.slice(0, 22)}`;
    return { visitor, token: this.visitorToken(visitor) };
  }

  visitorToken(visitor: string): string {
    return `${visitor}.${this.#sign(visitor)}`;
  }

  #sign(visitor: string): string {
    return createHmac('sha256', this.#secret).update(`visitor:${visitor}`).digest('base64url');
  }

  /** The visitor a token was signed for, or undefined. */
  visitorOf(token: string): string | undefined {
    const dot = token.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const visitor = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(this.#sign(visitor));
    return given.length === expected.length && timingSafeEqual(given, expected)
      ? visitor
      : undefined;
  }

  agentOf(key: string): string | undefined {
    return this.#agents.get(digest(key).toString('hex'));
  }

  isAdmin(key: string): boolean {
    return matchesAny(this.#admins, key);
  }

  isSupervisor(key: string): boolean {
    return matchesAny(this.#supervisors, key) || this.isAdmin(key);
  }

  /**
   * The caller of `kind` that the request's credential proves: `Authorization: Bearer <cred>`,
   * or `?token=` (browsers' EventSource cannot set headers). Throws PARLEY_ERR_UNAUTHORIZED.
   */
  authenticate(request: FastifyRequest, kind: Caller['kind']): Caller {
    const credential = presented(request);
    if (!credential) throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', [`no ${kind} credential`]);
    switch (kind) {
      case 'visitor': {
        const visitor = this.visitorOf(credential);
        if (visitor) return { kind, visitor };
        break;
      }
      case 'agent': {
        const agent = this.agentOf(credential);
        if (agent) return { kind, agent };
        break;
      }
      case 'supervisor':
        if (this.isSupervisor(credential)) return { kind };
        break;
      case 'admin':
        if (this.isAdmin(credential)) return { kind };
        break;
    }
    throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', [`not a valid ${kind} credential`]);
  }
}

function matchesAny(keys: readonly Buffer[], key: string): boolean {
  const d = digest(key);
  let found = false;
  for (const k of keys) found = timingSafeEqual(k, d) || found;
  return found;
}

function presented(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim() || undefined;
  const query = request.query as { token?: unknown } | undefined;
  return typeof query?.token === 'string' && query.token !== '' ? query.token : undefined;
}

/**
 * The credentials from the environment: PARLEY_CREDENTIALS names a JSON file of
 * {@link Credentials}; PARLEY_VISITOR_SECRET, PARLEY_ADMIN_KEY, PARLEY_SUPERVISOR_KEY and
 * PARLEY_AGENT_KEYS (`alice=key1,bob=key2`) add to or replace its fields.
 */
export function loadCredentials(env: NodeJS.ProcessEnv = process.env): Credentials {
  const file = env.PARLEY_CREDENTIALS ? readCredentialsFile(env.PARLEY_CREDENTIALS) : undefined;
  const agentKeys: Record<string, string> = { ...(file?.agentKeys ?? {}) };
  for (const pair of (env.PARLEY_AGENT_KEYS ?? '').split(',').filter((p) => p.trim())) {
    const [agent, key] = pair.split('=').map((x) => x.trim());
    if (!agent || !key) {
      throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
        'PARLEY_AGENT_KEYS',
        'environment',
        `"${agent ?? ''}=…" must be <agent id>=<key>`,
      ]);
    }
    agentKeys[agent] = key;
  }
  const visitorSecret = env.PARLEY_VISITOR_SECRET ?? file?.visitorSecret;
  const identitySecret = env.PARLEY_IDENTITY_SECRET ?? file?.identitySecret;
  if (!visitorSecret) {
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
      'credentials',
      'environment',
      'set PARLEY_VISITOR_SECRET (32+ characters) or PARLEY_CREDENTIALS to a credentials file',
    ]);
  }
  return {
    visitorSecret,
    adminKeys: env.PARLEY_ADMIN_KEY ? [env.PARLEY_ADMIN_KEY] : (file?.adminKeys ?? []),
    supervisorKeys: env.PARLEY_SUPERVISOR_KEY
      ? [env.PARLEY_SUPERVISOR_KEY]
      : (file?.supervisorKeys ?? []),
    agentKeys,
    ...(identitySecret ? { identitySecret } : {}),
  };
}

function readCredentialsFile(path: string): Credentials {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ParleyError('PARLEY_ERR_CONFIG_UNREADABLE', [path, (error as Error).message]);
  }
  const c = value as Partial<Credentials>;
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.visitorSecret !== 'string' ||
    !strings(c.adminKeys ?? []) ||
    !strings(c.supervisorKeys ?? []) ||
    typeof (c.agentKeys ?? {}) !== 'object' ||
    (c.identitySecret !== undefined && typeof c.identitySecret !== 'string') ||
    !Object.values(c.agentKeys ?? {}).every((k) => typeof k === 'string')
  ) {
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
      path,
      'credentials',
      'expected { visitorSecret, adminKeys: [], supervisorKeys: [], agentKeys: { <agent>: <key> }, identitySecret? }',
    ]);
  }
  return {
    visitorSecret: c.visitorSecret,
    adminKeys: c.adminKeys ?? [],
    supervisorKeys: c.supervisorKeys ?? [],
    agentKeys: c.agentKeys ?? {},
    ...(c.identitySecret ? { identitySecret: c.identitySecret } : {}),
  };
}

/**
 * The credentials file `parley dev` uses: created once with random keys (an admin key, a
 * supervisor key and one key per agent given), readable only by its owner.
 */
export function devCredentials(path: string, agents: readonly string[]): Credentials {
  const key = () => randomBytes(24).toString('base64url');
  const existing = existsSync(path) ? readCredentialsFile(path) : undefined;
  const credentials: Credentials = existing ?? {
    visitorSecret: randomBytes(32).toString('base64url'),
    adminKeys: [key()],
    supervisorKeys: [key()],
    agentKeys: {},
  };
  const agentKeys = { ...credentials.agentKeys };
  for (const agent of agents) agentKeys[agent] ??= key();
  const identitySecret = credentials.identitySecret ?? randomBytes(32).toString('base64url');
  const next = { ...credentials, agentKeys, identitySecret };
  if (
    !existing?.identitySecret ||
    Object.keys(agentKeys).length !== Object.keys(credentials.agentKeys).length
  ) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    chmodSync(path, 0o600); // (the mode above applies only to a new file: it holds secrets)
  }
  return next;
}
