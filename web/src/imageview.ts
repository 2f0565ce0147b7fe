// An image on a canvas: colour scale, shapes drawn over it, and the mouse.

import type { Image } from "./api";
import { COLORMAP_TABLES } from "./colormaps";
import { clampShape, createShape, dragShape, drawShape, hitTest, Handle, Shape, ShapeKind } from "./shapes";

export interface ColorScale {
  cmap: string;
  log: boolean;
  low: number; // percentiles
  high: number;
}

export type Tool = ShapeKind | "pick" | null;

const tables = new Map<string, Uint8Array>();
function table(name: string): Uint8Array {
  let t = tables.get(name);
  if (!t) {
    const hex = COLORMAP_TABLES[name] ?? COLORMAP_TABLES["gray"];
    t = new Uint8Array(hex.length / 2);
    for (let i = 0; i < t.length; i++) t[i] = parseInt(hex.substr(2 * i, 2), 16);
    tables.set(name, t);
  }
  return t;
}

function scaled(v: number, log: boolean): number {
  return log ? Math.log1p(Math.max(v, 0)) : v;
}

// The low and high percentiles of the finite values (as numpy.percentile, linear).
export function percentileLimits(data: Float32Array, scale: ColorScale): [number, number] {
  const values: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (Number.isFinite(v)) values.push(scaled(v, scale.log));
  }
  if (values.length === 0) return [0, 1];
  values.sort((a, b) => a - b);
  const at = (p: number) => {
    const pos = (p / 100) * (values.length - 1);
    const i = Math.floor(pos);
    const f = pos - i;
    return i + 1 < values.length ? values[i] * (1 - f) + values[i + 1] * f : values[i];
  };
  return [at(scale.low), at(scale.high)];
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const m = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6];
  return [m[0] * 255, m[1] * 255, m[2] * 255];
}

export class ImageView {
  readonly canvas: HTMLCanvasElement;
  private g: CanvasRenderingContext2D;
  private buffer = document.createElement("canvas");
  image: Image | null = null;
  field: [Image, Image] | null = null; // (y, x) components, drawn as a colour wheel
  colorScale: ColorScale = { cmap: "gray", log: false, low: 0, high: 100 };
  limits: [number, number] = [0, 1];
  shape: Shape | null = null;
  shapeColor = "#ffcc00";
  marker: [number, number] | null = null;
  tool: Tool = null;
  onShapeChange: (shape: Shape, final: boolean) => void = () => {};
  onPick: (x: number, y: number) => void = () => {};
  onHover: (text: string) => void = () => {};
  private drag: { handle: Handle | "create"; start: [number, number]; shape: Shape | null } | null = null;
  private lastEmit = 0;

  constructor(canvas: HTMLCanvasElement) {
    this.canvas = canvas;
    this.g = canvas.getContext("2d")!;
    canvas.addEventListener("mousedown", (e) => this.down(e));
    window.addEventListener("mousemove", (e) => this.move(e));
    window.addEventListener("mouseup", (e) => this.up(e));
    canvas.addEventListener("mouseleave", () => this.onHover(""));
  }

  get size(): [number, number] {
    const img = this.image ?? this.field?.[0];
    return img ? [img.width, img.height] : [1, 1];
  }

  private get scale(): number {
    const [w, h] = this.size;
    return Math.min(this.canvas.width / w, this.canvas.height / h);
  }

  toCanvas = (x: number, y: number): [number, number] => {
    const s = this.scale;
    return [(x + 0.5) * s, (y + 0.5) * s];
  };

  toImage(e: MouseEvent): [number, number] {
    const rect = this.canvas.getBoundingClientRect();
    const cx = ((e.clientX - rect.left) * this.canvas.width) / rect.width;
    const cy = ((e.clientY - rect.top) * this.canvas.height) / rect.height;
    const s = this.scale;
    return [cx / s - 0.5, cy / s - 0.5];
  }

  setImage(image: Image | null): void {
    this.image = image;
    this.field = null;
    this.render();
  }

  setField(fy: Image, fx: Image): void {
    this.field = [fy, fx];
    this.image = null;
    this.render();
  }

  render(): void {
    const g = this.g;
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const [w, h] = this.size;
    if (this.image || this.field) {
      this.buffer.width = w;
      this.buffer.height = h;
      const bg = this.buffer.getContext("2d")!;
      const pixels = bg.createImageData(w, h);
      if (this.image) this.paintScalar(pixels.data, this.image.data);
      else this.paintField(pixels.data, this.field![0].data, this.field![1].data);
      bg.putImageData(pixels, 0, 0);
      g.imageSmoothingEnabled = false;
      g.drawImage(this.buffer, 0, 0, w * this.scale, h * this.scale);
    }
    if (this.shape) drawShape(g, this.shape, this.toCanvas, this.scale, this.shapeColor);
    if (this.marker) {
      const s = this.scale;
      const [px, py] = this.toCanvas(this.marker[0], this.marker[1]);
      g.save();
      g.strokeStyle = "#ff3b30";
      g.lineWidth = 2;
      g.strokeRect(px - s / 2 - 1, py - s / 2 - 1, s + 2, s + 2);
      g.restore();
    }
  }

