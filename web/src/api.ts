// Talking to the server: the token, JSON requests and the WebSocket.

const params = new URLSearchParams(window.location.search);
export const TOKEN: string = params.get("token") ?? "";

export class ApiError extends Error {
  field: string | null;
  status: number;
  constructor(message: string, field: string | null, status: number) {
    super(message);
    this.field = field;
    this.status = status;
  }
}

export async function api<T = any>(path: string, body?: unknown, method?: string): Promise<T> {
  const init: RequestInit = {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: { Authorization: `token ${TOKEN}`, "Content-Type": "application/json" },
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    throw new ApiError(data?.error ?? response.statusText, data?.field ?? null, response.status);
  }
  return data as T;
}

export interface DatasetInfo {
  id: string;
  name: string;
  path: string;
  filetype: string;
  params: Record<string, unknown>;
  shape: number[];
  nav_shape: number[];
  sig_shape: number[];
  nav_2d: [number, number];
  sig_2d: [number, number];
  dtype: string;
}

export interface RunInfo {
  id: string;
  dataset: string;
  channel: string;
  kind: string;
  label: string;
  title: string;
  spec: any;
  state: string;
  error: string | null;
  progress: [number, number];
  outputs: string[];
}

export interface Image {
  name: string;
  width: number;
  height: number;
  data: Float32Array;
}

export interface ImageMessage {
  run: string;
  dataset: string;
  channel: string;
  final: boolean;
  progress: [number, number];
  images: Map<string, Image>;
}

// Decodes the binary image messages (see libertem/web/protocol.py).
export function decodeImages(buffer: ArrayBuffer): ImageMessage {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "LTIM") {
    throw new Error("not an image message");
  }
  const n = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
  let offset = 8 + n;
  const images = new Map<string, Image>();
  for (const item of header.images as { name: string; shape: [number, number] }[]) {
    const [height, width] = item.shape;
    const data = new Float32Array(buffer.slice(offset, offset + 4 * width * height));
    images.set(item.name, { name: item.name, width, height, data });
    offset += 4 * width * height;
  }
  return { ...header, images };
}

type Listener = (message: any) => void;

// The tab's WebSocket: JSON requests out, JSON events and image messages in.
export class Socket {
  private ws: WebSocket | null = null;
  private queue: string[] = [];
  private listeners: Listener[] = [];
  onImages: (message: ImageMessage) => void = () => {};
  onState: (connected: boolean) => void = () => {};

  connect(): void {
    const proto = window.location.protocol === "https:" ? "wss" : "ws";
    const url = `${proto}://${window.location.host}/api/ws?token=${encodeURIComponent(TOKEN)}`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.onState(true);
      for (const m of this.queue) {
        ws.send(m);
      }
      this.queue = [];
    };
    ws.onclose = () => {
      this.onState(false);
      this.ws = null;
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (ev.data instanceof ArrayBuffer) {
        this.onImages(decodeImages(ev.data));
      } else {
        const message = JSON.parse(ev.data as string);
        for (const l of this.listeners) {
          l(message);
        }
      }
    };
    this.ws = ws;
  }

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  send(message: unknown): void {
    const text = JSON.stringify(message);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(text);
    } else {
      this.queue.push(text);
    }
  }
}
