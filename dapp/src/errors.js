// Why a transaction failed, in words. A revert's data is decoded against the errors of every
// contract of the deployment (a DataMarket call can revert with DimoToken's ERC20 error, a
// governor's with the timelock's), then said as a sentence: by hand for the errors people meet,
// from the error's name and its ABI argument names for the rest.
import { BaseError, decodeErrorResult, formatUnits } from "viem";

/** Sentences of the errors a user meets, by name; `a` holds the arguments by ABI name. */
const SENTENCES = {
  ERC20InsufficientBalance: (a) =>
    `Not enough DIMO: the account holds ${amount(a.balance)} and this needs ${amount(a.needed)}.`,
  ERC20InsufficientAllowance: (a) =>
    `The contract may spend only ${amount(a.allowance)} of your DIMO and needs ` +
    `${amount(a.needed)}: sign a permit or approve more.`,
  ERC2612ExpiredSignature: (a) => `The permit expired at ${date(a.deadline)}: buy again.`,
  ERC2612InvalidSigner: () => "The permit was not signed by the paying account.",
  TimelockUnexpectedOperationState: () =>
    "The timelock is not ready for this step: a queued proposal can be executed only once " +
    "its delay has passed, and only once.",
  TimelockInsufficientDelay: (a) => `The timelock needs a delay of at least ${a.minDelay} s.`,
  GovernorUnexpectedProposalState: (a) =>
    `The proposal is ${STATE_NAMES[Number(a.current)] ?? "in another state"}, so this step ` +
    "is not possible now.",
  GovernorAlreadyCastVote: () => "This account has already voted on the proposal.",
  GovernorInsufficientProposerVotes: (a) =>
    `Proposing needs ${amount(a.threshold)} of votes; this account has ${amount(a.votes)}: ` +
    "delegate your DIMO to yourself first.",
  GovernorInvalidSignature: () => "The ballot's signature is not the voter's.",
  GovernorNonexistentProposal: () => "There is no such proposal.",
  AccessControlUnauthorizedAccount: (a) =>
    `Account ${a.account} lacks the role this needs (${String(a.neededRole).slice(0, 10)}…).`,
  OwnableUnauthorizedAccount: (a) => `Only the contract's owner may do this, not ${a.account}.`,
  ERC721NonexistentToken: (a) => `Token #${a.tokenId} does not exist.`,
  ERC721IncorrectOwner: (a) => `Token #${a.tokenId} belongs to ${a.owner}, not ${a.sender}.`,
  DataMarketNotOptedIn: (a) =>
    `Vehicle #${a.vehicleId} is not opted in to product #${a.productId}.`,
  DataMarketAlreadyOptedIn: (a) =>
    `Vehicle #${a.vehicleId} is already opted in to product #${a.productId}.`,
  DataMarketNoVehiclesOptedIn: (a) =>
    `No vehicle is opted in to product #${a.productId} yet, so a licence would cover nothing.`,
  DataMarketNothingToClaim: (a) => `Vehicle #${a.vehicleId} has no revenue to claim yet.`,
  DataMarketUnknownProduct: (a) => `There is no product #${a.productId}.`,
  DataMarketNotVehicleOwner: (a) => `Only vehicle #${a.vehicleId}'s owner may do this.`,
  RewardsNotClaimable: (a) =>
    `Epoch ${a.epoch}'s rewards can be claimed from ${date(a.claimableAt)} (challenge period).`,
  RewardsAlreadyClaimed: (a) =>
    `Vehicle #${a.vehicleId}'s rewards of epoch ${a.epoch} were already claimed.`,
  RewardsInvalidProof: (a) =>
    `The rewards proof does not match epoch ${a.epoch}'s root: reload and claim again.`,
  VehicleRightsNotOwner: (a) => `Only vehicle #${a.vehicleId}'s owner may change its grants.`,
  VehicleRightsNoGrant: (a) => `Vehicle #${a.vehicleId} has no grant to ${a.grantee}.`,
  VehicleRightsInvalidExpiry: (a) => `The grant's expiry ${date(a.expiry)} is not in the future.`,
  VehicleRightsInvalidScopes: () => "Choose at least one known scope.",
  VehicleRightsZeroGrantee: () => "The grantee cannot be the zero address.",
};
/** IGovernor.ProposalState names, by number (for GovernorUnexpectedProposalState). */
const STATE_NAMES = ["pending", "active", "canceled", "defeated", "succeeded", "queued",
  "expired", "executed"];

