/**
 * Durations as users type them: "90s", "5m", "1h30m", "24h", "7d", or a bare number of seconds.
 */
import { WritError } from './errors.js';

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
const PART = /(\d+)(ms|s|m|h|d)/gy;

/** Parses a duration into whole seconds. Throws ERR_TTL_INVALID naming the field. */
export function parseDurationSeconds(input: string | number, field = 'duration'): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      throw new WritError('ERR_TTL_INVALID', `${field} must be a whole number of seconds, zero or more; got ${input}.`);
    }
    return input;
  }
  const s = input.trim();
  if (/^\d{1,15}$/.test(s)) return parseDurationSeconds(Number(s), field);
  if (s.length === 0 || s.length > 64) {
    throw new WritError('ERR_TTL_INVALID', `${field} must be a duration such as 90s, 5m, 1h or 7d; got "${s.slice(0, 64)}".`);
  }
  let total = 0;
  PART.lastIndex = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = PART.exec(s)) !== null) {
    total += Number(m[1]) * (UNIT_SECONDS[m[2] as string] as number);
    consumed = PART.lastIndex;
  }
  if (consumed !== s.length) {
    throw new WritError('ERR_TTL_INVALID', `${field} must be a duration such as 90s, 5m, 1h or 7d; got "${s}".`);
  }
  if (!Number.isSafeInteger(Math.floor(total))) {
    throw new WritError('ERR_TTL_INVALID', `${field} is too large; got "${s}".`);
  }
  return Math.floor(total);
}

/** Formats seconds as the shortest of "Xd", "Xh", "Xm", "Xs" combinations. */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return '0s';
  let rest = seconds;
  let out = '';
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
