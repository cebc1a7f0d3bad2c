// The chat widget, inside its frame on the gateway's origin: the launcher with its unread dot,
// and the chat box (history, composer, status, notification opt-in, survey). Talks to the
// brand's page only through the loader (postMessage), and to Parley only through its HTTP API.
import { useSignal, useSignalEffect } from '@preact/signals';
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef } from 'preact/hooks';
import type { Attachment, VisitorMessage } from '../shared/api.ts';
import { pickLang, TEXTS, type Texts } from '../shared/i18n.ts';
import { linkify, safeHref } from '../shared/links.ts';
import { type FromFrame, isMessage, TAG, type ToFrame } from '../shared/protocol.ts';
import { WidgetState } from './state.ts';

const params = new URLSearchParams(location.search);
/** The brand's page that embeds this frame: the only window it talks to. */
const parentOrigin = params.get('origin') ?? '';
const t: Texts = TEXTS[pickLang(params.get('lang'))];
const label = params.get('label') || t.launcher;
const EMOJIS = ['😀', '🙂', '😉', '😍', '👍', '🙏', '🎉', '😢'];

const st = new WidgetState();

function tell(message: FromFrame): void {
  if (window.parent !== window && parentOrigin) window.parent.postMessage(message, parentOrigin);
}

/** Runs the loader's requests one after another, after the visitor was found again. */
let chain: Promise<unknown> = st.resume();
const run = (work: () => unknown) => {
  chain = chain.then(work).catch(() => undefined);
};

window.addEventListener('message', (e: MessageEvent) => {
  if (e.source !== window.parent || e.origin !== parentOrigin || !isMessage<ToFrame>(e.data))
    return;
  const m = e.data;
  switch (m.type) {
    case 'page':
      run(() => st.setPage(String(m.url), String(m.title)));
      break;
    case 'identify':
      if (
        typeof m.user === 'string' &&
        typeof m.expires === 'number' &&
        typeof m.signature === 'string'
      )
        run(() => st.identify(m.user, m.expires, m.signature));
      break;
    case 'attributes': {
      const attributes: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.attributes ?? {})) attributes[k] = String(v);
      run(() => st.setAttributes(attributes));
      break;
    }
    case 'open':
      st.setOpen(true);
      break;
    case 'minimise':
      st.setOpen(false);
      break;
    case 'viewport':
      document.documentElement.classList.toggle('phone', m.phone === true);
      break;
  }
});
document.addEventListener('visibilitychange', () => st.markRead());

function theme(): void {
  const root = document.documentElement;
  root.lang = pickLang(params.get('lang'));
  const color = params.get('color');
  if (color && /^#[0-9a-f]{3,8}$/i.test(color)) {
    root.style.setProperty('--brand', color);
    root.style.setProperty('--on-brand', readableOn(color));
  }
  if (params.get('position') === 'left') root.classList.add('left');
}

/** Black or white, whichever reads better on `hex`. */
function readableOn(hex: string): string {
  const h = hex.slice(1);
  const full = h.length <= 4 ? [...h.slice(0, 3)].map((c) => c + c).join('') : h.slice(0, 6);
  const [r, g, b] = [0, 2, 4].map((i) => Number.parseInt(full.slice(i, i + 2), 16) / 255);
  const lin = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const l = 0.2126 * lin(r ?? 0) + 0.7152 * lin(g ?? 0) + 0.0722 * lin(b ?? 0);
  return l > 0.4 ? '#111' : '#fff';
}

function App() {
  const launcher = useRef<HTMLDivElement>(null);
  const mode = st.mode.value;

  // Tell the loader how to show the frame, with the launcher's size as drawn.
  useLayoutEffect(() => {
    const box = launcher.current?.getBoundingClientRect();
    tell({
      tag: TAG,
      type: 'layout',
      mode,
      width: Math.ceil(box?.width ?? 0) + 24,
      height: Math.ceil(box?.height ?? 0) + 24,
    });
  });
  useSignalEffect(() => {
    tell({ tag: TAG, type: 'unread', count: st.unread.value });
  });

  return (
    <div class="widget">
      {mode !== 'open' && (
        <div class="launcher-wrap" ref={launcher}>
          <Launcher />
        </div>
      )}
      {mode === 'open' && <ChatBox />}
    </div>
  );
}

