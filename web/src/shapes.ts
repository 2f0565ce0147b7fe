// Shapes drawn on images: virtual detectors on frames, the ROI on the scan.
// Coordinates are in image pixels: x is the column, y the row; pixel (x, y) has
// its centre at (x, y), as in libertem.masks.

export type ShapeKind = "point" | "disk" | "ring" | "rect" | "whole";

export interface Shape {
  shape: ShapeKind;
  cx?: number;
  cy?: number;
  r?: number;
  ri?: number;
  ro?: number;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
}

// The numbers of each kind, in the order the parameter inputs show them.
export const SHAPE_FIELDS: Record<ShapeKind, (keyof Shape)[]> = {
  point: ["cx", "cy"],
  disk: ["cx", "cy", "r"],
  ring: ["cx", "cy", "ri", "ro"],
  rect: ["x", "y", "width", "height"],
  whole: [],
};

const round2 = (v: number) => Math.round(v * 100) / 100;

// A new shape of `kind` dragged from `a` to `b`.
export function createShape(kind: ShapeKind, a: [number, number], b: [number, number]): Shape {
  const [ax, ay] = a;
  const [bx, by] = b;
  const dist = round2(Math.hypot(bx - ax, by - ay));
  switch (kind) {
    case "point":
      return { shape: "point", cx: Math.round(bx), cy: Math.round(by) };
    case "disk":
      return { shape: "disk", cx: round2(ax), cy: round2(ay), r: Math.max(dist, 1) };
    case "ring": {
      const ro = Math.max(dist, 2);
      return { shape: "ring", cx: round2(ax), cy: round2(ay), ri: round2(ro / 2), ro };
    }
    case "rect": {
      const x0 = Math.round(Math.min(ax, bx));
      const y0 = Math.round(Math.min(ay, by));
      const x1 = Math.round(Math.max(ax, bx));
      const y1 = Math.round(Math.max(ay, by));
      return { shape: "rect", x: x0, y: y0, width: Math.max(x1 - x0, 1), height: Math.max(y1 - y0, 1) };
    }
    default:
      return { shape: "whole" };
  }
}

export type Handle = "move" | "r" | "ri" | "ro" | "corner";

// Which part of `s` is at image position (x, y); `tol` is in image pixels.
export function hitTest(s: Shape, x: number, y: number, tol: number): Handle | null {
  switch (s.shape) {
    case "point":
      return Math.hypot(x - s.cx!, y - s.cy!) <= tol * 1.5 ? "move" : null;
    case "disk": {
      const d = Math.hypot(x - s.cx!, y - s.cy!);
      if (Math.abs(d - s.r!) <= tol) return "r";
      return d < s.r! ? "move" : null;
    }
    case "ring": {
      const d = Math.hypot(x - s.cx!, y - s.cy!);
      if (Math.abs(d - s.ro!) <= tol) return "ro";
      if (Math.abs(d - s.ri!) <= tol) return "ri";
      return d < s.ro! ? "move" : null;
    }
    case "rect": {
      const x1 = s.x! + s.width! - 0.5;
      const y1 = s.y! + s.height! - 0.5;
      if (Math.hypot(x - x1, y - y1) <= tol * 1.5) return "corner";
      const inside = x >= s.x! - 0.5 && x <= x1 && y >= s.y! - 0.5 && y <= y1;
      return inside ? "move" : null;
    }
    default:
      return null;
  }
}

// `s` changed by dragging `handle` by (dx, dy) to (x, y).
export function dragShape(s: Shape, handle: Handle, x: number, y: number, dx: number, dy: number): Shape {
  const out = { ...s };
  if (handle === "move") {
    if (s.shape === "rect") {
      out.x = s.x! + Math.round(dx);
      out.y = s.y! + Math.round(dy);
    } else if (s.shape === "point") {
      out.cx = Math.round(s.cx! + dx);
      out.cy = Math.round(s.cy! + dy);
    } else {
      out.cx = round2(s.cx! + dx);
      out.cy = round2(s.cy! + dy);
    }
    return out;
  }
  const d = round2(Math.hypot(x - (s.cx ?? 0), y - (s.cy ?? 0)));
  if (handle === "r") out.r = Math.max(d, 0.5);
  if (handle === "ro") out.ro = Math.max(d, s.ri!);
  if (handle === "ri") out.ri = Math.min(d, s.ro!);
  if (handle === "corner") {
    out.width = Math.max(Math.round(x + 0.5 - s.x!), 1);
    out.height = Math.max(Math.round(y + 0.5 - s.y!), 1);
  }
  return out;
}

// The movement of a shape's handle is measured from where the drag began.
export function clampShape(s: Shape, width: number, height: number): Shape {
  const out = { ...s };
  if (s.shape === "point") {
    out.cx = Math.min(Math.max(s.cx!, 0), width - 1);
    out.cy = Math.min(Math.max(s.cy!, 0), height - 1);
  }
  return out;
}

// Draws `s` with the transform `toCanvas` (image -> canvas) and pixel size `scale`.
export function drawShape(
  g: CanvasRenderingContext2D,
  s: Shape,
  toCanvas: (x: number, y: number) => [number, number],
  scale: number,
  color: string,
): void {
  g.save();
  g.strokeStyle = color;
  g.fillStyle = color;
  g.lineWidth = 2;
  const circle = (cx: number, cy: number, r: number) => {
    const [px, py] = toCanvas(cx, cy);
    g.beginPath();
    g.arc(px, py, r * scale, 0, 2 * Math.PI);
    g.stroke();
  };
  const handle = (x: number, y: number) => {
    const [px, py] = toCanvas(x, y);
    g.fillRect(px - 3, py - 3, 6, 6);
  };
  switch (s.shape) {
    case "point": {
      const [px, py] = toCanvas(s.cx!, s.cy!);
      g.beginPath();
      g.moveTo(px - 8, py);
      g.lineTo(px + 8, py);
      g.moveTo(px, py - 8);
      g.lineTo(px, py + 8);
      g.stroke();
      g.strokeRect(px - scale / 2, py - scale / 2, scale, scale);
      break;
    }
    case "disk":
      circle(s.cx!, s.cy!, s.r!);
      handle(s.cx! + s.r!, s.cy!);
      handle(s.cx!, s.cy!);
      break;
    case "ring":
      circle(s.cx!, s.cy!, s.ro!);
      g.setLineDash([4, 3]);
      circle(s.cx!, s.cy!, s.ri!);
      g.setLineDash([]);
      handle(s.cx! + s.ro!, s.cy!);
      handle(s.cx! + s.ri!, s.cy!);
      handle(s.cx!, s.cy!);
      break;
    case "rect": {
      const [x0, y0] = toCanvas(s.x! - 0.5, s.y! - 0.5);
      g.strokeRect(x0, y0, s.width! * scale, s.height! * scale);
      handle(s.x! + s.width! - 0.5, s.y! + s.height! - 0.5);
      break;
    }
    default:
      break;
  }
  g.restore();
}
