// The public HTTP API, as the console calls it: the key from session storage as a Bearer token, errors as ApiError.

const KEY_STORAGE = "lightguard.key";

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** An error answer of the API: `{"error", "detail", "field"?}` plus its status, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, detail, field, body) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.field = field || null;
    this.body = body || null; // the whole error body (a 409 of a rebuild names the running build: `build_id`)
  }
}

function headers(extra, key) {
  const out = { Accept: "application/json", ...extra };
  const token = key === undefined ? storedKey() : key;
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

async function send(method, path, body, key) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }, key) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, "network", `the server did not answer (${exc.message}); is lightguard still running?`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  if (body && typeof body.detail === "string") {
    return new ApiError(response.status, body.error || "error", body.detail, body.field, body);
  }
  return new ApiError(response.status, "http_error", `the server answered ${response.status} ${response.statusText}`);
}

/** JSON of `method path` (null for 204); throws ApiError. `key` overrides the stored key (sign-in checks). */
export async function api(method, path, body, key) {
  const response = await send(method, path, body, key);
  return response.status === 204 ? null : response.json();
}

/** The body of a download (export) as a Blob with its suggested file name. */
export async function download(path) {
  const response = await send("GET", path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return { blob: await response.blob(), filename: match ? match[1] : "export" };
}

/** A query string of the non-empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
