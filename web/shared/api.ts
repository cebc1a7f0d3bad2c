// A small typed client of Parley's HTTP API (docs/gateway.md), for the widget and the console:
// JSON in and out, problem+json errors as ApiError, and nothing else: no state of its own.

/** An attachment as the API shows it (Parley never holds the bytes: `ref` is where they are). */
export interface Attachment {
  readonly kind: 'image' | 'file' | 'offer';
  readonly ref: string;
  readonly name?: string;
  readonly mimeType?: string;
  readonly sizeBytes?: number;
}

export type VisitorAuthor =
  | { readonly kind: 'visitor'; readonly id: string }
  | { readonly kind: 'agent'; readonly name: string }
  | { readonly kind: 'bot' }
  | { readonly kind: 'system' };

export interface VisitorMessage {
  readonly id: string;
  readonly seq: number;
  readonly author: VisitorAuthor;
  readonly text: string;
  readonly attachments: readonly Attachment[];
  readonly at: number;
  readonly note?: string;
}

export type ConversationState = 'bot' | 'queued' | 'assigned' | 'snoozed' | 'closed';

/** A conversation as its visitor sees it. */
export interface VisitorConversation {
  readonly id: string;
  readonly state: ConversationState;
  readonly position: number | null;
  readonly typicalReplyMs: number | null;
  readonly agent: { readonly name: string } | null;
  readonly unread: number;
  readonly readSeq: number;
  readonly lastSeq: number;
  readonly createdAt: number;
  readonly closedAt: number | null;
  readonly survey: { readonly csat: number | null; readonly nps: number | null } | null;
  readonly surveyOpen: boolean;
}

export interface WidgetSettings {
  readonly showChatButton: boolean;
  readonly rule: string | null;
  readonly group: string | null;
  readonly automaticMessage: string | null;
  readonly typicalReplyMs: number | null;
  readonly agentsOnline: boolean;
  readonly waitingListFull: boolean;
}

export interface Identity {
  readonly visitor: string;
  readonly token: string;
}

/** An RFC 9457 problem the gateway answered, or a network failure (`status` 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly rejection?: string,
  ) {
    super(message);
  }
}

type Method = 'GET' | 'POST' | 'PUT';

export class ParleyApi {
  /** `base` is the gateway's origin ('' for the page's own). */
  constructor(
    readonly base: string,
    public token: string | null = null,
  ) {}

  async #call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new ApiError(0, 'network', (error as Error).message);
    }
    const text = await response.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) {
      const p = (data ?? {}) as { code?: string; detail?: string; rejection?: string };
      throw new ApiError(
        response.status,
        p.code ?? 'unknown',
        p.detail ?? response.statusText,
        p.rejection,
      );
    }
    return data as T;
  }

  newVisitor(): Promise<Identity> {
    return this.#call('POST', '/v1/visitors');
  }

  identified(user: string, expires: number, signature: string): Promise<Identity> {
    return this.#call('POST', '/v1/visitors/identified', { user, expires, signature });
  }

  widget(url: string, attributes: Readonly<Record<string, string>>): Promise<WidgetSettings> {
    const q = new URLSearchParams({ url });
    for (const [k, v] of Object.entries(attributes)) q.set(`attr.${k}`, v);
    return this.#call('GET', `/v1/widget?${q}`);
  }

  async conversations(): Promise<readonly VisitorConversation[]> {
    return (
      await this.#call<{ conversations: VisitorConversation[] }>('GET', '/v1/visitor/conversations')
    ).conversations;
  }

  conversation(id: string): Promise<VisitorConversation> {
    return this.#call('GET', `/v1/visitor/conversations/${encodeURIComponent(id)}`);
  }

  /** Starts a conversation; a 202 (stored, not applied yet) gives only its id. */
  start(body: {
    id: string;
    url: string;
    attributes?: Readonly<Record<string, string>>;
    message?: { id: string; text: string };
  }): Promise<VisitorConversation | { id: string; status: 'accepted' }> {
    return this.#call('POST', '/v1/visitor/conversations', body);
  }

  send(conversation: string, message: { id: string; text: string }): Promise<unknown> {
    return this.#call('POST', `${this.#path(conversation)}/messages`, message);
  }

  read(conversation: string): Promise<unknown> {
    return this.#call('POST', `${this.#path(conversation)}/read`);
  }

  close(conversation: string): Promise<unknown> {
    return this.#call('POST', `${this.#path(conversation)}/close`);
  }

  survey(
    conversation: string,
    answer: { csat?: number; nps?: number; comment?: string },
  ): Promise<unknown> {
    return this.#call('POST', `${this.#path(conversation)}/survey`, answer);
  }

  pageView(
    conversation: string,
    view: { id: string; url: string; title: string },
  ): Promise<unknown> {
    return this.#call('POST', `${this.#path(conversation)}/pages`, view);
  }

  email(email: string): Promise<unknown> {
    return this.#call('PUT', '/v1/visitor/email', { email });
  }

  phone(phone: string): Promise<unknown> {
    return this.#call('PUT', '/v1/visitor/phone', { phone });
  }

  #path(conversation: string): string {
    return `/v1/visitor/conversations/${encodeURIComponent(conversation)}`;
  }
}

/** A random id for what the client names itself (conversations, messages, page views). */
export function clientId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
