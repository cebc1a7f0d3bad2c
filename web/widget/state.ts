// The widget's state, as signals: who the visitor is (a token kept in this origin's storage), the
// page they are on, the targeting answer, the conversation and its messages (each once, in
// order), the unread count, and what the visitor is doing. Everything the views show is here.
import { batch, computed, signal } from '@preact/signals';
import {
  ApiError,
  clientId,
  ParleyApi,
  type VisitorConversation,
  type VisitorMessage,
  type WidgetSettings,
} from '../shared/api.ts';
import type { Mode } from '../shared/protocol.ts';
import { EventStream } from '../shared/sse.ts';

const IDENTITY_KEY = 'parley:identity';
const CONVERSATION_KEY = 'parley:conversation';
const OPEN_KEY = 'parley:open';
/** While queued, the place in the waiting list is asked again this often (no event tells it). */
const POSITION_EVERY_MS = 10_000;

interface StoredIdentity {
  readonly visitor: string;
  readonly token: string;
  /** The brand's customer id when the visitor was identified. */
  readonly user?: string;
}

/** A message the visitor wrote that the engine has not confirmed yet. */
export interface Pending {
  readonly id: string;
  readonly text: string;
  readonly failed: boolean;
}

function readJson<T>(storage: Storage | undefined, key: string): T | undefined {
  try {
    const raw = storage?.getItem(key);
    return raw ? (JSON.parse(raw) as T) : undefined;
  } catch {
    return undefined;
  }
}

function store(storage: Storage | undefined, key: string, value: unknown): void {
  try {
    if (value === undefined) storage?.removeItem(key);
    else storage?.setItem(key, JSON.stringify(value));
  } catch {
    // Storage refused (private mode, quota): the widget works for this page only.
  }
}

const local = (() => {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
})();
const session = (() => {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
})();

export class WidgetState {
  readonly api = new ParleyApi('');
  readonly page = signal<{ url: string; title: string } | null>(null);
  readonly attributes = signal<Record<string, string>>({});
  readonly settings = signal<WidgetSettings | null>(null);
  readonly conversation = signal<VisitorConversation | null>(null);
  readonly messages = signal<readonly VisitorMessage[]>([]);
  readonly pending = signal<readonly Pending[]>([]);
  readonly unread = signal(0);
  readonly state = signal<VisitorConversation['state'] | null>(null);
  readonly surveyOpen = signal(false);
  readonly surveyDone = signal(false);
  readonly open = signal(session?.getItem(OPEN_KEY) === '1');
  readonly connected = signal(true);
  readonly error = signal<string | null>(null);

  /** What the frame wants the loader to show. */
  readonly mode = computed<Mode>(() => {
    if (this.open.value) return 'open';
    const c = this.conversation.value;
    // A conversation under way shows on every page, so its answers are never missed.
    const active =
      c !== null &&
      (this.state.value !== 'closed' || this.surveyOpen.value || this.unread.value > 0);
    return active || this.settings.value?.showChatButton ? 'launcher' : 'hidden';
  });

  #identity: StoredIdentity | undefined = readJson<StoredIdentity>(local, IDENTITY_KEY);
  #stream: EventStream | null = null;
  #seen = new Set<number>();
  #positionTimer: ReturnType<typeof setInterval> | undefined;
  #settingsAsked = 0;
  #lastPageView = '';

  constructor() {
    this.api.token = this.#identity?.token ?? null;
  }

  /** Finds the visitor's conversation again (another tab, another day). */
  async resume(): Promise<void> {
    if (!this.api.token) return;
    try {
      const id = readJson<string>(local, CONVERSATION_KEY);
      const list = await this.api.conversations();
      const current = list.find((c) => c.id === id) ?? list[0];
      if (!current) return;
      const finished = current.state === 'closed' && !current.surveyOpen && current.unread === 0;
      if (!finished) this.#follow(current);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.#forget();
    }
  }

