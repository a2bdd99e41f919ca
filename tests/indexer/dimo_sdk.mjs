// Drives DIMO's npm SDK (@dimo-network/data-sdk, ESM) against the platform, as an app would.
// Argument: JSON {sdk, url, client_id, domain, key, owner, held, battery_only, sold, expiring}.
// Prints one JSON line: each step's result ({ok}) or the SDK's error ({error}).
const cfg = JSON.parse(process.argv[2]);
const { DIMO, DimoEnvironment } = await import(cfg.sdk);

// The setup `make run` prints: point the SDK's tables at the local stack.
DimoEnvironment.Production.Auth = cfg.url;
DimoEnvironment.Production.TokenExchange = cfg.url;
DimoEnvironment.Production.Identity = cfg.url + "/query";
const dimo = new DIMO("Production");

const out = {};
async function step(name, fn) {
  try {
    out[name] = { ok: await fn() };
  } catch (e) {
    const message = e.message.split("\n")[0];
    out[name] = { error: { statusCode: e.statusCode, message, body: e.body } };
  }
}

let developerJwt;
await step("login", async () => {
  developerJwt = await dimo.auth.getDeveloperJwt({
    client_id: cfg.client_id,
    domain: cfg.domain,
    private_key: cfg.key,
  });
  return developerJwt;
});
await step("count", () => dimo.identity.countDimoVehicles());
await step("owned", () =>
  dimo.identity.listVehicleDefinitionsPerAddress({ address: cfg.owner, limit: 10 }));
await step("privileged", () => dimo.identity.query({
  query: `{ vehicles(first: 10, filterBy: {privileged: "${cfg.client_id}"}) {
    totalCount nodes { tokenId } } }`,
}));
await step("sacds", () => dimo.identity.listSacdPerVehicleTokenId({ tokenId: cfg.held }));
await step("vehicle", () => dimo.identity.query({
  query: `{ vehicle(tokenId: ${cfg.held}) { owner definition { make model year }
    aftermarketDevice { tokenId address manufacturer { name } } } }`,
}));
await step("exchange", () =>
  dimo.tokenexchange.exchange({ ...developerJwt, privileges: [4], tokenId: cfg.held }));
await step("exchangeReadme", () =>
  dimo.tokenexchange.exchange({ ...developerJwt, privileges: [1, 5], tokenId: cfg.held }));
await step("getVehicleJwt", () =>
  dimo.tokenexchange.getVehicleJwt({ ...developerJwt, tokenId: cfg.held }));
await step("notHeld", () =>
  dimo.tokenexchange.exchange({ ...developerJwt, privileges: [1], tokenId: cfg.battery_only }));
await step("sold", () =>
  dimo.tokenexchange.exchange({ ...developerJwt, privileges: [1], tokenId: cfg.sold }));
await step("expiring", () =>
  dimo.tokenexchange.exchange({ ...developerJwt, privileges: [4], tokenId: cfg.expiring }));
console.log(JSON.stringify(out));
