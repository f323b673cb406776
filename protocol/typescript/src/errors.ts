// Errors as the client reports them: the server's codes (contract §2), plus the client's own.

import type { ErrorCode } from "./protocol.js";

/** `TIMEOUT`: no answer in time; `CLOSED`: the client was closed or the connection dropped. */
export type ClientErrorCode = ErrorCode | "TIMEOUT" | "CLOSED";

export class GavelError extends Error {
  readonly code: ClientErrorCode;
  /** The offending field, for `VALIDATION_ERROR`. */
  readonly field: string | null;
  /** For `RATE_LIMITED`: when to try again. */
  readonly retryAfterMs: number | null;

  constructor(code: ClientErrorCode, message: string, field: string | null = null, retryAfterMs: number | null = null) {
    super(`${code}: ${message}`);
    this.name = "GavelError";
    this.code = code;
    this.field = field;
    this.retryAfterMs = retryAfterMs;
  }

  /** Nothing was applied and the same frame may simply be sent again (`UNAVAILABLE`). */
  get retryable(): boolean {
    return this.code === "UNAVAILABLE";
  }
}

export const closedError = (): GavelError => new GavelError("CLOSED", "the client was closed");
