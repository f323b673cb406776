// A few lines of DOM building: no framework, nothing fetched from elsewhere.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | ((event: Event) => void) | null | undefined>;

/** `h("button", {class: "x", onclick: f}, "text")`: an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "number" ? String(child) : child);
  }
  return el;
}

/**
 * Replaces the children of the element with id `id`. Focus survives: an element with a
 * `data-key` that had it gives it to the new element with the same key.
 */
export function fill(id: string, ...children: Child[]): void {
  const el = document.getElementById(id);
  if (!el) return;
  const active = document.activeElement;
  const key = active instanceof HTMLElement && el.contains(active) ? active.dataset.key : undefined;
  el.replaceChildren(...children.filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false).map((c) => (typeof c === "number" ? String(c) : c)));
  if (key) (el.querySelector(`[data-key="${CSS.escape(key)}"]`) as HTMLElement | null)?.focus();
}

/** Cents as dollars: 3750 → "$37.50". */
export const money = (cents: number): string => `$${(cents / 100).toFixed(2)}`;

/** A time as the admin's clock shows it. */
export const clock = (ms: number): string => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/**
 * Redraws the parts asked for, at most once per animation frame each, however often they are
 * asked for: `redraw("board")`.
 */
export function scheduler<P extends string>(draw: Record<P, () => void>): (part: P) => void {
  const dirty = new Set<P>();
  return (part) => {
    if (dirty.size === 0) {
      requestAnimationFrame(() => {
        const parts = [...dirty];
        dirty.clear();
        for (const p of parts) draw[p]();
      });
    }
    dirty.add(part);
  };
}
