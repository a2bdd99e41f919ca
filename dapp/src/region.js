// Grid region declarations (the energy application): the owner signs the EIP-712 message
// `GridRegion(uint256 vehicleId,string region,uint64 issuedAt)` under the domain that the
// VehicleId contract publishes (EIP-5267 `eip712Domain`), and the indexer stores it.
import { getEip712Domain } from "viem/actions";
import { get, post } from "./api.js";

/** What a region name may look like (indexer/apps/energy.py `REGION_PATTERN`). */
export const REGION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** The signed struct (indexer/apps/energy.py `GRID_REGION_TYPE`). */
const TYPES = {
  GridRegion: [
    { name: "vehicleId", type: "uint256" },
    { name: "region", type: "string" },
    { name: "issuedAt", type: "uint64" },
  ],
};

/** EIP-5267 `fields` bits: which domain members the contract uses. */
const DOMAIN_FIELDS = [
  [0x01, "name"],
  [0x02, "version"],
  [0x04, "chainId"],
  [0x08, "verifyingContract"],
  [0x10, "salt"],
];

/** The EIP-712 domain VehicleId publishes on-chain, with only the members it declares. */
export async function vehicleIdDomain(session) {
  const { address } = session.contract("VehicleId");
  const { domain, fields } = await getEip712Domain(session.public, { address });
  const bits = Number(fields);
  const used = {};
  for (const [bit, key] of DOMAIN_FIELDS) if (bits & bit) used[key] = domain[key];
  return used;
}

/** The vehicle's declared region as the indexer serves it, or null when none is declared. */
export async function declaredRegion(vehicleId) {
  try {
    return await get(`/apps/energy/${vehicleId}/region`);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

/**
 * Declares `region` for vehicle `vehicleId`: the connected wallet signs it (issued now, by the
 * wall clock the indexer checks it against), then it is posted; resolves to the stored
 * declaration, with the typed data the indexer verified.
 */
export async function declareRegion(session, vehicleId, region) {
  if (!REGION_PATTERN.test(region)) {
    throw new Error(`"${region}" is not a region name (letters, digits, _ . : -; at most 64)`);
  }
  const domain = await vehicleIdDomain(session);
  const issuedAt = Math.floor(Date.now() / 1000);
  const signature = await session.wallet.signTypedData({
    domain,
    types: TYPES,
    primaryType: "GridRegion",
    message: { vehicleId: BigInt(vehicleId), region, issuedAt: BigInt(issuedAt) },
  });
  return post(`/apps/energy/${vehicleId}/region-declarations`, {
    region,
    issued_at: issuedAt,
    signature,
  });
}
