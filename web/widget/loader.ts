// The loader a brand's page runs from `<script async src=".../widget.js">`: it puts the widget's
// frame (served by the gateway, on the gateway's origin) in a corner of the page, sizes it as the
// frame asks, tells it the page's URL and title (also when a single-page app changes its URL),
// and runs the calls the page made to `parley(...)`, those queued before it loaded included.
import { FRAME_TITLES, pickLang } from '../shared/i18n.ts';
import { type FromFrame, isMessage, type Mode, TAG, type ToFrame } from '../shared/protocol.ts';

type Call = ArrayLike<unknown>;
interface Parley {
  (...args: unknown[]): void;
  q?: Call[];
  loaded?: boolean;
}

const w = window as Window & { parley?: Parley };
const script = (document.currentScript ??
  document.querySelector('script[src*="/widget.js"]')) as HTMLScriptElement | null;

if (script && !w.parley?.loaded) {
  const base = new URL(script.src).origin;
  const data = script.dataset;
  const lang = pickLang(data.lang || document.documentElement.lang || navigator.language);
  const side = data.position === 'left' ? 'left' : 'right';
  const query = new URLSearchParams({ origin: location.origin, lang, position: side });
  if (/^#[0-9a-f]{3,8}$/i.test(data.color ?? '')) query.set('color', data.color ?? '');
  if (data.label) query.set('label', data.label.slice(0, 40));

  const frame = document.createElement('iframe');
  frame.title = FRAME_TITLES[lang];
  frame.src = `${base}/widget/frame?${query}`;
  let mode: Mode = 'hidden';
  let size = [0, 0];
  let ready = false;
  const waiting: ToFrame[] = [];
  const listeners: ((count: number) => void)[] = [];

  let wasPhone: boolean | undefined;
  // Inline and !important: the page's stylesheets, however aggressive, cannot move or hide it.
  const place = () => {
    const phone = innerWidth < 520;
    if (phone !== wasPhone && ready) {
      wasPhone = phone;
      post({ tag: TAG, type: 'viewport', phone });
    }
    const open = mode === 'open';
    const css: Record<string, string> = {
      all: 'initial',
      position: 'fixed',
      bottom: '0',
      top: open && phone ? '0' : 'auto',
      [side]: '0',
      [side === 'left' ? 'right' : 'left']: 'auto',
      width: open ? (phone ? '100%' : '400px') : `${size[0]}px`,
      height: open ? (phone ? '100%' : 'min(680px, 100%)') : `${size[1]}px`,
      'max-width': '100%',
      'max-height': '100%',
      border: '0',
      margin: '0',
      padding: '0',
      display: 'block',
      visibility: mode === 'hidden' ? 'hidden' : 'visible',
      opacity: '1',
      'pointer-events': mode === 'hidden' ? 'none' : 'auto',
      background: 'transparent',
      'color-scheme': 'normal',
      'z-index': '2147483000',
    };
    frame.removeAttribute('style');
    for (const [k, v] of Object.entries(css)) frame.style.setProperty(k, v, 'important');
  };
  place();

  const post = (message: ToFrame) => {
    if (ready) frame.contentWindow?.postMessage(message, base);
    else waiting.push(message);
  };
  let lastUrl = '';
  const page = () => {
    // After the app changed its URL (and, usually, its title).
    setTimeout(() => {
      if (location.href === lastUrl) return;
      lastUrl = location.href;
      post({ tag: TAG, type: 'page', url: location.href, title: document.title });
    }, 0);
  };
  for (const name of ['pushState', 'replaceState'] as const) {
    const original = history[name];
    history[name] = function (this: History, ...args: Parameters<History['pushState']>) {
      original.apply(this, args);
      page();
    };
  }
  addEventListener('popstate', page);
  addEventListener('hashchange', page);
  addEventListener('resize', place);

  addEventListener('message', (e: MessageEvent) => {
    if (e.source !== frame.contentWindow || e.origin !== base || !isMessage<FromFrame>(e.data))
      return;
    const m = e.data;
    if (m.type === 'ready') {
      ready = true;
      for (const message of waiting.splice(0)) post(message);
      place();
      lastUrl = '';
      page();
    } else if (m.type === 'layout') {
      if (
        m.mode !== 'hidden' &&
        mode === 'hidden' &&
        !performance.getEntriesByName('parley:launcher').length
      ) {
        performance.mark('parley:launcher');
      }
      mode = m.mode;
      size = [m.width, m.height];
      place();
    } else if (m.type === 'unread') {
      for (const listener of listeners) listener(m.count);
    }
  });

  const parley: Parley = (method, arg, fn) => {
    if (method === 'on' && arg === 'unread' && typeof fn === 'function') {
      listeners.push(fn as (count: number) => void);
    } else if (method === 'open' || method === 'minimise') {
      post({ tag: TAG, type: method });
    } else if (method === 'identify' && arg && typeof arg === 'object') {
      const { user, expires, signature } = arg as Record<string, unknown>;
      post({
        tag: TAG,
        type: 'identify',
        user: String(user),
        expires: Number(expires),
        signature: String(signature),
      });
    } else if (method === 'attributes' && arg && typeof arg === 'object') {
      const attributes: Record<string, string> = {};
      for (const [k, v] of Object.entries(arg)) attributes[k] = String(v);
      post({ tag: TAG, type: 'attributes', attributes });
    }
  };
  parley.loaded = true;
  const queued = w.parley?.q ?? [];
  w.parley = parley;
  for (const call of queued) parley(...Array.from(call));

  if (document.body) document.body.appendChild(frame);
  else addEventListener('DOMContentLoaded', () => document.body.appendChild(frame));
}
