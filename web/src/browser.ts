// The file browser below the server's root folder and the form that opens a
// dataset with the parameters of its format.

import { api, ApiError } from "./api";
import type { DatasetInfo } from "./api";
import { el } from "./pane";

interface Entry {
  name: string;
  kind: "dir" | "file";
  size: number;
}

interface Listing {
  path: string;
  parent: string | null;
  entries: Entry[];
}

interface FormatInfo {
  title: string;
  properties: Record<string, any>;
  required: string[];
}

function join(folder: string, name: string): string {
  return folder ? `${folder}/${name}` : name;
}

function sizeText(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// The text of a form value for the input (shapes as "16, 16").
function toText(value: unknown): string {
  if (Array.isArray(value)) return value.join(", ");
  return value === undefined || value === null ? "" : String(value);
}

export class FileBrowser {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private where: HTMLElement;
  private form: HTMLFormElement;
  private formats: Record<string, FormatInfo>;
  private onOpened: (info: DatasetInfo) => void;
  private folder = "";

  constructor(formats: Record<string, FormatInfo>, onOpened: (info: DatasetInfo) => void) {
    this.formats = formats;
    this.onOpened = onOpened;
    this.where = el("div", { class: "where" });
    this.list = el("ul", { class: "files" });
    this.form = el("form", { class: "open-form", id: "open-form" });
    this.form.hidden = true;
    this.root = el("div", { class: "browser" }, el("h2", { text: "Files" }), this.where, this.list, this.form);
  }

  async show(folder: string): Promise<void> {
    let listing: Listing;
    try {
      listing = await api<Listing>(`/api/files?path=${encodeURIComponent(folder)}`);
    } catch (e) {
      this.where.textContent = `cannot list ${folder}: ${(e as Error).message}`;
      return;
    }
    this.folder = listing.path;
    this.where.textContent = `/${listing.path}`;
    const items: HTMLElement[] = [];
    if (listing.parent !== null) {
      items.push(this.item("..", "dir", "", () => this.show(listing.parent!)));
    }
    for (const entry of listing.entries) {
      const path = join(listing.path, entry.name);
      const action = entry.kind === "dir" ? () => this.show(path) : () => this.choose(path);
      items.push(this.item(entry.name, entry.kind, entry.kind === "file" ? sizeText(entry.size) : "", action));
    }
    this.list.replaceChildren(...items);
  }

  private item(name: string, kind: string, size: string, action: () => void): HTMLElement {
    const li = el("li", { class: kind, "data-name": name }, el("span", { class: "name", text: name }));
    if (size) li.append(el("span", { class: "size", text: size }));
    li.addEventListener("click", action);
    return li;
  }

  // A file was chosen: detect its format and show the form.
  async choose(path: string): Promise<void> {
    let detected: { filetype?: string; params?: Record<string, unknown> } = {};
    try {
      detected = await api("/api/detect", { path });
    } catch (e) {
      detected = {};
    }
    this.showForm(path, detected.filetype ?? "", detected.params ?? {});
  }

  private showForm(path: string, filetype: string, values: Record<string, unknown>): void {
    const form = this.form;
    form.hidden = false;
    form.dataset.path = path;
    const typeSelect = el("select", { name: "filetype" });
    typeSelect.append(el("option", { value: "auto", text: "auto" }));
    for (const name of Object.keys(this.formats)) typeSelect.append(el("option", { value: name, text: name }));
    typeSelect.value = filetype && this.formats[filetype] ? filetype : "auto";
    const fields = el("div", { class: "fields" });
    const renderFields = () => this.renderFields(fields, typeSelect.value, values);
    typeSelect.addEventListener("change", renderFields);
    renderFields();
    const submit = el("button", { type: "submit", text: "Open" });
    form.replaceChildren(
      el("h3", { text: `Open ${path}` }),
      el("label", {}, "format ", typeSelect),
      el("div", { class: "error", "data-for": "filetype" }),
      fields,
      el("div", { class: "error", "data-for": "general" }),
      submit,
    );
    form.onsubmit = (ev) => {
      ev.preventDefault();
      void this.open(path, typeSelect.value, fields, submit);
    };
  }

  private renderFields(container: HTMLElement, filetype: string, values: Record<string, unknown>): void {
    const format = this.formats[filetype];
    container.replaceChildren();
    if (!format) return;
    for (const [name, schema] of Object.entries(format.properties)) {
      if (name === "path") continue;
      let input: HTMLInputElement | HTMLSelectElement;
      if (schema.enum) {
        input = el("select", { name });
        input.append(el("option", { value: "", text: "(default)" }));
        for (const v of schema.enum) input.append(el("option", { value: String(v), text: String(v) }));
      } else if (schema.type === "boolean") {
        input = el("input", { type: "checkbox", name });
      } else {
        input = el("input", { type: "text", name });
        if (schema.type === "array") input.placeholder = "e.g. 16, 16";
      }
      if (input instanceof HTMLInputElement && input.type === "checkbox") input.checked = Boolean(values[name]);
      else input.value = toText(values[name]);
      input.dataset.kind = schema.type === "array" ? "shape" : schema.type ?? "string";
      const required = format.required.includes(name) ? " *" : "";
      container.append(
        el("label", { class: "field" }, `${name}${required} `, input),
        el("div", { class: "error", "data-for": name }),
      );
    }
  }

  // The form's values as JSON; a value that does not parse is sent as text so
  // that the server names the problem.
  private values(fields: HTMLElement): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const input of fields.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input, select")) {
      const kind = input.dataset.kind;
      const name = input.name;
      if (input instanceof HTMLInputElement && input.type === "checkbox") {
        if (input.checked) out[name] = true;
        continue;
      }
      const text = input.value.trim();
      if (!text) continue;
      if (kind === "shape") {
        const parts = text.split(/[\s,x×]+/).filter(Boolean).map(Number);
        out[name] = parts.every((n) => Number.isInteger(n)) ? parts : text;
      } else if (kind === "integer" || kind === "number") {
        const n = Number(text);
        out[name] = Number.isFinite(n) ? n : text;
      } else {
        out[name] = text;
      }
    }
    return out;
  }

  private async open(path: string, filetype: string, fields: HTMLElement, submit: HTMLButtonElement) {
    for (const e of this.form.querySelectorAll(".error")) e.textContent = "";
    submit.disabled = true;
    this.form.dataset.state = "opening";
    try {
      const info = await api<DatasetInfo>("/api/datasets", { path, filetype, params: this.values(fields) });
      this.form.hidden = true;
      this.form.dataset.state = "opened";
      this.onOpened(info);
    } catch (e) {
      const err = e as ApiError;
      const field = err.field && this.form.querySelector(`.error[data-for="${err.field}"]`) ? err.field : "general";
      this.form.querySelector(`.error[data-for="${field}"]`)!.textContent = err.message;
      this.form.dataset.state = "error";
    } finally {
      submit.disabled = false;
    }
  }

  get currentFolder(): string {
    return this.folder;
  }
}
