// A prediction's output, rendered by its schema and content type; its logs and status
// as they arrive (the SSE stream when the prediction has one, else polling).
import { api, el, seconds } from "./api.js";

const TERMINAL = new Set(["succeeded", "failed", "canceled", "aborted"]);
const KIND = [
  [/^image\//, "image"], [/^audio\//, "audio"], [/^video\//, "video"],
];
const EXT = [
  [/\.(png|jpe?g|gif|webp|svg|bmp|avif)$/i, "image"],
  [/\.(wav|mp3|ogg|flac|m4a)$/i, "audio"],
  [/\.(mp4|webm|mov)$/i, "video"],
];

function isUrl(value) {
  return typeof value === "string" && /^(https?:|data:|\/v1\/files\/)/.test(value);
}

async function mediaKind(url) {
  if (url.startsWith("data:")) {
    const type = url.slice(5).split(/[;,]/)[0];
    return KIND.find(([re]) => re.test(type))?.[1] ?? "file";
  }
  const byName = EXT.find(([re]) => re.test(new URL(url, location.href).pathname));
  if (byName) return byName[1];
  try {  // signed download URLs carry no extension: ask for the type
    const response = await fetch(url, { method: "HEAD" });
    const type = response.headers.get("content-type") || "";
    return KIND.find(([re]) => re.test(type))?.[1] ?? "file";
  } catch {
    return "file";
  }
}

async function fileView(url, index) {
  const kind = await mediaKind(url);
  const label = `output file ${index + 1}`;
  if (kind === "image") return el("img", { src: url, alt: label, class: "media" });
  if (kind === "audio") return el("audio", { src: url, controls: true, "aria-label": label });
  if (kind === "video") return el("video", { src: url, controls: true, class: "media", "aria-label": label });
  return el("a", { href: url, download: "", class: "file" }, `Download ${label}`);
}

function isConcatenate(schema) {
  return schema?.type === "array" && schema["x-cog-array-display"] === "concatenate";
}

export async function renderOutput(target, output, schema) {
  target.replaceChildren();
  if (output === null || output === undefined) return;
  if (isConcatenate(schema) && Array.isArray(output)) {
    target.append(el("div", { class: "text" }, output.join("")));
  } else if (typeof output === "string" && isUrl(output)) {
    target.append(await fileView(output, 0));
  } else if (Array.isArray(output) && output.length && output.every(isUrl)) {
    const items = await Promise.all(output.map((url, i) => fileView(url, i)));
    target.append(el("ul", { class: "files" }, items.map((item) => el("li", {}, item))));
  } else if (typeof output === "string") {
    target.append(el("div", { class: "text" }, output));
  } else {
    target.append(el("pre", { class: "json" }, JSON.stringify(output, null, 2)));
  }
}

// The parts of run_view.html; `prefix` is its run_prefix ("train-" on the Train tab)
export function runView(prefix = "") {
  const part = (name) => document.getElementById(`${prefix}${name}`);
  return {
    status: part("status"), runTime: part("run-time"), output: part("output"),
    logs: part("logs"), link: part("run-link"), cancel: part("cancel"),
  };
}

// The path of one of the API's URLs: the page calls its own origin, whatever address
// the server puts in URLs (VENDO_PUBLIC_URL)
const path = (url) => { const u = new URL(url); return u.pathname + u.search; };

// Follows a prediction (or a training: its urls.get and urls.cancel are its own) to its
// end: returns the final prediction. `render(target, prediction)` shows a success's
// output instead of renderOutput.
export function follow(prediction, view, schema, render = null) {
  view.output.replaceChildren();
  view.logs.textContent = prediction.logs || "";
  view.link.href = new URL(prediction.urls.web).pathname;
  view.link.hidden = location.pathname === view.link.getAttribute("href");
  view.cancel.hidden = false;
  view.cancel.onclick = () => api(path(prediction.urls.cancel), { method: "POST" });
  const streamed = el("div", { class: "text streaming" });
  let source = null;
  if (prediction.urls.stream && !TERMINAL.has(prediction.status)) {
    source = new EventSource(prediction.urls.stream);
    view.output.append(streamed);
    view.logs.textContent = "";
    source.addEventListener("output", (event) => {
      const item = event.data;
      if (isUrl(item)) fileView(item, streamed.childElementCount).then((node) => streamed.append(node));
      else streamed.append(document.createTextNode(item));
    });
    source.addEventListener("logs", (event) => { view.logs.textContent += event.data + "\n"; });
    source.addEventListener("done", () => source.close());
  }
  return poll(prediction, view, schema, source, render);
}

async function poll(prediction, view, schema, source, render) {
  let current = prediction;
  for (;;) {
    show(current, view);
    if (TERMINAL.has(current.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 400));
    current = await api(path(current.urls.get));
    if (!source) view.logs.textContent = current.logs || "";
  }
  source?.close();
  view.cancel.hidden = true;
  view.logs.textContent = current.logs || view.logs.textContent;
  if (current.status === "succeeded" && render) render(view.output, current);
  else if (current.status === "succeeded") await renderOutput(view.output, current.output, schema);
  else view.output.replaceChildren(el("p", { class: "error" }, current.error || current.status));
  return current;
}

function show(prediction, view) {
  view.status.textContent = prediction.status;
  view.status.dataset.status = prediction.status;
  view.runTime.textContent = seconds(prediction.metrics?.predict_time);
}
