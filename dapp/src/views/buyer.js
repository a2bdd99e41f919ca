// Data buyers: browse products, buy a licence with an ERC-2612 permit (one transaction, no
// approve), see licences, and query the vehicles a licence covers.
import { parseSignature } from "viem";
import { all, ApiError, get } from "../api.js";
import { label, valueOf } from "../signals.js";
import { button, dimo, h, run, section, short, table, when } from "../ui.js";

const DAY = 86_400;

/** Renders the buyer's view into `root`. */
export async function renderBuyer(root, ctx) {
  const { session } = ctx;
  const [products, licences, readable, balance] = await Promise.all([
    all("/products"),
    all("/licences", { buyer: session.address }),
    all("/vehicles", { readable_by_me: true }),
    session.read("DimoToken", "balanceOf", [session.address]),
  ]);
  const periods = {};
  root.append(
    h("p", { class: "balance", id: "buyer-balance" }, `Balance: ${dimo(balance)}`),
    section("Data products", { id: "products" },
      table(
        ["product", "curator", "scopes", "price / period", "vehicles opted in", "periods", ""],
        products.map((p) => {
          periods[p.id] = h("input", { type: "number", min: 1, value: 1, size: 3,
            name: `periods-${p.id}`, "aria-label": `periods of product #${p.id}` });
          return [
            `#${p.id}`,
            h("code", { title: p.curator }, short(p.curator)),
            p.privileges.join(", "),
            `${dimo(p.price_per_period)} / ${p.period_seconds / DAY} d`,
            p.vehicles_opted_in,
            periods[p.id],
            button("Buy licence", () => buy(p, Number(periods[p.id].value), ctx),
              { class: "small", "data-product": p.id }),
          ];
        }),
        "No products listed.",
      )),
    h("p", { class: "hint" }, "A licence lets you read the vehicles opted in to its product, " +
      "each from the time it opted in (never earlier), for as long as the licence runs."),
    section("My licences", { id: "licences" },
      table(
        ["product", "expires (UTC)", "state", "periods", "paid"],
        licences.map((l) => [`#${l.product_id}`, when(l.expiry), l.active ? "active" : "expired",
          l.periods, dimo(l.paid)]),
        "No licences.",
      )),
    section("Vehicles I may read", { id: "readable" },
      table(
        ["vehicle", "make", "model", "year", "owner"],
        readable.map((v) => [`#${v.id}`, v.make, v.model, v.year, short(v.owner)]),
        "None yet: buy a licence.",
      )),
    querySection(),
  );
}

/**
 * Buys `periods` periods of product `p`: signs an ERC-2612 permit of the price for DataMarket
 * (EIP-712, DimoToken's domain) and sends `buyWithPermit` with it.
 */
async function buy(p, periods, ctx) {
  const { session } = ctx;
  await run(`Buying ${periods} period(s) of product #${p.id}`, async () => {
    if (!Number.isInteger(periods) || periods < 1) throw new Error("buy at least one period");
    const token = session.contract("DimoToken");
    const market = session.contract("DataMarket");
    const value = BigInt(p.price_per_period) * BigInt(periods);
    const [nonce, name] = await Promise.all([
      session.read("DimoToken", "nonces", [session.address]),
      session.read("DimoToken", "name"),
    ]);
    const deadline = BigInt((await session.now()) + 3600);
    const signature = await session.wallet.signTypedData({
      domain: { name, version: "1", chainId: session.chain.id, verifyingContract: token.address },
      types: {
        Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" },
        ],
      },
      primaryType: "Permit",
      message: { owner: session.address, spender: market.address, value, nonce, deadline },
    });
    const { r, s, v, yParity } = parseSignature(signature);
    const vByte = v !== undefined ? Number(v) : yParity + 27;
    return session.write("DataMarket", "buyWithPermit",
      [BigInt(p.id), periods, deadline, vByte, r, s]);
  }, "Licence bought");
  ctx.refresh();
}

/** What the query section shows: kept across re-renders (the view refreshes after a purchase). */
const queried = { vehicle: "", shown: [] };

function querySection() {
  const vehicle = h("input", { name: "query-vehicle", type: "number", min: 1, size: 6,
    placeholder: "vehicle id", value: queried.vehicle, "aria-label": "vehicle id to query",
    onInput: (e) => { queried.vehicle = e.target.value; } });
  const out = h("div", { id: "query-result" }, ...queried.shown);
  const show = (...nodes) => {
    queried.shown = nodes;
    (document.getElementById("query-result") ?? out).replaceChildren(...nodes);
  };
  const query = async () => {
    const id = Number(queried.vehicle);
    show(h("p", {}, "Loading…"));
    try {
      const latest = await get(`/vehicles/${id}/latest`);
      show(
        h("p", { class: "ok", "data-outcome": "data" },
          `Vehicle #${id}: ${latest.values.length} signals readable`),
        table(["signal", "value", "time (UTC)"],
          latest.values.map((v) => [
            h("span", { title: v.signal }, label(v.signal)), valueOf(v.signal, v.value),
            when(v.t / 1000)]),
          "No readings in the time you are covered: a licence covers a vehicle's readings " +
          "from the time it opted in to the product (and while your licence runs), so a " +
          "vehicle that opted in after its last reading shows none until it sends more."),
        latest.withheld.length
          ? h("p", { class: "hint" }, "Withheld: ",
            latest.withheld.map((w, i) => [i ? ", " : "", h("span", { title: w.signal },
              `${label(w.signal)} (needs ${w.missing_scope})`)]))
          : "",
      );
    } catch (err) {
      const denied = err instanceof ApiError && err.status === 403;
      show(h("p", { class: "error", "data-outcome": denied ? "denied" : "error" },
        `Vehicle #${id}: ${denied ? "not covered by your rights" : "error"}: ${err.message}`));
    }
  };
  return section("Query a vehicle", { id: "query" },
    h("form", { onSubmit: (e) => { e.preventDefault(); query(); } },
      vehicle, button("Query latest signals", query, { id: "query-button" })),
    out);
}
