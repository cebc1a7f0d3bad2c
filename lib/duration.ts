// Durations as people write them (`90s`, `5h`, `1h30m`, `500ms`, or an integer of milliseconds)
// turned into milliseconds, and milliseconds turned back into the same short form for messages.

import { ParleyError } from './errors.ts';

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
] as const;

/**
 * The string form, as a JSON Schema `pattern`: one or more `<integer><unit>` parts, units
 * from largest to smallest, each at most once. `m` is minutes, `ms` milliseconds.
 */
export const DURATION_PATTERN =
  '^(?=\\d)(?:(\\d+)d)?(?:(\\d+)h)?(?:(\\d+)m)?(?:(\\d+)s)?(?:(\\d+)ms)?$';

/** What a duration may look like, for error messages and docs. */
export const DURATION_HINT =
  'write an integer of milliseconds or a string such as 90s, 30m, 5h, 2d, 1h30m, 500ms';

const DURATION_RE = new RegExp(DURATION_PATTERN);

/**
 * Parses a duration into milliseconds: a non-negative integer is taken as milliseconds, a
 * string must match {@link DURATION_PATTERN}. Throws PARLEY_ERR_INVALID_DURATION otherwise.
 */
export function parseDuration(value: unknown): number {
  const result = measure(value);
  if (typeof result === 'number') return result;
  throw new ParleyError('PARLEY_ERR_INVALID_DURATION', [show(value), result], {
    details: { value, reason: result },
  });
}

/** Why `value` is not a duration, as a short phrase naming the value; undefined when it is one. */
export function durationProblem(value: unknown): string | undefined {
  const result = measure(value);
  return typeof result === 'number' ? undefined : `invalid duration ${show(value)}: ${result}`;
}

/** The duration in milliseconds, or the reason it is not one. */
function measure(value: unknown): number | string {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return 'milliseconds must be a whole number';
    if (value < 0) return 'a duration cannot be negative';
    if (!Number.isSafeInteger(value)) return 'too large';
    return value;
  }
  if (typeof value !== 'string') return DURATION_HINT;
  const match = DURATION_RE.exec(value);
  if (!match) {
    return /^\d+$/.test(value)
      ? `add a unit (${value}s, ${value}ms, …) or ${DURATION_HINT}`
      : DURATION_HINT;
  }
  let ms = 0;
  UNITS.forEach(([, unitMs], i) => {
    const amount = match[i + 1];
    if (amount !== undefined) ms += Number(amount) * unitMs;
  });
  return Number.isSafeInteger(ms) ? ms : 'too large';
}

/** Formats milliseconds in the short form {@link parseDuration} reads: `5h`, `1h30m`, `45s`, `0s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  let rest = Math.round(ms);
  if (rest === 0) return '0s';
  let text = '';
  for (const [unit, unitMs] of UNITS) {
    const amount = Math.floor(rest / unitMs);
    if (amount > 0) {
      text += `${amount}${unit}`;
      rest -= amount * unitMs;
    }
  }
  return text;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
