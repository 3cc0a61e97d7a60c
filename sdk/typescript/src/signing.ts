/**
 * Request signing exactly as docs/signing.md specifies: the six-line signed string, HMAC-SHA256
 * with the secret's UTF-8 bytes as key, or Ed25519 with a 32-byte seed, base64 signatures.
 *
 * Web Crypto (`globalThis.crypto.subtle`, present in browsers and Node 20+) does the work;
 * where a runtime's Web Crypto lacks Ed25519 (older browsers), Node's `node:crypto` is used.
 */

/** SHA-256 of the empty body, the last line of every signed string without a body. */
export const EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Credentials of one API key: an HMAC secret or an Ed25519 private key (base64 seed). */
export type Credentials =
  | { key: string; secret: string; privateKey?: undefined }
  | { key: string; privateKey: string | Uint8Array; secret?: undefined };

export interface SignInput {
  timestamp: string | number;
  nonce: string;
  method: string;
  /** The request path, without scheme, host or query: `/api/v1/orders`. */
  path: string;
  /** The raw query string exactly as sent, without `?`; empty when there is none. */
  query?: string;
  /** The exact body bytes sent (a string is taken as its UTF-8 bytes). */
  body?: string | Uint8Array;
}

/** The headers a signed request carries. */
export interface SignedHeaders {
  "X-API-Key": string;
  "X-API-Timestamp": string;
  "X-API-Nonce": string;
  "X-API-Signature": string;
}

const encoder = new TextEncoder();

function subtle(): SubtleCrypto | undefined {
  return (globalThis as { crypto?: Crypto }).crypto?.subtle;
}

// A variable specifier keeps browser bundlers from trying to resolve a Node built-in that is
// only ever loaded on the fallback path.
const NODE_CRYPTO = "node:crypto";
type NodeCrypto = typeof import("node:crypto");
let nodeCrypto: Promise<NodeCrypto> | undefined;
function loadNodeCrypto(): Promise<NodeCrypto> {
  nodeCrypto ??= import(/* @vite-ignore */ NODE_CRYPTO) as Promise<NodeCrypto>;
  return nodeCrypto;
}

function bytes(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  const view = typeof data === "string" ? encoder.encode(data) : data;
  // Copy into a fresh ArrayBuffer: Web Crypto refuses views over SharedArrayBuffer.
  const copy = new Uint8Array(new ArrayBuffer(view.byteLength));
  copy.set(view);
  return copy;
}

export function toBase64(data: Uint8Array): string {
  let binary = "";
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.trim());
  const out = new Uint8Array(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function hex(data: ArrayBuffer): string {
  return Array.from(new Uint8Array(data), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lower-case hex SHA-256 of the body bytes. */
export async function sha256Hex(body: string | Uint8Array = ""): Promise<string> {
  const data = bytes(body);
  if (data.byteLength === 0) return EMPTY_BODY_SHA256;
  const crypto = subtle();
  if (crypto) return hex(await crypto.digest("SHA-256", data));
  return (await loadNodeCrypto()).createHash("sha256").update(data).digest("hex");
}

/** The six-line signed string: timestamp, nonce, METHOD, path, query, body SHA-256. */
export async function signedString(input: SignInput): Promise<string> {
  return [
    String(input.timestamp),
    input.nonce,
    input.method.toUpperCase(),
    input.path,
    input.query ?? "",
    await sha256Hex(input.body ?? ""),
  ].join("\n");
}

/** Signs messages with one key; created once per client so keys are imported once. */
export interface Signer {
  readonly scheme: "hmac" | "ed25519";
  sign(message: string): Promise<string>;
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410); Web Crypto and node:crypto both
// import private keys only in a wrapped form.
const ED25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

function ed25519Pkcs8(seed: Uint8Array): Uint8Array<ArrayBuffer> {
  if (seed.byteLength !== 32) {
    throw new TypeError(`an Ed25519 private key is 32 bytes (base64 of the seed); got ${seed.byteLength}`);
  }
  const der = new Uint8Array(new ArrayBuffer(48));
  der.set(ED25519_PKCS8_PREFIX);
  der.set(seed, 16);
  return der;
}

export function hmacSigner(secret: string): Signer {
  if (!secret) throw new TypeError("an HMAC secret must not be empty");
  let key: Promise<CryptoKey> | undefined;
  return {
    scheme: "hmac",
    async sign(message) {
      const crypto = subtle();
      if (crypto) {
        key ??= crypto.importKey("raw", bytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        return toBase64(new Uint8Array(await crypto.sign("HMAC", await key, bytes(message))));
      }
      const node = await loadNodeCrypto();
      return node.createHmac("sha256", bytes(secret)).update(bytes(message)).digest("base64");
    },
  };
}

export function ed25519Signer(privateKey: string | Uint8Array): Signer {
  const der = ed25519Pkcs8(typeof privateKey === "string" ? fromBase64(privateKey) : privateKey);
  let key: Promise<CryptoKey | null> | undefined;
  return {
    scheme: "ed25519",
    async sign(message) {
      const crypto = subtle();
      if (crypto) {
        // null: this runtime's Web Crypto has no Ed25519; remember that and use node:crypto.
        key ??= crypto.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]).catch(() => null);
        const imported = await key;
        if (imported) return toBase64(new Uint8Array(await crypto.sign("Ed25519", imported, bytes(message))));
      }
      const node = await loadNodeCrypto();
      const nodeKey = node.createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
      return node.sign(null, bytes(message), nodeKey).toString("base64");
    },
  };
}

/** The signer for a key's credentials: `secret` for HMAC keys, `privateKey` for Ed25519 keys. */
export function createSigner(credentials: { secret?: string; privateKey?: string | Uint8Array }): Signer {
  if (credentials.secret !== undefined && credentials.privateKey !== undefined) {
    throw new TypeError("give either secret (HMAC key) or privateKey (Ed25519 key), not both");
  }
  if (credentials.secret !== undefined) return hmacSigner(credentials.secret);
  if (credentials.privateKey !== undefined) return ed25519Signer(credentials.privateKey);
  throw new TypeError("a signed request needs secret (HMAC key) or privateKey (Ed25519 key)");
}

const NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** 24 random characters of `A-Za-z0-9_-` (144 bits), from the platform's CSPRNG. */
export function randomNonce(): string {
  const random = new Uint8Array(24);
  globalThis.crypto.getRandomValues(random);
  // 64 symbols: each byte's low 6 bits index the alphabet without bias.
  return Array.from(random, (b) => NONCE_ALPHABET[b & 63]).join("");
}

/** The base64 signature of one request. */
export async function signRequest(signer: Signer, input: SignInput): Promise<string> {
  return signer.sign(await signedString(input));
}

/** The `X-API-*` headers of one request, with a fresh nonce unless one is given. */
export async function signedHeaders(
  keyId: string,
  signer: Signer,
  input: Omit<SignInput, "nonce" | "timestamp"> & { nonce?: string; timestamp?: string | number },
): Promise<SignedHeaders> {
  const timestamp = String(input.timestamp ?? Date.now());
  const nonce = input.nonce ?? randomNonce();
  const signature = await signRequest(signer, { ...input, timestamp, nonce });
  return { "X-API-Key": keyId, "X-API-Timestamp": timestamp, "X-API-Nonce": nonce, "X-API-Signature": signature };
}
