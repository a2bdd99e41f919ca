// The dev wallet: an EIP-1193 provider over anvil for one of its dev accounts. Self-contained
// (no imports), so that the browser tests inject this very code as `window.ethereum`.

/**
 * An EIP-1193 provider over anvil's JSON-RPC for one of its dev accounts: anvil itself
 * signs `eth_sendTransaction`, `personal_sign` and `eth_signTypedData_v4` for them.
 * Public throwaway keys: offered only when the indexer says the chain is the local one.
 */
export function devWalletProvider(rpcUrl, account) {
  let id = 0;
  return {
    isDevWallet: true,
    async request({ method, params = [] }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
      const reply = await fetch(rpcUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
      });
      const body = await reply.json();
      if (body.error) {
        const error = new Error(body.error.message);
        error.code = body.error.code;
        error.data = body.error.data;
        throw error;
      }
      return body.result;
    },
    on() {},
    removeListener() {},
  };
}
