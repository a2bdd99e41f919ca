// Token holders: balance and delegation, feature flags (on-chain), proposals with votes
// (directly or by EIP-712 signature), queue and execute through the timelock, and proposing
// a flag change.
import { encodeFunctionData, getAddress, isAddress, keccak256, toHex } from "viem";
import { all } from "../api.js";
import { button, dimo, h, run, section, short, table, when } from "../ui.js";

/** The well-known feature flags (ParameterKeys in contracts/interfaces/IParameters.sol). */
const FLAGS = ["FEATURE_COMMANDS_SCOPE", "FEATURE_GRID_PROGRAMMES", "FEATURE_NEW_PRODUCT_CATEGORY"];
/** IGovernor.ProposalState, by its number. */
const STATES = ["Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired",
  "Executed"];
const SUPPORT = [["For", 1], ["Against", 0], ["Abstain", 2]];

/** Renders the token holder's view into `root`. */
export async function renderHolder(root, ctx) {
  const { session } = ctx;
  const me = session.address;
  const [balance, votes, delegate, flags, proposals] = await Promise.all([
    session.read("DimoToken", "balanceOf", [me]),
    session.read("DimoToken", "getVotes", [me]),
    session.read("DimoToken", "delegates", [me]),
    Promise.all(FLAGS.map((f) => session.read("Parameters", "flag", [keccak256(toHex(f))]))),
    all("/proposals"),
  ]);
  const [onChain, chainNow] = await Promise.all([
    Promise.all(proposals.map(async (p) => {
      const id = BigInt(p.id);
      const [state, voted, eta] = await Promise.all([
        session.read("DimoGovernor", "state", [id]),
        session.read("DimoGovernor", "hasVoted", [id, me]),
        session.read("DimoGovernor", "proposalEta", [id]),
      ]);
      return { state: STATES[Number(state)], voted, eta: Number(eta) };
    })),
    session.now(),
  ]);
  for (const c of onChain) c.now = chainNow;
  const delegatee = h("input", { name: "delegatee", size: 44, value: me,
    "aria-label": "delegate votes to (address)" });
  root.append(
    section("My votes", { id: "votes" },
      h("p", {}, `Balance ${dimo(balance)}, votes ${dimo(votes)}, delegated to `,
        h("code", { id: "delegatee" }, delegate)),
      h("form", { onSubmit: (e) => e.preventDefault() },
        delegatee,
        button("Delegate", async () => {
          await run("Delegating", () => {
            if (!isAddress(delegatee.value.trim())) throw new Error("not an address");
            return session.write("DimoToken", "delegate", [getAddress(delegatee.value.trim())]);
          }, "Delegated");
          ctx.refresh();
        }, { id: "delegate" }))),
    section("Feature flags", { id: "flags" },
      table(["flag", "value"], FLAGS.map((f, i) => [f, h("span", {
        class: flags[i] ? "on" : "off", "data-flag": f, "data-value": String(flags[i]),
      }, flags[i] ? "on" : "off")]), "none")),
    section("Proposals", { id: "proposals" },
      table(
        ["id", "description", "state", "votes for / against / abstain", "vote ends (UTC)", ""],
        proposals.map((p, i) => [
          h("code", { title: p.id }, `${p.id.slice(0, 8)}…`),
          p.description,
          h("span", { class: "state", "data-proposal": p.id }, onChain[i].state),
          `${dimo(p.votes_for)} / ${dimo(p.votes_against)} / ${dimo(p.votes_abstain)}`,
          when(p.vote_end),
          actions(p, onChain[i], ctx),
        ]),
        "No proposals.",
        { class: "proposal-list" },
      )),
    proposeSection(ctx),
  );
}

