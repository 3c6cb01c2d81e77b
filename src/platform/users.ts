/**
 * User and group names from /etc/passwd and /etc/group (what getpwuid/getgrgid read on a host
 * without NSS modules). Used to record who an admin caller is and to resolve a configured group.
 */
import { readFileSync, statSync } from 'node:fs';

interface Table {
  stamp: string;
  checkedAt: number;
  rows: string[][];
  /** Column 2 (the numeric id) → column 0 (the name), first row wins as getpwuid does. */
  byId: Map<string, string>;
}

/** Parsed tables by path, kept while the file's inode, size and mtime are unchanged. */
const tables = new Map<string, Table>();
/** How long a table is trusted before the file is stat()ed again. */
const RECHECK_MS = 1000;

/**
 * The parsed passwd/group file. The unix workload attestor asks on every Workload API call: the
 * file is read and split only when it changed (inode, size, mtime), and stat()ed at most once a
 * second, so a call costs a map lookup.
 */
function table(path: string): Table | undefined {
  const now = Date.now();
  const hit = tables.get(path);
  if (hit && now - hit.checkedAt < RECHECK_MS) return hit;
  try {
    const st = statSync(path);
    const stamp = `${st.ino}/${st.size}/${st.mtimeMs}`;
    if (hit?.stamp === stamp) {
      hit.checkedAt = now;
      return hit;
    }
    const rows = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0 && !l.startsWith('#'))
      .map((l) => l.split(':'));
    const byId = new Map<string, string>();
    for (const r of rows) if (r[2] !== undefined && r[0] !== undefined && !byId.has(r[2])) byId.set(r[2], r[0]);
    if (tables.size >= 16) tables.clear();
    const t = { stamp, checkedAt: now, rows, byId };
    tables.set(path, t);
    return t;
  } catch {
    tables.delete(path);
    return undefined;
  }
}

/** Changes whenever either table changes (inode, size, mtime; checked at most once a second); for caches of looked-up names. */
export function namesStamp(passwd = '/etc/passwd', group = '/etc/group'): string {
  return `${table(passwd)?.stamp ?? '-'}|${table(group)?.stamp ?? '-'}`;
}

export function lookupUserName(uid: number, passwd = '/etc/passwd'): string | undefined {
  return table(passwd)?.byId.get(String(uid));
}

export function lookupGroupName(gid: number, group = '/etc/group'): string | undefined {
  return table(group)?.byId.get(String(gid));
}

/** A group given by name or by number; undefined when unknown. */
export function lookupGroupId(nameOrId: string | number, group = '/etc/group'): number | undefined {
  if (typeof nameOrId === 'number') return nameOrId;
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
  const row = table(group)?.rows.find((f) => f[0] === nameOrId);
  return row && row[2] !== undefined ? Number(row[2]) : undefined;
}
