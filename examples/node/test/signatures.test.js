// The component's `signatures` import answered by node:crypto for every `scheme`, and
// `Verifier.check`. Every verdict must be the same with native checks on and off: the component
// makes every refusal itself and only asks the host for the arithmetic.
import assert from 'node:assert/strict';
import { createECDH, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Gate, OidcError, Runtime, Verifier } from '../gitlab-azure-oidc.js';
import { TESTDATA } from './standin.js';

const ISS = 'https://gitlab.example.com';
const AUD = 'api://AzureADTokenExchange';
// The repository's fixture keys, not generateKeyPairSync: Node 20 can deadlock when the garbage
// collector frees a key-generation job while the same key is being exported as a JWK (seen here:
// ~KeyGenJob waits on the mutex ExportJWKRsaKey holds), which hung this file about one run in
// five on a busy machine.
const keyPair = (file) => {
  const privateKey = createPrivateKey(readFileSync(join(TESTDATA, file), 'utf8'));
  return { privateKey, publicKey: createPublicKey(privateKey) };
};
const rsa = keyPair('rsa-2048.key.pem');
const p256 = keyPair('ec-p256.key.pem');
const b64u = (x) => Buffer.from(x).toString('base64url');
// There is no P-384 fixture: a fixed scalar (7...7) and its public point, imported as a JWK.
const p384 = (() => {
  const ecdh = createECDH('secp384r1');
  ecdh.setPrivateKey(Buffer.alloc(48, 7));
  const point = ecdh.getPublicKey();
  const jwk = { kty: 'EC', crv: 'P-384', x: b64u(point.subarray(1, 49)), y: b64u(point.subarray(49)) };
  return { privateKey: createPrivateKey({ key: { ...jwk, d: b64u(ecdh.getPrivateKey()) }, format: 'jwk' }), jwk };
})();

const jwks = JSON.stringify({
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa' },
    { ...p256.publicKey.export({ format: 'jwk' }), kid: 'ec' },
    { ...p384.jwk, kid: 'ec384' },
  ],
});
const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384'];
const KIDS = { ES256: 'ec', ES384: 'ec384' };

function mint(alg) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg, kid: KIDS[alg] ?? 'rsa', typ: 'JWT' };
  const claims = { iss: ISS, aud: AUD, sub: 'project_path:acme/app:ref_type:branch:ref:main', iat: now - 5, exp: now + 300, jti: `jti-${alg}` };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  const hash = `sha${alg.slice(2)}`; // the test's own signer; the wrapper never slices `alg`
  let key = rsa.privateKey;
  if (alg.startsWith('PS')) key = { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: Number(alg.slice(2)) / 8 };
  if (alg.startsWith('ES')) key = { key: alg === 'ES256' ? p256.privateKey : p384.privateKey, dsaEncoding: 'ieee-p1363' };
  return `${input}.${b64u(sign(hash, Buffer.from(input), key))}`;
}

const tamper = (t) => {
  const i = t.lastIndexOf('.') + 11;
  return t.slice(0, i - 1) + (t[i - 1] === 'A' ? 'B' : 'A') + t.slice(i);
};

function outcomes(runtime, tokens) {
  const v = new Verifier({ issuer: ISS, audiences: [AUD], algorithms: ALGS.map((a) => a.toLowerCase()) }, jwks, { runtime });
  try {
    return tokens.map((t) => {
      try {
        v.verify(t);
        return 'ok';
      } catch (e) {
        if (!(e instanceof OidcError)) throw e;
        return e.kind;
      }
    });
  } finally {
    v.close();
  }
}

describe('signatures', () => {
  test('native and in-component verdicts agree for every scheme, and native checks are used', () => {
    const tokens = ALGS.flatMap((alg) => { const t = mint(alg); return [t, tamper(t)]; });
    const native = new Runtime();
    const plain = new Runtime({ nativeSignatures: false });
    const withNative = outcomes(native, tokens);
    assert.deepEqual(withNative, ALGS.flatMap(() => ['ok', 'bad-signature']));
    assert.deepEqual(outcomes(plain, tokens), withNative);
    assert.equal(native.native.checks, tokens.length);
    assert.equal(plain.native, null);
  });

  test('the gate verifies through the native signatures too', () => {
    const runtime = new Runtime();
    const gate = new Gate({ verifier: { issuer: ISS, audiences: [AUD], algorithms: ['es384'] }, target: { tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182' } }, jwks, { runtime });
    try {
      assert.equal(gate.admit(mint('ES384')).verified.header.alg, 'es384');
      assert.throws(() => gate.admit(tamper(mint('ES384'))), (e) => e instanceof OidcError && e.kind === 'bad-signature');
      assert.equal(runtime.native.checks, 2);
    } finally {
      gate.close();
    }
  });

  test('a scheme the host does not know, or a key of the wrong family, is left to the component', () => {
    const native = new Runtime().native;
    const key = { tag: 'rsa', val: { n: new Uint8Array(256), e: new Uint8Array([1, 0, 1]) } };
    assert.equal(native.verifySignature('rsa-pkcs1-sha1', key, new Uint8Array(1), new Uint8Array(256)), 'unsupported');
    assert.equal(native.verifySignature('ecdsa-p256-sha256', key, new Uint8Array(1), new Uint8Array(64)), 'unsupported');
    assert.equal(native.checks, 0);
  });

  test('check returns the identity only and still judges expiry', () => {
    const runtime = new Runtime();
    const v = new Verifier({ issuer: ISS, audiences: [AUD] }, jwks, { runtime });
    try {
      const token = mint('RS256');
      const verified = v.verify(token);
      const checked = v.check(token);
      assert.equal(checked.fingerprint, verified.fingerprint);
      assert.equal(checked.jti, 'jti-RS256');
      assert.equal(checked.expiresAt, verified.claims.exp);
      assert.equal(runtime.native.checks, 1, 'the check was a cache hit');
      assert.throws(() => v.check(token, verified.claims.exp + 61n), (e) => e instanceof OidcError && e.kind === 'expired');
    } finally {
      v.close();
    }
  });

  test('keys that share a modulus are not confused by the native key cache', () => {
    const { n } = rsa.publicKey.export({ format: 'jwk' });
    const doc = JSON.stringify({ keys: [{ kty: 'RSA', kid: 'rsa', n, e: 'AQAB' }, { kty: 'RSA', kid: 'other-e', n, e: 'Aw' }] });
    const runtime = new Runtime();
    const v = new Verifier({ issuer: ISS, audiences: [AUD] }, doc, { runtime });
    try {
      v.verify(mint('RS256'));
      // Signed with the (n, 65537) private key, but naming the (n, 3) key.
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64u(JSON.stringify({ alg: 'RS256', kid: 'other-e', typ: 'JWT' }))}.${b64u(JSON.stringify({ iss: ISS, aud: AUD, sub: 'x', iat: now - 5, exp: now + 300 }))}`;
      const token = `${input}.${b64u(sign('sha256', Buffer.from(input), rsa.privateKey))}`;
      assert.throws(() => v.verify(token), (e) => e instanceof OidcError && e.kind === 'bad-signature');
      assert.equal(runtime.native.checks, 2);
    } finally {
      v.close();
    }
  });
});
