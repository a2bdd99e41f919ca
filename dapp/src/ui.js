// Small DOM helpers: elements, tables, status line, and a runner for wallet actions.
import { BaseError, formatUnits } from "viem";
import { decodeRevert, errorCatalog } from "./errors.js";

/** The deployment's custom errors (set once the configuration is loaded). */
let catalog = { abi: [], owner: {} };

/** Decode later reverts against the custom errors of every contract of `config`. */
export function useErrorsOf(config) {
  catalog = errorCatalog(config);
}

/** An element `tag` with attributes `attrs` (on* become listeners) and `children`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A table with `head` columns and `rows` (arrays of cells), or `empty` when there are none. */
export function table(head, rows, empty = "none", attrs = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  // Wide tables scroll inside their own box, never the page (phones are 390 px wide).
  return h("div", { class: "table-wrap" }, h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
  ));
}

/** A section with a heading. */
export function section(title, attrs, ...children) {
  return h("section", attrs, h("h2", {}, title), ...children);
}

/** DIMO wei (decimal string or bigint) as a readable amount. */
export function dimo(wei) {
  const value = Number(formatUnits(BigInt(wei), 18));
  return `${value.toLocaleString("en", { maximumFractionDigits: 4 })} DIMO`;
}

/** A reading's value: numbers to at most 6 significant digits, text as it is. */
export function fmt(value) {
  return typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value);
}

/** A shortened address. */
export function short(address) {
  return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : "-";
}

/** Unix seconds as UTC. */
export function when(seconds) {
  if (!seconds) return "-";
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z").replace("T", " ");
}

/** Tells the user `text`; `kind` is info, ok or error. */
export function status(text, kind = "info") {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = kind;
  el.dataset.kind = kind;
}

/** What went wrong, in words: a contract's error as a sentence, a wallet's or the API's. */
export function explain(err) {
  const revert = decodeRevert(catalog, err);
  if (revert) return revert;
  if (err?.code === 4001 || /user rejected/i.test(err?.message ?? "")) {
    return "You declined it in the wallet.";
  }
  if (err instanceof BaseError) return err.shortMessage || err.message;
  return err?.message ?? String(err);
}

/**
 * Runs `action` (a wallet action) with status messages: `doing` while it runs, `done` (or
 * what it resolves to) after, the reason when it fails. Resolves to the action's result.
 */
export async function run(doing, action, done) {
  // The form this submits, if any: its button's, or the one Enter was pressed in.
  const form = (acting ?? document.activeElement)?.closest("form");
  status(`${doing}…`);
  try {
    const result = await action();
    status(typeof done === "function" ? done(result) : done ?? `${doing}: done`, "ok");
    // Submitted: the next render may show the form's defaults again.
    for (const field of form?.querySelectorAll("[data-edited]") ?? []) {
      delete field.dataset.edited;
    }
    return result;
  } catch (err) {
    console.error(err);
    status(`${doing} failed: ${explain(err)}`, "error");
    return undefined;
  }
}

/** The button whose handler is starting (read by `run` before the handler's first await). */
let acting = null;

/** A button that runs `onClick` and is disabled while it runs. */
export function button(label, onClick, attrs = {}) {
  const el = h("button", {
    type: "button",
    ...attrs,
    onClick: async () => {
      el.disabled = true;
      acting = el;
      try {
        const pending = onClick();
        acting = null;
        await pending;
      } finally {
        acting = null;
        el.disabled = false;
      }
    },
  }, label);
  return el;
}

/** Marks a form field the user has typed in or chosen in (listen on the view's root). */
export function markEdited(event) {
  if (event.target.name) event.target.dataset.edited = "";
}

/** A field's place in a view: its nearest identified ancestor, its name and, for a radio, its
 * value (a vehicle card's `grantee` is not another card's). */
function fieldKey(field) {
  const radio = field.type === "radio" ? `=${field.value}` : "";
  return `${field.parentElement?.closest("[id]")?.id ?? ""}|${field.name}${radio}`;
}

/**
 * Carries the fields the user has edited, and the focus, from the view `from` into its new
 * render `to`: a refresh (after a transaction, as the indexer catches up) must not wipe a form
 * being filled in, nor turn a choice back to its default before it is submitted.
 */
export function keepEdits(from, to) {
  const fields = (root) => {
    const seen = new Map();
    const out = new Map();
    for (const field of root.querySelectorAll("input[name], select[name], textarea[name]")) {
      const key = fieldKey(field);
      const n = seen.get(key) ?? 0;
      seen.set(key, n + 1);
      out.set(`${key}#${n}`, field);
    }
    return out;
  };
  const fresh = fields(to);
  for (const [key, old] of fields(from)) {
    const field = fresh.get(key);
    if (!field || field.tagName !== old.tagName || field.type !== old.type) continue;
    if (old === document.activeElement) {
      // A text field's caret (a select has none; a checkbox's is null).
      const { selectionStart: start, selectionEnd: end } = old;
      queueMicrotask(() => {
        field.focus();
        if (typeof start === "number") field.setSelectionRange(start, end); // typing goes on
      });
    }
    if (!("edited" in old.dataset)) continue;
    if (old.type === "checkbox" || old.type === "radio") field.checked = old.checked;
    else if (field.tagName !== "SELECT" || [...field.options].some((o) => o.value === old.value)) {
      field.value = old.value;
    } else continue;
    field.dataset.edited = "";
  }
}

/** Privilege bits, as `Privileges` (contracts/interfaces/IVehicleRights.sol) numbers them. */
export const PRIVILEGES = [
  ["BATTERY", 1n],
  ["CHARGING", 2n],
  ["ODOMETER", 4n],
  ["DRIVING", 8n],
  ["LOCATION", 16n],
  ["VIN", 32n],
  ["RAW", 64n],
  ["COMMANDS", 128n],
];
