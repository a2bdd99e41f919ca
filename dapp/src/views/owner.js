// Owners: vehicles and devices, pairing, latest signals with proofs, grants, data products,
// rewards and licence revenue, the vehicle's grid region, and the four applications with their
// charts.
import { getAddress, isAddress } from "viem";
import { all, ApiError, get, imageUrl } from "../api.js";
import { declaredRegion, declareRegion } from "../region.js";
import { button, dimo, fmt, h, PRIVILEGES, run, section, short, table, when } from "../ui.js";

const DAY = 86_400;
/** The applications: label, JSON route and PNG chart route (under /apps), by vehicle id. */
const APPS = [
  ["Battery", (id) => `/apps/battery/${id}`, (id) => `/apps/battery/${id}/chart.png`],
  ["Finance", (id) => `/apps/finance/${id}`, (id) => `/apps/finance/${id}/chart.png`],
  ["Insurance", (id) => `/apps/insurance/${id}/score`, (id) => `/apps/insurance/${id}/chart.png`],
  ["Energy", (id) => `/apps/energy/${id}/sessions`, null],
];

/** Output panels (a proof, an app's answer) by vehicle, kept open across re-renders. */
const panels = new Map();

function panel(key, cls) {
  if (!panels.has(key)) panels.set(key, h("div", { class: cls }));
  return panels.get(key);
}

/** Renders the owner's view into `root`. */
export async function renderOwner(root, ctx) {
  const { session } = ctx;
  const [vehicles, devices, products, epochs, chainNow] = await Promise.all([
    all("/vehicles", { owner: session.address }),
    all("/devices", { owner: session.address }),
    all("/products"),
    all("/rewards/epochs"),
    session.now(),
  ]);
  // Claims open by the chain's clock (the contract's), which may run ahead of the API's.
  const open = new Set(epochs
    .filter((e) => e.status === "posted" && chainNow >= e.claimable_at)
    .map((e) => e.epoch));
  root.append(
    section("My devices", { id: "devices" },
      table(
        ["device", "maker", "vehicle", "paired since", "pairings"],
        devices.map((d) => [
          h("code", { title: d.address }, short(d.address)),
          d.manufacturer ?? d.manufacturer_id,
          d.vehicle_id ?? "-",
          d.vehicle_id ? when(d.paired_since) : "not paired",
          d.pairings_count,
        ]),
        "No devices.",
      )),
  );
  const list = h("div", { id: "vehicles" }, h("h2", {}, `My vehicles (${vehicles.length})`));
  if (!vehicles.length) list.append(h("p", { class: "empty" }, "No vehicles."));
  root.append(list);
  for (const vehicle of vehicles) {
    list.append(await vehicleCard(vehicle, products, open, ctx));
  }
}

async function vehicleCard(vehicle, products, open, ctx) {
  const id = vehicle.id;
  const card = h("article", { class: "vehicle", id: `vehicle-${id}`, "data-vehicle": id },
    h("h3", {}, `#${id} ${vehicle.make} ${vehicle.model} ${vehicle.year}`),
    h("p", { class: "pairing" }, vehicle.device
      ? ["Paired with device ", h("code", {}, vehicle.device)]
      : "No device paired."));
  const [latest, grants, optIns, rewards, revenue, region] = await Promise.all([
    get(`/vehicles/${id}/latest`).catch((e) => e),
    all(`/vehicles/${id}/grants`),
    all(`/vehicles/${id}/opt-ins`, { active: true }),
    all(`/vehicles/${id}/rewards`),
    all(`/vehicles/${id}/revenue`),
    declaredRegion(id).catch((e) => e),
  ]);
  card.append(
    signalsPart(vehicle, latest, ctx),
    grantsPart(vehicle, grants, ctx),
    productsPart(vehicle, products, optIns, ctx),
    rewardsPart(vehicle, rewards, open, ctx),
    revenuePart(vehicle, revenue, ctx),
    regionPart(vehicle, region, ctx),
    appsPart(vehicle, latest),
  );
  return card;
}

function signalsPart(vehicle, latest, ctx) {
  const part = h("div", { class: "signals" }, h("h4", {}, "Latest signals"));
  if (latest instanceof ApiError) {
    part.append(h("p", { class: "error" }, latest.message));
    return part;
  }
  const proofBox = panel(`proof-${vehicle.id}`, "proof");
  part.append(
    table(
      ["signal", "value", "time (UTC)", "batch", ""],
      latest.values.map((v) => [
        v.signal,
        fmt(v.value),
        when(v.t / 1000),
        v.batch_id,
        button("Proof", () => showProof(vehicle.id, v, proofBox, ctx), {
          class: "small", "data-signal": v.signal,
        }),
      ]),
      "No readings yet.",
      { class: "latest" },
    ),
    proofBox,
  );
  return part;
}

/** Fetches a reading's proof and checks it with AttestationAnchor.verifyReading on-chain. */
async function showProof(vehicleId, value, box, ctx) {
  const proof = await run(`Checking the proof of ${value.signal}`, async () => {
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
  }, (p) => (p.verified ? "The proof verifies on-chain" : "The proof does NOT verify"));
  if (!proof) return;
  box.replaceChildren(
    h("p", { class: proof.verified ? "ok" : "error", "data-verified": String(proof.verified) },
      proof.verified
        ? `${value.signal} = ${fmt(value.value)}: verifyReading returned true`
        : `${value.signal}: verifyReading returned false`),
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
  const grantee = h("input", { name: "grantee", placeholder: "grantee 0x…", size: 44 });
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
function regionPart(vehicle, region, ctx) {
  const id = vehicle.id;
  const part = h("div", { class: "grid-region" }, h("h4", {}, "Grid region (energy)"));
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

/** An app's envelope with its `result` first (the inputs list can be long), else as it is. */
function resultFirst(body) {
  if (!body || typeof body !== "object" || !("result" in body)) return body;
  return { result: body.result, ...body };
}

function appsPart(vehicle, latest) {
  const id = vehicle.id;
  const out = panel(`app-${id}`, "app-output");
  // The apps' windows: the vehicle's history up to its latest reading.
  const last = latest instanceof ApiError || !latest.values.length
    ? Date.now()
    : Math.max(...latest.values.map((v) => v.t));
  const window = { start: last - 30 * DAY * 1000, end: last + 1 };
  return h("div", { class: "apps" },
    h("h4", {}, "Applications"),
    h("p", {}, APPS.map(([name, json, chart]) => button(name, async () => {
      const answer = await run(`Loading ${name.toLowerCase()}`, async () => ({
        body: await get(json(id), window),
        chart: chart ? await imageUrl(chart(id), window).catch(() => null) : null,
      }), `${name} loaded`);
      if (!answer) return;
      out.replaceChildren(
        h("h5", {}, `${name} of vehicle #${id}`),
        answer.chart ? h("img", { src: answer.chart, alt: `${name} chart`, class: "chart" }) : "",
        h("pre", { class: "json" },
          JSON.stringify(resultFirst(answer.body), null, 1).slice(0, 4000)),
      );
    }, { class: "small", "data-app": name.toLowerCase() }))),
    out);
}
