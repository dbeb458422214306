// twokey's cryptography in the browser: the encodings of PROTOCOL 1, DSSE
// envelopes signed and verified over the exact payload bytes (2), records
// and their hash chain (3), identities and their `twokey id` file, and the
// libsodium sealed box of a secret to the gateway (8).
//
// Ed25519, X25519 and SHA-256 are WebCrypto's; BLAKE2b, HSalsa20 and
// XSalsa20-Poly1305, which WebCrypto lacks, come from the vendored noble
// libraries (./vendor/noble.js, see web/deps/README.md). Private keys are
// CryptoKey objects: a non-extractable one never leaves WebCrypto.
//
// Every function here is held to the Go implementation by tests/browser.

import { blake2b, hsalsa, xsalsa20poly1305 } from './vendor/noble.js';

const subtle = globalThis.crypto.subtle;

// ---------------------------------------------------------------------------
// Encodings (PROTOCOL 1)

const STD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URLSAFE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const STD_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URL_RE = /^[A-Za-z0-9_-]*$/;

function bytesOf(u8, what) {
  if (u8 instanceof Uint8Array) return u8;
  if (u8 instanceof ArrayBuffer) return new Uint8Array(u8);
  throw new TypeError(`${what} must be a Uint8Array`);
}

function encode(u8, alphabet, pad) {
  const b = bytesOf(u8, 'the bytes to encode');
  let out = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  if (b.length - i === 1) {
    const n = b[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? '==' : '');
  } else if (b.length - i === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '');
  }
  return out;
}