function Launcher() {
  const unread = st.unread.value;
  return (
    <button type="button" class="launcher" aria-expanded="false" onClick={() => st.setOpen(true)}>
      <svg aria-hidden="true" viewBox="0 0 24 24" width="22" height="22">
        <path
          fill="currentColor"
          d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"
        />
      </svg>
      <span>{label}</span>
      {unread > 0 && (
        <span class="badge">
          <span aria-hidden="true">{unread}</span>
          <span class="sr"> ({t.unread(unread)})</span>
        </span>
      )}
    </button>
  );
}

function ChatBox() {
  const confirming = useSignal(false);
  const box = useRef<HTMLElement>(null);
  const c = st.conversation.value;
  const state = st.state.value;
  const closed = state === 'closed';

  useEffect(() => {
    box.current?.querySelector<HTMLElement>('textarea, input, button.primary')?.focus();
  }, []);

  const minimise = () => {
    st.setOpen(false);
    // The launcher is drawn again: focus goes back to it.
    requestAnimationFrame(() => document.querySelector<HTMLElement>('.launcher')?.focus());
  };

  return (
    <section
      ref={box}
      class="box"
      role="dialog"
      aria-labelledby="parley-title"
      onKeyDown={(e) => {
        if (e.key === 'Escape') minimise();
      }}
    >
      <header class="head">
        <h1 id="parley-title">{t.chatTitle}</h1>
        <div class="actions">
          {c && !closed && (
            <button type="button" class="ghost" onClick={() => (confirming.value = true)}>
              {t.end}
            </button>
          )}
          <button type="button" class="icon" aria-label={t.minimise} onClick={minimise}>
            <svg aria-hidden="true" viewBox="0 0 24 24" width="20" height="20">
              <path fill="currentColor" d="M5 11h14v2H5z" />
            </svg>
          </button>
        </div>
      </header>
      {confirming.value && !closed && (
        <div class="confirm" role="alertdialog" aria-labelledby="parley-confirm">
          <p id="parley-confirm">{t.endConfirm}</p>
          <button
            type="button"
            class="primary"
            ref={(el) => el?.focus()}
            onClick={async () => {
              confirming.value = false;
              await st.end();
            }}
          >
            {t.endYes}
          </button>
          <button type="button" class="ghost" onClick={() => (confirming.value = false)}>
            {t.endNo}
          </button>
        </div>
      )}
      <Status />
      <Thread />
      {st.error.value && (
        <p class="error" role="alert">
          {st.error.value}
        </p>
      )}
      {closed ? <Ended /> : <Composer />}
      {!closed && c && st.settings.value?.agentsOnline === false && <NotifyMe />}
    </section>
  );
}

function Status() {
  const c = st.conversation.value;
  const state = st.state.value;
  const typical = c?.typicalReplyMs ?? st.settings.value?.typicalReplyMs ?? null;
  let text = '';
  if (!st.connected.value && c) text = t.offline;
  else if (state === 'queued' && c?.position) {
    text = `${t.position(c.position)}${typical ? ` ${t.replyIn(t.duration(typical))}` : ''}`;
  } else if (state === 'assigned' && c?.agent?.name) text = t.withAgent(c.agent.name);
  else if (state === 'snoozed') text = t.snoozed;
  else if (state !== 'closed' && typical) text = t.replyIn(t.duration(typical));
  return (
    <p class="status" role="status">
      {text}
    </p>
  );
}

