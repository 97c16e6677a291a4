// Drives the official `replicate` JavaScript client (npm 1.4.0) against a Vendo server.
// Used by tests/streaming/test_clients.py and bench/stream_bench.py:
//
//   node stream.mjs <mode> <baseUrl ending in /v1> <token> <ref owner/name:version> <input JSON> [n]
//
// modes: "stream"  replicate.stream() from creation to done
//        "late"    create, wait for the prediction to finish, then open urls.stream
//        "resume"  read n events, drop the connection, reconnect with Last-Event-ID
// Prints one JSON object: {id, parts: [[{event, data, id, at}], ...]} (at: ms since epoch).
import { createRequire } from "node:module";
import Replicate from "replicate";

const require = createRequire(import.meta.url);
const { createReadableStream } = require("replicate/lib/stream");

const [mode, baseUrl, auth, ref, inputJson, nText] = process.argv.slice(2);
const input = JSON.parse(inputJson);
const replicate = new Replicate({ auth, baseUrl });
const version = ref.split(":")[1];

function record(event) {
  return { event: event.event, data: String(event.data), id: event.id, at: performance.timeOrigin + performance.now() };
}

async function collect(stream, limit) {
  const events = [];
  for await (const event of stream) {
    events.push(record(event));
    if (limit && events.length >= limit) break;
  }
  return events;
}

function open(url, headers = {}, signal = undefined) {
  return createReadableStream({ url, fetch: globalThis.fetch, options: { headers, signal } });
}

let result;
if (mode === "stream") {
  const events = await collect(replicate.stream(ref, { input }));
  result = { id: null, parts: [events] };
} else if (mode === "late") {
  let prediction = await replicate.predictions.create({ version, input });
  prediction = await replicate.wait(prediction, { interval: 100 });
  const events = await collect(open(prediction.urls.stream));
  result = { id: prediction.id, status: prediction.status, parts: [events] };
} else if (mode === "resume") {
  const prediction = await replicate.predictions.create({ version, input });
  const abort = new AbortController();
  const first = await collect(open(prediction.urls.stream, {}, abort.signal), Number(nText || 2));
  abort.abort(); // really drop the first connection
  const last = first[first.length - 1].id;
  const rest = await collect(open(prediction.urls.stream, { "Last-Event-ID": last }));
  result = { id: prediction.id, parts: [first, rest] };
} else {
  throw new Error(`unknown mode ${mode}`);
}
// an abandoned stream may hold the connection open: exit once the answer is out
process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