  private paintScalar(out: Uint8ClampedArray, data: Float32Array): void {
    const [lo, hi] = percentileLimits(data, this.colorScale);
    this.limits = [lo, hi];
    const lut = table(this.colorScale.cmap);
    const span = hi > lo ? hi - lo : 1;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!Number.isFinite(v)) {
        out[4 * i + 3] = 0;
        continue;
      }
      const t = Math.min(Math.max((scaled(v, this.colorScale.log) - lo) / span, 0), 1);
      const k = Math.round(t * 255) * 3;
      out[4 * i] = lut[k];
      out[4 * i + 1] = lut[k + 1];
      out[4 * i + 2] = lut[k + 2];
      out[4 * i + 3] = 255;
    }
  }

  private paintField(out: Uint8ClampedArray, fy: Float32Array, fx: Float32Array): void {
    let top = 0;
    for (let i = 0; i < fy.length; i++) {
      const m = Math.hypot(fy[i], fx[i]);
      if (Number.isFinite(m) && m > top) top = m;
    }
    this.limits = [0, top];
    for (let i = 0; i < fy.length; i++) {
      const m = Math.hypot(fy[i], fx[i]);
      if (!Number.isFinite(m)) {
        out[4 * i + 3] = 0;
        continue;
      }
      const hue = (((Math.atan2(fy[i], fx[i]) / (2 * Math.PI)) % 1) + 1) % 1;
      const [r, g, b] = hsvToRgb(hue, 1, top > 0 ? m / top : 0);
      out[4 * i] = r;
      out[4 * i + 1] = g;
      out[4 * i + 2] = b;
      out[4 * i + 3] = 255;
    }
  }

  // The value under the cursor, as text.
  private describe(x: number, y: number): string {
    const [w, h] = this.size;
    const ix = Math.round(x);
    const iy = Math.round(y);
    if (ix < 0 || iy < 0 || ix >= w || iy >= h || (!this.image && !this.field)) return "";
    const i = iy * w + ix;
    const fmt = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(6)).toString() : "—");
    if (this.image) return `x=${ix} y=${iy} value=${fmt(this.image.data[i])}`;
    const [fy, fx] = this.field!;
    return `x=${ix} y=${iy} field=(y ${fmt(fy.data[i])}, x ${fmt(fx.data[i])})`;
  }

  private down(e: MouseEvent): void {
    if (e.button !== 0) return;
    const [x, y] = this.toImage(e);
    const tol = 6 / this.scale + 0.5;
    // the shape is edited with its own tool; another shape tool draws a new shape
    const editable = this.shape && (this.tool === this.shape.shape || this.tool === null);
    const handle = editable ? hitTest(this.shape!, x, y, tol) : null;
    if (handle) {
      this.drag = { handle, start: [x, y], shape: { ...this.shape! } };
    } else if (this.tool === "pick") {
      this.pick(x, y);
      this.drag = { handle: "move", start: [x, y], shape: null };
    } else if (this.tool && this.tool !== "whole") {
      this.drag = { handle: "create", start: [x, y], shape: null };
      this.shape = createShape(this.tool, [x, y], [x, y]);
      this.render();
    }
    e.preventDefault();
  }

  private pick(x: number, y: number): void {
    const [w, h] = this.size;
    const ix = Math.min(Math.max(Math.round(x), 0), w - 1);
    const iy = Math.min(Math.max(Math.round(y), 0), h - 1);
    if (this.marker && this.marker[0] === ix && this.marker[1] === iy) return;
    this.marker = [ix, iy];
    this.render();
    this.onPick(ix, iy);
  }

  private move(e: MouseEvent): void {
    const [x, y] = this.toImage(e);
    if (e.target === this.canvas) this.onHover(this.describe(x, y));
    if (!this.drag) return;
    if (!this.drag.shape && this.drag.handle !== "create") {
      this.pick(x, y); // dragging with the pick tool scrubs through frames
      return;
    }
    this.updateDrag(x, y, false);
  }

  private up(e: MouseEvent): void {
    if (!this.drag) return;
    const [x, y] = this.toImage(e);
    if (this.drag.shape || this.drag.handle === "create") this.updateDrag(x, y, true);
    this.drag = null;
  }

  private updateDrag(x: number, y: number, final: boolean): void {
    const d = this.drag!;
    const [w, h] = this.size;
    if (d.handle === "create") {
      this.shape = createShape(this.tool as ShapeKind, d.start, [x, y]);
    } else {
      this.shape = dragShape(d.shape!, d.handle, x, y, x - d.start[0], y - d.start[1]);
    }
    this.shape = clampShape(this.shape, w, h);
    this.render();
    const now = performance.now();
    if (final || now - this.lastEmit > 150) {
      this.lastEmit = now;
      this.onShapeChange(this.shape, final);
    }
  }
}
