/**
 * How an open stream (gRPC FetchX509SVID and friends, the HTTP NDJSON watch) turns cache change
 * notifications into sends: a burst of notifications becomes one send on the next turn of the
 * event loop, and while the peer is not reading (the write buffer is full) changes are only
 * remembered, and the latest state is sent once it drains.
 */
export class UpdatePump {
  #blocked = false;
  #dirty = false;
  #scheduled = false;

  constructor(
    /** Renders the current state and writes it (or skips it when unchanged). */
    private readonly send: () => void,
    private readonly done: () => boolean,
  ) {}

  get isBlocked(): boolean {
    return this.#blocked;
  }

  /** A change happened. */
  changed(): void {
    if (this.done()) return;
    if (this.#blocked) {
      this.#dirty = true;
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.flush();
    });
  }

  /** The last write did not fit the buffer: hold sends until drained(). */
  blocked(): void {
    this.#blocked = true;
  }

  drained(): void {
    this.#blocked = false;
    if (this.#dirty) this.flush();
  }

  /** Sends now. */
  flush(): void {
    if (this.done()) return;
    this.#dirty = false;
    this.send();
  }
}
