/** LiveList: the registration list for open streams and cache listeners. */
import { expect } from 'chai';
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LiveList } from '../../src/agent/live-list.js';

/** A full collection, made callable in this process without starting node with --expose-gc. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('LiveList', () => {
  it('keeps insertion order, size and removals like a model array (random sequences)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.record({ add: fc.integer() }), fc.record({ remove: fc.nat(), twice: fc.boolean() })), { maxLength: 200 }), (ops) => {
        const list = new LiveList<number>();
        const model: Array<{ v: number; remove: () => void }> = [];
        for (const op of ops) {
          if ('add' in op) {
            model.push({ v: op.add, remove: list.add(op.add) });
          } else if (model.length > 0) {
            const [gone] = model.splice(op.remove % model.length, 1);
            gone!.remove();
            if (op.twice) gone!.remove(); // a second call removes nothing else
          }
          expect(list.size).to.equal(model.length);
          expect(list.values()).to.deep.equal(model.map((m) => m.v));
        }
      }),
    );
  });

  it('holds the same value twice as two registrations', () => {
    const list = new LiveList<string>();
    const first = list.add('a');
    list.add('a');
    first();
    expect(list.values()).to.deep.equal(['a']);
  });

  it('lets a callback remove itself and others while the list is being iterated', () => {
    const list = new LiveList<() => void>();
    const calls: string[] = [];
    let removeB: () => void = () => undefined;
    const removeA = list.add(() => {
      calls.push('a');
      removeA();
      removeB();
    });
    removeB = list.add(() => calls.push('b'));
    list.add(() => calls.push('c'));
    for (const fn of list.values()) fn();
    // values() is a copy taken before the calls, so b still ran once; afterwards only c is left.
    expect(calls).to.deep.equal(['a', 'b', 'c']);
    expect(list.size).to.equal(1);
    calls.length = 0;
    for (const fn of list.values()) fn();
    expect(calls).to.deep.equal(['c']);
  });

  it('keeps no reference to a removed value, even while its remover is still held', async () => {
    const list = new LiveList<object>();
    const keep = list.add({ neighbour: true });
    let value: object | undefined = { big: new Array(1000).fill(0) };
    const ref = new WeakRef(value);
    const remove = list.add(value);
    list.add({ neighbour: true });
    remove();
    value = undefined;
    // A WeakRef keeps its target for the rest of the job that made it.
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    expect(ref.deref()).to.equal(undefined);
    expect(list.size).to.equal(2);
    // The remover is still reachable here (a stream's finish() holds its own until the stream is gone).
    remove();
    keep();
    expect(list.size).to.equal(1);
  });
});
