/** The agent's cache, state file, rotation timing and config validation. */
import { expect } from 'chai';
import fc from 'fast-check';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCache, type CachedSvid } from '../../src/agent/cache.js';
import { loadAgentConfig, validateAgentConfig } from '../../src/agent/config.js';
import { StateFile } from '../../src/agent/state.js';
import { dueEntries, rotationTime } from '../../src/agent/sync.js';
import type { RegistrationEntry, Selector } from '../../src/datastore/types.js';
import { cryptoRandom } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { codeOf } from '../svid/pki.js';

const TD = 'example.org';
let n = 0;
function entry(sels: string[], o: Partial<RegistrationEntry> = {}): RegistrationEntry {
  n++;
  return {
    id: `e${n}`,
    spiffeId: `spiffe://${TD}/wl/${n}`,
    parentId: `spiffe://${TD}/host/a`,
    selectors: sels.map((s) => ({ type: s.split(':')[0]!, value: s.slice(s.indexOf(':') + 1) })),
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    hint: '',
    admin: false,
    downstream: false,
    federatesWith: [],
    expiresAt: null,
    revision: n,
    createdAt: 1000 + n,
    ...o,
  };
}
const sel = (s: string): Selector => ({ type: s.split(':')[0]!, value: s.slice(s.indexOf(':') + 1) });

function svid(e: RegistrationEntry, o: Partial<CachedSvid> = {}): CachedSvid {
  return { entryId: e.id, spiffeId: e.spiffeId, chain: [Buffer.from('c')], key: Buffer.from('k'), serial: '01', notBefore: 0, notAfter: 10_000, rotateAt: 5000, revision: e.revision, ...o };
}

describe('agent/cache', () => {
  it('matches entries whose selectors are a subset of the caller\'s, oldest first', () => {
    const c = new AgentCache(TD);
    const a = entry(['unix:uid:1000']);
    const b = entry(['unix:uid:1000', 'unix:gid:50']);
    const other = entry(['unix:uid:2000']);
    const both = entry(['unix:uid:1000', 'cgroup:path:/x']);
    for (const e of [both, b, a, other]) c.putEntry(e);
    expect(c.matching([sel('unix:uid:1000')]).map((e) => e.id)).to.deep.equal([a.id]);
    expect(c.matching([sel('unix:uid:1000'), sel('unix:gid:50'), sel('unix:user:x')]).map((e) => e.id)).to.deep.equal([a.id, b.id]);
    expect(c.matching([sel('unix:gid:50')])).to.deep.equal([]);
    expect(c.matching([])).to.deep.equal([]);
    c.removeEntry(a.id);
    expect(c.matching([sel('unix:uid:1000')])).to.deep.equal([]);
    // Updating an entry's selectors re-indexes it.
    c.putEntry({ ...b, selectors: [sel('unix:uid:3000')], revision: b.revision + 100 });
    expect(c.matching([sel('unix:uid:3000')]).map((e) => e.id)).to.deep.equal([b.id]);
    expect(c.matching([sel('unix:uid:1000'), sel('unix:gid:50')])).to.deep.equal([]);
  });

  it('agrees with a brute-force subset check on random entry sets', () => {
    const pool = ['unix:uid:1', 'unix:uid:2', 'unix:gid:1', 'unix:gid:2', 'cgroup:path:/a', 'unix:user:x'];
    fc.assert(
      fc.property(fc.array(fc.subarray(pool, { minLength: 1 }), { maxLength: 12 }), fc.subarray(pool), (sets, caller) => {
        const c = new AgentCache(TD);
        const es = sets.map((s) => entry(s));
        for (const e of es) c.putEntry(e);
        const want = es.filter((e) => e.selectors.every((s) => caller.includes(`${s.type}:${s.value}`))).map((e) => e.id).sort();
        expect(c.matching(caller.map(sel)).map((e) => e.id).sort()).to.deep.equal(want);
      }),
      { numRuns: 200 },
    );
  });

  it('notifies listeners and forgets unsubscribed ones', () => {
    const c = new AgentCache(TD);
    let calls = 0;
    const off = c.subscribe(() => calls++);
    c.subscribe(() => {
      throw new Error('a broken listener does not stop the others');
    });
    c.notify();
    off();
    c.notify();
    expect(calls).to.equal(1);
  });
});

describe('agent/sync timing', () => {
  it('rotates at half life ±10 %', () => {
    for (let i = 0; i < 2000; i++) {
      const t = rotationTime(1_000_000, 1_000_000 + 3_600_000, cryptoRandom);
      expect(t).to.be.within(1_000_000 + 0.45 * 3_600_000, 1_000_000 + 0.55 * 3_600_000);
    }
  });

  it('marks SVIDs due when missing, signed for an older revision, past rotation or expired', () => {
    const c = new AgentCache(TD);
    const [a, b, d, f, g] = [entry(['u:1']), entry(['u:2']), entry(['u:3']), entry(['u:4']), entry(['u:5'])] as const;
    for (const e of [a, b, d, f, g]) c.putEntry(e);
    c.svids.set(b.id, svid(b, { revision: b.revision - 1 }));
    c.svids.set(d.id, svid(d, { rotateAt: 4000 }));
    c.svids.set(f.id, svid(f));
    c.svids.set(g.id, svid(g, { notAfter: 4500, rotateAt: 9000 }));
    expect(dueEntries(c, 4600).sort()).to.deep.equal([a.id, b.id, d.id, g.id].sort());
  });
});

