// Drives the official `replicate` npm client (1.4.0, installed under tests/js) against a
// live Vendo server. Arguments come from the environment; prints one JSON result line.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.VENDO_JS_DIR, "package.json"));
const Replicate = require("replicate");

const replicate = new Replicate({
  auth: process.env.VENDO_TOKEN,
  baseUrl: `${process.env.VENDO_BASE}/v1`,
});
const versions = JSON.parse(process.env.VENDO_VERSIONS);
const results = {};

results.byModel = await replicate.run("admin/echo", { input: { text: "js model" } });
results.byVersion = await replicate.run(`admin/echo:${versions.echo}`, {
  input: { text: "js version" },
});

const file = await replicate.run(`admin/files:${versions.files}`, {
  input: { document: Buffer.from("bytes from js") },
});
results.fileIsFileOutput = typeof file.blob === "function";
results.fileText = await (await file.blob()).text();

const streamed = [];
for await (const event of replicate.stream(`admin/stream:${versions.stream}`, {
  input: { count: 3 },
})) {
  if (event.event === "output") streamed.push(event.data);
}
results.stream = streamed;

let pages = 0;
let seen = 0;
for await (const page of replicate.paginate(replicate.predictions.list)) {
  pages += 1;
  seen += page.length;
}
results.listed = seen;
results.search = (await replicate.models.search("echo")).results.map((m) => m.name);

console.log(JSON.stringify(results));
