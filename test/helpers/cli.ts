// The `parley` command line as a subprocess: run from the repository's root with tsx, its output
// collected to its end.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository's root, where `bin/parley.ts` runs from. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What a finished `parley` run left: its exit status (null if a signal ended it) and output. */
export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** This process's environment, logging warnings only, with `over` on top. */
export function parleyEnv(over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, LOG_LEVEL: 'warn', ...over };
}

/** Runs `parley <args>` to its end in `env` (default `parleyEnv()`), with `input` on its stdin. */
export function runParley(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<Ran> {
  return new Promise<Ran>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/parley.ts', ...args], {
      cwd: ROOT,
      env: options.env ?? parleyEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdin.end(options.input ?? '');
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