  /** The loader says where the visitor is: targeting is asked again, the page view recorded. */
  async setPage(url: string, title: string): Promise<void> {
    this.page.value = { url, title };
    await Promise.all([this.refreshSettings(), this.#recordPageView()]);
  }

  setAttributes(attributes: Record<string, string>): void {
    this.attributes.value = { ...this.attributes.value, ...attributes };
    void this.refreshSettings();
  }

  async refreshSettings(): Promise<void> {
    const page = this.page.value;
    if (!page) return;
    const asked = ++this.#settingsAsked;
    try {
      const settings = await this.api.widget(page.url, this.attributes.value);
      if (asked === this.#settingsAsked) this.settings.value = settings;
    } catch {
      // Targeting unknown: keep what was shown.
    }
  }

  /** A logged-in customer: the same visitor on every device. */
  async identify(user: string, expires: number, signature: string): Promise<void> {
    if (this.#identity?.user === user) return;
    try {
      const me = await this.api.identified(user, expires, signature);
      this.#stop();
      batch(() => {
        this.conversation.value = null;
        this.messages.value = [];
        this.unread.value = 0;
        this.state.value = null;
      });
      this.#setIdentity({ ...me, user });
      store(local, CONVERSATION_KEY, undefined);
      await this.resume();
    } catch {
      // A signature refused: the visitor stays anonymous.
    }
  }

  setOpen(open: boolean): void {
    this.open.value = open;
    try {
      if (open) session?.setItem(OPEN_KEY, '1');
      else session?.removeItem(OPEN_KEY);
    } catch {
      // no session storage: the box starts minimised on the next page
    }
    if (open) this.markRead();
  }

  /** Writes a message; the first one starts the conversation. */
  async send(text: string, id = clientId('m')): Promise<void> {
    const body = text.trim();
    if (!body) return;
    this.pending.value = [
      ...this.pending.value.filter((p) => p.id !== id),
      { id, text: body, failed: false },
    ];
    this.error.value = null;
    try {
      const c = this.conversation.value;
      if (c && this.state.value !== 'closed') {
        await this.api.send(c.id, { id, text: body });
      } else {
        await this.#start({ id, text: body });
      }
    } catch (error) {
      this.pending.value = this.pending.value.map((p) =>
        p.id === id ? { ...p, failed: true } : p,
      );
      if (error instanceof ApiError && error.status !== 0) this.error.value = error.message;
    }
  }

  async #start(message: { id: string; text: string }): Promise<void> {
    const page = this.page.value;
    if (!page) throw new ApiError(0, 'no-page', 'the page is not known yet');
    if (!this.api.token) this.#setIdentity(await this.api.newVisitor());
    const id = readJson<string>(session, `parley:starting`) ?? clientId('c');
    store(session, 'parley:starting', id); // a retry starts the same conversation
    const attributes = this.attributes.value;
    const started = await this.api.start({
      id,
      url: page.url,
      ...(Object.keys(attributes).length > 0 ? { attributes } : {}),
      message,
    });
    store(session, 'parley:starting', undefined);
    const view = 'state' in started ? started : await this.api.conversation(id);
    this.surveyDone.value = false;
    this.#follow(view);
    this.#lastPageView = '';
    await this.#recordPageView();
  }

  markRead(): void {
    const c = this.conversation.value;
    if (!c || this.unread.value === 0 || !this.open.value) return;
    if (document.visibilityState !== 'visible') return;
    this.unread.value = 0;
    void this.api.read(c.id).catch(() => undefined);
  }

  async end(): Promise<void> {
    const c = this.conversation.value;
    if (!c) return;
    try {
      await this.api.close(c.id);
      this.state.value = 'closed';
      this.surveyOpen.value = true;
    } catch (error) {
      if (error instanceof ApiError) this.error.value = error.message;
    }
  }

  async answerSurvey(answer: { csat?: number; nps?: number; comment?: string }): Promise<boolean> {
    const c = this.conversation.value;
    if (!c) return false;
    try {
      await this.api.survey(c.id, answer);
      batch(() => {
        this.surveyOpen.value = false;
        this.surveyDone.value = true;
      });
      return true;
    } catch (error) {
      if (error instanceof ApiError) this.error.value = error.message;
      return false;
    }
  }

  /** After the end: the next message starts another conversation. */
  startOver(): void {
    this.#stop();
    batch(() => {
      this.conversation.value = null;
      this.messages.value = [];
      this.pending.value = [];
      this.state.value = null;
      this.unread.value = 0;
      this.surveyOpen.value = false;
      this.surveyDone.value = false;
    });
    store(local, CONVERSATION_KEY, undefined);
  }

  async notify(email: string, phone: string): Promise<boolean> {
    try {
      if (email) await this.api.email(email);
      if (phone) await this.api.phone(phone);
      return true;
    } catch {
      return false;
    }
  }

  #setIdentity(identity: StoredIdentity): void {
    this.#identity = identity;
    this.api.token = identity.token;
    store(local, IDENTITY_KEY, identity);
  }

  #forget(): void {
    this.#identity = undefined;
    this.api.token = null;
    store(local, IDENTITY_KEY, undefined);
    store(local, CONVERSATION_KEY, undefined);
  }

  #follow(view: VisitorConversation): void {
    this.#stop();
    this.#seen = new Set();
    batch(() => {
      this.conversation.value = view;
      this.state.value = view.state;
      this.unread.value = view.unread;
      this.surveyOpen.value = view.surveyOpen;
      this.messages.value = [];
    });
    store(local, CONVERSATION_KEY, view.id);
    this.#stream = new EventStream(
      `/v1/visitor/conversations/${encodeURIComponent(view.id)}/events`,
      {
        token: () => this.api.token,
        onMessage: (m) => this.#apply(m.data as VisitorEvent),
        onConnected: (up) => {
          this.connected.value = up;
        },
        onFatal: () => {
          this.connected.value = false;
        },
      },
    );
    this.#positionTimer = setInterval(() => {
      if (this.state.value === 'queued' && this.open.value) void this.#refreshView();
    }, POSITION_EVERY_MS);
  }

  #stop(): void {
    this.#stream?.close();
    this.#stream = null;
    clearInterval(this.#positionTimer);
  }

  #apply(e: VisitorEvent): void {
    batch(() => {
      if (e.state) this.state.value = e.state;
      if (typeof e.unread === 'number') this.unread.value = e.unread;
      if (e.type === 'MessageAdded' && e.message && !this.#seen.has(e.message.seq)) {
        const m = e.message;
        this.#seen.add(m.seq);
        const list = [...this.messages.value, m].sort((a, b) => a.seq - b.seq);
        this.messages.value = list;
        if (this.pending.value.some((p) => p.id === m.id)) {
          this.pending.value = this.pending.value.filter((p) => p.id !== m.id);
        }
      }
      if (e.type === 'ConversationClosed') this.surveyOpen.value = true;
      if (e.type === 'SurveyAnswered') this.surveyOpen.value = false;
    });
    if (e.type === 'MessageAdded' && this.unread.value > 0) this.markRead();
    if (e.type !== 'MessageAdded' && e.type !== 'MessagesRead') void this.#refreshView();
  }

  async #refreshView(): Promise<void> {
    const c = this.conversation.value;
    if (!c) return;
    try {
      const view = await this.api.conversation(c.id);
      if (this.conversation.value?.id === view.id) this.conversation.value = view;
    } catch {
      // kept as it was; the next event asks again
    }
  }

  async #recordPageView(): Promise<void> {
    const c = this.conversation.value;
    const page = this.page.value;
    if (!c || !page || this.state.value === 'closed') return;
    const key = `${c.id} ${page.url} ${page.title}`;
    if (key === this.#lastPageView) return;
    this.#lastPageView = key;
    await this.api
      .pageView(c.id, {
        id: clientId('pv'),
        url: page.url.slice(0, 2048),
        title: page.title.slice(0, 512),
      })
      .catch(() => undefined);
  }
}

/** An event of the visitor's stream (docs/gateway.md, "The visitor's stream"). */
interface VisitorEvent {
  readonly type: string;
  readonly state?: VisitorConversation['state'];
  readonly unread?: number;
  readonly message?: VisitorMessage;
  readonly surveyOpen?: boolean;
}
