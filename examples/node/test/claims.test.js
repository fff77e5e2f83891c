// One claim table: the component's `claim-table()` names every claim; the WIT registered-claims
// record and this wrapper's typed GitLab claims must name the same ones, so a claim added to the
// core without the wrapper (or the other way round) fails here.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { test } from 'node:test';
import { Verifier, claimTable } from '../gitlab-azure-oidc.js';
import { TESTDATA } from './standin.js';

const ISS = 'https://gitlab.example.com';
const AUD = 'api://AzureADTokenExchange';
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const table = claimTable();

// The repository's fixture key (see signatures.test.js for why not a generated one).
const privateKey = createPrivateKey(readFileSync(join(TESTDATA, 'rsa-2048.key.pem'), 'utf8'));
const jwks = JSON.stringify({ keys: [{ ...createPublicKey(privateKey).export({ format: 'jwk' }), kid: 'k' }] });
const b64u = (x) => Buffer.from(x).toString('base64url');
function mint(claims) {
  const input = `${b64u(JSON.stringify({ alg: 'RS256', kid: 'k', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(sign('sha256', Buffer.from(input), privateKey))}`;
}

/** A value of each claim kind, as GitLab sends it. */
const SAMPLE = {
  text: 'x', id: '42', flag: 'true', integer: 12, 'text-list': ['acme', 'acme/platform'],
  identities: [{ provider: 'github', extern_uid: '2435' }], object: { url: 'https://gitlab.example.com/p/-/blob/x.yml', sha: 'abc' },
};

test('the wrapper\'s GitLab claims are the component\'s claim table', () => {
  // The typed declaration users see (the GitLabClaims typedef) is the wrapper's list of names.
  const source = readFileSync(fileURLToPath(new URL('../gitlab-azure-oidc.js', import.meta.url)), 'utf8');
  const typedef = source.match(/@typedef \{object\} GitLabClaims\n([\s\S]*?)\*\//)[1];
  const typed = [...typedef.matchAll(/@property \{[^@]*?\} \[(\w+)\]/g)].map((m) => m[1]);
  assert.equal(new Set(typed).size, typed.length, 'no claim typed twice');
  assert.deepEqual(typed.sort(), table.filter((c) => !c.registered).map((c) => camel(c.name)).sort());
});

test('the WIT registered-claims record names the table\'s registered claims', () => {
  const now = Math.floor(Date.now() / 1000);
  const t = new Verifier({ issuer: ISS, audiences: [AUD] }, jwks).verify(mint({ iss: ISS, aud: AUD, exp: now + 60 }), now);
  assert.deepEqual(Object.keys(t.claims).sort(), table.filter((c) => c.registered).map((c) => c.name).sort());
  assert.deepEqual(table.slice(0, 7).map((c) => c.registered), Array(7).fill(true), 'registered claims first');
});

test('every GitLab claim is typed by its kind; absent and null are undefined', () => {
  const now = Math.floor(Date.now() / 1000);
  const gitlab = table.filter((c) => !c.registered);
  for (const c of gitlab) assert.ok(c.kind in SAMPLE, `a sample of kind ${c.kind} (${c.name})`);
  const claims = Object.fromEntries(gitlab.map((c) => [c.name, SAMPLE[c.kind]]));
  const nullable = gitlab.find((c) => c.nullable && c.kind === 'text').name;
  claims[nullable] = null;
  delete claims.target_audience;
  const v = new Verifier({ issuer: ISS, audiences: [AUD] }, jwks);
  const t = v.verify(mint({ iss: ISS, aud: AUD, sub: 'project_path:acme/app:ref_type:branch:ref:main', iat: now, exp: now + 60, ...claims }), now);
  assert.equal(t.gitlab[camel(nullable)], undefined);
  assert.equal(t.gitlab.targetAudience, undefined);
  assert.equal(t.payload[nullable], null, 'the payload keeps GitLab\'s null');
  const expected = {
    text: 'x', id: '42', flag: true, integer: 12n, 'text-list': ['acme', 'acme/platform'],
    identities: [{ provider: 'github', externUid: '2435' }], object: { url: SAMPLE.object.url, sha: 'abc' },
  };
  for (const c of gitlab.filter((c) => c.name !== nullable && c.name !== 'target_audience')) {
    assert.deepEqual(t.gitlab[camel(c.name)], expected[c.kind], `${c.name} (${c.kind})`);
  }
  v.close();
});
