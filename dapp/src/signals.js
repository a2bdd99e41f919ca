// Signals in plain words: a label from the VSS path, the value in the unit people read (km, not
// m; on/off, not 1/0), the unit from the catalog the API serves in /dapp/config.json.

/** Labels people read, for the paths whose last segment alone says too little. */
const LABELS = {
  "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": "Battery charge",
  "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed": "Battery charge (shown)",
  "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy": "Energy in battery",
  "Vehicle.Powertrain.TractionBattery.StateOfHealth": "Battery health",
  "Vehicle.Powertrain.Range": "Range",
  "Vehicle.TraveledDistance": "Odometer",
  "Vehicle.Speed": "Speed",
  "Vehicle.Powertrain.Transmission.SelectedGear": "Selected gear",
  "Vehicle.Powertrain.Transmission.CurrentGear": "Current gear",
  "Vehicle.CurrentLocation.Latitude": "Latitude",
  "Vehicle.CurrentLocation.Longitude": "Longitude",
};
/** Units shown instead of the catalog's, with the conversion. */
const SHOWN = { m: ["km", (v) => v / 1000], W: ["kW", (v) => v / 1000] };
/** Short unit names. */
const UNIT = { percent: "%", celsius: "°C", degrees: "°", "degrees/s": "°/s" };
/** ISO 8579 / VSS gear codes beyond the numbers: 126 park, 127 drive, -1 reverse, 0 neutral. */
const GEARS = { 126: "P (park)", 127: "D (drive)", "-1": "R (reverse)", 0: "N (neutral)" };

let catalog = {};

/** Use the catalog of `config.signals` (path -> unit, description). */
export function useSignalsOf(config) {
  catalog = config.signals ?? {};
}

/** A label for `path`: ours, else its last segments as words. */
export function label(path) {
  if (LABELS[path]) return LABELS[path];
  const parts = path.split(".").slice(1);
  const tail = parts.slice(-2).join(" ");
  return tail.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/^./, (c) => c.toUpperCase());
}

/** The value of `path` with its unit, as people read it. */
export function valueOf(path, value) {
  if (typeof value !== "number") return String(value);
  if (path.endsWith("Gear")) return GEARS[value] ?? String(value);
  const unit = catalog[path]?.unit ?? "";
  if (!unit && (value === 0 || value === 1) && /\.Is[A-Z]/.test(path)) return value ? "yes" : "no";
  const [shown, convert] = SHOWN[unit] ?? [unit, (v) => v];
  const number = Number(convert(value).toPrecision(4)).toLocaleString("en");
  const name = UNIT[shown] ?? shown;
  return name ? `${number}${name.startsWith("°") || name === "%" ? "" : " "}${name}` : number;
}

/** What the catalog says `path` is. */
export function meaning(path) {
  return catalog[path]?.description ?? path;
}
