// `parley dev` and `parley worker` as a person runs them: dev starts its own nats-server in a
// data folder and a worker, takes commands over NATS, and leaves nothing behind on SIGTERM; the
// errors a person meets first (no NATS, no nats-server binary) are one line and a failure.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { DEFAULT_NATS_URL, resolveNatsUrl } from '../../lib/nats/embedded.ts';
import { closedPort, startNatsServer, type Teardown } from '../helpers/nats-server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

const CONFIG = `
groups:
  - { id: tv, name: TV }
rules:
  - { id: direct, target: { group: tv } }
agents:
  - { id: alice, name: Alice, groups: [tv] }
`;

/** The test's environment without what would point parley elsewhere than the test says. */
function cleanEnv(over: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  for (const key of [
    'NATS_URL',
    'PARLEY_CONFIG',
    'PARLEY_DATA_DIR',
    'PARLEY_NATS_SERVER',
    'PARLEY_CREDENTIALS',
    'PARLEY_VISITOR_SECRET',
    'PARLEY_ADMIN_KEY',
    'PARLEY_AGENT_KEYS',
  ]) {
    delete env[key];
  }
  // The gateway on a free port: 3000 may be taken, by another run of these tests say.
  return { ...env, PORT: '0', ...over };
}

/** A folder of this test's own, removed at its end. */
async function tempDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-dev-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The test's configuration, in a folder of its own: the data folder is named by nats-server only. */
async function configFile(t: Teardown): Promise<string> {
  const file = join(await tempDir(t), 'parley.yaml');
  await writeFile(file, CONFIG);
  return file;
}

interface Running {
  readonly child: ChildProcess;
  /** Every line written to stdout and stderr so far. */
  readonly lines: string[];
  /** The first line, seen or to come, that matches. */
  line(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The exit status, or the signal's name. */
  readonly exited: Promise<number | string>;
}

/** Spawns `parley <args>`; it is killed at the end of the test if it still runs. */
function parley(t: Teardown, args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/parley.ts', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const heard = (line: string) => {
    lines.push(line);
    for (const w of [...waiters]) {
      const match = w.pattern.exec(line);
      if (match) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(match);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', heard);
  createInterface({ input: child.stderr! }).on('line', heard);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    lines,
    exited,
    line(pattern, timeoutMs = 20_000) {
      for (const line of lines) {
        const match = pattern.exec(line);
        if (match) return Promise.resolve(match);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line matching ${pattern} in:\n${lines.join('\n')}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        void exited.then(() =>
          setTimeout(() => {
            clearTimeout(timer);
            reject(new Error(`exited without a line matching ${pattern}:\n${lines.join('\n')}`));
          }, 100),
        );
      });
    },
  };
}

