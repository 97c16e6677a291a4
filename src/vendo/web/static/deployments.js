// Deployments: list, create, and edit (version, hardware, min and max instances).
import { ApiError, api, el, showError, when } from "./api.js";
import { clearFieldErrors, showFieldError, showFieldErrors } from "./form.js";

const body = document.querySelector("#deployments tbody");
const form = document.getElementById("deployment-form");
const error = document.getElementById("deployment-error");
const title = document.getElementById("deployment-form-title");
const submit = document.getElementById("deployment-submit");
const cancel = document.getElementById("deployment-cancel");
const f = form.elements;
let editing = null;
let hardwareLoaded = null;

// The API's field errors in the words of the form's labels (the API names its fields)
function say(invalid) {
  const { field, type } = invalid;
  if (field === "name") return "Use lowercase letters, digits, '-', '_' and '.' only, for example my-deployment.";
  if (field === "model") return "Give the model as owner/name, for example alice/hello-world.";
  if (field === "version") return type === "missing" ? "Choose a version." : "That version is not one of this model's.";
  if (field === "hardware") return "Choose the hardware from the list.";
  if (type === "type") return "Give a whole number.";
  if (field === "min_instances" && Number(f.min_instances.value) > Number(f.max_instances.value)) {
    return "The minimum cannot be more than the maximum.";
  }
  return "Give a number from 0 to 100.";
}

// The model's versions in the Version select, newest first; `chosen` selected if given
async function loadVersions(chosen) {
  const model = f.model.value.trim();
  const [owner, name, ...rest] = model.split("/");
  if (!owner || !name || rest.length) {
    f.version.replaceChildren(el("option", { value: "" }, "Give the model first"));
    return;
  }
  try {
    const page = await api(`/v1/models/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/versions`);
    f.version.replaceChildren(...page.results.map((v, i) => el("option", { value: v.id },
      `${v.id.slice(0, 12)} · ${when(v.created_at)}${i === 0 ? " (latest)" : ""}`)));
    if (!page.results.length) f.version.append(el("option", { value: "" }, "This model has no version yet"));
    if (chosen) f.version.value = chosen;
    f.model.removeAttribute("aria-invalid");
    document.getElementById("d-model-error").hidden = true;
  } catch (failure) {
    if (!(failure instanceof ApiError) || failure.status !== 404) throw failure;
    f.version.replaceChildren(el("option", { value: "" }, "Give the model first"));
    showFieldError(form, "d-model", `There is no model ${model} that you can see.`);
  }
}

function reset() {
  editing = null;
  form.reset();
  clearFieldErrors(form);
  f.name.disabled = f.model.disabled = false;
  f.version.replaceChildren(el("option", { value: "" }, "Give the model first"));
  title.textContent = "Create a deployment";
  submit.textContent = "Create";
  cancel.hidden = true;
}

async function edit(d) {
  const c = d.current_release;
  reset();
  editing = `${d.owner}/${d.name}`;
  f.name.value = d.name;
  f.model.value = c.model;
  f.name.disabled = f.model.disabled = true;
  await hardwareLoaded;
  f.hardware.value = c.configuration.hardware;
  f.min_instances.value = c.configuration.min_instances;
  f.max_instances.value = c.configuration.max_instances;
  title.textContent = `Edit ${editing}`;
  submit.textContent = "Save";
  cancel.hidden = false;
  await loadVersions(c.version);
  f.version.focus();
}

async function load() {
  const found = await api("/v1/deployments");
  body.replaceChildren(...found.results.map((d) => {
    const c = d.current_release;
    return el("tr", {}, el("td", {}, `${d.owner}/${d.name}`), el("td", {}, c.model),
      el("td", {}, el("code", {}, c.version.slice(0, 12))), el("td", {}, c.configuration.hardware),
      el("td", {}, String(c.configuration.min_instances)), el("td", {}, String(c.configuration.max_instances)),
      el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => edit(d).catch((e) => showError(error, e)) }, `Edit ${d.name}`)));
  }));
  if (!found.results.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No deployments yet.")));
}

// A number field's value as the API takes it: an integer, else the text (the API says
// what is wrong with it)
function count(input) {
  return input.value.trim() === "" ? "" : Number(input.value);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  clearFieldErrors(form);
  const config = {
    version: f.version.value, hardware: f.hardware.value,
    min_instances: count(f.min_instances), max_instances: count(f.max_instances),
  };
  try {
    if (editing) await api(`/v1/deployments/${editing}`, { method: "PATCH", body: config });
    else await api("/v1/deployments", { method: "POST", body: { name: f.name.value.trim(), model: f.model.value.trim(), ...config } });
    reset();
    await load();
  } catch (failure) {
    const shown = failure.problem?.invalid_fields && showFieldErrors(form, failure.problem, { prefix: "d", say });
    if (shown) return;
    if (failure instanceof ApiError && failure.status === 404 && !editing) {
      showFieldError(form, "d-model", `There is no model ${f.model.value.trim()} that you can see.`);
    } else showError(error, failure);
  }
});

f.model.addEventListener("change", () => loadVersions().catch((failure) => showError(error, failure)));
cancel.addEventListener("click", reset);
hardwareLoaded = api("/v1/hardware").then((skus) => {
  f.hardware.replaceChildren(...skus.map((s) => el("option", { value: s.sku }, `${s.name} (${s.sku})`)));
});
hardwareLoaded.catch((failure) => showError(error, failure));
load().catch((failure) => showError(error, failure));