function Thread() {
  const list = useRef<HTMLDivElement>(null);
  const messages = st.messages.value;
  const pending = st.pending.value;
  const automatic = st.settings.value?.automaticMessage;
  useLayoutEffect(() => {
    const el = list.current;
    if (el) el.scrollTop = el.scrollHeight;
  });
  return (
    <div class="thread" ref={list} role="log" aria-live="polite" aria-label={t.messages}>
      <ol>
        {messages.length === 0 && automatic && (
          <li class="msg system">
            <Text text={automatic} />
          </li>
        )}
        {messages.map((m) => (
          <Message key={m.seq} m={m} />
        ))}
        {pending.map((p) => (
          <li key={p.id} class="msg visitor pending">
            <span class="sr">{t.you}: </span>
            <Text text={p.text} />
            {p.failed && (
              <span class="failed">
                {t.notSent}{' '}
                <button type="button" class="link" onClick={() => void st.send(p.text, p.id)}>
                  {t.retry}
                </button>
              </span>
            )}
          </li>
        ))}
      </ol>
    </div>
  );
}

function who(m: VisitorMessage): string {
  switch (m.author.kind) {
    case 'visitor':
      return t.you;
    case 'agent':
      return m.author.name || t.team;
    case 'bot':
      return t.bot;
    case 'system':
      return t.team;
  }
}

function Message({ m }: { m: VisitorMessage }) {
  const kind = m.author.kind;
  return (
    <li class={`msg ${kind}`}>
      <span class={kind === 'agent' ? 'author' : 'sr'}>{who(m)}: </span>
      <Text text={m.text} />
      {m.attachments.map((a) => (
        <AttachmentView key={a.ref} a={a} />
      ))}
    </li>
  );
}

/** Text as text nodes, its web and mail addresses as links: never HTML. */
function Text({ text }: { text: string }) {
  return (
    <p class="text">
      {linkify(text).map((part, i) =>
        part.kind === 'text' ? (
          part.text
        ) : (
          <a key={i} href={part.href} target="_blank" rel="noopener noreferrer nofollow">
            {part.text}
          </a>
        ),
      )}
    </p>
  );
}

function size(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  if (bytes < 1024) return ` (${bytes} B)`;
  if (bytes < 1024 * 1024) return ` (${Math.round(bytes / 1024)} KB)`;
  return ` (${(bytes / 1024 / 1024).toFixed(1)} MB)`;
}

function AttachmentView({ a }: { a: Attachment }) {
  const name = a.name ?? t.attachment;
  if (a.kind === 'offer') {
    return (
      <p class="offer">
        {t.offer}: {name}
      </p>
    );
  }
  const href = safeHref(a.ref);
  if (!href || href.startsWith('mailto:')) return <p class="file">{name}</p>;
  if (a.kind === 'image') {
    return (
      <a class="image" href={href} target="_blank" rel="noopener noreferrer nofollow">
        <img src={href} alt={name} loading="lazy" />
      </a>
    );
  }
  return (
    <a
      class="file"
      href={href}
      target="_blank"
      rel="noopener noreferrer nofollow"
      download={a.name}
    >
      {name}
      {size(a.sizeBytes)}
    </a>
  );
}

function Composer() {
  const draft = useSignal('');
  const emojis = useSignal(false);
  const field = useRef<HTMLTextAreaElement>(null);
  const submit = () => {
    const text = draft.value;
    if (!text.trim()) return;
    draft.value = '';
    void st.send(text);
  };
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label for="parley-message" class="sr">
        {t.yourMessage}
      </label>
      <textarea
        id="parley-message"
        ref={field}
        rows={2}
        maxLength={10_000}
        placeholder={t.placeholder}
        value={draft.value}
        onInput={(e) => {
          draft.value = (e.currentTarget as HTMLTextAreaElement).value;
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <div class="tools">
        <button
          type="button"
          class="icon"
          aria-label={t.emoji}
          aria-expanded={emojis.value}
          onClick={() => (emojis.value = !emojis.value)}
        >
          <span aria-hidden="true">🙂</span>
        </button>
        <button type="submit" class="primary">
          {t.send}
        </button>
      </div>
      {emojis.value && (
        <fieldset class="emojis">
          <legend class="sr">{t.emojis}</legend>
          {EMOJIS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              onClick={() => {
                draft.value += emoji;
                emojis.value = false;
                field.current?.focus();
              }}
            >
              {emoji}
            </button>
          ))}
        </fieldset>
      )}
    </form>
  );
}

