// One image pane: the canvas, its colour scale, the cursor readout, the run's
// progress and state, and the downloads of its result.

import { TOKEN } from "./api";
import type { Image, ImageMessage, RunInfo } from "./api";
import { ImageView } from "./imageview";

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export function select(name: string, options: [string, string][], value: string): HTMLSelectElement {
  const s = el("select", { name });
  for (const [v, label] of options) s.append(el("option", { value: v, text: label }));
  s.value = value;
  return s;
}

export class Pane {
  readonly root: HTMLElement;
  readonly view: ImageView;
  readonly toolbar: HTMLElement;
  readonly controls: HTMLElement;
  private progress: HTMLProgressElement;
  private status: HTMLElement;
  private readout: HTMLElement;
  private downloads: HTMLElement;
  private channelSelect: HTMLSelectElement;
  private cmap: HTMLSelectElement;
  private scaleSelect: HTMLSelectElement;
  private low: HTMLInputElement;
  private high: HTMLInputElement;
  images = new Map<string, Image>();
  run: RunInfo | null = null;
  channel = "intensity";

  constructor(name: string, title: string, colormaps: string[]) {
    const canvas = el("canvas", { width: "360", height: "360", class: "view" });
    this.view = new ImageView(canvas);
    this.toolbar = el("div", { class: "toolbar" });
    this.controls = el("div", { class: "controls" });
    this.progress = el("progress", { max: "1", value: "0" });
    this.status = el("span", { class: "status" });
    this.readout = el("div", { class: "readout", text: "\u00a0" });
    this.downloads = el("div", { class: "downloads" });
    this.channelSelect = select("channel", [["intensity", "intensity"]], "intensity");
    this.channelSelect.hidden = true;
    this.cmap = select("cmap", colormaps.map((c) => [c, c]), "gray");
    this.scaleSelect = select("scale", [["linear", "linear"], ["log", "log"]], "linear");
    this.low = el("input", { name: "low", type: "number", min: "0", max: "100", step: "0.5", value: "0" });
    this.high = el("input", { name: "high", type: "number", min: "0", max: "100", step: "0.5", value: "100" });
    const colour = el(
      "div",
      { class: "colour" },
      this.channelSelect,
      this.cmap,
      this.scaleSelect,
      el("label", {}, "low %", this.low),
      el("label", {}, "high %", this.high),
    );
    for (const input of [this.cmap, this.scaleSelect, this.low, this.high]) {
      input.addEventListener("change", () => this.applyScale());
    }
    this.channelSelect.addEventListener("change", () => {
      this.channel = this.channelSelect.value;
      this.show();
    });
    this.view.onHover = (text) => (this.readout.textContent = text || "\u00a0");
    this.root = el(
      "div",
      { class: "pane", "data-pane": name, "data-state": "idle" },
      el("h3", { text: title }),
      this.toolbar,
      this.controls,
      canvas,
      el("div", { class: "runline" }, this.progress, this.status),
      this.readout,
      colour,
      this.downloads,
    );
  }

  private applyScale(): void {
    const low = Math.min(Math.max(Number(this.low.value) || 0, 0), 100);
    const high = Math.min(Math.max(Number(this.high.value) || 100, 0), 100);
    this.view.colorScale = {
      cmap: this.cmap.value,
      log: this.scaleSelect.value === "log",
      low: Math.min(low, high),
      high: Math.max(low, high),
    };
    this.view.render();
    this.updateDownloads();
  }

  setChannels(channels: [string, string][], value: string): void {
    this.channelSelect.replaceChildren(...channels.map(([v, l]) => el("option", { value: v, text: l })));
    this.channelSelect.hidden = channels.length < 2;
    this.channelSelect.value = value;
    this.channel = value;
  }

  setColormap(name: string): void {
    this.cmap.value = name;
    this.applyScale();
  }

  // A run's state changed.
  setRun(run: RunInfo | null): void {
    this.run = run;
    const state = run ? run.state : "idle";
    this.root.dataset.state = state;
    this.root.dataset.run = run ? run.id : "";
    if (run) {
      const [done, total] = run.progress;
      this.progress.max = Math.max(total, 1);
      this.progress.value = done;
      this.status.textContent = run.state === "error" ? `error: ${run.error}` : `${run.title}: ${run.state}`;
    } else {
      this.status.textContent = "";
    }
    this.updateDownloads();
  }

  setError(message: string): void {
    this.root.dataset.state = "error";
    this.status.textContent = `error: ${message}`;
  }

  // New images of the run shown here.
  setImages(message: ImageMessage): void {
    this.images = message.images;
    const [done, total] = message.progress;
    this.progress.max = Math.max(total, 1);
    this.progress.value = done;
    this.show();
  }

  show(): void {
    if (this.channel === "field") {
      const fy = this.images.get("field_y");
      const fx = this.images.get("field_x");
      if (fy && fx) this.view.setField(fy, fx);
      return;
    }
    this.view.setImage(this.images.get(this.channel) ?? this.images.values().next().value ?? null);
  }

  private updateDownloads(): void {
    const run = this.run;
    this.downloads.replaceChildren();
    if (!run || run.state !== "done") return;
    const base = `/api/runs/${run.id}`;
    const name = run.outputs.includes(this.channel) ? this.channel : run.outputs[0];
    const s = this.view.colorScale;
    const png = `cmap=${encodeURIComponent(s.cmap)}&log=${s.log ? 1 : 0}&low=${s.low}&high=${s.high}`;
    const t = `token=${encodeURIComponent(TOKEN)}`;
    const links: [string, string, string][] = [
      [".npy", `${base}/download/${name}.npy?${t}`, "npy"],
      [".tif 32", `${base}/download/${name}.tif?bits=32&${t}`, "tif32"],
      [".tif 16", `${base}/download/${name}.tif?bits=16&${t}`, "tif16"],
      [".png", `${base}/download/${name}.png?${png}&${t}`, "png"],
      ["script", `${base}/script.py?${t}`, "script"],
      ["notebook", `${base}/notebook.ipynb?${t}`, "notebook"],
    ];
    this.downloads.append("download: ");
    for (const [label, href, kind] of links) {
      this.downloads.append(el("a", { href, download: "", "data-download": kind, text: label }), " ");
    }
  }
}
