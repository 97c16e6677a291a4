// Deployments: list, create, and edit (version, hardware, min and max instances).
import { api, el, showError } from "./api.js";

const body = document.querySelector("#deployments tbody");
const form = document.getElementById("deployment-form");
const error = document.getElementById("deployment-error");
let editing = null;

function edit(d) {
  const c = d.current_release;
  editing = `${d.owner}/${d.name}`;
  form.elements.name.value = d.name;
  form.elements.model.value = c.model;
  form.elements.name.disabled = form.elements.model.disabled = true;
  form.elements.version.value = c.version;
  form.elements.hardware.value = c.configuration.hardware;
  form.elements.min_instances.value = c.configuration.min_instances;
  form.elements.max_instances.value = c.configuration.max_instances;
  document.getElementById("deployment-form-title").textContent = `Edit ${editing}`;
  document.getElementById("deployment-submit").textContent = "Save";
  form.elements.version.focus();
}

async function load() {
  const found = await api("/v1/deployments");
  body.replaceChildren(...found.results.map((d) => {
    const c = d.current_release;
    return el("tr", {}, el("td", {}, `${d.owner}/${d.name}`), el("td", {}, c.model),
      el("td", {}, el("code", {}, c.version.slice(0, 12))), el("td", {}, c.configuration.hardware),
      el("td", {}, String(c.configuration.min_instances)), el("td", {}, String(c.configuration.max_instances)),
      el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => edit(d) }, `Edit ${d.name}`)));
  }));
  if (!found.results.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No deployments yet.")));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const f = form.elements;
  const config = {
    version: f.version.value.trim(), hardware: f.hardware.value,
    min_instances: Number(f.min_instances.value), max_instances: Number(f.max_instances.value),
  };
  try {
    if (editing) await api(`/v1/deployments/${editing}`, { method: "PATCH", body: config });
    else await api("/v1/deployments", { method: "POST", body: { name: f.name.value.trim(), model: f.model.value.trim(), ...config } });
    editing = null;
    form.reset();
    f.name.disabled = f.model.disabled = false;
    document.getElementById("deployment-form-title").textContent = "Create a deployment";
    document.getElementById("deployment-submit").textContent = "Create";
    await load();
  } catch (failure) {
    showError(error, failure);
  }
});

api("/v1/hardware").then((skus) => {
  form.elements.hardware.replaceChildren(...skus.map((s) => el("option", { value: s.sku }, s.name)));
});
load().catch((failure) => showError(error, failure));
