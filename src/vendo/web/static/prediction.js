// A prediction's (or a training's) page: live while it runs (the API shows it to its
// owner only).
import { api, el, showError, when } from "./api.js";
import { follow, runView } from "./output.js";

const meta = document.getElementById("prediction-meta");

async function main() {
  const id = meta.dataset.id;
  // a training's urls.web is this page too: the API keeps the two apart
  const prediction = await api(`/v1/predictions/${encodeURIComponent(id)}`).catch((error) => {
    if (error.status !== 404) throw error;
    return api(`/v1/trainings/${encodeURIComponent(id)}`);
  });
  const [owner, name] = (prediction.model || "").split("/");
  let schema;
  if (owner && name) {
    meta.replaceChildren(el("a", { href: `/${owner}/${name}` }, prediction.model),
      ` · version ${prediction.version.slice(0, 12)} · created ${when(prediction.created_at)} · ${prediction.source || "api"}`);
    const version = await api(`/v1/models/${owner}/${name}/versions/${prediction.version}`).catch(() => null);
    schema = version?.openapi_schema?.components?.schemas?.Output;
  }
  if (prediction.destination) {
    document.querySelector("h1").firstChild.textContent = "Training ";
    meta.append(` · makes a version of ${prediction.destination}`);
  }
  document.getElementById("input").textContent = JSON.stringify(prediction.input, null, 2);
  await follow(prediction, runView(), schema);
}

main().catch((error) => {
  const message = error.status === 404 ? "This prediction does not exist, or it is not yours." : String(error.message);
  showError(meta, new Error(message));
  meta.classList.add("error");
});