/** Argument names that hold token amounts (18 decimals) or times (unix seconds). */
const AMOUNT = /^(amount|balance|needed|allowance|paid|total|cap|value|supply|price|votes)/i;
const TIME = /(At|deadline|expiry|endsAt|timestamp|genesis)$/;

function amount(wei) {
  const value = Number(formatUnits(BigInt(wei ?? 0), 18));
  return `${value.toLocaleString("en", { maximumFractionDigits: 4 })} DIMO`;
}

function date(seconds) {
  return new Date(Number(seconds) * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** `DataMarketNotOptedIn` -> `not opted in` (the contract's prefix off), `ERC20...` as words. */
function words(name, contract) {
  const rest = contract && name.startsWith(contract) ? name.slice(contract.length) : name;
  return rest.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/([A-Z])([A-Z][a-z])/g, "$1 $2")
    .toLowerCase();
}

function shown(name, value) {
  if (typeof value === "bigint" && AMOUNT.test(name)) return amount(value);
  if (typeof value === "bigint" && TIME.test(name) && value > 1_000_000_000n) return date(value);
  return String(value);
}

/**
 * Every custom error of the deployment's ABIs, once each, with the contract that declares it
 * (for a sentence that names it).
 */
export function errorCatalog(config) {
  const abi = [];
  const owner = {};
  const seen = new Set();
  for (const [contract, c] of Object.entries(config.contracts)) {
    for (const item of c.abi) {
      if (item.type !== "error") continue;
      const signature = `${item.name}(${item.inputs.map((i) => i.type).join(",")})`;
      if (seen.has(signature)) continue;
      seen.add(signature);
      abi.push(item);
      owner[item.name] = contract;
    }
  }
  return { abi, owner };
}

/** A decoded error (name and args by position) as a sentence. */
export function sentence(catalog, errorName, args = []) {
  const item = catalog.abi.find((e) => e.name === errorName);
  const named = {};
  (item?.inputs ?? []).forEach((input, i) => { named[input.name] = args[i]; });
  const say = SENTENCES[errorName];
  if (say) return say(named);
  const contract = catalog.owner[errorName];
  const detail = (item?.inputs ?? [])
    .map((input, i) => `${input.name} ${shown(input.name, args[i])}`);
  const what = words(errorName, contract);
  const text = `${contract ?? "The contract"} refused: ${what}`;
  return detail.length ? `${text} (${detail.join(", ")}).` : `${text}.`;
}

/** The revert data (0x…) somewhere inside a viem error or an EIP-1193 error, if any. */
function revertData(err) {
  const seen = new Set();
  let e = err;
  while (e && !seen.has(e)) {
    seen.add(e);
    for (const candidate of [e.data, e.data?.data, e.raw, e.cause?.data]) {
      if (typeof candidate === "string" && /^0x[0-9a-fA-F]{8}/.test(candidate)) return candidate;
    }
    if (e.signature && /^0x[0-9a-fA-F]{8}$/.test(e.signature)) return e.signature;
    e = e.cause;
  }
  return null;
}

/**
 * What went wrong in words: a contract's error as a sentence (decoded against every ABI of
 * the deployment), a wallet refusal, an API problem's detail; null when `err` holds no revert.
 */
export function decodeRevert(catalog, err) {
  if (err instanceof BaseError) {
    const decoded = err.walk((e) => e?.data?.errorName);
    const { errorName, args } = decoded?.data ?? {};
    if (errorName) return sentence(catalog, errorName, args);
  }
  const data = revertData(err);
  if (!data) return null;
  try {
    const { errorName, args } = decodeErrorResult({ abi: catalog.abi, data });
    if (errorName === "Error") return `The contract refused: ${args[0]}`;
    return sentence(catalog, errorName, args ?? []);
  } catch {
    return `The contract refused with an error this page does not know (${data.slice(0, 10)}).`;
  }
}
