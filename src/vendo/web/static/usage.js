// Your usage over the last 30 days, by model (the API's /v1/usage).
import { api, el, when } from "./api.js";

const body = document.querySelector("#usage tbody");

async function main() {
  const rows = [];
  for (const groupBy of ["model", "deployment"]) {
    const found = await api(`/v1/usage?group_by=${groupBy}`);
    document.getElementById("usage-period").textContent =
      `${found.account}: ${when(found.start)} to ${when(found.end)}, total ${found.total.total_seconds} s, cost ${found.total.cost}`;
    for (const r of found.results) {
      if (groupBy === "deployment" && r.key === null) continue;
      rows.push(el("tr", {}, el("td", {}, groupBy), el("td", {}, r.key ?? ""),
        el("td", {}, String(r.total_seconds)), el("td", {}, String(r.cost))));
    }
  }
  body.replaceChildren(...rows);
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No usage in this period.")));
}

main().catch((error) => body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "error" }, error.message))));
