// Owners: vehicles and devices, pairing, latest signals with proofs, grants, data products,
// rewards and licence revenue, the vehicle's grid region, and the four applications with their
// charts.
import { getAddress, isAddress } from "viem";
import { all, get, imageUrl } from "../api.js";
import { energyChart } from "../charts.js";
import { declaredRegion, declareRegion } from "../region.js";
import { label, meaning, reading, valueOf } from "../signals.js";
import {
  button, dimo, fmt, h, keepEdits, PRIVILEGES, run, section, short, table, when,
} from "../ui.js";

const DAY = 86_400;
/**
 * The applications: label, JSON route, PNG chart route (under /apps) by vehicle id, and the
 * chart's window in days: the insurance chart spans at most one day (the API's MAX_CHART_MS).
 */
const APPS = [
  ["Battery", (id) => `/apps/battery/${id}`, (id) => `/apps/battery/${id}/chart.png`, 30],
  ["Finance", (id) => `/apps/finance/${id}`, (id) => `/apps/finance/${id}/chart.png`, 30],
  ["Insurance", (id) => `/apps/insurance/${id}/score`, (id) => `/apps/insurance/${id}/chart.png`,
    1],
  ["Energy", (id) => `/apps/energy/${id}/sessions`, null, 30],
];

/** Output panels (a proof, an app's answer) by vehicle, kept open across re-renders. */
const panels = new Map();

function panel(key, cls) {
  if (!panels.has(key)) panels.set(key, h("div", { class: cls }));
  return panels.get(key);
}

const SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current";
const RANGE = "Vehicle.Powertrain.Range";

/** The rendered view: its cards by vehicle id, with the data each was drawn from. */
const live = { root: null, cards: new Map(), ctx: null };

/**
 * Renders the owner's view into `root`: one request for the whole fleet (`/overview`), the
 * products and epochs, and the chain's clock. Cards are collapsed to a summary line; opening
 * one draws it from the same answer.
 */
export async function renderOwner(root, ctx) {
  const data = await load(ctx);
  live.root = root;
  live.cards = new Map();
  live.ctx = { ...ctx, refresh: () => updateSoon() };
  const { overview } = data;
  root.append(
    overviewPart(overview, data.open),
    section("My devices", { id: "devices" },
      table(
        ["device", "maker", "vehicle", "paired since", "pairings"],
        overview.devices.map((d) => [
          h("code", { title: d.address }, short(d.address)),
          d.manufacturer ?? d.manufacturer_id,
          d.vehicle_id ?? "-",
          d.vehicle_id ? when(d.paired_since) : "not paired",
          d.pairings_count,
        ]),
        "No devices: a device maker mints one, you claim it and pair it with a vehicle.",
      )),
  );
  const list = h("div", { id: "vehicles" },
    h("h2", {}, `My vehicles (${overview.vehicles.length})`));
  if (!overview.vehicles.length) {
    list.append(h("p", { class: "empty" },
      "No vehicles: this account owns none. Under `make run`, dev accounts #2-#4 own the fleet."));
  }
  root.append(list);
  for (const entry of overview.vehicles) {
    const card = vehicleCard(entry, data);
    live.cards.set(entry.vehicle.id, { card, key: keyOf(entry, data) });
    list.append(card);
  }
}

async function load(ctx) {
  const [overview, products, epochs, chainNow] = await Promise.all([
    get("/overview"),
    all("/products"),
    all("/rewards/epochs"),
    ctx.session.now(),
  ]);
  // Claims open by the chain's clock (the contract's), which may run ahead of the API's.
  const open = new Set(epochs
    .filter((e) => e.status === "posted" && chainNow >= e.claimable_at)
    .map((e) => e.epoch));
  return { overview, products, open, chainNow };
}

function keyOf(entry, data) {
  return JSON.stringify([entry, data.products, [...data.open]]);
}

let pending = [];

/** After a transaction: fetch the overview as the indexer catches up, redraw changed cards. */
function updateSoon() {
  for (const t of pending) clearTimeout(t);
  pending = [0, 1500, 4000].map((ms) => setTimeout(update, ms));
}

async function update() {
  if (!live.root?.isConnected) return;
  let data;
  try {
    data = await load(live.ctx);
  } catch {
    return; // the next refresh or the session handler says what is wrong
  }
  for (const entry of data.overview.vehicles) {
    const known = live.cards.get(entry.vehicle.id);
    const key = keyOf(entry, data);
    if (!known || known.key === key) continue;
    const card = vehicleCard(entry, data);
    keepEdits(known.card, card); // a grant or region being typed in this card stays
    known.card.replaceWith(card);
    live.cards.set(entry.vehicle.id, { card, key });
  }
  const summary = live.root.querySelector("#overview");
  if (summary) summary.replaceWith(overviewPart(data.overview, data.open));
}

