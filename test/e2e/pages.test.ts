// The pages a visitor views, over real HTTP: the widget records each one, the agent sees the
// current page and the trail (the last 20), a retry is recorded once, bad input names its field.
import t from 'tap';
import { call, KEYS, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';

t.test('the agent sees the pages the visitor viewed, the current one last', async (t) => {
  const { http } = await startParley(t);
  const { token } = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body;
  const started = await call(http, 'POST', '/v1/visitor/conversations', {
    token,
    body: { id: 'c-pages', url: TV_PAGE, message: { id: 'm-1', text: 'Hello' } },
  });
  t.equal(started.status, 201);

  const first = await call(http, 'POST', '/v1/visitor/conversations/c-pages/pages', {
    token,
    body: { id: 'pv-1', url: TV_PAGE, title: 'OLED 55 – Shop' },
  });
  t.equal(first.status, 201);
  t.match(first.body, { page: { url: TV_PAGE, title: 'OLED 55 – Shop', at: Number } });
  const retry = await call(http, 'POST', '/v1/visitor/conversations/c-pages/pages', {
    token,
    body: { id: 'pv-1', url: TV_PAGE, title: 'OLED 55 – Shop' },
  });
  t.equal(retry.status, 202, 'a retry is accepted, not recorded again');
  for (let i = 2; i <= 22; i++) {
    const r = await call(http, 'POST', '/v1/visitor/conversations/c-pages/pages', {
      token,
      body: { id: `pv-${i}`, url: `https://shop.example/tv/page-${i}` },
    });
    t.equal(r.status, 201, `page ${i}`);
  }

  const seen = await call<{ pages: { url: string; title: string }[] }>(
    http,
    'GET',
    '/v1/agent/conversations/c-pages',
    { token: KEYS.agents.alice },
  );
  t.equal(seen.status, 200);
  t.equal(seen.body.pages.length, 20, 'the last 20 pages');
  t.match(seen.body.pages.at(-1), { url: 'https://shop.example/tv/page-22', title: '' });
  t.equal(seen.body.pages[0]?.url, 'https://shop.example/tv/page-3', 'the first two fell off');
  t.notOk(
    seen.body.pages.some((p) => p.title === 'OLED 55 – Shop'),
    'the retry added nothing',
  );
});

t.test(
  'a page view with bad input is 400 naming the field; another visitor gets 404',
  async (t) => {
    const { http } = await startParley(t);
    const { token } = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body;
    await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-bad', url: TV_PAGE },
    });
    const noUrl = await call(http, 'POST', '/v1/visitor/conversations/c-bad/pages', {
      token,
      body: { id: 'pv-1' },
    });
    t.equal(noUrl.status, 400);
    t.match(noUrl.type, /^application\/problem\+json/);
    t.match(noUrl.body, { code: 'PARLEY_ERR_VALIDATION', errors: [{ field: 'body.url' }] });
    const long = await call(http, 'POST', '/v1/visitor/conversations/c-bad/pages', {
      token,
      body: { id: 'pv-2', url: TV_PAGE, title: 'x'.repeat(513) },
    });
    t.match(long.body, { status: 400, errors: [{ field: 'body.title' }] });

    const other = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body.token;
    const foreign = await call(http, 'POST', '/v1/visitor/conversations/c-bad/pages', {
      token: other,
      body: { id: 'pv-3', url: TV_PAGE },
    });
    t.equal(foreign.status, 404);

    await call(http, 'POST', '/v1/visitor/conversations/c-bad/close', { token });
    const closed = await call(http, 'POST', '/v1/visitor/conversations/c-bad/pages', {
      token,
      body: { id: 'pv-4', url: TV_PAGE },
    });
    t.equal(closed.status, 409, 'no page views once closed');
    t.match(closed.body, { rejection: 'not-allowed-in-state' });
  },
);
