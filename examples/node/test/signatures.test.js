// The component's `signatures` import answered by node:crypto, and `Verifier.check`. Every
// verdict must be the same with native checks on and off: the component makes every refusal
// itself and only asks the host for the arithmetic.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Runtime, Verifier, VerifyError } from '../gitlab-azure-oidc.js';
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

const jwks = JSON.stringify({
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa' },
    { ...p256.publicKey.export({ format: 'jwk' }), kid: 'ec' },
  ],
});

function mint(alg) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg, kid: alg === 'ES256' ? 'ec' : 'rsa', typ: 'JWT' };
  const claims = { iss: ISS, aud: AUD, sub: 'project_path:acme/app:ref_type:branch:ref:main', iat: now - 5, exp: now + 300, jti: `jti-${alg}` };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  let sig;
  if (alg === 'RS256') sig = sign('sha256', Buffer.from(input), rsa.privateKey);
  else if (alg === 'PS256') sig = sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 });
  else sig = sign('sha256', Buffer.from(input), { key: p256.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64u(sig)}`;
}

const tamper = (t) => {
  const i = t.lastIndexOf('.') + 11;
  return t.slice(0, i - 1) + (t[i - 1] === 'A' ? 'B' : 'A') + t.slice(i);
};

function outcomes(runtime, tokens) {
  const v = new Verifier({ issuer: ISS, audiences: [AUD], algorithms: ['rs256', 'ps256', 'es256'] }, jwks, { runtime });
  try {
    return tokens.map((t) => {
      try {
        v.verify(t);
        return 'ok';
      } catch (e) {
        if (!(e instanceof VerifyError)) throw e;
        return e.kind;
      }
    });
  } finally {
    v.close();
  }
}

describe('signatures', () => {
  test('native and in-component verdicts agree, and native checks are used', () => {
    const tokens = ['RS256', 'PS256', 'ES256'].flatMap((alg) => { const t = mint(alg); return [t, tamper(t)]; });
    const native = new Runtime();
    const plain = new Runtime({ nativeSignatures: false });
    const withNative = outcomes(native, tokens);
    assert.deepEqual(withNative, ['ok', 'bad-signature', 'ok', 'bad-signature', 'ok', 'bad-signature']);
    assert.deepEqual(outcomes(plain, tokens), withNative);
    assert.equal(native.native.checks, tokens.length);
    assert.equal(plain.native, null);
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
      assert.throws(() => v.check(token, verified.claims.exp + 61n), (e) => e instanceof VerifyError && e.kind === 'expired');
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
      assert.throws(() => v.verify(token), (e) => e instanceof VerifyError && e.kind === 'bad-signature');
      assert.equal(runtime.native.checks, 2);
    } finally {
      v.close();
    }
  });
});
