// The model page: the playground, the API tab, versions and examples.
import { api, baseUrl, el, showError, tabs, when } from "./api.js";
import { buildForm, readForm, showFieldErrors, upload } from "./form.js";
import { follow, runView } from "./output.js";
import { snippets } from "./snippets.js";

const root = document.getElementById("model");
const { owner, name } = root.dataset;
const fields = document.getElementById("fields");
const form = document.getElementById("run-form");
const formError = document.getElementById("form-error");
const view = runView();
let props = new Map();
let version = null;

function refreshSnippets() {
  if (!version) return;
  const code = snippets(baseUrl, `${owner}/${name}:${version.id}`, readForm(fields, props), version.id);
  document.querySelector("#snippet-python code").textContent = code.python;
  document.querySelector("#snippet-js code").textContent = code.js;
  document.querySelector("#snippet-curl code").textContent = code.curl;
}

function useVersion(chosen) {
  version = chosen;
  props = buildForm(fields, chosen.openapi_schema);
  refreshSnippets();
}

async function run(event) {
  event.preventDefault();
  formError.hidden = true;
  const button = document.getElementById("run");
  button.disabled = true;
  try {
    const input = await upload(readForm(fields, props));
    const prediction = await api("/v1/predictions", {
      method: "POST", body: { version: version.id, input, stream: true },
    });
    const schema = version.openapi_schema?.components?.schemas?.Output;
    await follow(prediction, view, schema);
  } catch (error) {
    if (error.problem?.invalid_fields) showFieldErrors(fields, error.problem);
    showError(formError, error);
  } finally {
    button.disabled = false;
  }
}

async function loadVersions() {
  const list = document.getElementById("versions");
  const page = await api(`/v1/models/${owner}/${name}/versions`);
  list.replaceChildren(...page.results.map((v) => el("li", {},
    el("code", {}, v.id.slice(0, 12)), ` ${when(v.created_at)} `,
    el("button", { type: "button", class: "secondary", onclick: () => {
      useVersion(v);
      document.getElementById("tab-playground").click();
    } }, "Use in the playground"))));
  const examples = document.getElementById("examples");
  const found = await api(`/v1/models/${owner}/${name}/examples`);
  examples.replaceChildren(...found.results.map((p) =>
    el("li", {}, el("a", { href: new URL(p.urls.web).pathname }, p.id), ` ${p.status}`)));
  if (!found.results.length) examples.append(el("li", { class: "muted" }, "No examples yet."));
}

async function main() {
  tabs(root.querySelector('[role="tablist"][aria-label="Model"]'), (tab) => {
    if (tab.id === "tab-api") refreshSnippets();
  });
  tabs(document.querySelector('[role="tablist"][aria-label="Language"]'));
  document.getElementById("copy-snippet").addEventListener("click", () => {
    const shown = document.querySelector('#panel-api pre:not([hidden]) code');
    navigator.clipboard?.writeText(shown.textContent);
  });
  form.addEventListener("submit", run);
  form.addEventListener("input", refreshSnippets);
  form.addEventListener("reset", () => setTimeout(refreshSnippets));
  const model = await api(`/v1/models/${owner}/${name}`);
  document.getElementById("run-count").textContent =
    `${model.run_count} run${model.run_count === 1 ? "" : "s"}`;
  document.getElementById("visibility").textContent = `· ${model.visibility}`;
  if (!model.latest_version) {
    fields.replaceChildren(el("p", { class: "muted" }, "This model has no version yet: push one with vendo push."));
    document.getElementById("run").disabled = true;
  } else useVersion(model.latest_version);
  await loadVersions();
}

main().catch((error) => showError(formError, error));
