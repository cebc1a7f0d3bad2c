// Starts and stops real nats-server processes for tests: one server or a JetStream cluster, each
// on free loopback ports with its own temporary store, and none left behind when the test ends.

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';

/** What a test passes to have a server stopped when it ends: tap's `t` fits. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface NatsServerOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** Stop the server in this test's teardown. */
  t?: Teardown;
}

/** One running nats-server, on 127.0.0.1 and a port the kernel chose. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** Its `server_name` in a cluster (the name JetStream gives a stream's leader and replicas). */
  readonly name: string | undefined;
  /** The server's temporary folder: the JetStream store is `<storeDir>/jetstream`, the log `<storeDir>/server.log`. */
  readonly storeDir: string;
  /** The process id, or undefined while the server is not running (after kill or stop). */
  readonly pid: number | undefined;
  /** SIGTERM, SIGKILL if it has not exited after a timeout, then removes the temporary folder. */
  stop(): Promise<void>;
  /** SIGKILL, leaving the store in place (a crash); `restart()` brings the server back. */
  kill(): Promise<void>;
  /** Stops the server if it runs, then starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** The last lines of the server's log, for diagnostics. */
  logTail(lines?: number): Promise<string>;
}

export interface NatsCluster {
  readonly urls: string[];
  readonly servers: NatsServer[];
  /** Stops every server, whatever state each one is in. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const CLUSTER_READY_TIMEOUT_MS = 20_000;

/** The nats-server binary: the one on PATH, else Debian's /usr/sbin/nats-server. */
export function natsServerBinary(): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const candidate of [
    ...dirs.map((dir) => join(dir, 'nats-server')),
    '/usr/sbin/nats-server',
  ]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    'nats-server not found on PATH nor at /usr/sbin (Debian: apt-get install nats-server)',
  );
}

/** Starts one nats-server with JetStream (unless `jetstream: false`) on a free port. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const root = await mkdtemp(join(tmpdir(), 'parley-nats-'));
  const server = new ServerProcess(root, options.jetstream === false ? [] : ['-js', '-sd', root]);
  options.t?.teardown(() => server.stop());
  try {
    await server.start();
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/**
 * Starts `size` servers with JetStream, routed to each other on free loopback ports, and waits
 * until every one of them is current in the JetStream meta group (so R3 streams can be created).
 */
