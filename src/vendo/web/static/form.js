// The playground's form, generated from a version's input schema (in x-order).
import { api, el } from "./api.js";

function resolve(schema, document) {
  // Cog puts choices behind allOf: [{$ref: "#/components/schemas/<name>"}]
  const ref = schema.allOf?.[0]?.$ref ?? schema.$ref;
  if (!ref) return schema;
  const target = ref.split("/").slice(1).reduce((node, key) => node?.[key], document);
  return { ...target, ...schema, allOf: undefined };
}

function control(name, prop, id) {
  const described = prop.description ? `${id}-desc ${id}-error` : `${id}-error`;
  const common = { id, name, "aria-describedby": described };
  if (prop.enum) {
    return el("select", common, prop.enum.map((choice) =>
      el("option", { value: JSON.stringify(choice), selected: choice === prop.default }, String(choice))));
  }
  if (prop.type === "boolean") {
    return el("input", { ...common, type: "checkbox", checked: prop.default === true });
  }
  if (prop.type === "integer" || prop.type === "number") {
    const step = prop.type === "integer" ? "1" : "any";
    return el("input", {
      ...common, type: "number", step, min: prop.minimum, max: prop.maximum,
      value: prop.default ?? "", inputmode: prop.type === "integer" ? "numeric" : "decimal",
    });
  }
  if (prop.type === "string" && prop.format === "password") {
    return el("input", { ...common, type: "password", autocomplete: "off", value: "" });
  }
  if (prop.type === "string" && prop.format !== "uri") {
    const long = /prompt|text|message|instruction/i.test(name) || String(prop.default ?? "").length > 60;
    return long
      ? el("textarea", { ...common, rows: 3 }, prop.default ?? "")
      : el("input", { ...common, type: "text", value: prop.default ?? "" });
  }
  if (prop.type === "string") {  // a file: upload it, or give its URL
    return el("input", { ...common, type: "url", placeholder: "https://… or upload a file below", value: prop.default ?? "" });
  }
  return el("textarea", { ...common, rows: 3, class: "code" },
    prop.default === undefined ? "" : JSON.stringify(prop.default, null, 2));
}

function field(name, prop, required, prefix) {
  const id = `${prefix}-${name}`;
  const input = control(name, prop, id);
  const parts = [el("label", { for: id }, name), required ? el("span", { class: "req" }, " (required)") : null];
  const wrap = el("div", { class: `field field-${prop.type ?? "json"}`, "data-name": name });
  wrap.append(el("div", { class: "label-row" }, parts));
  if (prop.type === "boolean") wrap.classList.add("check");
  wrap.append(input);
  if ((prop.type === "integer" || prop.type === "number") && prop.minimum !== undefined && prop.maximum !== undefined) {
    const slider = el("input", {
      type: "range", min: prop.minimum, max: prop.maximum, value: prop.default ?? prop.minimum,
      step: prop.type === "integer" ? "1" : String((prop.maximum - prop.minimum) / 100),
      "aria-label": `${name} (slider)`, tabindex: "-1",
    });
    slider.addEventListener("input", () => { input.value = slider.value; input.dispatchEvent(new Event("input", { bubbles: true })); });
    input.addEventListener("input", () => { slider.value = input.value; });
    wrap.append(slider);
  }
  if (prop.type === "string" && prop.format === "uri") {
    wrap.append(el("label", { for: `${id}-file`, class: "sub" }, `Upload a file for ${name}`),
      el("input", { id: `${id}-file`, type: "file", "data-file-for": name }));
  }
  if (prop.description) wrap.append(el("p", { id: `${id}-desc`, class: "desc" }, prop.description));
  wrap.append(el("p", { class: "error field-error", id: `${id}-error`, hidden: true }));
  return wrap;
}

// `component`: "Input" (the playground) or "TrainingInput" (the Train tab); the fields'
// ids are `${prefix}-${name}`, so that two forms can share a page
export function buildForm(container, openapi, { component = "Input", prefix = "input" } = {}) {
  const input = openapi?.components?.schemas?.[component] ?? { properties: {} };
  const required = new Set(input.required ?? []);
  const props = Object.entries(input.properties ?? {})
    .map(([name, prop]) => [name, resolve(prop, openapi)])
    .sort(([, a], [, b]) => (a["x-order"] ?? 0) - (b["x-order"] ?? 0));
  container.replaceChildren(...props.map(([name, prop]) => field(name, prop, required.has(name), prefix)));
  if (!props.length) container.append(el("p", { class: "muted" }, "This model takes no input."));
  return new Map(props);
}

// The form's values as the API takes them; files stay File objects (see upload)
export function readForm(container, props, prefix = "input") {
  const values = {};
  for (const [name, prop] of props) {
    const input = container.querySelector(`#${prefix}-${CSS.escape(name)}`);
    const file = container.querySelector(`[data-file-for="${CSS.escape(name)}"]`)?.files?.[0];
    if (file) { values[name] = file; continue; }
    if (prop.enum) { values[name] = JSON.parse(input.value); continue; }
    if (prop.type === "boolean") { values[name] = input.checked; continue; }
    const raw = input.value;
    if (raw === "") continue;  // left empty: the model's default applies
    if (prop.type === "integer" || prop.type === "number") values[name] = Number(raw);
    else if (prop.type === "string") values[name] = raw;
    else {
      try { values[name] = JSON.parse(raw); } catch { values[name] = raw; }
    }
  }
  return values;
}

export async function upload(values) {
  const sent = {};
  for (const [name, value] of Object.entries(values)) {
    if (value instanceof File) {
      const body = new FormData();
      body.append("content", value, value.name);
      const file = await api("/v1/files", { method: "POST", body });
      sent[name] = file.urls.get;
    } else sent[name] = value;
  }
  return sent;
}

// Each of the API's invalid_fields next to its field (`#${prefix}-${name}-error`), in
// the words `say(invalid)` gives (the API's own description when it gives none); the
// first such field gets the focus. The fields shown: whether any was.
export function showFieldErrors(container, problem, { prefix = "input", say = () => null } = {}) {
  clearFieldErrors(container);
  let first = null;
  for (const invalid of problem.invalid_fields ?? []) {
    const name = String(invalid.field).replace(/^input\./, "");
    const target = container.querySelector(`#${prefix}-${CSS.escape(name)}-error`);
    if (!target) continue;
    target.textContent = say(invalid) ?? invalid.description;
    target.hidden = false;
    const input = container.querySelector(`#${prefix}-${CSS.escape(name)}`);
    input?.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  first?.focus();
  return first !== null;
}

export function clearFieldErrors(container) {
  for (const node of container.querySelectorAll(".field-error")) node.hidden = true;
  for (const node of container.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// Puts one message next to a field by hand (an error the API gives without a field)
export function showFieldError(container, id, message) {
  const target = container.querySelector(`#${id}-error`);
  target.textContent = message;
  target.hidden = false;
  const input = container.querySelector(`#${id}`);
  input.setAttribute("aria-invalid", "true");
  input.focus();
}
