/**
 * Issued X509-SVIDs in SQLite: one row per signed SVID (serial, issuing CA, SPIFFE ID, entry,
 * agent, expiry), written in batches and pruned after expiry. Ending a task reads the unexpired
 * rows of its entry to put their serials on the CRL.
 */
import type Database from 'better-sqlite3';
import type { IssuedSvid, IssuedSvidFilter } from './types.js';

interface IssuedRow {
  serial: string;
  issuer_ski: string;
  spiffe_id: string;
  entry_id: string | null;
  agent_id: string | null;
  issued_at: number;
  not_after: number;
}

const toIssued = (r: IssuedRow): IssuedSvid => ({
  serial: r.serial,
  issuerSki: r.issuer_ski,
  spiffeId: r.spiffe_id,
  entryId: r.entry_id,
  agentId: r.agent_id,
  issuedAt: r.issued_at,
  notAfter: r.not_after,
});

export class SqliteIssued {
  private readonly insert: Database.Statement<[IssuedRow]>;
  private readonly prune: Database.Statement<[number]>;
  private readonly recordTx: Database.Transaction<(list: IssuedSvid[]) => void>;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare<[IssuedRow]>(
      'INSERT INTO issued_svids (serial, issuer_ski, spiffe_id, entry_id, agent_id, issued_at, not_after) ' +
        'VALUES (@serial, @issuer_ski, @spiffe_id, @entry_id, @agent_id, @issued_at, @not_after) ON CONFLICT (serial, issuer_ski) DO NOTHING',
    );
    this.prune = db.prepare<[number]>('DELETE FROM issued_svids WHERE not_after < ?');
    this.recordTx = db.transaction((list: IssuedSvid[]) => {
      for (const s of list) {
        this.insert.run({ serial: s.serial, issuer_ski: s.issuerSki, spiffe_id: s.spiffeId, entry_id: s.entryId, agent_id: s.agentId, issued_at: s.issuedAt, not_after: s.notAfter });
      }
    });
  }

  record(list: IssuedSvid[]): void {
    if (list.length > 0) this.recordTx(list);
  }

  list(f: IssuedSvidFilter): IssuedSvid[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (f.entryId !== undefined) {
      where.push('entry_id = ?');
      args.push(f.entryId);
    }
    if (f.spiffeId !== undefined) {
      where.push('spiffe_id = ?');
      args.push(f.spiffeId);
    }
    if (f.notExpiredAt !== undefined) {
      where.push('not_after > ?');
      args.push(f.notExpiredAt);
    }
    const sql = `SELECT * FROM issued_svids${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY issued_at, serial`;
    return this.db.prepare<Array<string | number>, IssuedRow>(sql).all(...args).map(toIssued);
  }

  pruneBefore(now: number): number {
    return this.prune.run(now).changes;
  }
}
