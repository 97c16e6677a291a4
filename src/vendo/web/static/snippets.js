// The API tab: Python, JavaScript and cURL that run what the form holds, against this
// server's real address.
function python(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (value instanceof File) return `open(${JSON.stringify(value.name)}, "rb")`;
  if (Array.isArray(value)) return `[${value.map((item) => python(item, indent)).join(", ")}]`;
  if (typeof value === "object") {
    const inner = indent + "    ";
    const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${python(v, inner)},`);
    return items.length ? `{\n${items.join("\n")}\n${indent}}` : "{}";
  }
  return JSON.stringify(value);  // a JSON string or number is a Python literal too
}

function jsonable(values) {
  return Object.fromEntries(Object.entries(values).map(([k, v]) =>
    [k, v instanceof File ? `https://example.com/${v.name}` : v]));
}

export function snippets(baseUrl, ref, values, version) {
  const input = python(values, "    ");
  const py = [
    "import os",
    "",
    "import replicate",
    "",
    `client = replicate.Client(api_token=os.environ["REPLICATE_API_TOKEN"], base_url=${JSON.stringify(baseUrl)})`,
    "output = client.run(",
    `    ${JSON.stringify(ref)},`,
    `    input=${input},`,
    ")",
    "print(output)",
    "",
  ].join("\n");
  const js = [
    'import Replicate from "replicate";',
    "",
    `const replicate = new Replicate({ auth: process.env.REPLICATE_API_TOKEN, baseUrl: ${JSON.stringify(baseUrl + "/v1")} });`,
    `const output = await replicate.run(${JSON.stringify(ref)}, {`,
    `  input: ${JSON.stringify(jsonable(values), null, 2).replaceAll("\n", "\n  ")},`,
    "});",
    "console.log(output);",
    "",
  ].join("\n");
  const body = JSON.stringify({ version, input: jsonable(values) }, null, 2).replaceAll("'", "'\\''");
  const curl = [
    "curl -s -X POST \\",
    '  -H "Authorization: Bearer $REPLICATE_API_TOKEN" \\',
    '  -H "Content-Type: application/json" \\',
    '  -H "Prefer: wait" \\',
    `  -d '${body}' \\`,
    `  ${baseUrl}/v1/predictions`,
    "",
  ].join("\n");
  return { python: py, js, curl };
}
