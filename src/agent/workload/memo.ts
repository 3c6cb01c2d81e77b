/**
 * Encoded stream messages, rendered once per (message kind, caller selector set) and kept until the
 * handler reports a change or the earliest SVID in the message expires. Callers with the same
 * selectors (every process of one user, most often) then share one render, one protobuf encoding
 * and one digest instead of paying for them on every call; that is most of the per-call
 * allocation of a FetchX509SVID that is not grpc-js's own.
 */
import { createHash } from 'node:crypto';
import type { Selector } from '../../datastore/types.js';
import type { Clock } from '../../clock.js';
import type { WorkloadHandler } from './handler.js';

export interface EncodedMessage {
  bytes: Buffer;
  /** SHA-256 of `bytes`, for streams to skip a message equal to the last one they sent. */
  digest: Buffer;
}

export interface Rendered {
  bytes: Buffer;
  /** Epoch ms after which this rendering is stale even without a change (an SVID in it expires); Infinity if never. */
  validUntil: number;
}

/** The most distinct selector sets kept per message kind; past it the memo starts over. */
export const MAX_MEMO_KEYS = 4096;

/** An unambiguous key of a selector list (length-prefixed, so no value can fake a separator). */
export function selectorKey(selectors: readonly Selector[]): string {
  let k = '';
  for (const s of selectors) k += `${s.type.length}.${s.type}${s.value.length}.${s.value}`;
  return k;
}

export class MessageMemo {
  readonly #kinds = new Map<string, Map<string, EncodedMessage & { validUntil: number }>>();
  readonly #unsubscribe: () => void;

  constructor(
    handler: WorkloadHandler,
    private readonly clock: Pick<Clock, 'nowMs'>,
  ) {
    this.#unsubscribe = handler.subscribe(() => this.#kinds.clear());
  }

  /** The encoded message of `kind` for `selectors`, rendered by `render` only when not held. Throws what `render` throws (never cached). */
  get(kind: string, selectors: readonly Selector[], render: () => Rendered): EncodedMessage {
    let byKey = this.#kinds.get(kind);
    if (!byKey) {
      byKey = new Map();
      this.#kinds.set(kind, byKey);
    }
    const key = selectorKey(selectors);
    const hit = byKey.get(key);
    if (hit && this.clock.nowMs() < hit.validUntil) return hit;
    const r = render();
    const entry = { bytes: r.bytes, digest: createHash('sha256').update(r.bytes).digest(), validUntil: r.validUntil };
    if (byKey.size >= MAX_MEMO_KEYS) byKey.clear();
    byKey.set(key, entry);
    return entry;
  }

  close(): void {
    this.#unsubscribe();
    this.#kinds.clear();
  }
}
