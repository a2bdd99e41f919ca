// Signals in plain words: the label and the unit people read (km, not m; yes/no, not
// true/false), from the table the API serves in /dapp/config.json (protocol/signal_labels.py,
// the same table the API docs list), never a copy of it here.

let catalog = {};

/** Use the signals of `config.signals` (path -> label, units, meaning, value names). */
export function useSignalsOf(config) {
  catalog = config.signals ?? {};
}

/** A label for `path`: the table's, else the path itself (a signal outside the catalog). */
export function label(path) {
  return catalog[path]?.label ?? path;
}

/** The value of `path` with its unit, as people read it. */
export function valueOf(path, value) {
  const row = catalog[path];
  if (!row) return String(value);
  const names = row.value_names ?? {};
  // Booleans may come as 0/1: name them as false/true.
  const flag = typeof value === "number" && names.true !== undefined;
  const key = flag ? String(value !== 0) : String(value);
  if (names[key] !== undefined) return names[key];
  if (typeof value !== "number") return String(value);
  const number = Number((value * row.shown_factor).toPrecision(4)).toLocaleString("en");
  const unit = row.shown_unit;
  if (!unit) return number;
  return `${number}${unit.startsWith("°") || unit === "%" ? "" : " "}${unit}`;
}

/** The label with the value, e.g. "Speed = 42 km/h". */
export function reading(path, value) {
  return `${label(path)} = ${valueOf(path, value)}`;
}

/** What the catalog says `path` is. */
export function meaning(path) {
  return catalog[path]?.description ?? path;
}