describe('agent/state file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('saves 0600 and loads entries, unexpired SVIDs and the identity back', () => {
    const c = new AgentCache(TD);
    const a = entry(['unix:uid:1']);
    const b = entry(['unix:uid:2']);
    c.putEntry(a);
    c.putEntry(b);
    c.svids.set(a.id, svid(a, { notAfter: 50_000 }));
    c.svids.set(b.id, svid(b, { notAfter: 500 }));
    c.revision = 42;
    const st = new StateFile(join(dir, 'agent'), silentLogger);
    st.save({ spiffeId: `spiffe://${TD}/writ/agent/x`, chain: [Buffer.from('leaf')], key: Buffer.from('secret-key'), notBefore: 0, notAfter: 90_000 }, c);
    expect(statSync(st.path).mode & 0o777).to.equal(0o600);
    expect(statSync(join(dir, 'agent')).mode & 0o777).to.equal(0o700);
    expect(readdirSync(join(dir, 'agent'))).to.deep.equal(['agent-state.json']);
    const back = new AgentCache(TD);
    const id = new StateFile(join(dir, 'agent'), silentLogger).load(back, 1000);
    expect(id?.spiffeId).to.equal(`spiffe://${TD}/writ/agent/x`);
    expect(id?.key.toString()).to.equal('secret-key');
    expect([...back.entries.keys()].sort()).to.deep.equal([a.id, b.id].sort());
    expect([...back.svids.keys()]).to.deep.equal([a.id]);
    expect(back.revision).to.equal(42);
    expect(new StateFile(join(dir, 'agent'), silentLogger).load(new AgentCache(TD), 95_000)).to.equal(undefined);
  });

  it('sets aside a corrupt or world-readable state file and starts fresh', () => {
    const st = new StateFile(dir, silentLogger);
    writeFileSync(st.path, '{"version": 1, "entries": [', { mode: 0o600 });
    expect(st.load(new AgentCache(TD), 0)).to.equal(undefined);
    expect(existsSync(st.path)).to.equal(false);
    expect(readdirSync(dir).some((f) => f.startsWith('agent-state.json.unreadable-'))).to.equal(true);
    new StateFile(dir, silentLogger).save(undefined, new AgentCache(TD));
    chmodSync(st.path, 0o644);
    expect(st.load(new AgentCache(TD), 0)).to.equal(undefined);
    expect(readFileSync(join(dir, readdirSync(dir).filter((f) => f.includes('unreadable'))[0]!), 'utf8').length).to.be.greaterThan(0);
  });
});

describe('agent/config', () => {
  const base = { trust_domain: TD, node_attestor: { name: 'join_token', config: { token: 'x' } } };

  it('loads the example config shipped in config/agent.yaml', () => {
    const c = loadAgentConfig('config/agent.yaml');
    expect(c.nodeAttestor.name).to.equal('join_token');
    expect(c.workloadAttestors.map((w) => w.name)).to.deep.equal(['unix', 'cgroup']);
  });

  it('fills defaults and derives the HTTP socket and server ID', () => {
    const c = validateAgentConfig(base);
    expect(c.serverAddress).to.deep.equal({ host: '127.0.0.1', port: 8081 });
    expect(c.serverSpiffeId).to.equal(`spiffe://${TD}/writ/server`);
    expect(c.httpSocketPath).to.equal('/tmp/writ-agent/public/api-http.sock');
    expect(c.workloadAttestors.map((w) => w.name)).to.deep.equal(['unix']);
    expect(c.syncInterval).to.equal(5);
  });

  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['a missing node attestor', { trust_domain: TD }, 'node_attestor'],
    ['an upper-case trust domain', { ...base, trust_domain: 'Example.org' }, 'trust_domain'],
    ['a server address without a port', { ...base, server_address: 'localhost' }, 'server_address'],
    ['a port out of range', { ...base, server_address: 'localhost:70000' }, 'server_address'],
    ['a server ID of another trust domain', { ...base, server_spiffe_id: 'spiffe://other.org/writ/server' }, 'server_spiffe_id'],
    ['a bad sync interval', { ...base, sync_interval: 'often' }, 'sync_interval'],
    ['an unknown field', { ...base, colour: 'blue' }, '(top level)'],
    ['no workload attestor', { ...base, workload_attestors: [] }, 'workload_attestors'],
  ];
  for (const [what, raw, field] of bad) {
    it(`refuses ${what} with ERR_CONFIG_INVALID naming ${field}`, () => {
      expect(codeOf(() => validateAgentConfig(raw))).to.equal('ERR_CONFIG_INVALID');
      try {
        validateAgentConfig(raw);
      } catch (e) {
        expect((e as { details?: { field?: string } }).details?.field).to.equal(field);
      }
    });
  }
});
