// Server-Sent Events over fetch, so that the token goes in the Authorization header (not the URL)
// and a reconnect sends Last-Event-ID itself: after a drop the stream resumes after the last
// event received, and an event already delivered is never delivered again.

export interface SseMessage {
  /** The event's id (its sequence in the events stream), or null for a message without one. */
  readonly id: number | null;
  readonly event: string;
  readonly data: unknown;
}

export interface StreamOptions {
  readonly token: () => string | null;
  readonly onMessage: (m: SseMessage) => void;
  /** Told when the stream is up (true) or down and retrying (false). */
  readonly onConnected?: (up: boolean) => void;
  /** A refusal that retrying will not fix (401, 403, 404): the stream stops. */
  readonly onFatal?: (status: number) => void;
}

const MAX_BACKOFF_MS = 10_000;

export class EventStream {
  readonly #url: string;
  readonly #options: StreamOptions;
  #last = 0;
  #closed = false;
  #abort: AbortController | null = null;

  constructor(url: string, options: StreamOptions) {
    this.#url = url;
    this.#options = options;
    void this.#run();
  }

  /** The last event id delivered: what a reconnect sends as Last-Event-ID. */
  get lastEventId(): number {
    return this.#last;
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort();
  }

  async #run(): Promise<void> {
    let backoff = 500;
    while (!this.#closed) {
      this.#abort = new AbortController();
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      const token = this.#options.token();
      if (token) headers.authorization = `Bearer ${token}`;
      if (this.#last > 0) headers['last-event-id'] = String(this.#last);
      try {
        const response = await fetch(this.#url, { headers, signal: this.#abort.signal });
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          this.#options.onFatal?.(response.status);
          return;
        }
        if (response.ok && response.body) {
          this.#options.onConnected?.(true);
          backoff = 500;
          await this.#read(response.body);
        }
      } catch {
        // A drop, or close(): retried below unless closed.
      }
      if (this.#closed) return;
      this.#options.onConnected?.(false);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        this.#dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  }

  #dispatch(block: string): void {
    let id: number | null = null;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id' && /^\d+$/.test(value)) id = Number(value);
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return;
    if (id !== null) {
      if (id <= this.#last) return; // delivered before the drop
      this.#last = id;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    this.#options.onMessage({ id, event, data: parsed });
  }
}
