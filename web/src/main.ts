// libertem-server's front end: starts the file browser and shows open datasets.

import { api, Socket } from "./api";
import type { DatasetInfo, RunInfo } from "./api";
import { FileBrowser } from "./browser";
import { DatasetView } from "./datasetview";
import { el } from "./pane";

interface Config {
  version: string;
  root: string;
  executor: string;
  colormaps: string[];
  formats: Record<string, any>;
}

async function main(): Promise<void> {
  const config = await api<Config>("/api/config");
  const socket = new Socket();
  const views = new Map<string, DatasetView>();
  const tabs = el("nav", { class: "tabs" });
  const main = document.getElementById("datasets")!;
  const state = document.getElementById("connection")!;
  document.getElementById("server")!.textContent = `${config.executor} · root: ${config.root} · v${config.version}`;

  const activate = (id: string) => {
    for (const [vid, view] of views) view.root.hidden = vid !== id;
    for (const tab of tabs.querySelectorAll<HTMLElement>("button")) {
      tab.classList.toggle("active", tab.dataset.dataset === id);
    }
  };
  const add = (info: DatasetInfo) => {
    if (views.has(info.id)) {
      activate(info.id);
      return;
    }
    const view = new DatasetView(info, socket, config.colormaps, () => {
      void api(`/api/datasets/${info.id}`, undefined, "DELETE").catch(() => undefined);
    });
    views.set(info.id, view);
    main.append(view.root);
    const tab = el("button", { type: "button", "data-dataset": info.id, text: info.name });
    tab.addEventListener("click", () => activate(info.id));
    tabs.append(tab);
    activate(info.id);
    void view.start();
  };
  const sync = (datasets: DatasetInfo[]) => {
    const ids = new Set(datasets.map((d) => d.id));
    for (const [id, view] of views) {
      if (!ids.has(id)) {
        view.close();
        views.delete(id);
        tabs.querySelector(`button[data-dataset="${id}"]`)?.remove();
      }
    }
    for (const d of datasets) if (!views.has(d.id)) add(d);
  };

  socket.on((message) => {
    if (message.event === "datasets") sync(message.datasets as DatasetInfo[]);
    else if (message.event === "run") {
      const run = message.run as RunInfo;
      views.get(run.dataset)?.handleRun(run);
    } else if (message.event === "error") {
      if (message.dataset) views.get(message.dataset)?.handleError(message.channel, message.message);
      else console.warn(message.message);
    }
  });
  socket.onImages = (m) => views.get(m.dataset)?.handleImages(m);
  socket.onState = (connected) => {
    state.textContent = connected ? "connected" : "disconnected: reload the page";
    state.className = connected ? "ok" : "bad";
  };
  socket.connect();

  const browser = new FileBrowser(config.formats, add);
  document.getElementById("sidebar")!.append(browser.root, el("h2", { text: "Datasets" }), tabs);
  await browser.show("");
}

main().catch((e) => {
  document.body.prepend(el("div", { class: "fatal", text: `could not start: ${e.message}` }));
});
