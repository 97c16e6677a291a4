// Your predictions or trainings, newest first, a page at a time.
import { api, el, seconds, when } from "./api.js";

const table = document.getElementById("list");
const kind = table.dataset.kind;
const more = document.getElementById("more");
let next = `/v1/${kind}`;

async function load() {
  const found = await api(next);
  const body = table.querySelector("tbody");
  body.append(...found.results.map((p) => el("tr", {},
    el("td", {}, el("a", { href: new URL(p.urls.web).pathname }, p.id)),
    el("td", {}, p.model ?? ""),
    el("td", {}, el("span", { class: "badge", "data-status": p.status }, p.status)),
    el("td", {}, when(p.created_at)),
    el("td", {}, seconds(p.metrics?.predict_time)))));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, `No ${kind} yet.`)));
  next = found.next;
  more.hidden = !next;
}

more.addEventListener("click", load);
load().catch((error) => table.after(el("p", { class: "error" }, error.message)));
