// The panel of one open dataset: navigation image, frame view with virtual
// detectors, and the result (virtual image or centre of mass).

import { api } from "./api";
import type { DatasetInfo, ImageMessage, RunInfo, Socket } from "./api";
import { el, Pane, select } from "./pane";
import { Shape, SHAPE_FIELDS, ShapeKind } from "./shapes";

type Channel = "nav" | "frame" | "result";

const COM_CHANNELS: [string, string][] = [
  ["field", "field (colour wheel)"],
  ["magnitude", "magnitude"],
  ["divergence", "divergence"],
  ["curl", "curl"],
  ["field_y", "field y"],
  ["field_x", "field x"],
];

function button(label: string, attrs: Record<string, string>, onClick: () => void): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs, text: label });
  b.addEventListener("click", onClick);
  return b;
}

const runNumber = (id: string) => Number(id.slice(1));

export class DatasetView {
  readonly root: HTMLElement;
  readonly info: DatasetInfo;
  private socket: Socket;
  private panes: Record<Channel, Pane>;
  private detector: Shape;
  private roi: Shape | null = null;
  private picked: [number, number];
  private frameMode: HTMLSelectElement;
  private analysis: HTMLSelectElement;
  private useRoi: HTMLInputElement;
  private flipY: HTMLInputElement;
  private rotation: HTMLInputElement;
  private regression: HTMLSelectElement;
  private comControls: HTMLElement;
  private detectorInputs: HTMLElement;
  private detectorTools: Map<string, HTMLButtonElement> = new Map();
  private navTools: Map<string, HTMLButtonElement> = new Map();
  private runs = new Map<Channel, string>();

  constructor(info: DatasetInfo, socket: Socket, colormaps: string[], onClose: () => void) {
    this.info = info;
    this.socket = socket;
    const [sy, sx] = info.sig_2d;
    const [ny, nx] = info.nav_2d;
    this.picked = [Math.floor(nx / 2), Math.floor(ny / 2)];
    this.detector = { shape: "disk", cx: sx / 2, cy: sy / 2, r: Math.round(Math.min(sx, sy) / 8) };
    this.panes = {
      nav: new Pane("nav", "Navigation: sum over each frame", colormaps),
      frame: new Pane("frame", "Frame", colormaps),
      result: new Pane("result", "Result", colormaps),
    };
    // navigation pane: pick frames, draw the ROI
    const nav = this.panes.nav;
    nav.view.shapeColor = "#34c759";
    for (const [tool, label] of [["pick", "pick frame"], ["rect", "ROI rectangle"], ["disk", "ROI disk"]]) {
      const b = button(label, { "data-tool": tool }, () => this.setNavTool(tool));
      this.navTools.set(tool, b);
      nav.toolbar.append(b);
    }
    nav.toolbar.append(button("clear ROI", { "data-action": "clear-roi" }, () => this.setRoi(null)));
    nav.view.onPick = (x, y) => this.pick(x, y);
    nav.view.onShapeChange = (shape, final) => {
      if (final) this.setRoi(shape);
    };
    nav.view.marker = this.picked;
    this.setNavTool("pick");
    // frame pane: what to show, and the virtual detector
    const frame = this.panes.frame;
    this.frameMode = select(
      "frame-mode",
      [
        ["pick", "picked frame"],
        ["sum", "sum of all frames"],
        ["mean", "average of all frames"],
        ["roisum", "sum over the ROI"],
        ["roimean", "average over the ROI"],
      ],
      "mean",
    );
    this.frameMode.addEventListener("change", () => this.runFrame());
    frame.toolbar.append(this.frameMode, el("span", { class: "sep", text: "detector:" }));
    for (const tool of ["point", "disk", "ring", "rect", "whole"] as ShapeKind[]) {
      const b = button(tool, { "data-tool": tool }, () => this.setDetectorTool(tool));
      this.detectorTools.set(tool, b);
      frame.toolbar.append(b);
    }
    this.detectorInputs = el("div", { class: "detector-params" });
    frame.controls.append(this.detectorInputs);
    frame.view.onShapeChange = (shape, final) => this.setDetector(shape, final);
    frame.view.shape = this.detector;
    this.setDetectorTool("disk");
    // result pane: virtual image or COM
    const result = this.panes.result;
    this.analysis = select("analysis", [["virtual", "virtual image"], ["com", "centre of mass"]], "virtual");
    this.analysis.addEventListener("change", () => this.analysisChanged());
    this.useRoi = el("input", { type: "checkbox", name: "use-roi" });
    this.useRoi.addEventListener("change", () => this.runResult());
    this.flipY = el("input", { type: "checkbox", name: "flip_y" });
    this.rotation = el("input", { type: "number", name: "scan_rotation", value: "0", step: "1" });
    this.regression = select(
      "regression",
      [["-1", "no regression"], ["0", "subtract mean"], ["1", "subtract linear"]],
      "-1",
    );
    for (const input of [this.flipY, this.rotation, this.regression]) {
      input.addEventListener("change", () => this.runResult());
    }
    this.comControls = el(
      "div",
      { class: "com-params" },
      el("label", {}, this.flipY, " flip y"),
      el("label", {}, "rotation (°) ", this.rotation),
      this.regression,
    );
    this.comControls.hidden = true;
    result.toolbar.append(this.analysis, el("label", {}, this.useRoi, " only the ROI"));
    result.controls.append(this.comControls);
    result.view.tool = "pick";
    result.view.marker = this.picked;
    result.view.onPick = (x, y) => this.pick(x, y);
    const shape = info.shape.join(" × ");
    this.root = el(
      "section",
      { class: "dataset", "data-dataset": info.id },
      el(
        "header",
        {},
        el("h2", { text: info.name }),
        el("span", { class: "meta", text: `${info.filetype}, ${shape}, ${info.dtype}` }),
        button("close", { "data-action": "close" }, onClose),
      ),
      el("div", { class: "panes" }, nav.root, frame.root, result.root),
    );
    this.showDetectorInputs();
  }