function NotifyMe() {
  const email = useSignal('');
  const phone = useSignal('');
  const outcome = useSignal<'done' | 'failed' | null>(null);
  if (outcome.value === 'done') {
    return (
      <p class="notify" role="status">
        {t.notifyDone}
      </p>
    );
  }
  return (
    <details class="notify">
      <summary>{t.nobodyOnline}</summary>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!email.value && !phone.value) return;
          outcome.value = (await st.notify(email.value.trim(), phone.value.replace(/\s/g, '')))
            ? 'done'
            : 'failed';
        }}
      >
        <label>
          {t.email}
          <input
            type="email"
            autoComplete="email"
            value={email.value}
            onInput={(e) => {
              email.value = (e.currentTarget as HTMLInputElement).value;
            }}
          />
        </label>
        <label>
          {t.phone}
          <input
            type="tel"
            autoComplete="tel"
            value={phone.value}
            onInput={(e) => {
              phone.value = (e.currentTarget as HTMLInputElement).value;
            }}
          />
        </label>
        <button type="submit">{t.notifyMe}</button>
        {outcome.value === 'failed' && <p role="alert">{t.notifyFailed}</p>}
      </form>
    </details>
  );
}

function Scale(props: {
  name: string;
  legend: string;
  from: number;
  to: number;
  value: number | null;
  onChange: (n: number) => void;
}) {
  const values: number[] = [];
  for (let n = props.from; n <= props.to; n++) values.push(n);
  return (
    <fieldset class="scale">
      <legend>{props.legend}</legend>
      <div class="choices">
        {values.map((n) => (
          <label key={n}>
            <input
              type="radio"
              name={props.name}
              value={n}
              checked={props.value === n}
              onChange={() => props.onChange(n)}
            />
            <span>{n}</span>
          </label>
        ))}
      </div>
    </fieldset>
  );
}

function Ended() {
  const csat = useSignal<number | null>(null);
  const nps = useSignal<number | null>(null);
  const comment = useSignal('');
  const form = useRef<HTMLFormElement>(null);
  const surveyOpen = st.surveyOpen.value;
  // The composer went away with the close: focus goes to what replaced it.
  useEffect(() => {
    form.current?.querySelector<HTMLElement>('input')?.focus();
  }, [surveyOpen]);
  if (st.surveyOpen.value) {
    return (
      <form
        ref={form}
        class="survey"
        aria-labelledby="parley-survey"
        onSubmit={async (e) => {
          e.preventDefault();
          if (csat.value === null && nps.value === null) return;
          await st.answerSurvey({
            ...(csat.value !== null ? { csat: csat.value } : {}),
            ...(nps.value !== null ? { nps: nps.value } : {}),
            ...(comment.value.trim() ? { comment: comment.value.trim() } : {}),
          });
        }}
      >
        <h2 id="parley-survey">{t.surveyTitle}</h2>
        <Scale
          name="csat"
          legend={t.csat}
          from={1}
          to={5}
          value={csat.value}
          onChange={(n) => (csat.value = n)}
        />
        <Scale
          name="nps"
          legend={t.nps}
          from={0}
          to={10}
          value={nps.value}
          onChange={(n) => (nps.value = n)}
        />
        <label class="comment">
          {t.comment}
          <textarea
            rows={2}
            maxLength={2000}
            value={comment.value}
            onInput={(e) => (comment.value = (e.currentTarget as HTMLTextAreaElement).value)}
          />
        </label>
        <button type="submit" class="primary" disabled={csat.value === null && nps.value === null}>
          {t.surveySend}
        </button>
      </form>
    );
  }
  return (
    <div class="ended">
      <p role="status">{st.surveyDone.value ? t.surveyThanks : t.closed}</p>
      <button type="button" class="primary" onClick={() => st.startOver()}>
        {t.newConversation}
      </button>
    </div>
  );
}

theme();
const root = document.getElementById('app');
if (root) render(<App />, root);
tell({ tag: TAG, type: 'ready' });
