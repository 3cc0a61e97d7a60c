// Bourse quickstart client: read the server time, your account and your balances.
//
//   BOURSE_URL=http://127.0.0.1:8000 BOURSE_KEY_ID=bk_... BOURSE_SECRET=... node quickstart.mjs
//
// Node 18+ only (global fetch, node:crypto); no npm packages. For an Ed25519 key set
// BOURSE_PRIVATE_KEY (base64 of the 32-byte seed) instead of BOURSE_SECRET. The code is plain
// JavaScript that TypeScript also accepts (types in JSDoc); rename to .mts to use it there.
import { createHash, createHmac, createPrivateKey, randomBytes, sign } from "node:crypto";

const BASE_URL = (process.env.BOURSE_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const KEY_ID = process.env.BOURSE_KEY_ID ?? "";
const SECRET = process.env.BOURSE_SECRET;
const PRIVATE_KEY = process.env.BOURSE_PRIVATE_KEY;

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed, so node:crypto can load it.
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** @param {string} message @returns {string} base64 signature */
function signature(message) {
  if (SECRET !== undefined) {
    return createHmac("sha256", Buffer.from(SECRET, "utf8")).update(message, "utf8").digest("base64");
  }
  const seed = Buffer.from(PRIVATE_KEY ?? "", "base64");
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
  return sign(null, Buffer.from(message, "utf8"), key).toString("base64");
}

/**
 * One request; resolves to the decoded JSON body, rejects with the problem's code and detail.
 * @param {string} method @param {string} path @param {string} [query] @param {string} [body]
 * @param {boolean} [signed]
 * @returns {Promise<any>}
 */
async function call(method, path, query = "", body = "", signed = true) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (body) headers["Content-Type"] = "application/json";
  if (signed) {
    const timestamp = String(Date.now());
    const nonce = randomBytes(18).toString("base64url"); // 24 characters of A-Za-z0-9_-
    const bodyHash = createHash("sha256").update(body, "utf8").digest("hex");
    const message = [timestamp, nonce, method, path, query, bodyHash].join("\n");
    Object.assign(headers, {
      "X-API-Key": KEY_ID,
      "X-API-Timestamp": timestamp,
      "X-API-Nonce": nonce,
      "X-API-Signature": signature(message),
    });
  }
  const url = BASE_URL + path + (query ? `?${query}` : "");
  const response = await fetch(url, { method, headers, body: body || undefined });
  const payload = await response.json();
  if (!response.ok) throw new Error(`${method} ${path} refused: ${response.status} ${payload.code}: ${payload.detail}`);
  console.error(`${method} ${path}: ${response.status}, RateLimit ${response.headers.get("RateLimit")}`);
  return payload;
}

async function main() {
  const server = await call("GET", "/api/v1/time", "", "", false);
  console.log(`server time ${server.server_time} (clock offset ${server.epoch_ms - Date.now()} ms)`);
  const account = await call("GET", "/api/v1/account");
  console.log(`account ${account.account_id} (${account.name}), key scopes ${account.api_key.scopes.join(",")}`);
  const balances = await call("GET", "/api/v1/balances");
  for (const row of balances.results) {
    console.log(`${row.asset.padEnd(6)} total ${row.total.padStart(22)} available ${row.available.padStart(22)} locked ${row.locked.padStart(22)}`);
  }
  const ledger = await call("GET", "/api/v1/ledger", "limit=3");
  for (const entry of ledger.results) {
    console.log(`ledger ${entry.created_at} ${entry.kind.padEnd(10)} ${entry.asset} ${entry.amount} (${entry.bucket})`);
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
