// The few primitives of @noble/hashes and @noble/ciphers that the browser
// app needs and WebCrypto lacks, for the libsodium sealed box (PROTOCOL 8):
// BLAKE2b (its nonce), HSalsa20 (its key) and XSalsa20-Poly1305 (the box).
// scripts/web-deps.sh bundles this file into web/app/vendor/noble.js.
export { blake2b } from '@noble/hashes/blake2.js';
export { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