  // Start (or, if another tab already runs them, watch) the three panes' runs.
  async start(): Promise<void> {
    let existing: RunInfo[] = [];
    try {
      existing = (await api<{ runs: RunInfo[] }>("/api/status")).runs;
    } catch {
      existing = [];
    }
    for (const channel of ["nav", "frame", "result"] as Channel[]) {
      const runs = existing.filter((r) => r.dataset === this.info.id && r.channel === channel);
      const latest = runs.filter((r) => r.state === "running" || r.state === "done").pop();
      if (latest) {
        this.socket.send({ type: "watch", run: latest.id, channel });
        this.runs.set(channel, latest.id);
      } else if (channel === "nav") this.socket.send(this.request("nav", { kind: "navsum" }));
      else if (channel === "frame") this.runFrame();
      else this.runResult();
    }
  }

  private request(channel: Channel, analysis: unknown) {
    return { type: "run", dataset: this.info.id, channel, analysis };
  }

  private send(channel: Channel, analysis: unknown): void {
    this.panes[channel].root.dataset.state = "queued";
    this.socket.send(this.request(channel, analysis));
  }

  handleRun(run: RunInfo): void {
    const channel = run.channel as Channel;
    const pane = this.panes[channel];
    if (!pane) return;
    const current = this.runs.get(channel);
    if (current !== undefined && runNumber(run.id) < runNumber(current)) return;
    this.runs.set(channel, run.id);
    pane.setRun(run);
  }

  handleImages(message: ImageMessage): void {
    const channel = message.channel as Channel;
    if (this.runs.get(channel) !== message.run) return;
    this.panes[channel]?.setImages(message);
  }

  handleError(channel: string, message: string): void {
    this.panes[channel as Channel]?.setError(message);
  }

  close(): void {
    for (const channel of ["nav", "frame", "result"]) {
      this.socket.send({ type: "unwatch", dataset: this.info.id, channel });
    }
    this.root.remove();
  }

  private pick(x: number, y: number): void {
    this.picked = [x, y];
    this.panes.nav.view.marker = this.picked;
    this.panes.result.view.marker = this.picked;
    this.panes.nav.view.render();
    this.panes.result.view.render();
    this.frameMode.value = "pick";
    this.runFrame();
  }

  private setNavTool(tool: string): void {
    this.panes.nav.view.tool = tool === "pick" ? "pick" : (tool as ShapeKind);
    for (const [t, b] of this.navTools) b.classList.toggle("active", t === tool);
  }