/** Resolves with the status, or rejects when the process has not exited in `ms`. */
async function exitWithin(p: Running, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still running after ${ms} ms:\n${p.lines.join('\n')}`)),
      ms,
    );
  });
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Pids of the processes whose command line names `text` (pgrep -f). */
async function processesNaming(text: string): Promise<number[]> {
  try {
    const { stdout } = await run('pgrep', ['-f', text]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Kills what this test started in `dataDir` that is still there (a test that failed midway). */
function killLeftovers(t: Teardown, dataDir: string): void {
  t.teardown(async () => {
    for (const pid of await processesNaming(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
}

t.test(
  'parley dev starts its own nats-server and a worker, takes commands, and stops clean on SIGTERM',
  async (t) => {
    const dataDir = await tempDir(t);
    killLeftovers(t, dataDir);
    const config = await configFile(t);
    const env = cleanEnv({ PARLEY_DATA_DIR: dataDir });

    const dev = parley(t, ['dev', '--config', config], env);
    const [, url, http] = await dev.line(
      /NATS: (nats:\/\/127\.0\.0\.1:\d+) .* HTTP: (http:\/\/127\.0\.0\.1:\d+)/,
    );
    t.not(url, DEFAULT_NATS_URL, 'a port the kernel chose, not 4222');
    const health = await fetch(`${http}/healthz`);
    t.equal(health.status, 200, 'the gateway runs too, and reaches NATS');
    const keys = JSON.parse(await readFile(join(dataDir, 'credentials.json'), 'utf8'));
    t.type(keys.agentKeys.alice, 'string', 'each configured agent got a key in the data folder');
    t.equal(
      (await readFile(join(dataDir, 'nats.url'), 'utf8')).trim(),
      url,
      'the URL is left in the data folder',
    );
    t.equal(
      await resolveNatsUrl({ PARLEY_DATA_DIR: dataDir }),
      url,
      'other commands of the folder find it without NATS_URL',
    );
    t.ok(existsSync(join(dataDir, 'nats', 'jetstream')), 'the store is in the data folder');
    t.ok((await processesNaming(dataDir)).length > 0, 'its nats-server runs on the data folder');

    const nc = await connect({ servers: url! });
    t.teardown(() => nc.close());
    const started = new Promise<DomainEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ConversationStarted in 15 s')), 15_000);
      const sub = nc.subscribe('parley.evt.>');
      void (async () => {
        for await (const m of sub) {
          const e = m.json<DomainEvent>();
          if (e.type === 'ConversationStarted' && e.conversation === 'c1') {
            clearTimeout(timer);
            resolve(e);
          }
        }
      })();
    });
    await nc.flush();
    const command = {
      type: 'StartConversation',
      id: 'x1',
      conversation: 'c1',
      visitor: 'v1',
      rule: 'direct',
    };
    await jetstream(nc).publish('parley.cmd.tv.c1', JSON.stringify(command), { msgID: 'x1' });
    const event = await started;
    t.match(event, {
      type: 'ConversationStarted',
      conversation: 'c1',
      visitor: 'v1',
      rule: 'direct',
    });
    await nc.close();

    dev.child.kill('SIGTERM');
    t.equal(await exitWithin(dev, 10_000), 0, 'exits 0 on SIGTERM');
    t.same(await processesNaming(dataDir), [], 'no nats-server of the data folder is left');
    t.notOk(existsSync(join(dataDir, 'nats.url')), 'the URL file is removed');
    t.equal(
      await resolveNatsUrl({ PARLEY_DATA_DIR: dataDir }),
      DEFAULT_NATS_URL,
      'other commands no longer find it',
    );
  },
);

t.test('parley dev with NATS_URL uses that server and starts none', async (t) => {
  const server = await startNatsServer({ t });
  const dataDir = await tempDir(t);
  killLeftovers(t, dataDir);
  const config = await configFile(t);
  const dev = parley(
    t,
    ['dev', '--config', config],
    cleanEnv({ PARLEY_DATA_DIR: dataDir, NATS_URL: server.url }),
  );
  const [, url] = await dev.line(/NATS: (\S+) \(from NATS_URL\)/);
  t.equal(url, server.url);
  t.same(await processesNaming(dataDir), [], 'no embedded nats-server');
  t.notOk(existsSync(join(dataDir, 'nats.url')), 'no URL file written');
  dev.child.kill('SIGINT');
  t.equal(await exitWithin(dev, 10_000), 0, 'exits 0 on Ctrl-C');
});

t.test('parley worker runs on NATS_URL and stops clean on SIGTERM', async (t) => {
  const server = await startNatsServer({ t });
  const dataDir = await tempDir(t);
  const config = await configFile(t);
  const worker = parley(
    t,
    ['worker', '--config', config, '--id', 'w-test', '--lease', '1s'],
    cleanEnv({ PARLEY_DATA_DIR: dataDir, NATS_URL: server.url, LOG_LEVEL: 'info' }),
  );
  await worker.line(/"worker":"w-test".*"msg":"worker started"/);
  worker.child.kill('SIGTERM');
  t.equal(await exitWithin(worker, 10_000), 0, 'exits 0 on SIGTERM');
  t.ok(
    worker.lines.some((line) => /"worker":"w-test".*"msg":"worker stopped"/.test(line)),
    'the worker stopped: its groups handed over',
  );
});

t.test('parley worker on a NATS_URL where nothing listens: one line, exit 1', async (t) => {
  const dataDir = await tempDir(t);
  const url = `nats://127.0.0.1:${await closedPort()}`;
  const worker = parley(t, ['worker'], cleanEnv({ PARLEY_DATA_DIR: dataDir, NATS_URL: url }));
  t.equal(await exitWithin(worker, 20_000), 1);
  t.equal(worker.lines.length, 1, worker.lines.join('\n'));
  t.match(worker.lines[0], url, 'names the URL tried');
  t.match(worker.lines[0], /NATS_URL/, 'says how to set another');
});

t.test('parley dev without a nats-server binary: the install hint, exit 1', async (t) => {
  const dataDir = await tempDir(t);
  const dev = parley(
    t,
    ['dev'],
    cleanEnv({
      PARLEY_DATA_DIR: dataDir,
      PARLEY_NATS_SERVER: '/nonexistent/nats-server',
      PATH: dirname(process.execPath),
    }),
  );
  t.equal(await exitWithin(dev, 20_000), 1);
  t.same(dev.lines, [
    'parley dev: nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_URL',
  ]);
  t.same(await processesNaming(dataDir), []);
});

t.test('the long-running commands have --help, and refuse unknown options', async (t) => {
  for (const command of ['dev', 'worker']) {
    const help = parley(t, [command, '--help'], cleanEnv({}));
    t.equal(await exitWithin(help, 20_000), 0);
    t.match(help.lines.join('\n'), new RegExp(`Usage: parley ${command}`));
    t.match(help.lines.join('\n'), /--config <file>/);

    const wrong = parley(t, [command, '--bogus'], cleanEnv({}));
    t.equal(await exitWithin(wrong, 20_000), 2);
    t.equal(wrong.lines.length, 1, wrong.lines.join('\n'));
    t.match(wrong.lines[0], /unknown option '--bogus'/);
  }
});
