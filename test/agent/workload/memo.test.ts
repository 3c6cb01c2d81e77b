import { expect } from 'chai';
import { ManualClock } from '../../../src/clock.js';
import type { Selector } from '../../../src/datastore/types.js';
import type { WorkloadHandler } from '../../../src/agent/workload/index.js';
import { MAX_MEMO_KEYS, MessageMemo, selectorKey } from '../../../src/agent/workload/memo.js';

/** Only subscribe() matters to the memo. */
function handlerWithNotify(): { handler: WorkloadHandler; notify(): void; listeners(): number } {
  const listeners = new Set<() => void>();
  const handler = {
    subscribe(fn: () => void) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  } as unknown as WorkloadHandler;
  return { handler, notify: () => [...listeners].forEach((f) => f()), listeners: () => listeners.size };
}

const sel = (uid: number): Selector[] => [
  { type: 'unix', value: `uid:${uid}` },
  { type: 'unix', value: 'gid:0' },
];

describe('agent/workload MessageMemo', () => {
  it('renders once per selector set until the handler reports a change', () => {
    const h = handlerWithNotify();
    const memo = new MessageMemo(h.handler, new ManualClock(1000));
    let renders = 0;
    const render = () => ({ bytes: Buffer.from(`state ${++renders}`), validUntil: Infinity });
    const a = memo.get('x509', sel(1), render);
    const b = memo.get('x509', sel(1), render);
    expect(renders).to.equal(1);
    expect(b.bytes).to.equal(a.bytes);
    expect(a.digest).to.have.length(32);
    memo.get('x509', sel(2), render);
    expect(renders).to.equal(2);
    memo.get('x509-bundles', sel(1), render);
    expect(renders, 'kinds are kept apart').to.equal(3);
    h.notify();
    const c = memo.get('x509', sel(1), render);
    expect(renders).to.equal(4);
    expect(c.bytes.toString()).to.equal('state 4');
    expect(c.digest.equals(a.digest)).to.equal(false);
  });

  it('renders again once the earliest SVID in the message has expired', () => {
    const clock = new ManualClock(1000);
    const memo = new MessageMemo(handlerWithNotify().handler, clock);
    let renders = 0;
    const render = () => ({ bytes: Buffer.from(`s${++renders}`), validUntil: 2000 });
    memo.get('x509', sel(1), render);
    clock.set(1999);
    memo.get('x509', sel(1), render);
    expect(renders).to.equal(1);
    clock.set(2000);
    memo.get('x509', sel(1), render);
    expect(renders).to.equal(2);
  });

  it('keeps nothing when rendering throws, and never reuses a message without an expiry', () => {
    const memo = new MessageMemo(handlerWithNotify().handler, new ManualClock(1000));
    let fail = true;
    let renders = 0;
    const render = () => {
      renders++;
      if (fail) throw new Error('no identity');
      return { bytes: Buffer.from('ok'), validUntil: -Infinity };
    };
    expect(() => memo.get('x509', sel(1), render)).to.throw('no identity');
    fail = false;
    memo.get('x509', sel(1), render);
    memo.get('x509', sel(1), render);
    expect(renders).to.equal(3);
  });

  it('distinguishes selector sets that would collide if joined naively, and bounds its size', () => {
    expect(selectorKey([{ type: 'a', value: 'b\nc:d' }])).to.not.equal(selectorKey([{ type: 'a', value: 'b' }, { type: 'c', value: 'd' }]));
    const memo = new MessageMemo(handlerWithNotify().handler, new ManualClock(0));
    let renders = 0;
    const render = () => ({ bytes: Buffer.from([renders++ & 0xff]), validUntil: Infinity });
    for (let i = 0; i <= MAX_MEMO_KEYS; i++) memo.get('x509', sel(i), render);
    memo.get('x509', sel(0), render);
    expect(renders, 'the memo started over when full').to.equal(MAX_MEMO_KEYS + 2);
  });

  it('close() unsubscribes from the handler', () => {
    const h = handlerWithNotify();
    const memo = new MessageMemo(h.handler, new ManualClock(0));
    expect(h.listeners()).to.equal(1);
    memo.close();
    expect(h.listeners()).to.equal(0);
  });
});
