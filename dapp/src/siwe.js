// Sign-In with Ethereum (EIP-4361) against the indexer: nonce, message, personal_sign, token.
import { createSiweMessage } from "viem/siwe";
import { get, post, setToken } from "./api.js";

/**
 * Signs `session`'s wallet in: the message names the domain, URI and chain the indexer asks
 * for with its single-use nonce. Resolves to the token response (address, expiry).
 */
export async function signIn(session) {
  const nonce = await get("/auth/nonce");
  const message = createSiweMessage({
    domain: nonce.domain,
    address: session.address,
    statement: "Sign in to the DIMO platform.",
    uri: nonce.uri,
    version: "1",
    chainId: nonce.chain_id,
    nonce: nonce.nonce,
    issuedAt: new Date(),
    expirationTime: new Date(Date.parse(nonce.expires_at)),
  });
  const signature = await session.wallet.signMessage({ message });
  const token = await post("/auth/login", { message, signature });
  setToken(token.access_token, token.expires_in);
  return token;
}

/** Forgets the token. */
export function signOut() {
  setToken(null);
}