/** The whole fleet at a glance: totals over the vehicles. */
function overviewPart(overview, open) {
  const vehicles = overview.vehicles;
  let rewards = 0n;
  let claimable = 0;
  for (const v of vehicles) {
    for (const r of v.rewards) {
      rewards += BigInt(r.amount);
      if (!r.claimed && open.has(r.epoch) && BigInt(r.amount) > 0n) claimable += 1;
    }
  }
  const granted = vehicles.reduce((n, v) => n + v.grants.filter((g) => g.live).length, 0);
  const optedIn = vehicles.reduce((n, v) => n + v.opt_ins.length, 0);
  const reporting = vehicles.filter((v) => v.latest.values.length).length;
  return section("Overview", { id: "overview" },
    h("dl", { class: "totals" },
      h("dt", {}, "Vehicles"), h("dd", {}, `${vehicles.length} (${reporting} reporting)`),
      h("dt", {}, "Rewards earned"), h("dd", {}, `${dimo(rewards)}${claimable
        ? `, ${claimable} claim(s) open` : ""}`),
      h("dt", {}, "Who may read"), h("dd", {}, `${granted} live grant(s), ${optedIn} product ` +
        "opt-in(s)")));
}

function latestOf(entry, path) {
  return entry.latest.values.find((v) => v.signal === path);
}

/** The summary line of a collapsed card: SoC, range, last seen, rights, rewards. */
function summaryLine(entry, open) {
  const soc = latestOf(entry, SOC);
  const range = latestOf(entry, RANGE);
  const seen = entry.latest.values.reduce((t, v) => Math.max(t, v.t), 0);
  const grants = entry.grants.filter((g) => g.live).length;
  let earned = 0n;
  let claimable = 0;
  for (const r of entry.rewards) {
    earned += BigInt(r.amount);
    if (!r.claimed && open.has(r.epoch) && BigInt(r.amount) > 0n) claimable += 1;
  }
  return [
    soc ? `${valueOf(SOC, soc.value)} charged` : "charge unknown",
    range ? `${valueOf(RANGE, range.value)} range` : null,
    seen ? `seen ${ago(seen)}` : "no readings yet",
    `${grants} grant(s), ${entry.opt_ins.length} product(s)`,
    `${dimo(earned)} rewards${claimable ? " (claimable)" : ""}`,
  ].filter(Boolean).join(" · ");
}

/** How long ago unix ms `t` was, in words. */
function ago(t) {
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 90) return "just now";
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

/** A vehicle's card: collapsed (`<details>`) with a summary line; its parts drawn when opened. */
/** Ids of the cards the owner opened, kept open across renders. */
const opened = new Set();

function vehicleCard(entry, data) {
  const { vehicle } = entry;
  const id = vehicle.id;
  const card = h("details", { class: "vehicle", id: `vehicle-${id}`, "data-vehicle": id },
    h("summary", {},
      h("h3", {}, `#${id} ${vehicle.make} ${vehicle.model} ${vehicle.year}`),
      h("span", { class: "summary-line" }, summaryLine(entry, data.open))));
  let drawn = false;
  const draw = () => {
    if (drawn) return;
    drawn = true;
    const latest = entry.latest;
    card.append(
      h("p", { class: "pairing" }, vehicle.device
        ? ["Paired with device ", h("code", {}, vehicle.device)]
        : "No device paired: pair one to send readings."),
      signalsPart(vehicle, latest, live.ctx),
      grantsPart(vehicle, entry.grants, live.ctx),
      productsPart(vehicle, data.products, entry.opt_ins, live.ctx),
      rewardsPart(vehicle, entry.rewards, data.open, live.ctx),
      revenuePart(vehicle, entry.revenue, live.ctx),
      regionPart(vehicle, live.ctx),
      appsPart(vehicle, latest),
    );
  };
  card.addEventListener("toggle", () => {
    if (card.open) {
      opened.add(id);
      draw();
    } else {
      opened.delete(id);
    }
  });
  if (opened.has(id)) {
    card.open = true;
    draw();
  }
  return card;
}

