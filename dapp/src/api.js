// The indexer's HTTP API: JSON in and out, the bearer token of the signed-in wallet, and
// RFC 9457 problems turned into `ApiError`s that say what went wrong.

let token = null;
/** Called once when the session cannot be renewed (the page then asks to sign in again). */
let onEnded = () => {};
let renewal = null;

/** An API answer that is not 2xx: `problem` is its RFC 9457 body (type, title, detail). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
}

/** The session ended (token expired and not renewable): not content, a reason to sign in. */
export class SessionEnded extends ApiError {
  constructor() {
    super(401, { title: "Your session ended: sign in again" });
    this.sessionEnded = true;
  }
}

/**
 * Use `value` (or null) as the bearer token of later requests; with `expiresIn` (s) it is
 * renewed with POST /auth/refresh a minute (or a fifth of its life) before it expires.
 */
export function setToken(value, expiresIn = null) {
  token = value;
  clearTimeout(renewal);
  renewal = null;
  if (value && expiresIn) {
    const lead = Math.min(60, expiresIn / 5);
    renewal = setTimeout(() => renew().catch(() => {}), (expiresIn - lead) * 1000);
  }
}

/** Calls `listener` when the session ends for good (renewal refused). */
export function onSessionEnded(listener) {
  onEnded = listener;
}

/** Whether a wallet is signed in. */
export function signedIn() {
  return token !== null;
}

let renewing = null;

/** Trades the token for a fresh one (one request for any number of callers at once). */
function renew() {
  renewing ??= doRenew().finally(() => { renewing = null; });
  return renewing;
}

/** POST /auth/refresh; when refused, ends the session. */
async function doRenew() {
  const reply = await fetch("/auth/refresh", { method: "POST", headers: headers() });
  if (!reply.ok) {
    setToken(null);
    onEnded();
    throw new SessionEnded();
  }
  const fresh = await reply.json();
  setToken(fresh.access_token, fresh.expires_in);
  return fresh;
}

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function problemOf(reply) {
  try {
    return await reply.json();
  } catch {
    return { title: reply.statusText };
  }
}

/** `fetch` with the token; a 401 renews the token once and retries, else ends the session. */
async function send(url, init = {}) {
  const had = token;
  let reply = await fetch(url, { ...init, headers: headers(init.headers) });
  if (reply.status === 401 && had) {
    await renew();
    reply = await fetch(url, { ...init, headers: headers(init.headers) });
  }
  if (!reply.ok) throw new ApiError(reply.status, await problemOf(reply));
  return reply;
}

/** GET `path` with `params` (undefined and null left out); the parsed JSON body. */
export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const url = query.size ? `${path}?${query}` : path;
  return (await send(url)).json();
}

/** POST `body` as JSON to `path`; the parsed JSON body. */
export async function post(path, body) {
  const reply = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return reply.json();
}

/** Every item of a keyset-paginated list (following `next_cursor`), up to `max`. */
export async function all(path, params = {}, max = 500) {
  const items = [];
  let cursor;
  do {
    const page = await get(path, { ...params, cursor, limit: 100 });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** An image route (the apps' PNG charts) as an object URL for an <img>. */
export async function imageUrl(path, params = {}) {
  const query = new URLSearchParams(params);
  const reply = await send(`${path}?${query}`);
  return URL.createObjectURL(await reply.blob());
}
