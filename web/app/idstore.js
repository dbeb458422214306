// The identities of this browser profile, in IndexedDB.
//
// An identity is the object crypto.js makes ({name, keyId, privateKey,
// publicKey, extractable, createdAt}); IndexedDB keeps it by structured
// clone, its keys as CryptoKey objects: a non-extractable private key is
// stored as WebCrypto holds it and is never exported, by this file or any
// other. Which identity is active is kept in the same database.

import { isCanonicalKeyId } from './crypto.js';

const DB_NAME = 'twokey';
const DB_VERSION = 1;
const IDENTITIES = 'identities'; // keyPath keyId
const SETTINGS = 'settings'; // key -> value; 'active' is the active key id
const ACTIVE = 'active';

let opening = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function db() {
  if (opening) return opening;
  opening = new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const d = req.result;
      if (!d.objectStoreNames.contains(IDENTITIES)) d.createObjectStore(IDENTITIES, { keyPath: 'keyId' });
      if (!d.objectStoreNames.contains(SETTINGS)) d.createObjectStore(SETTINGS);
    };
    req.onsuccess = () => {
      const d = req.result;
      // Another tab upgrading the database: let it, and open again next time.
      d.onversionchange = () => {
        d.close();
        opening = null;
      };
      resolve(d);
    };
    req.onerror = () => {
      opening = null;
      reject(new Error(`cannot open this browser's identity store: ${req.error && req.error.message}`));
    };
    req.onblocked = () => {
      opening = null;
      reject(new Error('the identity store is held by another tab of an older version; close it and reload'));
    };
  });
  return opening;
}

// tx runs fn over the named stores in one transaction and resolves with
// fn's result once the transaction has committed.
async function tx(stores, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(stores, mode);
    let result;
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('identity store transaction aborted'));
    Promise.resolve(fn(t)).then((r) => {
      result = r;
    }, (e) => {
      try {
        t.abort();
      } catch {
        // already finished
      }
      reject(e);
    });
  });
}

function checkIdentity(identity) {
  if (!identity || typeof identity !== 'object') throw new TypeError('saveIdentity needs an identity');
  if (!isCanonicalKeyId(identity.keyId)) throw new TypeError('the identity has no valid keyId');
  const { privateKey, publicKey } = identity;
  if (!(privateKey instanceof CryptoKey) || privateKey.type !== 'private' || privateKey.algorithm.name !== 'Ed25519') {
    throw new TypeError('the identity has no Ed25519 private CryptoKey');
  }
  if (!(publicKey instanceof CryptoKey) || publicKey.type !== 'public' || publicKey.algorithm.name !== 'Ed25519') {
    throw new TypeError('the identity has no Ed25519 public CryptoKey');
  }
}

/** Every identity of this profile, oldest first. */
export async function listIdentities() {
  const all = await tx([IDENTITIES], 'readonly', (t) => request(t.objectStore(IDENTITIES).getAll()));
  return all.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.keyId < b.keyId ? -1 : 1));
}

/** The identity of keyId, or null. */
export async function getIdentity(keyId) {
  if (!isCanonicalKeyId(keyId)) return null;
  const id = await tx([IDENTITIES], 'readonly', (t) => request(t.objectStore(IDENTITIES).get(keyId)));
  return id || null;
}

/** Keeps identity (replacing one of the same keyId, e.g. to rename it). */
export async function saveIdentity(identity) {
  checkIdentity(identity);
  const rec = {
    name: String(identity.name || ''),
    keyId: identity.keyId,
    privateKey: identity.privateKey,
    publicKey: identity.publicKey,
    extractable: identity.extractable === true && identity.privateKey.extractable === true,
    createdAt: identity.createdAt || new Date().toISOString(),
  };
  await tx([IDENTITIES], 'readwrite', (t) => request(t.objectStore(IDENTITIES).put(rec)));
  return rec;
}

/** Forgets the identity of keyId (for a non-extractable one, for good);
 * if it was active, none is. */
export async function deleteIdentity(keyId) {
  await tx([IDENTITIES, SETTINGS], 'readwrite', async (t) => {
    const settings = t.objectStore(SETTINGS);
    const active = await request(settings.get(ACTIVE));
    await request(t.objectStore(IDENTITIES).delete(keyId));
    if (active === keyId) await request(settings.delete(ACTIVE));
  });
}

/** The active identity, or null when none is chosen (or it was deleted). */
export async function getActive() {
  return tx([IDENTITIES, SETTINGS], 'readonly', async (t) => {
    const keyId = await request(t.objectStore(SETTINGS).get(ACTIVE));
    if (!keyId) return null;
    return (await request(t.objectStore(IDENTITIES).get(keyId))) || null;
  });
}

/** Makes keyId's identity the active one (null: none). Throws when this
 * profile holds no identity of keyId. */
export async function setActive(keyId) {
  await tx([IDENTITIES, SETTINGS], 'readwrite', async (t) => {
    const settings = t.objectStore(SETTINGS);
    if (keyId === null || keyId === undefined) {
      await request(settings.delete(ACTIVE));
      return;
    }
    const id = await request(t.objectStore(IDENTITIES).get(keyId));
    if (!id) throw new Error(`no identity ${keyId} in this browser`);
    await request(settings.put(keyId, ACTIVE));
  });
}
