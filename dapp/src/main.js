// The dApp: load the deployment from the indexer, connect a wallet, sign in, show a view.
import "./style.css";
import { get, onSessionEnded } from "./api.js";
import { useSignalsOf } from "./signals.js";
import { signIn, signOut } from "./siwe.js";
import { button, h, keepEdits, markEdited, run, short, status, useErrorsOf } from "./ui.js";
import { connectDev, connectInjected, devAccounts } from "./wallet.js";
import { renderBuyer } from "./views/buyer.js";
import { renderHolder } from "./views/holder.js";
import { renderOwner } from "./views/owner.js";

const VIEWS = { owner: renderOwner, buyer: renderBuyer, holder: renderHolder };
/** What `make run` makes each anvil dev account (stack/seed.py, stack/demo.py). */
const DEV_ROLES = ["admin", "device maker", "owner", "owner", "owner", "data buyer",
  "token holder (voter)", "oracle", "oracle", "oracle"];
const state = { config: null, session: null, signedIn: false, generation: 0 };

function currentView() {
  const name = location.hash.replace("#", "");
  return name in VIEWS ? name : "owner";
}

/** Renders the current view again (after a transaction, once the indexer has caught up). */
export async function refresh() {
  const name = currentView();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === name);
  }
  const root = document.getElementById("view");
  const generation = ++state.generation;
  const fresh = h("div", { id: `view-${name}`, "data-loading": "" });
  if (!state.session || !state.signedIn) {
    fresh.append(
      h("p", { class: "hint" }, "Connect a wallet and sign in with Ethereum to see your data."),
      state.config?.dev_wallet
        ? h("p", { class: "hint" }, "On the local chain of `make run`, pick an account by its " +
          "role under “Dev wallet (anvil)” and click Use: #2 owns vehicles, #5 buys data, " +
          "#6 holds DIMO and votes. The README's “Try it” walks through each.")
        : "",
    );
    root.replaceChildren(fresh);
    fresh.removeAttribute("data-loading");
    return;
  }
  try {
    await VIEWS[name](fresh, { ...state, refresh: refreshSoon });
  } catch (err) {
    if (err.sessionEnded) return; // the session handler has said what to do
    console.error(err);
    fresh.append(h("p", { class: "error" }, `Could not load this view: ${err.message}`));
  }
  if (generation !== state.generation) return; // a later render superseded this one
  fresh.removeAttribute("data-loading");
  if (root.firstElementChild?.id === fresh.id) keepEdits(root, fresh); // the same view again
  root.replaceChildren(fresh);
}

/** Renders again now and as the indexer catches up with a transaction just mined. */
function refreshSoon() {
  for (const ms of [0, 1500, 4000]) setTimeout(refresh, ms);
}

function renderWallet() {
  const el = document.getElementById("wallet");
  const { session, config } = state;
  if (session) {
    el.replaceChildren(
      h("span", { class: "address", title: session.address, "data-address": session.address },
        short(session.address)),
      state.signedIn
        ? h("span", { class: "badge", id: "signed-in" }, "signed in")
        : button("Sign in with Ethereum", doSignIn, { id: "sign-in" }),
      button("Disconnect", () => {
        signOut();
        state.session = null;
        state.signedIn = false;
        renderWallet();
        refresh();
      }),
    );
    return;
  }
  const parts = [
    button("Connect wallet", () => connect(() => connectInjected(config)), {
      id: "connect-injected",
      disabled: !window.ethereum,
      title: window.ethereum ? "window.ethereum (EIP-1193)" : "no injected wallet found",
    }),
  ];
  if (config?.dev_wallet && config.rpc_url) {
    const picker = h("select", { id: "dev-account", "aria-label": "dev account" });
    devAccounts(config.rpc_url).then((accounts) => {
      accounts.forEach((a, i) => picker.append(h("option", { value: a },
        `#${i} ${DEV_ROLES[i] ?? "spare"} · ${short(a)}`)));
    });
    parts.push(
      h("span", { class: "dev" }, "Dev wallet (anvil): ", picker,
        button("Use", () => connect(async () => connectDev(config, picker.value)), {
          id: "connect-dev",
        })),
    );
  }
  el.replaceChildren(...parts);
}

async function connect(how) {
  const session = await run("Connecting the wallet", how, (s) => `Connected ${s.address}`);
  if (!session) return;
  state.session = session;
  state.signedIn = false;
  renderWallet();
  await doSignIn();
}

async function doSignIn() {
  const token = await run("Signing in with Ethereum", () => signIn(state.session),
    (t) => `Signed in as ${t.address}`);
  state.signedIn = Boolean(token);
  renderWallet();
  await refresh();
}

/** The session could not be renewed: back to "sign in", with the reason, and no stale data. */
function sessionEnded() {
  state.signedIn = false;
  renderWallet();
  status("Your session ended (sign-in tokens last a limited time): sign in again.", "error");
  const root = document.getElementById("view");
  root.replaceChildren(h("p", { class: "hint", id: "session-ended" },
    "Sign in again to see your data."));
}

/** `?as=N` on the local chain: connect dev account N and sign in (walkthroughs, audits). */
async function devFromUrl() {
  const index = new URLSearchParams(location.search).get("as");
  if (index === null || !state.config?.dev_wallet || !/^\d{1,2}$/.test(index)) return false;
  const accounts = await devAccounts(state.config.rpc_url);
  const address = accounts[Number(index)];
  if (!address) return false;
  await connect(async () => connectDev(state.config, address));
  return true;
}

async function start() {
  try {
    state.config = await get("/dapp/config.json");
  } catch (err) {
    status(`The platform's deployment is not available: ${err.message}`, "error");
    return;
  }
  useErrorsOf(state.config);
  const view = document.getElementById("view");
  for (const type of ["input", "change"]) view.addEventListener(type, markEdited);
  useSignalsOf(state.config);
  onSessionEnded(sessionEnded);
  if (await devFromUrl()) {
    document.body.dataset.ready = "true";
    window.addEventListener("hashchange", refresh);
    document.getElementById("refresh").addEventListener("click", refresh);
    return;
  }
  renderWallet();
  window.addEventListener("hashchange", refresh);
  document.getElementById("refresh").addEventListener("click", refresh);
  await refresh();
  document.body.dataset.ready = "true";
}

start();
