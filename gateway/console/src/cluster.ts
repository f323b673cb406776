// The cluster's nodes (contract §12), asked for every 2 s; a single node answers 404, and then
// there is no cluster to show and no need to ask again.

import type { Api, ClusterView } from "./api.js";
import { fill, h } from "./dom.js";

export class ClusterPanel {
  view: ClusterView | null = null;

  constructor(
    private readonly api: Api,
    private readonly changed: () => void,
  ) {}

  poll(): void {
    this.api.cluster().then(
      (view) => {
        this.view = view;
        this.changed();
        if (view) setTimeout(() => this.poll(), 2000);
      },
      () => setTimeout(() => this.poll(), 5000),
    );
  }

  draw(): void {
    const cluster = this.view;
    document.getElementById("cluster-section")!.hidden = cluster === null;
    if (!cluster) return;
    const head = h("thead", {}, h("tr", {}, ...["node", "role", "seq", "lag", "connections"].map((c) => h("th", { scope: "col" }, c))));
    const rows = cluster.nodes.map((n) =>
      h("tr", {}, h("th", { scope: "row" }, n.node_id), h("td", {}, n.role), h("td", {}, n.seq), h("td", {}, `${n.lag_ms} ms`), h("td", {}, n.connections)),
    );
    fill("cluster", h("p", {}, `leader: ${cluster.leader ?? "none"}`), h("div", { class: "scroll" }, h("table", {}, head, h("tbody", {}, ...rows))));
  }
}