export async function startNatsCluster(
  size = 3,
  options: { t?: Teardown } = {},
): Promise<NatsCluster> {
  // Route ports must be known before the servers start; a port freed by the probe can be taken by
  // another process before nats-server binds it, so a failed start is retried on new ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const servers: ServerProcess[] = [];
    const cluster: NatsCluster = {
      get urls() {
        return servers.map((server) => server.url);
      },
      servers,
      stop: async () => {
        await Promise.all(servers.map((server) => server.stop()));
      },
    };
    try {
      const routePorts = await freePorts(size);
      const name = `parley-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
      const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
      for (let i = 0; i < size; i++) {
        const root = await mkdtemp(join(tmpdir(), 'parley-nats-'));
        const config = join(root, 'server.conf');
        await writeFile(
          config,
          [
            `server_name: ${name}-n${i + 1}`,
            'http: "127.0.0.1:-1"',
            `jetstream { store_dir: ${JSON.stringify(root)} }`,
            'cluster {',
            `  name: ${name}`,
            `  listen: "127.0.0.1:${routePorts[i]}"`,
            `  routes: [${routes.filter((_, j) => j !== i).join(', ')}]`,
            '}',
            '',
          ].join('\n'),
        );
        servers.push(new ServerProcess(root, ['-c', config], `${name}-n${i + 1}`));
      }
      options.t?.teardown(() => cluster.stop());
      await Promise.all(servers.map((server) => server.start()));
      await waitForMetaGroup(servers, size);
      return cluster;
    } catch (error) {
      lastError = error;
      await cluster.stop();
    }
  }
  throw lastError;
}

// Every server this process started and has not stopped, killed if the process exits first.
const running = new Set<ServerProcess>();
let exitHooksInstalled = false;

// Only 'exit': a signal handler here would stop signal-exit (which tap uses) from re-raising
// the signal, and the process would not die. A death by signal is the watchdog's to clean up.
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.once('exit', () => {
    for (const server of running) server.killNow();
  });
}

class ServerProcess implements NatsServer {
  readonly storeDir: string;
  readonly name: string | undefined;
  #args: string[];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #port = 0;
  #removed = false;
  #watchdog = false;

  constructor(root: string, args: string[], name?: string) {
    this.storeDir = root;
    this.name = name;
    this.#args = args;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null
      ? this.#child.pid
      : undefined;
  }

  async start(): Promise<void> {
    installExitHooks();
    this.#startWatchdog();
    const portsDir = join(this.storeDir, 'ports');
    await rm(portsDir, { recursive: true, force: true });
    await mkdir(portsDir);
    const args = [
      ...this.#args,
      '-a',
      '127.0.0.1',
      '-p',
      String(this.#port || -1),
      '--ports_file_dir',
      portsDir,
      '-P',
      join(this.storeDir, 'nats.pid'),
      '-l',
      join(this.storeDir, 'server.log'),
    ];
    const child = spawn(natsServerBinary(), args, { stdio: 'ignore' });
    this.#child = child;
    running.add(this);
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        running.delete(this);
        // A pid file left by a crash must not make the watchdog kill a recycled pid.
        rmSync(join(this.storeDir, 'nats.pid'), { force: true });
        resolve();
      });
    });
    child.once('error', () => {});
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    // nats-server writes `<portsDir>/nats-server_<pid>.ports` once its listeners are up.
    for (;;) {
      const port = await this.#readPortsFile(portsDir);
      if (port !== undefined) {
        this.#port = port;
        break;
      }
      if (this.pid === undefined) {
        throw new Error(`nats-server exited at start:\n${await this.logTail()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `nats-server did not start in ${STARTUP_TIMEOUT_MS} ms:\n${await this.logTail()}`,
        );
      }
      await sleep(20);
    }
    await waitForInfo(this.#port, deadline);
  }

  async stop(): Promise<void> {
    await this.#terminate();
    if (!this.#removed) {
      this.#removed = true;
      await rm(this.storeDir, { recursive: true, force: true });
    }
  }

  async kill(): Promise<void> {
    this.killNow();
    await this.#exited;
  }

  async restart(): Promise<void> {
    await this.#terminate();
    await this.start();
  }

  async logTail(lines = 30): Promise<string> {
    try {
      const log = await readFile(join(this.storeDir, 'server.log'), 'utf8');
      return log.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGKILL without waiting: for the process's exit hooks. */
  killNow(): void {
    if (this.pid !== undefined) this.#child?.kill('SIGKILL');
  }

  async #terminate(): Promise<void> {
    if (this.pid === undefined) return this.#exited;
    this.#child?.kill('SIGTERM');
    const timer = setTimeout(() => this.killNow(), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }

  async #readPortsFile(portsDir: string): Promise<number | undefined> {
    const pid = this.#child?.pid;
    try {
      const text = await readFile(join(portsDir, `nats-server_${pid}.ports`), 'utf8');
      const ports = JSON.parse(text) as { nats?: string[] };
      const url = ports.nats?.[0];
      return url ? Number(new URL(url).port) : undefined;
    } catch {
      return undefined; // not written yet, or half written
    }
  }

  // If this process dies without running its exit hooks (SIGKILL, a tap timeout), a detached
  // shell kills the server and removes its folder. Paths go through the environment, not argv,
  // so `pgrep -f <storeDir>` sees only nats-server.
  #startWatchdog(): void {
    if (this.#watchdog) return;
    this.#watchdog = true;
    const script = [
      'while kill -0 "$PARLEY_PARENT" 2>/dev/null && [ -d "$PARLEY_ROOT" ]; do sleep 1; done',
      'if [ -d "$PARLEY_ROOT" ]; then',
      '  if [ -f "$PARLEY_ROOT/nats.pid" ]; then kill -9 "$(cat "$PARLEY_ROOT/nats.pid")" 2>/dev/null; sleep 1; fi',
      '  rm -rf "$PARLEY_ROOT"',
      'fi',
    ].join('\n');
    const watchdog = spawn('sh', ['-c', script], {
      detached: true,
      stdio: 'ignore',
      env: {
        PATH: process.env.PATH,
        PARLEY_PARENT: String(process.pid),
        PARLEY_ROOT: this.storeDir,
      },
    });
    watchdog.unref();
  }
}

