// Your API tokens: create (shown once) and revoke.
import { api, el, showError, when } from "./api.js";
import { clearFieldErrors, showFieldErrors } from "./form.js";

const body = document.querySelector("#tokens tbody");
const form = document.getElementById("create-token");
const error = document.getElementById("tokens-error");

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
  error.hidden = true;
  try {
    await api(`/v1/tokens/${token.id}`, { method: "DELETE" });
    await load();
  } catch (failure) {
    showError(error, failure);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  clearFieldErrors(document);
  const name = document.getElementById("token-name").value.trim();
  try {
    const made = await api("/v1/tokens", { method: "POST", body: name ? { name } : {} });
    document.getElementById("new-token-value").textContent = made.token;
    document.getElementById("new-token").hidden = false;
    form.reset();
    await load();
  } catch (failure) {
    const say = () => "A token's name is at most 200 characters.";
    if (!(failure.problem?.invalid_fields && showFieldErrors(document, failure.problem, { prefix: "token", say }))) {
      showError(error, failure);
    }
  }
});
load().catch((failure) => showError(error, failure));
