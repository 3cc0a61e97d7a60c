// Bourse quickstart with the TypeScript SDK (@bourse/sdk, in sdk/typescript/): read the server
// time, your account, your balances and your latest ledger entries.
//
//   BOURSE_URL=http://127.0.0.1:8000 BOURSE_KEY_ID=bk_... BOURSE_SECRET=... node quickstart.mjs
//
// For an Ed25519 key set BOURSE_PRIVATE_KEY (base64 of the 32-byte seed) instead of
// BOURSE_SECRET. Compile with tsc (strict) or run with any TypeScript runner; every value below
// is typed from the OpenAPI document.
import { Bourse, BourseError } from "@bourse/sdk";

const secret = process.env.BOURSE_SECRET;
const privateKey = process.env.BOURSE_PRIVATE_KEY;

const client = new Bourse({
  baseUrl: process.env.BOURSE_URL ?? "http://127.0.0.1:8000",
  key: process.env.BOURSE_KEY_ID ?? "",
  ...(secret !== undefined ? { secret } : { privateKey: privateKey ?? "" }),
});

try {
  const server = await client.time();
  console.log(`server time ${server.server_time} (clock offset ${server.epoch_ms - Date.now()} ms)`);

  const account = await client.account();
  console.log(`account ${account.account_id} (${account.name}), key scopes ${account.api_key.scopes.join(",")}`);
  console.error(`RateLimit: ${JSON.stringify(client.rateLimit?.limits)}`);

  // Every list is an async iterable that follows next_cursor page by page.
  for await (const row of client.balances.list()) {
    console.log(`${row.asset.padEnd(6)} total ${row.total.padStart(22)} available ${row.available.padStart(22)} locked ${row.locked.padStart(22)}`);
  }

  // One page only: the three newest entries.
  const ledger = await client.ledger.list({ limit: 3 }).page();
  for (const entry of ledger.results) {
    console.log(`ledger ${entry.created_at} ${entry.kind.padEnd(10)} ${entry.asset} ${entry.amount} (${entry.bucket})`);
  }
} catch (error) {
  // Refusals are BourseError: status, stable code, detail, request id and field errors.
  if (error instanceof BourseError) {
    console.error(`${error.method} ${error.path} refused: ${error.status} ${error.code}: ${error.detail} (request ${error.requestId})`);
  } else {
    console.error(error);
  }
  process.exit(1);
}
