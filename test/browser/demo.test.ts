// `npm start`'s demo, as a newcomer meets it: `parley dev` serves a brand's sample page on an
// origin of its own, whose widget works in Chromium against the embedded stack.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { launchBrowser, noBrowser, screenshot, widget } from '../helpers/browser.ts';
import { ROOT } from '../helpers/cli.ts';

const skip = noBrowser();
if (skip) {
  t.comment(skip);
  t.pass(skip);
} else {
  t.test('parley dev serves a demo page whose widget works', async (t) => {
    const data = await mkdtemp(join(tmpdir(), 'parley-demo-test-'));
    t.teardown(() => rm(data, { recursive: true, force: true }));
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', PORT: '0' };
    for (const key of [
      'NATS_URL',
      'PARLEY_CONFIG',
      'PARLEY_CREDENTIALS',
      'PARLEY_VISITOR_SECRET',
      'PARLEY_DEMO_PORT',
    ]) {
      delete env[key];
    }
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bin/parley.ts', 'dev', '--data-dir', data],
      {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
    );
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    });
    const lines: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
    const running = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`parley dev did not start:\n${lines.join('\n')}`)),
        30_000,
      );
      createInterface({ input: child.stdout! }).on('line', (line) => {
        lines.push(line);
        if (line.startsWith('Parley is running.')) {
          clearTimeout(timer);
          resolve(line);
        }
      });
    });
    const demo = /Demo page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(running)?.[1];
    const gateway = /HTTP: (http:\/\/127\.0\.0\.1:\d+)/.exec(running)?.[1];
    t.ok(demo, `the demo page is named: ${running}`);
    t.not(new URL(demo ?? 'http://x/').origin, gateway, 'on an origin of its own');

    const browser = await launchBrowser(t);
    const context = await browser.newContext();
    t.teardown(() => context.close());
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    await page.goto(demo ?? '');
    await widget(page)
      .getByRole('button', { name: /Chat with us/ })
      .click();
    const box = widget(page).getByRole('dialog', { name: 'Chat' });
    await box
      .getByRole('log')
      .getByText(/Hi there! Leave us a message/)
      .waitFor();
    await box.getByLabel('Your message').fill('Hello from the demo page');
    await box.getByRole('button', { name: 'Send' }).click();
    await box.getByText(/You are number 1 in the waiting list/).waitFor();
    t.pass('the conversation started from the demo page');
    await screenshot(page, 'demo');

    child.kill('SIGTERM');
    t.equal(await exited, 0, 'parley dev stops cleanly');
  });
}
