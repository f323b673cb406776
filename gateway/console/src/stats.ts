// The live counters of the `admin` topic's `stats` (every second), and a chart of the last
// two minutes of events/s and connections.

import type { Event } from "gavel-client";
import { h } from "./dom.js";

type Stats = Extract<Event, { kind: "stats" }>;
const KEEP = 120;

export class StatsPanel {
  #last: Stats | null = null;
  #rates: number[] = [];
  #connections: number[] = [];

  push(stats: Stats): void {
    this.#last = stats;
    this.#rates = [...this.#rates, stats.events_per_sec].slice(-KEEP);
    this.#connections = [...this.#connections, stats.connections].slice(-KEEP);
  }

  render(): Node[] {
    const s = this.#last;
    const counter = (label: string, value: number | string, key: string) =>
      h("div", { class: "counter", "data-counter": key }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
    return [
      h(
        "div",
        { class: "counters", "aria-live": "polite" },
        counter("connections", s?.connections ?? "–", "connections"),
        counter("subscriptions", s?.subscriptions ?? "–", "subscriptions"),
        counter("events/s", s?.events_per_sec ?? "–", "events_per_sec"),
        counter("open urgent", s?.open_tasks.urgent ?? "–", "urgent"),
        counter("open standard", s?.open_tasks.standard ?? "–", "standard"),
        counter("open flexible", s?.open_tasks.flexible ?? "–", "flexible"),
      ),
      this.#chart(),
    ];
  }

  #chart(): SVGSVGElement {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${KEEP} 40`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const lastRate = this.#rates.at(-1) ?? 0;
    const lastConn = this.#connections.at(-1) ?? 0;
    svg.setAttribute("aria-label", `events per second (now ${lastRate}) and connections (now ${lastConn}) over the last two minutes`);
    const line = (values: number[], cls: string) => {
      const max = Math.max(1, ...values);
      const offset = KEEP - values.length;
      const points = values.map((v, i) => `${offset + i},${(38 - (v / max) * 36).toFixed(2)}`).join(" ");
      const el = document.createElementNS(ns, "polyline");
      el.setAttribute("points", points);
      el.setAttribute("class", cls);
      el.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(el);
    };
    line(this.#rates, "rate");
    line(this.#connections, "connections");
    return svg;
  }
}
