// The indexer's HTTP API: JSON in and out, the bearer token of the signed-in wallet, and
// RFC 9457 problems turned into `ApiError`s that say what went wrong.

let token = null;

/** An API answer that is not 2xx: `problem` is its RFC 9457 body (type, title, detail). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
}

/** Use `value` (or null) as the bearer token of later requests. */
export function setToken(value) {
  token = value;
}

/** Whether a wallet is signed in. */
export function signedIn() {
  return token !== null;
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

/** GET `path` with `params` (undefined and null left out); the parsed JSON body. */
export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const url = query.size ? `${path}?${query}` : path;
  const reply = await fetch(url, { headers: headers() });
  if (!reply.ok) throw new ApiError(reply.status, await problemOf(reply));
  return reply.json();
}

/** POST `body` as JSON to `path`; the parsed JSON body. */
export async function post(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  if (!reply.ok) throw new ApiError(reply.status, await problemOf(reply));
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
  const reply = await fetch(`${path}?${query}`, { headers: headers() });
  if (!reply.ok) throw new ApiError(reply.status, await problemOf(reply));
  return URL.createObjectURL(await reply.blob());
}
