// The times a report is asked for, as people and scripts write them: ms since the epoch, a local
// date (midnight in the reports' time zone) or an ISO time with its offset.
import { ParleyError } from '../errors.ts';
import { startOfLocalDate } from './projection.ts';

export function invalid(field: string, message: string): never {
  throw new ParleyError('PARLEY_ERR_VALIDATION', [`${field}: ${message}`], {
    details: { errors: [{ field, message }] },
  });
}

/** A time of the query as ms since the epoch; throws PARLEY_ERR_VALIDATION naming the field. */
export function parseReportTime(field: string, value: string, timeZone: string): number {
  const date = value.slice(0, 10);
  const at = /^\d+$/.test(value)
    ? Number(value)
    : value.length === 10
      ? startOfLocalDate(date, timeZone)
      : // Date.parse takes 2026-02-30 for 2 March: the date must exist on its own.
        Number.isNaN(startOfLocalDate(date, 'UTC'))
        ? Number.NaN
        : Date.parse(value);
  if (!Number.isSafeInteger(at)) invalid(field, `${JSON.stringify(value)} is not a valid time`);
  return at;
}
