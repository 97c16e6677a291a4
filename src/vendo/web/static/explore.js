// Explore: the models you can see, search (the API's /v1/search) and collections.
import { api, el, showError } from "./api.js";

const list = document.getElementById("models");
const more = document.getElementById("more");
let next = null;

function card(model) {
  const href = `/${model.owner}/${model.name}`;
  return el("li", { class: "card" },
    el("h3", {}, el("a", { href }, `${model.owner}/${model.name}`)),
    el("p", {}, model.description || ""),
    el("p", { class: "meta" }, `${model.run_count} runs · ${model.visibility}`));
}

async function load(url, replace) {
  try {
    const found = await api(url);
    const models = found.models ? found.models.map((m) => m.model) : found.results;
    if (replace) list.replaceChildren();
    list.append(...models.map(card));
    if (!list.children.length) list.append(el("li", { class: "muted" }, "No models found."));
    next = found.next ?? null;
    more.hidden = !next;
  } catch (error) {
    list.replaceChildren(el("li", { class: "error" }, error.message));
  }
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = document.getElementById("query").value.trim();
  load(query ? `/v1/search?query=${encodeURIComponent(query)}&limit=50` : "/v1/models", true);
});
more.addEventListener("click", () => next && load(next, false));
load("/v1/models", true);
api("/v1/collections").then((found) => {
  const target = document.getElementById("collections");
  target.replaceChildren(...found.results.map((c) =>
    el("li", { class: "card" }, el("h3", {}, c.name), el("p", {}, c.description || ""))));
  if (!found.results.length) target.append(el("li", { class: "muted" }, "No collections yet."));
}).catch((error) => showError(document.getElementById("collections"), error));