function actions(p, chain, ctx) {
  const id = BigInt(p.id);
  const calls = [
    p.actions.map((a) => a.target),
    p.actions.map((a) => BigInt(a.value)),
    p.actions.map((a) => a.calldata),
    keccak256(toHex(p.description)),
  ];
  const step = (label, fn) => button(label, async () => {
    await run(`${label} proposal ${short(p.id)}`,
      () => ctx.session.write("DimoGovernor", fn, calls), `${label}: done`);
    ctx.refresh();
  }, { class: "small", "data-action": fn });
  const out = h("span", { class: "actions", "data-proposal": p.id });
  if (chain.state === "Active" && !chain.voted) {
    for (const [label, support] of SUPPORT) {
      out.append(button(`Vote ${label.toLowerCase()}`, async () => {
        await run(`Voting ${label.toLowerCase()}`,
          () => ctx.session.write("DimoGovernor", "castVote", [id, support]), "Vote cast");
        ctx.refresh();
      }, { class: "small", "data-vote": label.toLowerCase() }));
    }
    out.append(button("Vote for by signature", () => voteBySig(p, 1, ctx),
      { class: "small", "data-vote": "for-by-sig" }));
  } else if (chain.state === "Active") {
    out.append("voted");
  }
  if (chain.state === "Succeeded") out.append(step("Queue", "queue"));
  if (chain.state === "Queued") {
    const execute = step("Execute", "execute");
    const left = chain.eta - chain.now;
    if (left > 0) {
      // The timelock refuses before its delay has passed (TimelockUnexpectedOperationState).
      execute.disabled = true;
      execute.title = `The timelock allows it at ${when(chain.eta)}`;
      out.append(execute, h("span", { class: "hint", "data-eta": chain.eta },
        ` executable in ${duration(left)} (${when(chain.eta)})`));
    } else {
      out.append(execute);
    }
  }
  return out;
}

/** Seconds as "2 d 3 h", "5 h 10 min" or "40 s". */
function duration(seconds) {
  const d = Math.floor(seconds / 86_400);
  const hrs = Math.floor((seconds % 86_400) / 3600);
  const min = Math.floor((seconds % 3600) / 60);
  if (d) return `${d} d ${hrs} h`;
  if (hrs) return `${hrs} h ${min} min`;
  return min ? `${min} min` : `${seconds} s`;
}

/**
 * Votes by signature: the holder signs the EIP-712 Ballot (no transaction of theirs needed),
 * and the signature is relayed with `castVoteBySig` (here by the same wallet).
 */
async function voteBySig(p, support, ctx) {
  const { session } = ctx;
  await run("Signing a ballot", async () => {
    const governor = session.contract("DimoGovernor");
    const [name, nonce] = await Promise.all([
      session.read("DimoGovernor", "name"),
      session.read("DimoGovernor", "nonces", [session.address]),
    ]);
    const signature = await session.wallet.signTypedData({
      domain: { name, version: "1", chainId: session.chain.id, verifyingContract: governor.address },
      types: {
        Ballot: [
          { name: "proposalId", type: "uint256" },
          { name: "support", type: "uint8" },
          { name: "voter", type: "address" },
          { name: "nonce", type: "uint256" },
        ],
      },
      primaryType: "Ballot",
      message: { proposalId: BigInt(p.id), support, voter: session.address, nonce },
    });
    return session.write("DimoGovernor", "castVoteBySig",
      [BigInt(p.id), support, session.address, signature]);
  }, "Vote cast by signature");
  ctx.refresh();
}

function proposeSection(ctx) {
  const { session } = ctx;
  const flag = h("select", { name: "flag", "aria-label": "feature flag" },
    FLAGS.map((f) => h("option", { value: f }, f)));
  const value = h("select", { name: "flag-value", "aria-label": "new value" },
    h("option", { value: "true" }, "on"), h("option", { value: "false" }, "off"));
  const propose = async () => {
    await run("Proposing", () => {
      const parameters = session.contract("Parameters");
      const on = value.value === "true";
      const data = encodeFunctionData({
        abi: parameters.abi,
        functionName: "setFlag",
        args: [keccak256(toHex(flag.value)), on],
      });
      const description = `Turn ${flag.value} ${on ? "on" : "off"} (${new Date().toISOString()})`;
      return session.write("DimoGovernor", "propose",
        [[parameters.address], [0n], [data], description]);
    }, "Proposed");
    ctx.refresh();
  };
  return section("Propose a flag change", { id: "propose" },
    h("form", { onSubmit: (e) => e.preventDefault() }, flag, value,
      button("Propose", propose, { id: "propose-button" })));
}