/** Resolves when the server at `port` greets a TCP client with its INFO line. */
async function waitForInfo(port: number, deadline: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      const done = (result: boolean) => {
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(1_000, () => done(false));
      socket.once('error', () => done(false));
      socket.once('data', (data) => done(data.toString().startsWith('INFO')));
      socket.connect(port, '127.0.0.1');
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server on port ${port} does not answer`);
    await sleep(20);
  }
}

/** A loopback port nobody listens on (just freed by the kernel). */
export async function closedPort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/** `count` distinct free TCP ports on loopback, as the kernel hands them out. */
async function freePorts(count: number): Promise<number[]> {
  const probes = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const probe = createServer();
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => resolve(probe));
        }),
    ),
  );
  const ports = probes.map((probe) => {
    const address = probe.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))));
  return ports;
}

interface Jsz {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: { name: string; current: boolean }[];
  };
}

/**
 * Waits until every server sees a meta leader and the leader sees the `size - 1` other peers
 * current (read from each server's monitoring `/jsz`), then until `$JS.API.INFO` answers.
 */
async function waitForMetaGroup(servers: ServerProcess[], size: number): Promise<void> {
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  const monitorPorts = await Promise.all(servers.map((server) => monitorPort(server)));
  for (;;) {
    const views = await Promise.all(
      monitorPorts.map(async (port) => {
        try {
          const response = await fetch(`http://127.0.0.1:${port}/jsz`);
          return (await response.json()) as Jsz;
        } catch {
          return {} as Jsz;
        }
      }),
    );
    // Every server sees a leader; only the leader lists the other peers (`replicas`).
    const leaderView = views.find((view) => view.meta_cluster?.replicas !== undefined);
    const replicas = leaderView?.meta_cluster?.replicas ?? [];
    const ready =
      views.every((view) => Boolean(view.meta_cluster?.leader)) &&
      replicas.length === size - 1 &&
      replicas.every((replica) => replica.current);
    if (ready) break;
    if (Date.now() > deadline) {
      const tails = await Promise.all(servers.map((server) => server.logTail(10)));
      throw new Error(
        `JetStream cluster not ready:\n${JSON.stringify(views)}\n${tails.join('\n--\n')}`,
      );
    }
    await sleep(100);
  }
  const nc = await connect({ servers: servers.map((server) => server.url) });
  try {
    for (;;) {
      try {
        await nc.request('$JS.API.INFO', '', { timeout: 1_000 });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(100);
      }
    }
  } finally {
    await nc.close();
  }
}

async function monitorPort(server: ServerProcess): Promise<number> {
  const portsDir = join(server.storeDir, 'ports');
  const files = (await readdir(portsDir)).filter((file) => file.endsWith('.ports'));
  const text = await readFile(join(portsDir, files[0]!), 'utf8');
  const ports = JSON.parse(text) as { monitoring?: string[] };
  const url = ports.monitoring?.[0];
  if (!url) throw new Error(`no monitoring port in ${text}`);
  return Number(new URL(url).port);
}
