// Text with links, as parts to render as text nodes and anchors: only http(s) and mailto URLs
// become links (never javascript: or data:), and nothing is ever parsed as HTML.

export type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'link'; readonly text: string; readonly href: string };

const CANDIDATE = /\b(?:https?:\/\/|www\.|mailto:)[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'’]+$/;

/** The URL a link may point to, or undefined when it is not a safe web or mail address. */
export function safeHref(raw: string): string | undefined {
  const candidate = /^www\./i.test(raw) ? `https://${raw}` : raw;
  try {
    const url = new URL(candidate);
    return url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'mailto:'
      ? url.href
      : undefined;
  } catch {
    return undefined;
  }
}

/** Splits `text` into plain parts and link parts, in order. */
export function linkify(text: string): Part[] {
  const parts: Part[] = [];
  let at = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const start = match.index ?? 0;
    const word = match[0].replace(TRAILING, '');
    const href = safeHref(word);
    if (!href) continue;
    if (start > at) parts.push({ kind: 'text', text: text.slice(at, start) });
    parts.push({ kind: 'link', text: word, href });
    at = start + word.length;
  }
  if (at < text.length) parts.push({ kind: 'text', text: text.slice(at) });
  return parts;
}