// decode reads base64 text already checked against its alphabet (padding
// stripped), then insists that encoding the result gives the text back:
// the spare bits of the last character must be zero, as Go's Strict
// decoder insists, so that one byte string has exactly one spelling.
function decode(s, alphabet, pad, what) {
  const body = pad ? s.replace(/=+$/, '') : s;
  if (body.length % 4 === 1) throw new Error(`${what} is not valid base64: its length is impossible`);
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < body.length; i++) {
    acc = (acc << 6) | alphabet.indexOf(body[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  if (acc !== 0) throw new Error(`${what} is not canonical base64: the unused bits of its last character are not zero`);
  return out;
}

/** Standard base64 with padding (signatures, payloads, sealed blobs). */
export function b64encode(u8) {
  return encode(u8, STD, true);
}

/** Decodes standard padded base64, strictly: no whitespace, no missing
 * padding, no URL alphabet, no non-zero spare bits. Throws otherwise. */
export function b64decode(s) {
  if (typeof s !== 'string') throw new TypeError('base64 text must be a string');
  if (!STD_RE.test(s)) throw new Error('text is not standard padded base64');
  return decode(s, STD, true, 'text');
}

/** Base64url without padding (key ids, the gateway's box key). */
export function b64urlEncode(u8) {
  return encode(u8, URLSAFE, false);
}

/** Decodes base64url without padding, strictly. Throws otherwise. */
export function b64urlDecode(s) {
  if (typeof s !== 'string') throw new TypeError('base64url text must be a string');
  if (!URL_RE.test(s)) throw new Error('text is not unpadded base64url');
  return decode(s, URLSAFE, false, 'text');
}

const encoder = new TextEncoder();

/** The UTF-8 bytes of a string. */
export function utf8(str) {
  if (typeof str !== 'string') throw new TypeError('utf8 takes a string');
  return encoder.encode(str);
}

/** Lower-case hex of bytes. */
export function hex(u8) {
  const b = bytesOf(u8, 'the bytes to write as hex');
  let out = '';
  for (let i = 0; i < b.length; i++) out += b[i].toString(16).padStart(2, '0');
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** SHA-256 of bytes. */
export async function sha256(u8) {
  return new Uint8Array(await subtle.digest('SHA-256', bytesOf(u8, 'the bytes to hash')));
}

/** "sha256:" and the lower-case hex of SHA-256 (PROTOCOL 1): a payload's
 * digest is request_digest and proposal_digest (PROTOCOL 4). */
export async function digestOf(u8) {
  return 'sha256:' + hex(await sha256(u8));
}

// ---------------------------------------------------------------------------
// DSSE envelopes (PROTOCOL 2)

const TYPE_PREFIX = 'application/vnd.twokey.';
const TYPE_SUFFIX = '+json';
const KIND_RE = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)*$/;

/** The payloadType of a kind: application/vnd.twokey.KIND+json. */
export function payloadTypeOf(kind) {
  if (typeof kind !== 'string' || !KIND_RE.test(kind)) throw new Error(`"${kind}" is not a twokey kind`);
  return TYPE_PREFIX + kind + TYPE_SUFFIX;
}

/** The kind a payloadType names, or null when it is not of the form
 * application/vnd.twokey.KIND+json. */
export function kindOf(payloadType) {
  if (typeof payloadType !== 'string' || !payloadType.startsWith(TYPE_PREFIX) || !payloadType.endsWith(TYPE_SUFFIX)) return null;
  const kind = payloadType.slice(TYPE_PREFIX.length, payloadType.length - TYPE_SUFFIX.length);
  return KIND_RE.test(kind) ? kind : null;
}

/** DSSE v1 pre-authentication encoding, the bytes a signature covers:
 * "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload. */
export function pae(payloadType, payloadBytes) {
  if (typeof payloadType !== 'string') throw new TypeError('payloadType must be a string');
  const type = utf8(payloadType);
  const payload = bytesOf(payloadBytes, 'the payload');
  return concat(utf8(`DSSEv1 ${type.length} `), type, utf8(` ${payload.length} `), payload);
}

/** Whether s is a key id in its one canonical spelling: 43 characters of
 * base64url without padding that decode to 32 bytes and encode back to s. */
export function isCanonicalKeyId(s) {
  if (typeof s !== 'string' || s.length !== 43 || !URL_RE.test(s)) return false;
  try {
    const raw = b64urlDecode(s);
    return raw.length === 32 && b64urlEncode(raw) === s;
  } catch {
    return false;
  }
}

// The y coordinates (little-endian) of the Ed25519 points of small order,
// as conversation/point.go lists them: a key there verifies forged
// signatures, so the Go side refuses it as a key id, and so does this.
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
];

// usableKey is conversation.usableKey: y below p and not of small order.
function usableKey(raw) {
  const y = raw.slice();
  y[31] &= 0x7f;
  if (y[0] >= 0xed && y[31] === 0x7f && y.subarray(1, 31).every((b) => b === 0xff)) return false;
  return !SMALL_ORDER_Y.includes(hex(y));
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const strictUTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Signs payloadObject as kind: the payload bytes are the UTF-8 of
 * JSON.stringify(payloadObject), kept exactly as signed. Returns the
 * envelope, those bytes and their digest (request_digest for a
 * gate.request, proposal_digest for a member.propose). */
export async function signEnvelope(identity, kind, payloadObject) {
  if (!identity || !(identity.privateKey instanceof CryptoKey) || !isCanonicalKeyId(identity.keyId)) {
    throw new TypeError('signEnvelope needs an identity with a privateKey and a keyId');
  }
  if (!isPlainObject(payloadObject)) throw new TypeError('a payload must be a JSON object');
  const payloadType = payloadTypeOf(kind);
  const payloadBytes = utf8(JSON.stringify(payloadObject));
  const sig = new Uint8Array(await subtle.sign({ name: 'Ed25519' }, identity.privateKey, pae(payloadType, payloadBytes)));
  const envelope = {
    payloadType,
    payload: b64encode(payloadBytes),
    signatures: [{ keyid: identity.keyId, sig: b64encode(sig) }],
  };
  return { envelope, payloadBytes, digest: await digestOf(payloadBytes) };
}

function refuse(reason) {
  return { ok: false, reason, kind: null, keyId: null, payloadBytes: null, payload: null };
}

/** Verifies a DSSE envelope as the gateway does (conversation.Verify):
 * its shape, exactly one signature, a payloadType of the form
 * application/vnd.twokey.KIND+json, a canonical key id of a usable key, an
 * Ed25519 signature over PAE of the payload bytes exactly as decoded, and a
 * payload that is valid UTF-8 and one JSON object. Never throws: the
 * answer is {ok, reason, kind, keyId, payloadBytes, payload}, reason a
 * sentence when ok is false. */
export async function verifyEnvelope(env) {
  try {
    if (!isPlainObject(env)) return refuse('envelope is not a JSON object');
    if (typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) {
      return refuse('envelope needs payloadType, payload and signatures');
    }
    if (env.signatures.length !== 1) {
      return refuse(`envelope has ${env.signatures.length} signatures; exactly one is required`);
    }
    const kind = kindOf(env.payloadType);
    if (kind === null) return refuse('payloadType is not application/vnd.twokey.KIND+json');
    const s = env.signatures[0];
    if (!isPlainObject(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') {
      return refuse('signature needs keyid and sig');
    }
    if (!isCanonicalKeyId(s.keyid)) return refuse('key id is not in canonical form (43 characters of base64url for 32 bytes)');
    const pub = b64urlDecode(s.keyid);
    if (!usableKey(pub)) return refuse('key id is not a usable Ed25519 public key');
    let payloadBytes;
    try {
      payloadBytes = b64decode(env.payload);
    } catch {
      return refuse('payload is not standard padded base64');
    }
    let sig;
    try {
      sig = b64decode(s.sig);
    } catch {
      return refuse('signature is not standard padded base64');
    }
    if (sig.length !== 64) return refuse(`signature is ${sig.length} bytes; Ed25519 signatures are 64`);
    let good = false;
    try {
      const key = await subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
      good = await subtle.verify({ name: 'Ed25519' }, key, sig, pae(env.payloadType, payloadBytes));
    } catch {
      good = false;
    }
    if (!good) return refuse('signature does not verify');
    let text;
    try {
      text = strictUTF8.decode(payloadBytes);
    } catch {
      return refuse('payload is not valid UTF-8');
    }
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      return refuse('payload is not valid JSON');
    }
    if (!isPlainObject(payload)) return refuse('payload is not a JSON object');
    return { ok: true, reason: '', kind, keyId: s.keyid, payloadBytes, payload };
  } catch (e) {
    return refuse(`envelope cannot be read: ${e && e.message ? e.message : e}`);
  }
}

// ---------------------------------------------------------------------------
// Records and the hash chain (PROTOCOL 3)

const CHAIN_RE = /^sha256:[0-9a-f]{64}$/;

function parseChain(s) {
  if (typeof s !== 'string' || !CHAIN_RE.test(s)) throw new Error('a chain value is "sha256:" and 64 lower-case hex digits');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(s.slice(7 + 2 * i, 9 + 2 * i), 16);
  return out;
}

/** The chain value of the record holding envelope, after the record whose
 * chain is prevChain (null before the first record: 32 zero bytes):
 * SHA-256(chain(n-1) || SHA-256(PAE(envelope n))), as a digest. Throws on
 * a malformed chain value or payload. */
export async function chainStep(prevChain, envelope) {
  const prev = prevChain === null || prevChain === undefined ? new Uint8Array(32) : parseChain(prevChain);
  if (!isPlainObject(envelope) || typeof envelope.payloadType !== 'string') throw new TypeError('chainStep needs an envelope');
  const inner = await sha256(pae(envelope.payloadType, b64decode(envelope.payload)));
  return digestOf(concat(prev, inner));
}

// The kinds only the gateway writes: conversation/kinds.go and the G rows
// of PROTOCOL 4 (gate.approved is section 9's).
const GATEWAY_KINDS = new Set([
  'gate.enabled', 'gate.secret.stored', 'gate.secret.revoked', 'gate.executed', 'gate.response',
  'gate.failed', 'gate.expired', 'gate.rejected', 'gate.cancelled', 'gate.approved',
  'member.changed', 'checkpoint',
]);

/** Whether only the gateway may write kind. */
export function isGatewayKind(kind) {
  return GATEWAY_KINDS.has(kind);
}

// programRequest is conversation.ProgramRequest: a gate.request the
// gateway wrote for a program key, the one member kind it signs, always
// naming the program.
function programRequest(kind, payload) {
  return kind === 'gate.request' && typeof payload.program === 'string' && payload.program !== '';
}

// sameJSON compares the server's decoded copy of a payload with the
// payload decoded from the signed bytes. Both went through JSON.parse, so
// equal JSON gives equal text here, key order included.
function sameJSON(body, payload) {
  try {
    return JSON.stringify(body) === JSON.stringify(payload);
  } catch {
    return false;
  }
}

function refuseRecord(reason, seq) {
  return { ok: false, reason, seq: Number.isSafeInteger(seq) ? seq : null, kind: null, author: null, chain: null, payload: null, payloadBytes: null, digest: null };
}

/** Verifies one record after prev ({seq, chain} of the record before it,
 * already verified, or null for the first record) against the gateway's
 * signing key id, as conversation.ChainVerifier does: the seq follows
 * prev's, the envelope verifies, the record's kind and author are its
 * envelope's, a gateway kind is signed by the gateway and no other kind is
 * (but a program's gate.request), the body is the signed payload, and the
 * chain follows prev's. Never throws: {ok, reason, seq, kind, author,
 * chain, payload, payloadBytes, digest}. Use payload (decoded from the
 * signed bytes), never rec.body. */
export async function verifyRecord(rec, prev, gatewayKeyId) {
  try {
    if (!isPlainObject(rec)) return refuseRecord('record is not a JSON object');
    const seq = rec.seq;
    if (!Number.isSafeInteger(seq) || seq < 1) return refuseRecord('record has no valid seq');
    let want = 1;
    if (prev !== null && prev !== undefined) {
      if (!isPlainObject(prev) || !Number.isSafeInteger(prev.seq)) return refuseRecord('the previous record is not {seq, chain}', seq);
      want = prev.seq + 1;
    }
    if (seq !== want) {
      return refuseRecord(`record ${seq} is not record ${want}: a record is missing or out of order`, seq);
    }
    if (!isCanonicalKeyId(gatewayKeyId)) return refuseRecord('the gateway key id to check against is not a key id', seq);
    const v = await verifyEnvelope(rec.envelope);
    if (!v.ok) return refuseRecord(`record ${seq}: ${v.reason}`, seq);
    if (rec.kind !== v.kind) return refuseRecord(`record ${seq}: its kind does not match its envelope's (${v.kind})`, seq);
    if (rec.author !== v.keyId) return refuseRecord(`record ${seq}: its author is not its envelope's signer`, seq);
    if (GATEWAY_KINDS.has(v.kind) && v.keyId !== gatewayKeyId) {
      return refuseRecord(`record ${seq}: ${v.kind} is the gateway's to write but is signed by another key`, seq);
    }
    if (!GATEWAY_KINDS.has(v.kind) && v.keyId === gatewayKeyId && !programRequest(v.kind, v.payload)) {
      return refuseRecord(`record ${seq}: ${v.kind} is signed by the gateway, which writes only gateway kinds`, seq);
    }
    if (!('body' in rec) || !sameJSON(rec.body, v.payload)) {
      return refuseRecord(`record ${seq}: its body does not match its envelope's signed payload`, seq);
    }
    let chain;
    try {
      chain = await chainStep(prev ? prev.chain : null, rec.envelope);
    } catch {
      return refuseRecord(`record ${seq}: the previous record's chain value is malformed`, seq);
    }
    if (rec.chain !== chain) {
      return refuseRecord(`record ${seq}: chain does not match the previous record (the log before it was changed)`, seq);
    }
    return {
      ok: true, reason: '', seq, kind: v.kind, author: v.keyId, chain,
      payload: v.payload, payloadBytes: v.payloadBytes, digest: await digestOf(v.payloadBytes),
    };
  } catch (e) {
    return refuseRecord(`record cannot be read: ${e && e.message ? e.message : e}`, rec && rec.seq);
  }
}

// ---------------------------------------------------------------------------
// Identities

// The PKCS#8 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed
// follows it.
const ED25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

async function keyIdOf(publicKey) {
  return b64urlEncode(new Uint8Array(await subtle.exportKey('raw', publicKey)));
}

/** Makes a fresh Ed25519 identity in WebCrypto. With extractable false (the
 * default) its private key can never be read out, not even by this app:
 * such an identity lives and dies with this browser profile. The identity
 * is a plain object that IndexedDB stores by structured clone. */
export async function generateIdentity(name, { extractable = false } = {}) {
  if (typeof name !== 'string') throw new TypeError('an identity needs a name');
  const pair = await subtle.generateKey({ name: 'Ed25519' }, extractable === true, ['sign', 'verify']);
  return {
    name,
    keyId: await keyIdOf(pair.publicKey),
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    extractable: extractable === true,
    createdAt: new Date().toISOString(),
  };
}

/** Imports the text of a `twokey id` identity file
 * ({"version":1,"name","key_id","seed"}) as a NON-extractable identity: the
 * seed is used once to derive the public key, then only a non-extractable
 * CryptoKey holds it. Throws an Error naming what is wrong with the file. */
export async function importIdentityFile(text) {
  if (typeof text !== 'string') throw new TypeError('importIdentityFile takes the text of the file');
  let f;
  try {
    f = JSON.parse(text);
  } catch {
    throw new Error('this is not a twokey identity file: it is not JSON');
  }
  if (!isPlainObject(f)) throw new Error('this is not a twokey identity file: it is not a JSON object');
  if (f.version !== 1) throw new Error(`identity file version ${JSON.stringify(f.version)} is not supported; this app reads version 1`);
  if (f.name !== undefined && typeof f.name !== 'string') throw new Error('identity file has a name that is not text');
  if (typeof f.seed !== 'string') throw new Error('identity file has no seed');
  let seed;
  try {
    seed = b64decode(f.seed);
  } catch {
    throw new Error('identity file has a seed that is not standard base64');
  }
  if (seed.length !== 32) throw new Error(`identity file has a seed of ${seed.length} bytes; an Ed25519 seed is 32`);
  if (f.key_id !== undefined && !isCanonicalKeyId(f.key_id)) throw new Error('identity file has a key_id that is not a key id');
  const pkcs8 = concat(ED25519_PKCS8, seed);
  try {
    // Once extractable, only to read the public key out of it.
    const once = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
    const jwk = await subtle.exportKey('jwk', once);
    const pub = b64urlDecode(jwk.x);
    const keyId = b64urlEncode(pub);
    if (f.key_id !== undefined && f.key_id !== keyId) {
      throw new Error('identity file is corrupt: its key_id does not match its seed');
    }
    const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
    const publicKey = await subtle.importKey('raw', pub, { name: 'Ed25519' }, true, ['verify']);
    return { name: f.name || '', keyId, privateKey, publicKey, extractable: false, createdAt: new Date().toISOString() };
  } finally {
    pkcs8.fill(0);
    seed.fill(0);
  }
}

/** Writes an identity as a `twokey id` file (what `twokey id new` writes),
 * for an identity made with {extractable: true} only. Throws for any other:
 * its private key cannot leave the browser. */
export async function exportIdentityFile(identity) {
  if (!identity || !(identity.privateKey instanceof CryptoKey)) throw new TypeError('exportIdentityFile needs an identity');
  if (!identity.extractable || !identity.privateKey.extractable) {
    throw new Error('this identity was made non-extractable: its private key cannot leave this browser, so it cannot be saved as a file');
  }
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', identity.privateKey));
  try {
    if (pkcs8.length !== 48 || !equalBytes(pkcs8.subarray(0, 16), ED25519_PKCS8)) {
      throw new Error('the private key is not an Ed25519 key in the expected form');
    }
    const seed = pkcs8.subarray(16);
    return JSON.stringify({ version: 1, name: identity.name, key_id: identity.keyId, seed: b64encode(seed) }, null, 2) + '\n';
  } finally {
    pkcs8.fill(0);
  }
}

// ---------------------------------------------------------------------------
// Sealed box (PROTOCOL 8)

const SIGMA = utf8('expand 32-byte k');

// hsalsa20 is HSalsa20(key, input) on bytes. noble's hsalsa works on
// 32-bit word views in the host's byte order, as its own callers pass
// them, and writes its output the same way.
function hsalsa20(key, input) {
  const s = new Uint32Array(SIGMA.slice().buffer);
  const k = new Uint32Array(key.slice().buffer);
  const i = new Uint32Array(input.slice().buffer);
  const out = new Uint32Array(8);
  hsalsa(s, k, i, out);
  k.fill(0);
  return new Uint8Array(out.buffer);
}

/** Seals messageBytes to the X25519 public key boxKeyB64url (the gateway's
 * box_key) as libsodium's crypto_box_seal does: an ephemeral X25519 key,
 * nonce = BLAKE2b-192(epk || pk), XSalsa20-Poly1305 under
 * HSalsa20(X25519(esk, pk), 0^16); the output epk || box, in standard
 * base64. Go opens it with box.OpenAnonymous. */
export async function sealBox(messageBytes, boxKeyB64url) {
  const ephemeral = await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
  return sealBoxWith(messageBytes, boxKeyB64url, ephemeral);
}

/** sealBox with a given ephemeral X25519 key pair (a CryptoKeyPair); for
 * the tests' fixed vectors. A real box takes a fresh one: use sealBox. */
export async function sealBoxWith(messageBytes, boxKeyB64url, ephemeral) {
  const msg = bytesOf(messageBytes, 'the message to seal');
  if (!isCanonicalKeyId(boxKeyB64url)) throw new Error('the box key is not 32 bytes of unpadded base64url');
  const pk = b64urlDecode(boxKeyB64url);
  const epk = new Uint8Array(await subtle.exportKey('raw', ephemeral.publicKey));
  const recipient = await subtle.importKey('raw', pk, { name: 'X25519' }, false, []);
  let shared;
  try {
    shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: recipient }, ephemeral.privateKey, 256));
  } catch {
    throw new Error('the box key is not a usable X25519 public key');
  }
  const key = hsalsa20(shared, new Uint8Array(16));
  shared.fill(0);
  const nonce = blake2b(concat(epk, pk), { dkLen: 24 });
  const box = xsalsa20poly1305(key, nonce).encrypt(msg);
  key.fill(0);
  return b64encode(concat(epk, box));
}

/** A fresh session.open nonce: 24 random bytes in standard base64. */
export function randomNonce() {
  return b64encode(globalThis.crypto.getRandomValues(new Uint8Array(24)));
}