function signalsPart(vehicle, latest, ctx) {
  const part = h("div", { class: "signals" }, h("h4", {}, "Latest signals"));
  const proofBox = panel(`proof-${vehicle.id}`, "proof");
  part.append(
    table(
      ["signal", "value", "time (UTC)", ""],
      latest.values.map((v) => [
        h("span", { title: `${v.signal}: ${meaning(v.signal)}` }, label(v.signal)),
        valueOf(v.signal, v.value),
        when(v.t / 1000),
        button("Proof", () => showProof(vehicle.id, v, proofBox, ctx), {
          class: "small", "data-signal": v.signal, "aria-label": `Proof of ${label(v.signal)}`,
        }),
      ]),
      latest.withheld.length
        ? "No readings you may read yet."
        : "No readings yet: the vehicle's device has sent nothing that is anchored.",
      { class: "latest" },
    ),
    proofBox,
  );
  return part;
}

/** Fetches a reading's proof and checks it with AttestationAnchor.verifyReading on-chain. */
async function showProof(vehicleId, value, box, ctx) {
  // The status lines name the signal in words with its unit; the VSS path is the tooltip.
  const named = reading(value.signal, value.value);
  const proof = await run(`Checking the proof of ${named}`, async () => {
    const p = await get(`/vehicles/${vehicleId}/signals/${value.signal}/readings/${value.t}/proof`);
    const leaf = {
      device: p.leaf.device,
      vehicleId: BigInt(p.leaf.vehicle_id),
      sequence: BigInt(p.leaf.sequence),
      windowStart: BigInt(p.leaf.window_start),
      windowEnd: BigInt(p.leaf.window_end),
      dataHash: p.leaf.data_hash,
      signatureHash: p.leaf.signature_hash,
    };
    p.verified = await ctx.session.read("AttestationAnchor", "verifyReading",
      [BigInt(p.batch.id), leaf, p.proof]);
    return p;
  }, (p) => (p.verified ? `The proof verifies on-chain: ${named}`
    : `The proof does NOT verify: ${named}`));
  if (!proof) return;
  box.replaceChildren(
    h("p", {
      class: proof.verified ? "ok" : "error",
      "data-verified": String(proof.verified),
      "data-signal": value.signal,
      title: value.signal,
    }, proof.verified
      ? `${named}: verifyReading returned true`
      : `${named}: verifyReading returned false`),
    h("dl", {},
      h("dt", {}, "batch"), h("dd", {}, `${proof.batch.id} (root ${proof.batch.root})`),
      h("dt", {}, "CID"), h("dd", {}, proof.batch.cid),
      h("dt", {}, "anchoring tx"), h("dd", {}, h("code", {}, proof.batch.tx_hash)),
      h("dt", {}, "leaf"), h("dd", {}, `${proof.leaf_index} of the batch, sequence ${proof.leaf.sequence}`),
      h("dt", {}, "device signature"), h("dd", {}, h("code", {}, short(proof.signature))),
      h("dt", {}, "Merkle path"), h("dd", {}, `${proof.proof.length} hashes`)),
  );
}

function privilegeBoxes(prefix) {
  return h("span", { class: "scopes" }, PRIVILEGES.map(([name, bit]) =>
    h("label", {}, h("input", { type: "checkbox", name: `${prefix}-${name}`, value: bit }), name)));
}

function grantsPart(vehicle, grants, ctx) {
  const id = vehicle.id;
  const live = grants.filter((g) => g.live);
  const grantee = h("input", { name: "grantee", placeholder: "grantee 0x…", size: 44,
    "aria-label": `grantee of vehicle #${id} (address)` });
  const days = h("input", { name: "days", type: "number", min: 1, value: 30, size: 4 });
  const scopes = privilegeBoxes(`grant-${id}`);
  const grant = async () => {
    await run(`Granting on vehicle #${id}`, async () => {
      if (!isAddress(grantee.value.trim())) throw new Error("the grantee is not an address");
      let mask = 0n;
      for (const box of scopes.querySelectorAll("input:checked")) mask |= BigInt(box.value);
      if (!mask) throw new Error("choose at least one scope");
      const expiry = BigInt((await ctx.session.now()) + Number(days.value) * DAY);
      return ctx.session.write("VehicleRights", "grant",
        [BigInt(id), getAddress(grantee.value.trim()), mask, expiry, "0x"]);
    }, "Granted");
    ctx.refresh();
  };
  return h("div", { class: "grants" },
    h("h4", {}, "Who may read it"),
    table(
      ["grantee", "scopes", "expires (UTC)", ""],
      live.map((g) => [
        h("code", { title: g.grantee }, g.grantee),
        g.privileges.join(", "),
        when(g.expiry),
        button("Revoke", async () => {
          await run(`Revoking ${short(g.grantee)}`,
            () => ctx.session.write("VehicleRights", "revoke", [BigInt(id), g.grantee]),
            "Revoked");
          ctx.refresh();
        }, { class: "small" }),
      ]),
      "No live grants.",
      { class: "grant-list" },
    ),
    h("form", { class: "grant-form", onSubmit: (e) => e.preventDefault() },
      grantee, scopes, h("label", {}, "days ", days), button("Grant", grant)));
}

