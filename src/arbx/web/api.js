// The API client: base URL, bearer token, JSON requests whose refusals become ApiError, and the
// server-sent event stream (read through fetch, so the token travels in a header, not the URL).

const TOKEN_KEY = "arbx.token";
const API_KEY = "arbx.api";

/** A request the API refused (HTTP status >= 400) or that never reached it (status 0). */
export class ApiError extends Error {
  constructor(status, detail, path) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

/**
 * The API base URL: `?api=` (kept for the session), else the one chosen earlier in the session,
 * else `api` of config.js (`window.ARBX_CONFIG`: written where the files are served), else the
 * origin the page came from.
 */
export function resolveApiBase(
  location = window.location,
  storage = window.sessionStorage,
  config = window.ARBX_CONFIG,
) {
  const fromQuery = cleanBase(new URLSearchParams(location.search).get("api"));
  if (fromQuery) {
    storage.setItem(API_KEY, fromQuery);
    return fromQuery;
  }
  const stored = storage.getItem(API_KEY);
  if (stored) return stored;
  const configured = cleanBase(config && typeof config.api === "string" ? config.api : null);
  if (configured) return configured;
  return location.origin; // served by the API itself, which mounts the dashboard at /
}

/** An http(s) base URL without a trailing slash, or null for anything else. */
export function cleanBase(text) {
  if (!text) return null;
  try {
    const url = new URL(text.trim());
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
  } catch {
    return null;
  }
}

/** The text of an error body: FastAPI's {"detail": "..."} (or its list of field errors). */
export function errorDetail(body, fallback) {
  if (body && typeof body === "object" && "detail" in body) {
    const { detail } = body;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
          return where ? `${where}: ${d.msg}` : String(d.msg ?? JSON.stringify(d));
        })
        .join("; ");
    }
    return JSON.stringify(detail);
  }
  return fallback;
}

export class Api {
  constructor(base, storage = window.sessionStorage) {
    this.base = base;
    this.storage = storage;
    this.onError = () => {};
  }

  get token() {
    return this.storage.getItem(TOKEN_KEY) || "";
  }

  set token(value) {
    if (value) this.storage.setItem(TOKEN_KEY, value);
    else this.storage.removeItem(TOKEN_KEY);
  }

  url(path, params) {
    const url = new URL(this.base + path);
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    return url.toString();
  }

  headers(extra) {
    const headers = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  /** A JSON request; resolves to the body, rejects with ApiError (also given to onError). */
  async request(method, path, { params, body, quiet = false } = {}) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.url(path, params), init);
    } catch (exc) {
      const error = new ApiError(0, `cannot reach the API at ${this.base} (${exc.message})`, path);
      if (!quiet) this.onError(error, method);
      throw error;
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const fallback = `${response.status} ${response.statusText || "error"}`;
      const error = new ApiError(response.status, errorDetail(data, fallback), path);
      if (!quiet) this.onError(error, method);
      throw error;
    }
    return data;
  }

  get(path, params, options) {
    return this.request("GET", path, { params, ...options });
  }

  put(path, body) {
    return this.request("PUT", path, { body });
  }

  post(path, body) {
    return this.request("POST", path, { body: body ?? {} });
  }

  /** Follow the event stream until `signal` aborts; reconnects with backoff. */
  stream(path, { onEvent, onState, signal }) {
    let delay = 500;
    const run = async () => {
      while (!signal.aborted) {
        onState("connecting");
        try {
          const response = await fetch(this.url(path), {
            headers: this.headers({ Accept: "text/event-stream" }),
            cache: "no-store",
            signal,
          });
          if (!response.ok || !response.body) {
            let data = null;
            try {
              data = await response.json();
            } catch {
              data = null;
            }
            const detail = errorDetail(data, `${response.status} ${response.statusText}`);
            const error = new ApiError(response.status, detail, path);
            onState("refused", error);
            if (response.status === 401 || response.status === 403) return;
          } else {
            onState("live");
            delay = 500;
            await readEvents(response.body, onEvent);
            onState("connecting");
          }
        } catch (exc) {
          if (signal.aborted) return;
          onState("offline", exc);
        }
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 10_000);
      }
    };
    run();
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event) onEvent(event);
    }
  }
}

/** One SSE block ("event: x\ndata: {...}") as {type, id, data}; null for comments/keep-alives. */
export function parseEvent(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (data.length === 0) return null;
  const text = data.join("\n");
  try {
    return { type, id, data: JSON.parse(text) };
  } catch {
    return { type, id, data: text };
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
