// The embedded NATS server of `parley dev`: a nats-server child process with JetStream on
// 127.0.0.1 and a free port, its store in the project's data folder, and the URL left in
// `<dataDir>/nats.url` so that the other `parley` commands of the folder find it.

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** Where a NATS client looks when nothing says otherwise. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** The file, in the data folder, that holds the URL of the running embedded server. */
export const NATS_URL_FILE = 'nats.url';

/** Debian's path of the binary, tried after PATH. */
const DEBIAN_BINARY = '/usr/sbin/nats-server';

const INSTALL_HINT =
  'nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_URL';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
/** Lines of the server's output kept for the message of a failed start. */
const TAIL_LINES = 20;

/**
 * The data folder: PARLEY_DATA_DIR, else `data/` at the root of this repository (whatever the
 * working directory), which .gitignore names.
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PARLEY_DATA_DIR) return resolve(env.PARLEY_DATA_DIR);
  return fileURLToPath(new URL('../../data/', import.meta.url)).replace(/\/$/, '');
}

/**
 * The nats-server binary: PARLEY_NATS_SERVER if set (and nothing else then), else the first
 * `nats-server` on PATH, else /usr/sbin/nats-server. Throws a ParleyError with the install hint.
 */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = env.PARLEY_NATS_SERVER
    ? [env.PARLEY_NATS_SERVER]
    : [
        ...(env.PATH ?? '')
          .split(delimiter)
          .filter(Boolean)
          .map((dir) => join(dir, 'nats-server')),
        DEBIAN_BINARY,
      ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  const error = new ParleyError('PARLEY_ERR_NOT_FOUND', ['nats-server'], {
    details: { tried: candidates },
  });
  // The catalogue has no code of its own for this yet; the CLI prints the message, so it carries
  // the whole hint.
  error.message = INSTALL_HINT;
  throw error;
}

/**
 * The URL a `parley` command should use: NATS_URL, else the URL in `<dataDir>/nats.url` when
 * that server answers, else {@link DEFAULT_NATS_URL}.
 */
export async function resolveNatsUrl(
  env: NodeJS.ProcessEnv = process.env,
  dataDir: string = defaultDataDir(env),
): Promise<string> {
  const fromEnv = env.NATS_URL?.trim();
  if (fromEnv) return fromEnv;
  let left: string;
  try {
    left = (await readFile(join(dataDir, NATS_URL_FILE), 'utf8')).trim();
  } catch {
    return DEFAULT_NATS_URL;
  }
  const address = hostPort(left);
  if (address && (await answers(address.host, address.port, 1_000))) return left;
  return DEFAULT_NATS_URL;
}

export interface EmbeddedNatsOptions {
  /** The data folder: the store goes to `<dataDir>/nats`, the URL to `<dataDir>/nats.url`. */
  readonly dataDir: string;
  readonly log: Logger;
  /** Where PATH and PARLEY_NATS_SERVER are read (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Servers (default 1). More make one JetStream cluster on loopback, each server with its store
   * in `<dataDir>/nats/n<i>`, routed to the others on free ports; `url` then lists them all.
   */
  readonly servers?: number;
}

export interface EmbeddedNats {
  /** The server's URL; a cluster's URLs, comma-separated. */
  readonly url: string;
  /** The server's process id (the first server's, for a cluster). */
  readonly pid: number;
  /** Every server's process id, with the file that names it (`kill -9 $(cat <file>)` crashes it). */
  readonly servers: readonly {
    readonly url: string;
    readonly pid: number;
    readonly pidFile: string;
  }[];
  /** Stops the server (SIGTERM, SIGKILL after a timeout) and removes `<dataDir>/nats.url`. */
  stop(): Promise<void>;
}

/**
 * Starts nats-server with JetStream on 127.0.0.1 and a port the kernel chooses (never 4222 by
 * default: a nats-server of the machine may own it), waits until it accepts connections, and
 * writes its URL to `<dataDir>/nats.url`. Refuses to start a second server on the same store.
 */
export async function startEmbeddedNats(options: EmbeddedNatsOptions): Promise<EmbeddedNats> {
  if ((options.servers ?? 1) > 1) return startEmbeddedCluster(options, options.servers ?? 1);
  const env = options.env ?? process.env;
  const binary = findNatsServer(env);
  const dataDir = resolve(options.dataDir);
  const store = join(dataDir, 'nats');
  const runDir = join(store, 'run');
  const log = options.log.child({ nats: 'embedded' });
  await mkdir(store, { recursive: true });
  await clearLeftovers(store, dataDir);
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });

  const child = spawn(
    binary,
    [
      '-a',
      '127.0.0.1',
      '-p',
      '-1',
      '-js',
      '-sd',
      store,
      '--ports_file_dir',
      runDir,
      '-P',
      join(store, 'nats.pid'),
    ],
    // Its own process group: Ctrl-C in a terminal must not stop it before the worker has let
    // its groups go; it is stopped last, by `stop()`.
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const server = new ServerProcess(child, log, store, dataDir);
  try {
    await server.ready(runDir);
    await writeFile(join(store, 'owner.pid'), `${process.pid}\n`);
    await writeFile(join(dataDir, NATS_URL_FILE), `${server.url}\n`);
  } catch (error) {
    await server.stop();
    throw error;
  }
  log.info({ url: server.url, store, pid: child.pid }, 'embedded nats-server started');
  return server;
}

