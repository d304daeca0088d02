// A virtualised list: only the rows in view (plus a margin) exist in the DOM, so 10,000
// sessions or events scroll as fast as 50. Rows have one fixed height.

import { h, clear } from "./dom.js";

const OVERSCAN = 8;

export class VList {
  /**
   * @param {HTMLElement} host where the list goes
   * @param {{rowHeight: number, render: (item, index) => HTMLElement, onOpen?: (item, index) => void,
   *          label: string, header?: HTMLElement, empty?: string}} opts
   */
  constructor(host, opts) {
    this.opts = opts;
    this.items = [];
    this.selected = -1;
    this.rowHeight = opts.rowHeight;
    this.scroller = h("div.vlist", { tabindex: 0, role: "table", "aria-label": opts.label, "aria-rowcount": 0 });
    if (opts.header) this.scroller.append(opts.header);
    this.spacer = h("div.vspacer", { role: "presentation" });
    this.layer = h("div.vlayer", { role: "rowgroup" });
    this.emptyNote = h("p.notice.muted", { hidden: true }, opts.empty || "Nothing here.");
    this.spacer.append(this.layer);
    this.scroller.append(this.spacer, this.emptyNote);
    host.append(this.scroller);
    this.frame = 0;
    this.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.scroller.addEventListener("keydown", (ev) => this.key(ev));
    this.scroller.addEventListener("click", (ev) => {
      const row = ev.target.closest("[data-index]");
      if (!row) return;
      this.select(Number(row.dataset.index), false);
      if (this.opts.onOpen) this.opts.onOpen(this.items[this.selected], this.selected);
    });
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.scroller);
  }

  setItems(items) {
    this.items = items;
    this.scroller.setAttribute("aria-rowcount", String(items.length));
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.emptyNote.hidden = items.length > 0;
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Re-render the rows in view (e.g. running spans that grow). */
  render() {
    const headerH = this.opts.header ? this.opts.header.offsetHeight : 0;
    const top = Math.max(0, this.scroller.scrollTop - headerH);
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    clear(this.layer);
    this.layer.style.transform = `translateY(${first * this.rowHeight}px)`;
    for (let i = first; i < last; i++) {
      const row = this.opts.render(this.items[i], i);
      row.dataset.index = String(i);
      row.setAttribute("role", "row");
      row.setAttribute("aria-rowindex", String(i + 1));
      row.style.height = `${this.rowHeight}px`;
      if (i === this.selected) {
        row.classList.add("sel");
        row.setAttribute("aria-selected", "true");
      }
      this.layer.append(row);
    }
  }

  select(index, scroll = true) {
    if (!this.items.length) return;
    this.selected = Math.max(0, Math.min(this.items.length - 1, index));
    if (scroll) this.scrollToIndex(this.selected);
    this.render();
  }

  scrollToIndex(index) {
    const headerH = this.opts.header ? this.opts.header.offsetHeight : 0;
    const y = index * this.rowHeight;
    const view = this.scroller.clientHeight - headerH;
    const top = this.scroller.scrollTop;
    if (y < top) this.scroller.scrollTop = y;
    else if (y + this.rowHeight > top + view) this.scroller.scrollTop = y + this.rowHeight - view;
  }

  key(ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / this.rowHeight) - 1);
    const moves = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: page, PageUp: -page };
    if (ev.key in moves) {
      this.select(this.selected < 0 ? 0 : this.selected + moves[ev.key]);
    } else if (ev.key === "Home") {
      this.select(0);
    } else if (ev.key === "End") {
      this.select(this.items.length - 1);
    } else if (ev.key === "Enter" && this.selected >= 0 && this.opts.onOpen) {
      this.opts.onOpen(this.items[this.selected], this.selected);
    } else {
      return;
    }
    ev.preventDefault();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }
}
