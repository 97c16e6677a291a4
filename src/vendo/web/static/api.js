// The one way the pages talk to the server: /v1, as any client does. The session
// cookie goes along by itself; the CSRF header proves the request comes from a page
// this server rendered (docs/web.md).
const csrf = document.querySelector('meta[name="vendo-csrf"]')?.content ?? "";
export const baseUrl = document.querySelector('meta[name="vendo-base-url"]')?.content ?? location.origin;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const sent = { "X-CSRF-Token": csrf, ...headers };
  if (body !== undefined && !(body instanceof FormData)) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers: sent, body, credentials: "same-origin" });
  if (response.status === 401) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, { detail: "signed out" });
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw new ApiError(response.status, problem);
  }
  return response.status === 204 ? null : response.json();
}

// el("a", {href: "/x", class: "y"}, "text", child): text always goes in as text
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(2)} s` : "";
}

export function showError(target, error) {
  target.textContent = error instanceof ApiError ? error.message : String(error);
  target.hidden = false;
}

// ARIA tabs: click or arrow keys select a tab and show its panel.
export function tabs(tablist, onSelect = () => {}) {
  const all = [...tablist.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of all) {
      const chosen = other === tab;
      other.setAttribute("aria-selected", String(chosen));
      other.tabIndex = chosen ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !chosen;
    }
    onSelect(tab);
  };
  for (const tab of all) {
    tab.type = "button";
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = all[(all.indexOf(tab) + step + all.length) % all.length];
      next.focus();
      select(next);
    });
  }
}