class ServerProcess implements EmbeddedNats {
  readonly #child: ChildProcess;
  readonly #log: Logger;
  readonly #store: string;
  readonly #dataDir: string;
  readonly #tail: string[] = [];
  readonly #exited: Promise<void>;
  readonly #watchdog: ChildProcess;
  readonly #onExit = () => this.#killNow();
  #port = 0;
  #stopped = false;

  constructor(child: ChildProcess, log: Logger, store: string, dataDir: string) {
    this.#child = child;
    this.#log = log;
    this.#store = store;
    this.#dataDir = dataDir;
    this.#exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.once('error', (error) => this.#tail.push(error.message));
    if (child.stderr) {
      createInterface({ input: child.stderr }).on('line', (line) => this.#heard(line));
    }
    // A crash of this process runs the exit hook; a SIGKILL does not, and then the watchdog
    // stops the server so that no nats-server is left holding the store.
    process.once('exit', this.#onExit);
    this.#watchdog = startWatchdog(child.pid);
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  get servers() {
    return [{ url: this.url, pid: this.pid, pidFile: join(this.#store, 'nats.pid') }];
  }

  get #running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Waits for the ports file nats-server writes once it listens, then for its INFO line. */
  async ready(runDir: string): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const portsFile = join(runDir, `nats-server_${this.#child.pid}.ports`);
    for (;;) {
      const port = await readPort(portsFile);
      if (port !== undefined) {
        this.#port = port;
        break;
      }
      if (!this.#running || this.#child.pid === undefined) {
        await Promise.race([this.#exited, sleep(200)]);
        throw this.#startFailure('exited at start');
      }
      if (Date.now() > deadline)
        throw this.#startFailure(`did not start in ${START_TIMEOUT_MS} ms`);
      await sleep(20);
    }
    while (!(await answers('127.0.0.1', this.#port, 1_000))) {
      if (!this.#running) throw this.#startFailure('exited at start');
      if (Date.now() > deadline) throw this.#startFailure(`does not answer on ${this.url}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return this.#exited;
    this.#stopped = true;
    if (this.#running) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#killNow(), STOP_TIMEOUT_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    process.removeListener('exit', this.#onExit);
    this.#watchdog.kill('SIGKILL');
    await rm(join(this.#store, 'owner.pid'), { force: true });
    await rm(join(this.#store, 'nats.pid'), { force: true });
    await removeUrlFile(this.#dataDir, this.url);
    this.#log.info({ url: this.url }, 'embedded nats-server stopped');
  }

  #killNow(): void {
    if (this.#running) this.#child.kill('SIGKILL');
  }

  #heard(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    // `[pid] date time [LVL] text`: the server's level becomes the log's.
    const match = /\[(INF|DBG|TRC|WRN|ERR|FTL)\] (.*)$/.exec(line);
    const level = match?.[1];
    const text = match?.[2] ?? line;
    if (level === 'WRN') this.#log.warn(text);
    else if (level === 'ERR' || level === 'FTL') this.#log.error(text);
    else this.#log.debug(text);
  }

  #startFailure(what: string): Error {
    this.#killNow();
    const tail = this.#tail.map((line) => line.replace(/^\[\d+\] \S+ \S+ /, '')).join(' | ');
    return new ParleyError('PARLEY_ERR_NATS_SETUP', [
      'the embedded nats-server',
      `it ${what}${tail ? `: ${tail}` : ''}`,
    ]);
  }
}

/**
 * `size` nats-servers on loopback as one JetStream cluster, each with its store in
 * `<dataDir>/nats/n<i>`. Route ports are chosen free before the servers start; one taken in the
 * meantime fails that start, and the whole cluster is started again on new ports.
 */
async function startEmbeddedCluster(
  options: EmbeddedNatsOptions,
  size: number,
): Promise<EmbeddedNats> {
  const env = options.env ?? process.env;
  const binary = findNatsServer(env);
  const dataDir = resolve(options.dataDir);
  const log = options.log.child({ nats: 'embedded' });
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const routePorts = await freePorts(size);
    const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
    const started: ServerProcess[] = [];
    try {
      for (let i = 0; i < size; i++) {
        const store = join(dataDir, 'nats', `n${i + 1}`);
        const runDir = join(store, 'run');
        await mkdir(store, { recursive: true });
        await clearLeftovers(store, dataDir);
        await rm(runDir, { recursive: true, force: true });
        await mkdir(runDir, { recursive: true });
        const config = join(store, 'server.conf');
        await writeFile(
          config,
          [
            `server_name: parley-dev-n${i + 1}`,
            `jetstream { store_dir: ${JSON.stringify(store)} }`,
            'cluster {',
            '  name: parley-dev',
            `  listen: "127.0.0.1:${routePorts[i]}"`,
            `  routes: [${routes.filter((_, j) => j !== i).join(', ')}]`,
            '}',
            '',
          ].join('\n'),
        );
        const child = spawn(
          binary,
          [
            '-c',
            config,
            '-a',
            '127.0.0.1',
            '-p',
            '-1',
            '--ports_file_dir',
            runDir,
            '-P',
            join(store, 'nats.pid'),
          ],
          { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        const server = new ServerProcess(child, log.child({ server: `n${i + 1}` }), store, dataDir);
        started.push(server);
        await server.ready(runDir);
        await writeFile(join(store, 'owner.pid'), `${process.pid}\n`);
      }
      const cluster = new EmbeddedCluster(started, dataDir);
      await writeFile(join(dataDir, NATS_URL_FILE), `${cluster.url}\n`);
      log.info({ url: cluster.url, servers: size }, 'embedded nats-server cluster started');
      return cluster;
    } catch (error) {
      lastError = error;
      await Promise.all(started.map((server) => server.stop()));
    }
  }
  throw lastError;
}

class EmbeddedCluster implements EmbeddedNats {
  readonly #servers: ServerProcess[];
  readonly #dataDir: string;

  constructor(servers: ServerProcess[], dataDir: string) {
    this.#servers = servers;
    this.#dataDir = dataDir;
  }

  get url(): string {
    return this.#servers.map((s) => s.url).join(',');
  }

  get pid(): number {
    return this.#servers[0]?.pid ?? 0;
  }

  get servers() {
    return this.#servers.flatMap((s) => s.servers);
  }

  async stop(): Promise<void> {
    const url = this.url;
    await Promise.all(this.#servers.map((s) => s.stop()));
    await removeUrlFile(this.#dataDir, url);
  }
}

/** `count` distinct free TCP ports on loopback, as the kernel hands them out. */
async function freePorts(count: number): Promise<number[]> {
  const probes = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolvePort, reject) => {
          const probe = createServer();
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => resolvePort(probe));
        }),
    ),
  );
  const ports = probes.map((probe) => {
    const address = probe.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(probes.map((probe) => new Promise((done) => probe.close(done))));
  return ports;
}

/**
 * A server left on this store by a `parley dev` that died without stopping it is stopped; a
 * server whose `parley dev` still runs is not touched, and starting a second one is refused.
 */
async function clearLeftovers(store: string, dataDir: string): Promise<void> {
  const server = readPid(join(store, 'nats.pid'));
  if (server === undefined || !isAlive(server) || !commandLine(server).includes(store)) return;
  const owner = readPid(join(store, 'owner.pid'));
  if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
    let url = '';
    try {
      url = readFileSync(join(dataDir, NATS_URL_FILE), 'utf8').trim();
    } catch {
      // no URL left
    }
    throw new ParleyError('PARLEY_ERR_NATS_SETUP', [
      'the embedded nats-server',
      `another parley (pid ${owner}) runs one on ${store}; stop it first${url ? `, or set NATS_URL=${url} to use it` : ''}`,
    ]);
  }
  process.kill(server, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(server) && Date.now() < deadline) await sleep(50);
  if (isAlive(server)) process.kill(server, 'SIGKILL');
}

/** Removes `<dataDir>/nats.url` if it still names `url` (a newer server may have replaced it). */
async function removeUrlFile(dataDir: string, url: string): Promise<void> {
  const file = join(dataDir, NATS_URL_FILE);
  try {
    if ((await readFile(file, 'utf8')).trim() === url) rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

// A detached shell that outlives this process: if this process dies while the server runs, it
// stops the server. The pid goes through the environment, so the shell's command line names no
// path of the store.
function startWatchdog(server: number | undefined): ChildProcess {
  const script = [
    'while kill -0 "$PARLEY_PARENT" 2>/dev/null && kill -0 "$PARLEY_SERVER" 2>/dev/null; do sleep 1; done',
    'if kill -0 "$PARLEY_SERVER" 2>/dev/null; then',
    '  kill -TERM "$PARLEY_SERVER"; sleep 5; kill -KILL "$PARLEY_SERVER" 2>/dev/null',
    'fi',
  ].join('\n');
  const watchdog = spawn('sh', ['-c', script], {
    detached: true,
    stdio: 'ignore',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PARLEY_PARENT: String(process.pid),
      PARLEY_SERVER: String(server ?? 0),
    },
  });
  watchdog.on('error', () => undefined);
  watchdog.unref();
  return watchdog;
}

async function readPort(portsFile: string): Promise<number | undefined> {
  try {
    const ports = JSON.parse(await readFile(portsFile, 'utf8')) as { nats?: string[] };
    const url = ports.nats?.[0];
    return url ? Number(new URL(url).port) : undefined;
  } catch {
    return undefined; // not written yet, or half written
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process (Linux), or '' when it cannot be read. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function hostPort(url: string): { host: string; port: number } | undefined {
  try {
    const parsed = new URL(url.includes('://') ? url : `nats://${url}`);
    return { host: parsed.hostname, port: Number(parsed.port || 4222) };
  } catch {
    return undefined;
  }
}

/** True when a NATS server at host:port greets a TCP client with its INFO line in time. */
function answers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data) => done(data.toString().startsWith('INFO')));
    socket.connect(port, host);
  });
}
