// The HTTP API (contract §6, §12) with the admin's token.

import type { CoachUpsert, CoachView, TaskHistory, TaskView } from "gavel-client";

export class Api {
  constructor(private readonly token: string) {}

  async #call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T | null }> {
    const response = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new Error(error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`);
    }
    return { status: response.status, body: parsed as T };
  }

  async task(id: string): Promise<TaskView> {
    return (await this.#call<TaskView>("GET", `/v1/tasks/${encodeURIComponent(id)}`)).body as TaskView;
  }

  /** One page of a task's history (gavel's `GET /v1/tasks/{id}/events`). */
  async history(id: string, after: number): Promise<TaskHistory> {
    const path = `/v1/tasks/${encodeURIComponent(id)}/events?after=${after}&limit=1000`;
    return (await this.#call<TaskHistory>("GET", path)).body as TaskHistory;
  }

  async coach(id: string): Promise<CoachView> {
    return (await this.#call<CoachView>("GET", `/v1/coaches/${encodeURIComponent(id)}`)).body as CoachView;
  }

  async coaches(): Promise<CoachView[]> {
    return (await this.#call<CoachView[]>("GET", "/v1/coaches")).body ?? [];
  }

  async putCoach(id: string, body: CoachUpsert): Promise<CoachView> {
    return (await this.#call<CoachView>("PUT", `/v1/coaches/${encodeURIComponent(id)}`, body)).body as CoachView;
  }

  /** The cluster (§12), or null on a single node (404). */
  async cluster(): Promise<ClusterView | null> {
    try {
      return (await this.#call<ClusterView>("GET", "/v1/cluster")).body;
    } catch (e) {
      if (String(e).includes("NOT_FOUND") || String(e).includes("HTTP 404")) return null;
      throw e;
    }
  }
}

export interface ClusterView {
  leader: string | null;
  nodes: { node_id: string; role: string; seq: number; lag_ms: number; connections: number; last_seen: number }[];
}
