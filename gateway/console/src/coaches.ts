// Coaches through the HTTP API: register one, see each one's reputation and load, suspend or
// reinstate.

import type { CoachView } from "gavel-client";
import type { Api } from "./api.js";
import { h } from "./dom.js";

export class Coaches {
  coaches: CoachView[] = [];
  message = "";
  #reload: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly api: Api,
    private readonly changed: () => void,
  ) {}

  async load(): Promise<void> {
    try {
      this.coaches = await this.api.coaches();
    } catch (e) {
      this.message = String(e);
    }
    this.changed();
  }

  /** `load()` within half a second, once however often asked (events come in bursts). */
  reloadSoon(): void {
    if (this.#reload) return;
    this.#reload = setTimeout(() => {
      this.#reload = null;
      void this.load();
    }, 500);
  }

  async #put(id: string, body: Parameters<Api["putCoach"]>[1], done: string): Promise<void> {
    try {
      await this.api.putCoach(id, body);
      this.message = done;
    } catch (e) {
      this.message = String(e);
    }
    await this.load();
  }

  /**
   * The coach's current profile with `suspended` flipped (PUT is a full replacement: read
   * first, so a rating earned since the list was drawn is kept).
   */
  async toggleSuspension(listed: CoachView): Promise<void> {
    let c: CoachView;
    try {
      c = await this.api.coach(listed.coach_id);
    } catch (e) {
      this.message = String(e);
      this.changed();
      return;
    }
    const body = {
      display_name: c.display_name,
      rating: c.rating_centi / 100,
      ratings_count: c.ratings_count ?? 0,
      verified: c.verified,
      on_call: c.on_call,
      capacity: c.capacity,
      suspended: !c.suspended,
    };
    return this.#put(c.coach_id, body, `${c.coach_id} ${c.suspended ? "reinstated" : "suspended"}`);
  }

  /** The registration form: drawn once, so that nothing typed is lost to a redraw. */
  form(): HTMLElement {
    return h(
      "form",
      {
        class: "register",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const f = new FormData(e.target as HTMLFormElement);
          const id = String(f.get("coach_id") ?? "").trim();
          void this.#put(
            id,
            {
              display_name: String(f.get("display_name") ?? "").trim(),
              rating: Number(f.get("rating") || 0),
              capacity: Number(f.get("capacity") || 3),
              verified: f.get("verified") === "on",
              on_call: f.get("on_call") === "on",
            },
            `${id} registered`,
          ).then(() => (e.target as HTMLFormElement).reset());
        },
      },
      h("label", {}, "Coach id ", h("input", { name: "coach_id", required: true, pattern: "[A-Za-z0-9_.:\\-]{1,64}", autocomplete: "off" })),
      h("label", {}, "Name ", h("input", { name: "display_name", required: true, maxlength: 100 })),
      h("label", {}, "Rating ", h("input", { name: "rating", type: "number", min: 0, max: 5, step: 0.01, value: "0" })),
      h("label", {}, "Capacity ", h("input", { name: "capacity", type: "number", min: 1, value: "3" })),
      h("label", { class: "check" }, h("input", { name: "verified", type: "checkbox", checked: true }), " verified"),
      h("label", { class: "check" }, h("input", { name: "on_call", type: "checkbox" }), " on call"),
      h("button", { type: "submit" }, "Register coach"),
    );
  }

  list(): HTMLElement[] {
    const rows = this.coaches.map((c) =>
      h(
        "tr",
        { "data-coach": c.coach_id, class: c.suspended ? "suspended" : "" },
        h("th", { scope: "row" }, c.coach_id),
        h("td", {}, c.display_name),
        h("td", {}, `★${(c.rating_centi / 100).toFixed(2)} (${c.ratings_count ?? 0})`),
        h("td", {}, `${c.active}/${c.capacity}`),
        h("td", {}, [c.verified ? "verified" : "unverified", c.on_call ? "on call" : "", c.suspended ? "suspended" : "", c.strikes ? `${c.strikes} strikes` : ""].filter(Boolean).join(", ")),
        h("td", {}, h("button", { "data-key": `coach:${c.coach_id}`, onclick: () => void this.toggleSuspension(c) }, c.suspended ? "Reinstate" : "Suspend")),
      ),
    );
    return [
      this.message ? h("p", { class: "message", role: "status" }, this.message) : h("p", { class: "message" }),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "coaches" },
          h("thead", {}, h("tr", {}, ...["id", "name", "rating", "load", "standing", ""].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ...rows),
        ),
      ),
    ];
  }
}
