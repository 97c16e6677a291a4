// The Train tab of a trainable model's page: a form built from the latest version's
// TrainingInput, a destination model (made when it is the user's and missing), and the
// training followed to its end, with a link to the version it made.
import { ApiError, api, el, showError } from "./api.js";
import { buildForm, clearFieldErrors, readForm, showFieldError, showFieldErrors, upload } from "./form.js";
import { follow, runView } from "./output.js";

const { owner, name } = document.getElementById("model").dataset;
const form = document.getElementById("train-form");
const fields = document.getElementById("train-fields");
const destination = document.getElementById("train-destination");
const formError = document.getElementById("train-error");
const view = runView("train-");
let model = null;
let props = new Map();

// The destination as owner/name, made (private, on the trainer's hardware) when it is
// missing and the signed-in account's own; false when the field has an error shown.
async function ensureDestination() {
  const value = destination.value.trim();
  const [destOwner, destName, ...rest] = value.split("/");
  if (!destOwner || !destName || rest.length) {
    showFieldError(form, "train-destination", "Give the model as owner/name, for example alice/my-classifier.");
    return false;
  }
  try {
    await api(`/v1/models/${encodeURIComponent(destOwner)}/${encodeURIComponent(destName)}`);
    return true;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  try {
    await api("/v1/models", {
      method: "POST",
      body: { owner: destOwner, name: destName, visibility: "private", hardware: model.hardware },
    });
    return true;
  } catch (error) {
    if (!(error instanceof ApiError) || ![403, 422].includes(error.status)) throw error;
    const message = error.status === 403
      ? `There is no model ${value} and you may not create one under ${destOwner}: use one of your own.`
      : `A model name uses lowercase letters, digits, '-', '_' and '.' only.`;
    showFieldError(form, "train-destination", message);
    return false;
  }
}

function showVersion(target, training) {
  const [ref, versionId] = training.output.version.split(":");
  target.replaceChildren(el("p", {}, "New version ", el("code", {}, versionId.slice(0, 12)), " of ",
    el("a", { href: `/${ref}` }, ref), "."));
}

async function train(event) {
  event.preventDefault();
  formError.hidden = true;
  clearFieldErrors(form);
  const button = document.getElementById("train");
  button.disabled = true;
  try {
    if (!(await ensureDestination())) return;
    const input = await upload(readForm(fields, props, "train"));
    const training = await api(`/v1/models/${owner}/${name}/versions/${model.latest_version.id}/trainings`, {
      method: "POST", body: { destination: destination.value.trim(), input },
    });
    await follow(training, view, null, showVersion);
  } catch (error) {
    const shown = error.problem?.invalid_fields && showFieldErrors(form, error.problem, { prefix: "train" });
    if (!shown) showError(formError, error);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  model = await api(`/v1/models/${owner}/${name}`);
  props = buildForm(fields, model.latest_version.openapi_schema, { component: "TrainingInput", prefix: "train" });
  form.addEventListener("submit", train);
}

main().catch((error) => showError(formError, error));