  private setRoi(shape: Shape | null): void {
    this.roi = shape;
    this.panes.nav.view.shape = shape;
    this.panes.nav.view.render();
    if (this.frameMode.value.startsWith("roi")) this.runFrame();
    if (this.useRoi.checked) this.runResult();
  }

  private runFrame(): void {
    const mode = this.frameMode.value;
    if (mode === "pick") {
      this.panes.frame.root.querySelector("h3")!.textContent = `Frame at x=${this.picked[0]}, y=${this.picked[1]}`;
      this.send("frame", { kind: "pick", x: this.picked[0], y: this.picked[1] });
      return;
    }
    this.panes.frame.root.querySelector("h3")!.textContent = "Frame";
    const mean = mode.endsWith("mean");
    if (mode.startsWith("roi")) {
      if (!this.roi) {
        this.panes.frame.setError("draw an ROI on the navigation image first");
        return;
      }
      this.send("frame", { kind: "framesum", mean, roi: this.roi });
    } else {
      this.send("frame", { kind: "framesum", mean });
    }
  }

  private setDetectorTool(tool: ShapeKind): void {
    this.panes.frame.view.tool = tool;
    for (const [t, b] of this.detectorTools) b.classList.toggle("active", t === tool);
    if (tool === "whole") this.setDetector({ shape: "whole" }, true);
  }

  private setDetector(shape: Shape, final: boolean): void {
    this.detector = shape;
    this.panes.frame.view.shape = shape;
    this.panes.frame.view.render();
    this.showDetectorInputs();
    if (final || this.analysis.value === "virtual") this.runResult();
  }

  private showDetectorInputs(): void {
    const shape = this.detector;
    const inputs: Node[] = [el("span", { text: `${shape.shape}:` })];
    for (const key of SHAPE_FIELDS[shape.shape]) {
      const input = el("input", { type: "number", name: `det-${key}`, step: "any", value: String(shape[key]) });
      input.addEventListener("change", () => {
        const value = Number(input.value);
        if (!Number.isFinite(value)) return;
        this.setDetector({ ...this.detector, [key]: value }, true);
      });
      inputs.push(el("label", {}, `${key} `, input));
    }
    this.detectorInputs.replaceChildren(...inputs);
  }

  private analysisChanged(): void {
    const com = this.analysis.value === "com";
    this.comControls.hidden = !com;
    const pane = this.panes.result;
    if (com) pane.setChannels(COM_CHANNELS, "field");
    else pane.setChannels([["intensity", "intensity"]], "intensity");
    if (com && !["disk", "ring", "whole"].includes(this.detector.shape)) {
      const [sy, sx] = this.info.sig_2d;
      this.setDetector({ shape: "disk", cx: sx / 2, cy: sy / 2, r: Math.round(Math.min(sx, sy) / 4) }, false);
      this.setDetectorTool("disk");
    }
    this.runResult();
  }

  private runResult(): void {
    const roi = this.useRoi.checked ? this.roi : null;
    if (this.useRoi.checked && !roi) {
      this.panes.result.setError("draw an ROI on the navigation image first");
      return;
    }
    const title = this.panes.result.root.querySelector("h3")!;
    if (this.analysis.value === "virtual") {
      title.textContent = `Result: virtual image (${this.detector.shape})`;
      this.send("result", { kind: "virtual", detector: this.detector, roi });
      return;
    }
    title.textContent = "Result: centre of mass";
    const d = this.detector;
    const [sy, sx] = this.info.sig_2d;
    let params: Record<string, unknown>;
    if (d.shape === "disk") params = { cx: d.cx, cy: d.cy, r: d.r, ri: 0 };
    else if (d.shape === "ring") params = { cx: d.cx, cy: d.cy, r: d.ro, ri: d.ri };
    else if (d.shape === "whole") params = { cx: sx / 2, cy: sy / 2, r: null, ri: 0 };
    else {
      this.panes.result.setError("centre of mass needs a disk, ring or whole-frame detector");
      return;
    }
    params.flip_y = this.flipY.checked;
    params.scan_rotation = Number(this.rotation.value) || 0;
    params.regression = Number(this.regression.value);
    this.send("result", { kind: "com", params, roi });
  }
}