function productsPart(vehicle, products, optIns, ctx) {
  const id = vehicle.id;
  const active = new Set(optIns.filter((o) => o.active).map((o) => o.product_id));
  return h("div", { class: "products" },
    h("h4", {}, "Data products"),
    table(
      ["product", "scopes", "price / period", "vehicles", ""],
      products.map((p) => {
        const on = active.has(p.id);
        return [
          `#${p.id}`,
          p.privileges.join(", "),
          `${dimo(p.price_per_period)} / ${p.period_seconds / DAY} d`,
          p.vehicles_opted_in,
          button(on ? "Opt out" : "Opt in", async () => {
            await run(`${on ? "Opting out of" : "Opting in to"} product #${p.id}`,
              () => ctx.session.write("DataMarket", on ? "optOut" : "optIn",
                [BigInt(id), BigInt(p.id)]), on ? "Opted out" : "Opted in");
            ctx.refresh();
          }, { class: "small", "data-product": p.id }),
        ];
      }),
      "No products listed.",
    ));
}

function rewardsPart(vehicle, rewards, open, ctx) {
  const id = vehicle.id;
  return h("div", { class: "rewards" },
    h("h4", {}, "Rewards"),
    table(
      ["epoch", "points", "amount", "state", ""],
      rewards.map((r) => [
        r.epoch,
        r.points,
        dimo(r.amount),
        r.claimed ? `claimed by ${short(r.claimed_by)}` : open.has(r.epoch) ? "claimable" : "not yet",
        r.claimed || !open.has(r.epoch) || BigInt(r.amount) === 0n
          ? ""
          : button("Claim", async () => {
            await run(`Claiming epoch ${r.epoch} for vehicle #${id}`,
              () => ctx.session.write("Rewards", "claim",
                [BigInt(r.epoch), BigInt(id), BigInt(r.amount), r.claim_proof]),
              `Claimed ${dimo(r.amount)}`);
            ctx.refresh();
          }, { class: "small", "data-epoch": r.epoch }),
      ]),
      "No rewards posted yet.",
      { class: "reward-list" },
    ));
}

function revenuePart(vehicle, revenue, ctx) {
  const id = vehicle.id;
  const claimable = revenue.filter((r) => BigInt(r.claimable) > 0n);
  return h("div", { class: "revenue" },
    h("h4", {}, "Licence revenue"),
    table(
      ["product", "opted in", "earned", "claimed", "claimable"],
      revenue.map((r) => [`#${r.product_id}`, r.opted_in ? "yes" : "no", dimo(r.earned),
        dimo(r.claimed), dimo(r.claimable)]),
      "No revenue yet.",
    ),
    claimable.length
      ? button("Claim revenue", async () => {
        await run(`Claiming licence revenue of vehicle #${id}`,
          () => ctx.session.write("DataMarket", "claim",
            [BigInt(id), claimable.map((r) => BigInt(r.product_id))]), "Revenue claimed");
        ctx.refresh();
      }, { class: "small", "data-claim": "revenue" })
      : "");
}

/** Energy: the vehicle's declared grid region, and a form to sign and declare another. */
function regionPart(vehicle, ctx) {
  const part = h("div", { class: "grid-region" }, h("h4", {}, "Grid region (energy)"));
  const shown = h("div", {}, h("p", { class: "hint" }, "Loading…"));
  part.append(shown);
  declaredRegion(vehicle.id)
    .catch((e) => e)
    .then((region) => shown.replaceWith(regionBody(vehicle, region, ctx)));
  return part;
}

function regionBody(vehicle, region, ctx) {
  const id = vehicle.id;
  const part = h("div", {});
  if (region instanceof Error) {
    part.append(h("p", { class: "error" }, region.message));
  } else if (region) {
    part.append(h("p", { class: "declared", "data-region": region.region },
      "Declared ", h("strong", {}, region.region), " by ",
      h("code", { title: region.owner }, short(region.owner)), ` at ${when(region.issued_at)}`,
      region.typed_data?.domain
        ? ` (EIP-712 ${region.typed_data.domain.name} v${region.typed_data.domain.version})`
        : ""));
  } else {
    part.append(h("p", { class: "empty declared" }, "No grid region declared."));
  }
  const input = h("input", {
    name: "region",
    placeholder: "region, e.g. DE-BW",
    size: 16,
    maxlength: 64,
    "aria-label": `grid region of vehicle #${id}`,
  });
  const declare = async () => {
    const stored = await run(`Declaring the grid region of vehicle #${id}`,
      () => declareRegion(ctx.session, id, input.value.trim()),
      (r) => `Region ${r.region} declared for vehicle #${id}`);
    if (stored) ctx.refresh();
  };
  part.append(h("form", {
    class: "region-form",
    onSubmit: (e) => {
      e.preventDefault();
      declare();
    },
  }, input, button("Sign and declare", declare, { "data-action": "declare-region" })));
  return part;
}

