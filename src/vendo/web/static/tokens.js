// Your API tokens: create (shown once) and revoke.
import { api, el, when } from "./api.js";

const body = document.querySelector("#tokens tbody");

async function load() {
  const found = await api("/v1/tokens");
  body.replaceChildren(...found.results.map((t) => el("tr", {},
    el("td", {}, String(t.id)), el("td", {}, t.name || ""), el("td", {}, t.organization || ""),
    el("td", {}, when(t.created_at)), el("td", {}, when(t.last_used_at)),
    el("td", {}, el("button", { type: "button", class: "danger", onclick: () => revoke(t) },
      `Revoke ${t.name || t.id}`)))));
}

async function revoke(token) {
  if (!confirm(`Revoke the token ${token.name || token.id}? It stops working at once.`)) return;
  await api(`/v1/tokens/${token.id}`, { method: "DELETE" });
  await load();
}

document.getElementById("create-token").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("token-name").value.trim();
  const made = await api("/v1/tokens", { method: "POST", body: name ? { name } : {} });
  document.getElementById("new-token-value").textContent = made.token;
  document.getElementById("new-token").hidden = false;
  await load();
});
load();
