/**
 * User and group names from /etc/passwd and /etc/group (what getpwuid/getgrgid read on a host
 * without NSS modules). Used to record who an admin caller is and to resolve a configured group.
 */
import { readFileSync, statSync } from 'node:fs';

/** Parsed tables by path, kept while the file's inode, size and mtime are unchanged. */
const tables = new Map<string, { stamp: string; rows: string[][] }>();

/**
 * The rows of a passwd/group file. The unix workload attestor asks on every Workload API call;
 * reading and splitting both files each time cost about 35 µs a call, a stat about 2 µs.
 */
function readTable(path: string): string[][] {
  try {
    const st = statSync(path);
    const stamp = `${st.ino}/${st.size}/${st.mtimeMs}`;
    const hit = tables.get(path);
    if (hit?.stamp === stamp) return hit.rows;
    const rows = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0 && !l.startsWith('#'))
      .map((l) => l.split(':'));
    if (tables.size >= 16) tables.clear();
    tables.set(path, { stamp, rows });
    return rows;
  } catch {
    return [];
  }
}

export function lookupUserName(uid: number, passwd = '/etc/passwd'): string | undefined {
  return readTable(passwd).find((f) => f[2] === String(uid))?.[0];
}

export function lookupGroupName(gid: number, group = '/etc/group'): string | undefined {
  return readTable(group).find((f) => f[2] === String(gid))?.[0];
}

/** A group given by name or by number; undefined when unknown. */
export function lookupGroupId(nameOrId: string | number, group = '/etc/group'): number | undefined {
  if (typeof nameOrId === 'number') return nameOrId;
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
  const row = readTable(group).find((f) => f[0] === nameOrId);
  return row && row[2] !== undefined ? Number(row[2]) : undefined;
}
