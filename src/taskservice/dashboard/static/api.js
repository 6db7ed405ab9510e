// The Connect client of the dashboard: unary JSON calls and the WatchEvents stream, same origin.

const SERVICE = "/cloud.v1.TaskManagementService";
export const AUTH_SERVICE = "/cloud.v1.AuthService";
const CALL_TIMEOUT_MS = 15000;
// Task ids are 64-bit: the page reads and sends the `...64` twin of every int32 id field and says so
// (proto/cloud/v1/task.proto). JSON carries int64 as a string; ids stay exact Numbers up to 2^53.
const HEADERS = { "Connect-Protocol-Version": "1", "Task-Id-Width": "64" };
const TWINS = { id: "id64", taskId: "taskId64", ids: "ids64" };
// The original's status fields show RETRYING as QUEUED and CANCELLED as FAILED, for its clients; the
// page reads the exact twins instead (proto/cloud/v1/task.proto, "Statuses").
const EXACT = { status: "exactStatus", statusCounts: "exactStatusCounts" };
const USER_DATA = new Set(["payload", "result"]); // what a user wrote: never rewritten

/** The request with every id in its 64-bit twin: `{id: 7}` is sent as `{id64: "7"}`. */
function widenRequest(request) {
  const out = { ...request };
  for (const [narrow, wide] of Object.entries(TWINS)) {
    if (typeof out[narrow] === "number") {
      out[wide] = String(out[narrow]);
      delete out[narrow];
    }
  }
  return out;
}

/** The response with every id read from its 64-bit twin (`id` from `id64`) and every status from its
 * exact twin (`status` from `exactStatus`), however deep. */
export function widen(value) {
  if (Array.isArray(value)) return value.map(widen);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [key, item] of Object.entries(value)) out[key] = USER_DATA.has(key) ? item : widen(item);
  for (const [narrow, wide] of Object.entries(TWINS)) {
    if (wide in out) {
      out[narrow] = Array.isArray(out[wide]) ? out[wide].map(Number) : Number(out[wide]);
      delete out[wide];
    }
  }
  for (const [original, exact] of Object.entries(EXACT)) {
    if (exact in out) {
      out[original] = out[exact];
      delete out[exact];
    }
  }
  return out;
}

/** A failed call: `code` is the Connect code, `field` the request field a validation message names. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
    // Validation messages start with the field path: "name: ...", "payload.parameters['k']: ...".
    const match = /^([A-Za-z_][\w.]*(?:\[[^\]]*\])?):\s/.exec(message);
    this.field = code === "invalid_argument" && match ? match[1] : "";
  }
}

/** A unary call: `call("ListTasks", {limit: 20})` resolves to the response message. */
export async function call(method, request = {}, service = SERVICE) {
  let response, text;
  try {
    response = await fetch(`${service}/${method}`, {
      method: "POST",
      headers: { ...HEADERS, "Content-Type": "application/json" },
      body: JSON.stringify(widenRequest(request)),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS), // a hung server must not hang the page
    });
    text = await response.text();
  } catch (error) {
    const late = error.name === "TimeoutError";
    throw new ApiError("unavailable", late ? `The server did not answer ${method} in time.` : "The server cannot be reached; check that it is running.");
  }
  let body = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { message: text };
  }
  if (!response.ok) {
    throw new ApiError(body.code || "unknown", body.message || `HTTP ${response.status}`);
  }
  return widen(body);
}

// Connect streaming envelopes: 1 flag byte, a 4-byte big-endian length, then the message.
const END_STREAM = 0x02;

function envelope(json) {
  const data = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + data.length);
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** Yields [flag, message] for each envelope of a response body, across chunk boundaries. */
export async function* envelopes(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = new Uint8Array(0);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      while (buffer.length >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.length < 5 + length) break;
        const message = JSON.parse(decoder.decode(buffer.subarray(5, 5 + length)));
        yield [buffer[0], message];
        buffer = buffer.slice(5 + length);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Streams WatchEvents until `signal` aborts: `onEvent(event)` for each TaskEvent, `onAlive()` for every
 * envelope (keep-alives included). Resolves when the stream ends; rejects with ApiError when it fails.
 */
export async function watchEvents({ signal, onEvent, onAlive }) {
  const response = await fetch(`${SERVICE}/WatchEvents`, {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/connect+json" },
    body: envelope({}),
    signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(body.code || "unknown", body.message || `HTTP ${response.status}`);
  }
  for await (const [flag, message] of envelopes(response.body)) {
    onAlive();
    if (flag & END_STREAM) {
      if (message.error) throw new ApiError(message.error.code, message.error.message || "stream ended");
      return;
    }
    if (!message.keepalive) onEvent(widen(message));
  }
}
