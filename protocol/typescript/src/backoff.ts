// Reconnect and retry delays: exponential, capped, with jitter so that a server restart is not
// met by every client at the same instant.

export interface BackoffOptions {
  /** The first delay (default 250 ms). */
  initialMs?: number;
  /** The cap (default 10 s). */
  maxMs?: number;
}

export class Backoff {
  #attempt = 0;
  #options: BackoffOptions | undefined;

  constructor(options?: BackoffOptions) {
    this.#options = options;
  }

  /** The delay before attempt n (0-based): a uniform draw in [cap/2, cap] of the doubled delay. */
  static delay(attempt: number, options?: BackoffOptions): number {
    const initial = options?.initialMs ?? 250;
    const max = options?.maxMs ?? 10_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  next(): number {
    const delay = Backoff.delay(this.#attempt, this.#options);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
