// Interop with panva `jose`: tokens it signs (RS256, PS256, ES256) verify through the component
// and the same tokens altered in one byte are refused; the client assertion a gate with a
// certificate credential signs verifies under jose.
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SignJWT, decodeProtectedHeader, exportJWK, importX509, jwtVerify } from 'jose';
import { Gate, OidcError, Verifier } from '../gitlab-azure-oidc.js';
import { ARM, TESTDATA } from './standin.js';

const ISSUER = 'https://gitlab.example.com';
const AUDIENCE = 'api://AzureADTokenExchange';
const ALGS = ['RS256', 'PS256', 'ES256'];

// The repository's fixture keys rather than freshly generated ones: Node 20 can deadlock when the
// garbage collector frees a key-generation job while the same key is being exported as a JWK
// (see signatures.test.js). jose signs with them and exports their public JWKs all the same.
const KEY_FILES = { RS256: 'rsa-2048.key.pem', PS256: 'rsa-2048.key.pem', ES256: 'ec-p256.key.pem' };
const keys = {};
for (const alg of ALGS) {
  const privateKey = createPrivateKey(readFileSync(join(TESTDATA, KEY_FILES[alg]), 'utf8'));
  const jwk = await exportJWK(createPublicKey(privateKey));
  keys[alg] = { privateKey, jwk: { ...jwk, kid: `jose-${alg}`, alg, use: 'sig' } };
}
const jwks = JSON.stringify({ keys: ALGS.map((a) => keys[a].jwk) });
const verifier = new Verifier({ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['rs256', 'ps256', 'es256'] }, jwks);

const sign = (alg) => new SignJWT({ project_path: 'acme/payments', ref: 'main', ref_protected: 'true' })
  .setProtectedHeader({ alg, kid: `jose-${alg}`, typ: 'JWT' })
  .setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('project_path:acme/payments:ref_type:branch:ref:main')
  .setIssuedAt().setNotBefore('0s').setExpirationTime('5m').setJti(crypto.randomUUID())
  .sign(keys[alg].privateKey);

const b64 = (buf) => Buffer.from(buf).toString('base64url');

for (const alg of ALGS) {
  test(`a jose ${alg} token verifies`, async () => {
    const token = verifier.verify(await sign(alg));
    assert.equal(token.header.alg, alg.toLowerCase());
    assert.equal(token.header.kid, `jose-${alg}`);
    assert.equal(token.gitlab.projectPath, 'acme/payments');
    assert.equal(token.gitlab.refProtected, true);
  });

  for (const [part, name] of [[0, 'header'], [1, 'payload'], [2, 'signature']]) {
    test(`a jose ${alg} token with one byte of its ${name} altered is refused`, async () => {
      const parts = (await sign(alg)).split('.');
      const raw = Buffer.from(parts[part], 'base64url');
      // Inside JSON, flip a letter of a string value so the part stays valid JSON.
      const at = part === 0 ? raw.indexOf('JWT') + 1 : part === 1 ? raw.indexOf('acme') + 1 : raw.length >> 1;
      raw[at] ^= 0x01;
      parts[part] = b64(raw);
      assert.throws(() => verifier.verify(parts.join('.')), (e) => e instanceof OidcError && e.kind === 'bad-signature');
    });
  }
}

for (const algorithm of ['ps256', 'rs256']) {
  test(`our ${algorithm} certificate client assertion verifies under jose`, async () => {
    const certificatePem = readFileSync(join(TESTDATA, 'rsa-2048.cert.pem'), 'utf8');
    const privateKeyPem = readFileSync(join(TESTDATA, 'rsa-2048.key.pem'), 'utf8');
    const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    const clientId = '2b3c4d5e-6f70-4a81-9b2c-3d4e5f607182';
    const gate = new Gate({
      verifier: { issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['rs256', 'ps256', 'es256'] },
      target: { tenant, clientId, scopes: [ARM] },
      credential: { privateKeyPem, certificatePem, algorithm },
    }, jwks);
    const { request } = gate.admit(await sign('ES256'));
    gate.close();
    const assertion = new URLSearchParams(request.body).get('client_assertion');
    const alg = algorithm.toUpperCase();
    const { payload, protectedHeader } = await jwtVerify(assertion, await importX509(certificatePem, alg), {
      algorithms: [alg], issuer: clientId, subject: clientId, audience: request.url, maxTokenAge: '10m',
    });
    assert.equal(protectedHeader.typ, 'JWT');
    assert.ok(payload.jti && payload.exp - payload.nbf <= 600);
    const der = new X509Certificate(certificatePem).raw;
    if (alg === 'PS256') assert.equal(decodeProtectedHeader(assertion)['x5t#S256'], b64(createHash('sha256').update(der).digest()));
    else assert.equal(decodeProtectedHeader(assertion).x5t, b64(createHash('sha1').update(der).digest()));
  });
}
