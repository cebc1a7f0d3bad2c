// The messages the loader (on the brand's page) and the widget's frame (on the gateway's origin)
// exchange with postMessage. Each side checks the other's origin and window before reading one.

/** Marks Parley's messages among whatever else the page posts. */
export const TAG = 'parley/1';

/** What the loader tells the frame. */
export type ToFrame =
  | {
      readonly tag: typeof TAG;
      readonly type: 'page';
      readonly url: string;
      readonly title: string;
    }
  | {
      readonly tag: typeof TAG;
      readonly type: 'identify';
      readonly user: string;
      readonly expires: number;
      readonly signature: string;
    }
  | {
      readonly tag: typeof TAG;
      readonly type: 'attributes';
      readonly attributes: Record<string, string>;
    }
  | { readonly tag: typeof TAG; readonly type: 'open' | 'minimise' }
  /** A phone-sized page: the open box takes the whole screen. */
  | { readonly tag: typeof TAG; readonly type: 'viewport'; readonly phone: boolean };

/** How the frame wants to be shown: not at all, as the launcher, or as the open chat box. */
export type Mode = 'hidden' | 'launcher' | 'open';

/** What the frame tells the loader. */
export type FromFrame =
  | { readonly tag: typeof TAG; readonly type: 'ready' }
  | {
      readonly tag: typeof TAG;
      readonly type: 'layout';
      readonly mode: Mode;
      /** The launcher's size with its margins, in CSS pixels (the open box's is the loader's). */
      readonly width: number;
      readonly height: number;
    }
  | { readonly tag: typeof TAG; readonly type: 'unread'; readonly count: number };

export function isMessage<T extends { tag: string }>(data: unknown): data is T {
  return typeof data === 'object' && data !== null && (data as { tag?: unknown }).tag === TAG;
}