/** Why a value computed from sessions (battery SoH) is missing: what the sessions said. */
function sessionsReason(result) {
  const sessions = Array.isArray(result.sessions) ? result.sessions : null;
  if (!sessions) return null;
  if (!sessions.length) return "no charging session in this window";
  const counts = {};
  for (const x of sessions) {
    if (x.reason && x.reason !== "ok") counts[x.reason] = (counts[x.reason] ?? 0) + 1;
  }
  const said = Object.entries(counts).map(([r, n]) => `${r.replaceAll("-", " ")} (${n})`);
  return said.length ? `no session qualified: ${said.join(", ")}` : null;
}

/** An app's answer in a few plain lines: its result's scalar fields, and why one is missing. */
function summaryOf(body) {
  const result = body?.result ?? body;
  if (!result || typeof result !== "object") return [h("p", {}, String(result))];
  const rows = [];
  const entries = Object.entries(result).map(([key, value]) =>
    // An object with a headline number (SoH with its interval) shows that number.
    [key, value && typeof value === "object" && "percent" in value ? value.percent : value]);
  for (const [key, value] of entries) {
    if (value !== null && typeof value === "object") continue;
    const reason = value === null
      ? (result[`${key}_reason`] ?? body?.reasons?.[key] ?? body?.reason
        ?? sessionsReason(result) ?? "not computable from the readings in this window")
      : null;
    if (key.endsWith("_reason")) continue;
    rows.push([key.replaceAll("_", " "), value === null ? h("span", { class: "empty" },
      `none: ${reason}`) : fmt(value)]);
  }
  if (Array.isArray(result.sessions ?? body?.sessions)) {
    const sessions = result.sessions ?? body.sessions;
    rows.push(["sessions", sessions.length ? String(sessions.length)
      : "none in this window: no charging was recorded"]);
  }
  return rows.length ? [table(["", ""], rows, "")] : [h("p", { class: "empty" },
    "The answer has no summary fields; see the full answer below.")];
}

function appsPart(vehicle, latest) {
  const id = vehicle.id;
  const out = panel(`app-${id}`, "app-output");
  // The apps' windows: the vehicle's history up to its latest reading.
  const last = latest.values.length ? Math.max(...latest.values.map((v) => v.t)) : Date.now();
  return h("div", { class: "apps" },
    h("h4", {}, "Applications"),
    h("p", {}, APPS.map(([name, json, chart, days]) => button(name, async () => {
      // [start, end) ends just after the latest reading and spans exactly `days`.
      const window = { start: last + 1 - days * DAY * 1000, end: last + 1 };
      const answer = await run(`Loading ${name.toLowerCase()}`, async () => ({
        body: await get(json(id), window),
        chart: chart ? await imageUrl(chart(id), window).catch((e) => e) : null,
      }), `${name} loaded`);
      if (!answer) return;
      const span = `${when(Math.floor(window.start / 1000))} to ` +
        `${when(Math.ceil(window.end / 1000))}`;
      const sessions = answer.body?.result?.sessions;
      if (!chart && Array.isArray(sessions) && sessions.length) {
        answer.chart = await energyChart(sessions, window, out.clientWidth || 640)
          .catch((e) => e);
      }
      out.replaceChildren(
        h("h5", {}, `${name} of vehicle #${id}, ${span}`),
        ...summaryOf(answer.body),
        answer.chart instanceof Error
          ? h("p", { class: "empty" }, `No chart: ${answer.chart.message}`)
          : answer.chart instanceof Node
            ? answer.chart
            : answer.chart
              ? h("img", { src: answer.chart, alt: `${name} chart`, class: "chart",
                "data-start": window.start, "data-end": window.end })
              : h("p", { class: "empty" }, "No chart: no charging session in this window."),
        h("details", { class: "raw" }, h("summary", {}, "Full answer (JSON)"),
          h("pre", { class: "json" }, JSON.stringify(answer.body, null, 1))),
      );
    }, { class: "small", "data-app": name.toLowerCase() }))),
    out);
}
