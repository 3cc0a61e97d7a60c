// The published test vectors, read from docs/signing.md itself so the SDK is checked against
// exactly what integrators see (the Python suite checks the same blocks against the server).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createSigner, EMPTY_BODY_SHA256, randomNonce, sha256Hex, signedHeaders, signedString, signRequest } from "../src/index.js";

const doc = readFileSync(fileURLToPath(new URL("../../../docs/signing.md", import.meta.url)), "utf8");

function shared(name: string): string {
  const match = new RegExp(`^${name}\\s+(\\S+)`, "m").exec(doc);
  if (!match?.[1]) throw new Error(`docs/signing.md has no shared input "${name}"`);
  return match[1];
}

const vectors = [...doc.matchAll(/```vector\n([\s\S]*?)```/g)].map((block) => {
  const fields: Record<string, string> = {};
  for (const line of (block[1] ?? "").split("\n")) {
    const match = /^(\w+)(?:\s+(.*))?$/.exec(line);
    if (match?.[1]) fields[match[1]] = match[2] ?? "";
  }
  return fields;
});

const SECRET = shared("hmac secret");
const PRIVATE_KEY = shared("ed25519 private key");

describe("published signing vectors", () => {
  it("finds all six vectors in docs/signing.md", () => {
    expect(vectors).toHaveLength(6);
    expect(vectors.map((v) => v.scheme)).toEqual(["hmac", "hmac", "hmac", "ed25519", "ed25519", "ed25519"]);
  });

  it.each(vectors.map((v, i) => [i + 1, v] as const))("vector %i", async (_n, v) => {
    const input = {
      timestamp: v.timestamp ?? "", nonce: v.nonce ?? "", method: v.method ?? "", path: v.path ?? "",
      query: v.query ?? "", body: v.body ?? "",
    };
    expect(await sha256Hex(input.body)).toBe(v.body_sha256);
    const signer = createSigner(v.scheme === "hmac" ? { secret: SECRET } : { privateKey: PRIVATE_KEY });
    expect(signer.scheme).toBe(v.scheme);
    expect(await signRequest(signer, input)).toBe(v.signature);
  });

  it("builds vector 1's signed string line by line", async () => {
    expect(await signedString({ timestamp: 1795456800000, nonce: "vector1-nonce-0001", method: "get", path: "/api/v1/balances" }))
      .toBe(`1795456800000\nvector1-nonce-0001\nGET\n/api/v1/balances\n\n${EMPTY_BODY_SHA256}`);
  });

  it("signs the same bytes whether the body is a string or a Uint8Array", async () => {
    const signer = createSigner({ secret: SECRET });
    const v = vectors[2]!;
    const bytes = new TextEncoder().encode(v.body);
    expect(await signRequest(signer, { timestamp: v.timestamp!, nonce: v.nonce!, method: "POST", path: v.path!, body: bytes }))
      .toBe(v.signature);
  });

  it("accepts an Ed25519 seed as raw bytes", async () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
    const v = vectors[5]!;
    expect(await signRequest(createSigner({ privateKey: seed }), { timestamp: v.timestamp!, nonce: v.nonce!, method: "GET", path: "/ws/v1" }))
      .toBe(v.signature);
  });
});

describe("signed headers", () => {
  it("carries key, timestamp, a fresh valid nonce and the signature", async () => {
    const signer = createSigner({ secret: SECRET });
    const a = await signedHeaders("bk_test", signer, { method: "GET", path: "/api/v1/account", timestamp: 1795456800000 });
    const b = await signedHeaders("bk_test", signer, { method: "GET", path: "/api/v1/account", timestamp: 1795456800000 });
    expect(a["X-API-Key"]).toBe("bk_test");
    expect(a["X-API-Timestamp"]).toBe("1795456800000");
    expect(a["X-API-Nonce"]).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
    expect(a["X-API-Nonce"]).not.toBe(b["X-API-Nonce"]);
    expect(a["X-API-Signature"]).toBe(await signRequest(signer, {
      timestamp: 1795456800000, nonce: a["X-API-Nonce"], method: "GET", path: "/api/v1/account",
    }));
  });

  it("makes nonces of the allowed alphabet and length", () => {
    for (let i = 0; i < 50; i++) expect(randomNonce()).toMatch(/^[A-Za-z0-9_-]{24}$/);
  });

  it("refuses ambiguous or malformed credentials clearly", () => {
    expect(() => createSigner({})).toThrow(/secret.*privateKey/);
    expect(() => createSigner({ secret: "s", privateKey: PRIVATE_KEY })).toThrow(/not both/);
    expect(() => createSigner({ privateKey: "AAEC" })).toThrow(/32 bytes/);
    expect(() => createSigner({ secret: "" })).toThrow(/empty/);
  });
});

describe("without Web Crypto (node:crypto fallback)", () => {
  it("still produces the published signatures and hashes", async () => {
    const original = globalThis.crypto;
    // A runtime whose crypto has random values but no SubtleCrypto (e.g. an insecure context).
    Object.defineProperty(globalThis, "crypto", {
      value: { getRandomValues: original.getRandomValues.bind(original) }, configurable: true,
    });
    try {
      for (const v of vectors) {
        const signer = createSigner(v.scheme === "hmac" ? { secret: SECRET } : { privateKey: PRIVATE_KEY });
        const input = { timestamp: v.timestamp!, nonce: v.nonce!, method: v.method!, path: v.path!, query: v.query ?? "", body: v.body ?? "" };
        expect(await sha256Hex(input.body)).toBe(v.body_sha256);
        expect(await signRequest(signer, input)).toBe(v.signature);
      }
    } finally {
      Object.defineProperty(globalThis, "crypto", { value: original, configurable: true });
    }
  });
});
