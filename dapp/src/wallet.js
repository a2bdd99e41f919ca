// Wallets: any injected EIP-1193 provider (`window.ethereum`), or on the local chain a dev
// wallet over anvil's unlocked dev accounts. viem does every encoding and signing request.
import {
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  getAddress,
  getContract,
  http,
} from "viem";
import { devWalletProvider } from "./devwallet.js";
import { status } from "./ui.js";

/** Tells the user where a transaction is (pending states), keeping the status line's kind. */
function progress(text, hash) {
  status(text, "pending");
  if (hash) document.getElementById("status").dataset.tx = hash;
}

/** anvil's dev accounts (for the dev wallet's picker). */
export async function devAccounts(rpcUrl) {
  const reply = await fetch(rpcUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_accounts", params: [] }),
  });
  const body = await reply.json();
  return (body.result ?? []).map((a) => getAddress(a));
}

/** The viem chain of the deployment the indexer follows. */
export function chainOf(config) {
  const rpc = config.rpc_url ? [config.rpc_url] : [];
  return defineChain({
    id: config.chain_id,
    name: config.chain_id === 31337 ? "Local anvil" : `Chain ${config.chain_id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: rpc } },
  });
}

/**
 * A connected wallet: its address, viem public and wallet clients, and the platform's
 * contracts bound to both.
 */
export class Session {
  constructor(config, provider, address) {
    this.config = config;
    this.provider = provider;
    this.address = getAddress(address);
    this.chain = chainOf(config);
    const read = config.rpc_url ? http(config.rpc_url) : custom(provider);
    this.public = createPublicClient({ chain: this.chain, transport: read });
    this.wallet = createWalletClient({
      account: this.address,
      chain: this.chain,
      transport: custom(provider),
    });
    this.contracts = {};
    for (const [name, c] of Object.entries(config.contracts)) {
      this.contracts[name] = getContract({
        address: c.address,
        abi: c.abi,
        client: { public: this.public, wallet: this.wallet },
      });
    }
  }

  /** The ABI and address of contract `name`. */
  contract(name) {
    const c = this.config.contracts[name];
    return { address: c.address, abi: c.abi };
  }

  /** Call `fn` of contract `name` with `args` (read-only). */
  read(name, fn, args = []) {
    return this.public.readContract({ ...this.contract(name), functionName: fn, args });
  }

  /**
   * Send `fn` of contract `name` with `args`, after simulating it (a revert is reported with
   * its custom error before anything is signed); resolves to the mined receipt.
   */
  async write(name, fn, args = []) {
    // Simulated where it will run: the pending block, whose time may be well past the latest
    // block's on a chain that mines only on demand (a claim window that opened since).
    const { request } = await this.public.simulateContract({
      ...this.contract(name),
      functionName: fn,
      args,
      account: this.address,
      blockTag: "pending",
    });
    progress("Waiting for your wallet to sign…");
    const hash = await this.wallet.writeContract(request);
    progress(`Sent (${hash.slice(0, 10)}…), waiting for a block…`, hash);
    const receipt = await this.public.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") {
      // Replay it where it ran: the revert's data says why.
      const { blockTag: _, ...replay } = request;
      await this.public.simulateContract({ ...replay, blockNumber: receipt.blockNumber - 1n });
      throw new Error(`the transaction ${hash} failed in block ${receipt.blockNumber}`);
    }
    return receipt;
  }

  /**
   * The chain's clock (which may differ from the wall's): the time the next transaction runs
   * at, the pending block's. A chain may move its clock on without mining (the local one follows
   * the fleet's simulated time), so the latest block's timestamp can lag by hours, and a permit
   * deadline counted from it would be past when the transaction is mined.
   */
  async now() {
    // anvil's pending block is never older than its latest (one request, not two).
    const pending = await this.public.getBlock({ blockTag: "pending" })
      .catch(() => this.public.getBlock());
    return Number(pending.timestamp);
  }
}

/** Connects the injected wallet (`window.ethereum`) on the deployment's chain. */
export async function connectInjected(config) {
  const provider = window.ethereum;
  if (!provider) throw new Error("no injected wallet (window.ethereum): install one");
  const [address] = await provider.request({ method: "eth_requestAccounts" });
  if (!address) throw new Error("the wallet gave no account");
  const chainId = Number(await provider.request({ method: "eth_chainId" }));
  if (chainId !== config.chain_id) {
    await provider.request({
      method: "wallet_switchEthereumChain",
      params: [{ chainId: `0x${config.chain_id.toString(16)}` }],
    });
  }
  return new Session(config, provider, address);
}

/** Connects dev account `address` of the local anvil. */
export function connectDev(config, address) {
  return new Session(config, devWalletProvider(config.rpc_url, address), address);
}
