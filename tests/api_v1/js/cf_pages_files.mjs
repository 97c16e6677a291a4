// Conformance extras for the official `replicate` npm client (1.4.0): follows `next` across
// every page of predictions, and uploads a Buffer through files.create. Prints one JSON line.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.VENDO_JS_DIR, "package.json"));
const Replicate = require("replicate");

const replicate = new Replicate({
  auth: process.env.VENDO_TOKEN,
  baseUrl: `${process.env.VENDO_BASE}/v1`,
});
const results = { pages: 0, ids: [] };

for await (const page of replicate.paginate(replicate.predictions.list)) {
  results.pages += 1;
  for (const prediction of page) results.ids.push(prediction.id);
}

const uploaded = await replicate.files.create(Buffer.from("bytes from js"), { purpose: "cf" });
results.file = uploaded;

console.log(JSON.stringify(results));
