// The chat widget in Chromium as a visitor lives it, on a brand's page of another origin than
// the gateway's, against a real nats-server, worker and gateway: targeting, the automatic message,
// writing with nobody online, leaving and coming back to the unread dot and the history,
// minimised while an agent writes, the survey, the visitor's own end, the keyboard, a phone, a
// French page, the brand's theme, and a brand stylesheet that tries to break it.
import { createHmac } from 'node:crypto';
import t from 'tap';
import type { Settings } from '../../actors/settings.ts';
import {
  brandPage,
  launchBrowser,
  noBrowser,
  screenshot,
  startSite,
  widget,
  widgetFrame,
} from '../helpers/browser.ts';
import { call, gatewaySettings, KEYS, startParley } from '../helpers/gateway.ts';
import { waitUntil } from '../helpers/poll.ts';
import { rule } from '../helpers/settings.ts';

const skip = noBrowser();
if (skip) {
  t.comment(skip);
  t.pass(skip);
} else {
  t.test('the widget in Chromium', async (t) => {
    const site = await startSite(t);
    // The site's /tv/ pages are targeted (the tv group); its other pages are not.
    const base = gatewaySettings();
    const settings: Settings = {
      ...base,
      rules: [
        rule('tv-pages', {
          match: { pages: [`${site.origin}/tv/*`], attributes: {} },
          target: { group: 'tv', byAnswer: [] },
        }),
      ],
      widget: { allowedOrigins: [site.origin] },
    };
    const parley = await startParley(t, { settings });
    const { http } = parley;
    const browser = await launchBrowser(t);
    const alice = KEYS.agents.alice;
    const agentView = (id: string) =>
      call<Record<string, unknown>>(http, 'GET', `/v1/agent/conversations/${id}`, { token: alice });
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect width="120" height="60" fill="#0b6e4f"/></svg>`;
    site.page('/img/soundbar.svg', svg, 'image/svg+xml');

    await t.test(
      'targeting, the automatic message, nobody online, tab closed, agent answers, back later: dot, history, survey',
      async (t) => {
        const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
        t.teardown(() => context.close());
        context.setDefaultTimeout(10_000);
        const snippet = (title: string) =>
          brandPage(http, {
            title,
            calls: "parley('on','unread',function(n){window.__unread=n});",
          });
        site.page('/about', snippet('About us'));
        site.page('/tv/oled-55', snippet('OLED 55 – Shop'));
        site.page('/tv/soundbar', snippet('Soundbar – Shop'));

        // Not targeted: no button. The frame asked, and stays hidden.
        const page = await context.newPage();
        const asked = page.waitForResponse((r) => r.url().includes('/v1/widget?'));
        await page.goto(`${site.origin}/about`);
        t.equal((await asked).status(), 200);
        await page.waitForTimeout(300);
        const frameElement = page.locator('iframe[src*="/widget/frame"]');
        t.notOk(await frameElement.isVisible(), 'no chat button on a page no rule targets');

        // A single-page app's URL change to a targeted page shows it; back, it goes away again.
        await page.evaluate("history.pushState({}, '', '/tv/oled-55')");
        const launcher = widget(page).getByRole('button', { name: /Chat with us/ });
        await launcher.waitFor({ state: 'visible' });
        await frameElement.waitFor({ state: 'visible' });
        await page.evaluate("history.pushState({}, '', '/about')");
        await frameElement.waitFor({ state: 'hidden' });
        t.pass('the button follows the app’s URL: shown on /tv/, hidden on /about');

        // A targeted page, loaded: the launcher, and how long it took to show.
        await page.goto(`${site.origin}/tv/oled-55`);
        await launcher.waitFor({ state: 'visible' });
        const shownMs = await page.evaluate(
          "performance.getEntriesByName('parley:launcher')[0].startTime - performance.getEntriesByType('navigation')[0].domContentLoadedEventStart",
        );
        t.comment(`DOMContentLoaded → launcher visible: ${Math.round(Number(shownMs))} ms`);
        t.ok(Number(shownMs) > 0 && Number(shownMs) < 5_000, 'the launcher shows soon after load');
        await screenshot(page, 'launcher');

        // Open: the automatic message is there before the visitor writes.
        await launcher.click();
        const box = widget(page).getByRole('dialog', { name: 'Chat' });
        const log = box.getByRole('log', { name: 'Messages' });
        await log.getByText('Hi! Leave us a message.').waitFor();
        t.pass('the automatic message shows as the box opens');

        // Nobody online: the visitor writes anyway (focus is in the message field: keyboard).
        const field = box.getByLabel('Your message');
        t.ok(
          await field.evaluate((el) => el === el.ownerDocument.activeElement),
          'focus in the field',
        );
        await page.keyboard.type('Is the OLED 55 in stock? 📺');
        await page.keyboard.press('Enter');
        await log.getByText('Is the OLED 55 in stock? 📺').waitFor();
        await box.getByText('You are number 1 in the waiting list.').waitFor();
        t.pass('sent with no agent online; the place in the waiting list is shown');
        // Told by email when answered while away (nobody online: the opt-in is offered).
        await box.getByText(/Nobody is online right now/).click();
        await box.getByLabel('Email').fill('marie@example.com');
        await box.getByRole('button', { name: 'Notify me' }).click();
        await box.getByText('Thank you: we will tell you when we answer.').waitFor();
        await screenshot(page, 'open-box');

        const list = await call<{ conversations: { id: string }[] }>(
          http,
          'GET',
          '/v1/agent/conversations',
          { token: alice },
        );
        t.same(list.body.conversations, [], 'nobody holds it yet');

        // The conversation's id, as the agents see it: the only one of the tv group.
        let id = '';
        const online = await call(http, 'PUT', '/v1/agent/presence', {
          token: alice,
          body: { presence: 'online' },
        });
        t.equal(online.status, 200);
        await waitUntil(async () => {
          const r = await call<{ conversations: { id: string }[] }>(
            http,
            'GET',
            '/v1/agent/conversations',
            { token: alice },
          );
          id = r.body.conversations[0]?.id ?? '';
          return id !== '';
        }, 'the conversation assigned to alice');
        await box.getByText('Alice is answering you.').waitFor();
        t.pass('the status follows the assignment');
        t.equal((await agentView(id)).body.visitorOnline, true, 'online while the tab is open');
        t.match(
          (await agentView(id)).body.pages,
          [{ url: `${site.origin}/tv/oled-55`, title: 'OLED 55 – Shop' }],
          'the page the visitor is on, for the agent',
        );

        // The tab closes: the visitor goes offline soon after.
        await page.close();
        await waitUntil(
          async () => (await agentView(id)).body.visitorOnline === false,
          'the visitor offline after the last tab closed',
        );
        t.pass('offline soon after the last tab closed');

        // The agent answers while the visitor is away.
        const reply = (mid: string, text: string, attachments?: unknown[]) =>
          call(http, 'POST', `/v1/agent/conversations/${id}/messages`, {
            token: alice,
            body: { id: mid, text, ...(attachments ? { attachments } : {}) },
          });
        t.equal(
          (
            await reply(
              'r-1',
              'Yes! 🎉 See https://shop.example/tv/oled-55 (not javascript:alert(1))',
            )
          ).status,
          201,
        );
        t.equal(
          (
            await reply('r-2', 'And a matching soundbar, with its guide:', [
              {
                kind: 'image',
                ref: `${site.origin}/img/soundbar.svg`,
                name: 'Soundbar photo',
                mimeType: 'image/svg+xml',
                sizeBytes: svg.length,
              },
              {
                kind: 'file',
                ref: 'https://shop.example/guides/soundbar.pdf',
                name: 'soundbar-guide.pdf',
                mimeType: 'application/pdf',
                sizeBytes: 1_482_007,
              },
            ])
          ).status,
          201,
        );

        // Hours later, a new tab: the same visitor, the dot with the right count.
        const again = await context.newPage();
        await again.goto(`${site.origin}/tv/soundbar`);
        const dot = widget(again).getByRole('button', { name: /Chat with us.*2 new messages/ });
        await dot.waitFor({ state: 'visible' });
        t.equal(await again.evaluate('window.__unread'), 2, "parley('on', 'unread') told the page");
        await screenshot(again, 'minimised-dot');
        await waitUntil(
          async () => (await agentView(id)).body.visitorOnline === true,
          'online again with the new tab',
        );

        // The history, in order, with the link made clickable safely and the attachments shown.
        await dot.click();
        const box2 = widget(again).getByRole('dialog', { name: 'Chat' });
        const log2 = box2.getByRole('log', { name: 'Messages' });
        await log2.getByText('And a matching soundbar').waitFor();
        const items = await log2.getByRole('listitem').allInnerTexts();
        const order = [
          'Hi! Leave us a message.',
          'Is the OLED 55 in stock?',
          'Yes! 🎉 See https://shop.example/tv/oled-55',
          'And a matching soundbar',
        ];
        t.same(
          order.map((text) => items.findIndex((item) => item.includes(text))),
          [0, 1, 2, 3],
          'the history in order',
        );
        const link = log2.getByRole('link', { name: 'https://shop.example/tv/oled-55' });
        t.equal(await link.getAttribute('href'), 'https://shop.example/tv/oled-55');
        t.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
        t.equal(
          await log2.getByRole('link', { name: /javascript/ }).count(),
          0,
          'no javascript: link',
        );
        const image = log2.getByRole('img', { name: 'Soundbar photo' });
        await image.waitFor();
        await waitUntil(
          async () =>
            (await image.evaluate(
              (img) => (img as unknown as { naturalWidth: number }).naturalWidth,
            )) === 120,
          'the image loaded inline',
        );
        t.equal(
          await log2.getByRole('link', { name: /soundbar-guide\.pdf/ }).getAttribute('href'),
          'https://shop.example/guides/soundbar.pdf',
          'the file as a link',
        );
        await widget(again).getByRole('button', { name: 'Minimise the chat' }).click();
        const plain = widget(again).getByRole('button', { name: 'Chat with us' });
        await plain.waitFor();
        t.equal((await agentView(id)).body.unread, 0, 'opened: read');

        // Minimised while the agent writes: the dot counts up.
        await reply('r-3', 'One more thing…');
        await widget(again)
          .getByRole('button', { name: /1 new message\b/ })
          .waitFor();
        await reply('r-4', 'It ships tomorrow.');
        await widget(again)
          .getByRole('button', { name: /2 new messages/ })
          .waitFor();
        t.pass('the dot counted 1, then 2');

        // The agent closes: the survey, answered.
        const closed = await call(http, 'POST', `/v1/agent/conversations/${id}/close`, {
          token: alice,
          body: { tags: ['stock'] },
        });
        t.equal(closed.status, 200);
        await widget(again)
          .getByRole('button', { name: /Chat with us/ })
          .click();
        const survey = box2.getByRole('form', { name: 'How did we do?' });
        await survey.waitFor();
        await survey
          .getByRole('group', { name: /How satisfied/ })
          .getByLabel('5')
          .check();
        await survey
          .getByRole('group', { name: /recommend/ })
          .getByLabel('9')
          .check();
        await survey.getByLabel(/Anything to add/).fill('Quick and friendly');
        await screenshot(again, 'survey');
        await survey.getByRole('button', { name: 'Send my answer' }).click();
        await box2.getByText('Thank you for your answer!').waitFor();
        t.match((await agentView(id)).body.survey, {
          csat: 5,
          nps: 9,
          comment: 'Quick and friendly',
        });
        t.match(
          ((await agentView(id)).body.pages as { url: string }[]).map((p) => p.url),
          [`${site.origin}/tv/oled-55`, `${site.origin}/tv/soundbar`],
          'both pages viewed in the trail',
        );
      },
    );

    await t.test(
      'on a phone, with the keyboard alone, the visitor ends the conversation',
      async (t) => {
        const context = await browser.newContext({
          viewport: { width: 375, height: 667 },
          isMobile: true,
          hasTouch: true,
        });
        t.teardown(() => context.close());
        context.setDefaultTimeout(10_000);
        site.page('/tv/phone', brandPage(http, { title: 'On the phone' }));
        const page = await context.newPage();
        await page.goto(`${site.origin}/tv/phone`);
        const w = widget(page);
        const launcher = w.getByRole('button', { name: /Chat with us/ });
        await launcher.waitFor();
        // Tab from the page into the widget: the launcher takes the focus.
        await page.keyboard.press('Tab');
        t.ok(
          await launcher.evaluate((el) => el === el.ownerDocument.activeElement),
          'Tab reaches the launcher',
        );
        await page.keyboard.press('Enter');
        const box = w.getByRole('dialog', { name: 'Chat' });
        await box.waitFor();
        const frame = await page.locator('iframe[src*="/widget/frame"]').boundingBox();
        t.match(
          frame,
          { x: 0, y: 0, width: 375, height: 667 },
          'the open box takes the whole screen',
        );
        await page.keyboard.type('My order never came');
        await page.keyboard.press('Enter');
        await box.getByRole('log').getByText('My order never came').waitFor();
        await screenshot(page, 'phone-open');
        // Escape minimises, and the focus goes back to the launcher; Enter opens it again.
        await page.keyboard.press('Escape');
        await launcher.waitFor();
        await waitUntil(
          () => launcher.evaluate((el) => el === el.ownerDocument.activeElement),
          'the focus back on the launcher',
        );
        await page.keyboard.press('Enter');
        const end = box.getByRole('button', { name: 'End the conversation' });
        await end.press('Enter');
        const yes = box.getByRole('button', { name: 'Yes, end it' });
        await waitUntil(
          () => yes.evaluate((el) => el === el.ownerDocument.activeElement),
          'focus on the confirmation',
        );
        await page.keyboard.press('Enter');
        const survey = box.getByRole('form', { name: 'How did we do?' });
        await survey.waitFor();
        t.pass('ended by the visitor: the survey follows');
        // The survey with the keyboard: the first choice has the focus, arrows choose, Tab moves on.
        await page.keyboard.press('ArrowRight');
        await page.keyboard.press('ArrowRight');
        await page.keyboard.press('ArrowRight');
        t.ok(
          await survey
            .getByRole('group', { name: /How satisfied/ })
            .getByLabel('4')
            .isChecked(),
          'CSAT 4 by arrows',
        );
        await survey.getByRole('button', { name: 'Send my answer' }).press('Enter');
        await box.getByText('Thank you for your answer!').waitFor();
        const content = await widgetFrame(page);
        const stored = await content.evaluate("localStorage.getItem('parley:conversation')");
        const id = JSON.parse(String(stored)) as string;
        t.match((await agentView(id)).body, { state: 'closed', survey: { csat: 4, nps: null } });
      },
    );

    await t.test(
      'a French page in the brand’s colour, on the left, untouched by an aggressive stylesheet',
      async (t) => {
        const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
        t.teardown(() => context.close());
        context.setDefaultTimeout(10_000);
        const data = { color: '#b00020', position: 'left', label: 'Une question ?' };
        const hostile =
          '<style>* { all: unset !important; } button { display: none !important; } iframe { display: none !important; opacity: 0 !important; }</style>';
        site.page('/tv/fr', brandPage(http, { title: 'Boutique', lang: 'fr', data }));
        site.page(
          '/tv/fr-hostile',
          brandPage(http, { title: 'Boutique', lang: 'fr', data, head: hostile }),
        );

        const look = async (path: string) => {
          const page = await context.newPage();
          await page.goto(`${site.origin}${path}`);
          const launcher = widget(page).getByRole('button', { name: /Une question/ });
          await launcher.waitFor();
          const frame = page.locator('iframe[src*="/widget/frame"]');
          await frame.waitFor({ state: 'visible' });
          await page.waitForTimeout(200);
          const box = await frame.boundingBox();
          const picture = await frame.screenshot();
          const colour = await launcher.evaluate(
            (el) => el.ownerDocument.defaultView?.getComputedStyle(el).backgroundColor,
          );
          return { page, launcher, box, picture, colour };
        };
        const plain = await look('/tv/fr');
        t.equal(plain.colour, 'rgb(176, 0, 32)', 'the brand’s colour');
        t.equal(plain.box?.x, 0, 'on the left');
        t.equal(
          await plain.page.locator('iframe').getAttribute('title'),
          'Messagerie',
          'in French',
        );
        await screenshot(plain.page, 'launcher-fr');

        const broken = await look('/tv/fr-hostile');
        t.same(broken.box, plain.box, 'the same place and size under the hostile stylesheet');
        t.ok(broken.picture.equals(plain.picture), 'the same pixels');
        await screenshot(broken.page, 'launcher-fr-hostile');
        await broken.launcher.click();
        const box = widget(broken.page).getByRole('dialog', { name: 'Messagerie' });
        await box.getByRole('button', { name: 'Envoyer' }).waitFor({ state: 'visible' });
        t.ok(await box.getByLabel('Votre message').isVisible(), 'the box opens and works');
        await screenshot(broken.page, 'open-fr-hostile');
      },
    );

    await t.test(
      'a logged-in customer, identified by calls made before the loader came, finds their history on another device',
      async (t) => {
        const expires = Date.now() + 3_600_000;
        const user = 'customer-42';
        const signature = createHmac('sha256', KEYS.identity)
          .update(`${user}.${expires}`)
          .digest('hex');
        const calls = `parley('identify',{user:${JSON.stringify(user)},expires:${expires},signature:${JSON.stringify(signature)}});parley('attributes',{segment:'pro'});`;
        site.page('/tv/account', brandPage(http, { title: 'My account', calls }));
        const laptop = await browser.newContext();
        t.teardown(() => laptop.close());
        laptop.setDefaultTimeout(10_000);
        const one = await laptop.newPage();
        await one.goto(`${site.origin}/tv/account`);
        await widget(one)
          .getByRole('button', { name: /Chat with us/ })
          .click();
        await widget(one).getByLabel('Your message').fill('Written on the laptop');
        await widget(one).getByRole('button', { name: 'Send' }).click();
        await widget(one).getByRole('log').getByText('Written on the laptop').waitFor();

        const phone = await browser.newContext();
        t.teardown(() => phone.close());
        phone.setDefaultTimeout(10_000);
        const two = await phone.newPage();
        await two.goto(`${site.origin}/tv/account`);
        await widget(two)
          .getByRole('button', { name: /Chat with us/ })
          .click();
        await widget(two).getByRole('log').getByText('Written on the laptop').waitFor();
        t.pass('the same conversation on the other device');
      },
    );
  });
}
