// Every function of the wrapper, its error kinds, a fault followed by a fresh instance, and
// deterministic resource disposal, against the stand-ins.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  ExchangeError, GuestTrap, Policy, PolicyError, Runtime, Verifier, VerifyError, buildAzureAssertion,
  defaultRuntime, federatedSubject, parseTokenResponse, preflight, targetOf, verifyGitlabToken,
} from '../gitlab-azure-oidc.js';
import { ARM, DEMO_POLICY, TESTDATA, startStandIn } from './standin.js';

let s; let jwks; let config;
before(async () => {
  s = await startStandIn();
  jwks = await s.jwks();
  config = { issuer: s.issuer, audiences: [s.audience] };
});
after(() => s?.stop());

// Node 20 has no `using`: resources made in a test are closed after it ([Symbol.dispose] is there
// for runtimes that have it).
const open = [];
const track = (r) => { open.push(r); return r; };
afterEach(() => { while (open.length) open.pop()[Symbol.dispose](); });

const throwsKind = (fn, cls, kind) => assert.throws(fn, (e) => { assert.ok(e instanceof cls, String(e)); assert.equal(e.kind, kind); return true; });
const certificate = (extra = {}) => ({
  privateKeyPem: readFileSync(join(TESTDATA, 'rsa-2048.key.pem'), 'utf8'),
  certificatePem: readFileSync(join(TESTDATA, 'rsa-2048.cert.pem'), 'utf8'),
  ...extra,
});

describe('verify', () => {
  test('Verifier.verify returns typed claims', async () => {
    const v = track(new Verifier(config, jwks));
    const t = v.verify(await s.mint());
    assert.equal(t.header.alg, 'rs256');
    assert.equal(t.claims.iss, s.issuer);
    assert.equal(t.claims.sub, s.subject);
    assert.deepEqual(t.claims.aud, [s.audience]);
    assert.equal(t.claims.gitlab.projectPath, 'acme/payments');
    assert.equal(t.claims.gitlab.ref, 'main');
    assert.equal(typeof t.claims.exp, 'bigint');
    assert.equal(JSON.parse(t.claims.rawJson).project_id, '4242');
    assert.match(t.fingerprint, /^[0-9a-f]{64}$/);
  });

  test('verify errors carry kind, case and detail', async () => {
    const v = track(new Verifier(config, jwks));
    assert.throws(() => v.verify('a.b'), (e) => e instanceof VerifyError && e.kind === 'not-compact' && e.detail === 2);
    const expired = await s.mint({ iat: 900, nbf: 900, exp: 1000 });
    assert.throws(() => v.verify(expired), (e) => e.category === 'verify' && e.case === 'expired' && e.detail.claimTime === 1000n && !e.refreshJwks);
    const token = await s.mint();
    const iat = v.verify(token).claims.iat;
    assert.throws(() => v.verify(token, iat + 36000n), (e) => e.kind === 'expired');
    assert.equal(v.verify(token, Number(iat)).claims.iat, iat);
  });

  test('audience, issuer and algorithm refusals', async () => {
    const v = track(new Verifier(config, jwks));
    const wrongAud = await s.mint({ aud: s.issuer });
    assert.throws(() => v.verify(wrongAud), (e) => e.kind === 'audience-mismatch' && e.detail.found[0] === s.issuer && !e.message.includes(wrongAud));
    assert.throws(() => verifyGitlabToken(wrongAud, jwks, { ...config, issuer: `${s.issuer}/` }),
      (e) => e.kind === 'issuer-mismatch' || e.kind === 'audience-mismatch');
    const ok = await s.mint();
    assert.throws(() => verifyGitlabToken(ok, jwks, { ...config, issuer: `${s.issuer}/` }), (e) => e.kind === 'issuer-mismatch' && e.detail.nearMiss === 'trailing-slash');
    assert.throws(() => verifyGitlabToken(ok, jwks, { ...config, algorithms: ['ps256'] }), (e) => e.kind === 'algorithm-not-allowed');
    assert.throws(() => verifyGitlabToken(ok, jwks, { ...config, maxAge: 60 }, Date.now() / 1000 + 600 | 0), (e) => e.kind === 'too-old');
    assert.throws(() => v.verify(ok.slice(0, -4) + (ok.endsWith('AAAA') ? 'BBBB' : 'AAAA')), (e) => e.kind === 'bad-signature');
  });

  test('config and JWKS errors', () => {
    assert.throws(() => new Verifier({ issuer: '', audiences: ['a'] }, jwks), (e) => e.category === 'config' && e.kind === 'empty-issuer');
    assert.throws(() => new Verifier({ issuer: s.issuer, audiences: [] }, jwks), (e) => e.category === 'config' && e.kind === 'no-audience');
    assert.throws(() => new Verifier(config, '{"keys": 1}'), (e) => e.category === 'jwks' && e.kind === 'jwks-no-keys-array');
    const v = track(new Verifier(config, jwks));
    assert.throws(() => v.replaceJwks('nope'), (e) => e.category === 'jwks' && e.kind === 'jwks-json');
  });

  test('unknown kid asks for a refetch; replaceJwks fixes it', async () => {
    const own = await startStandIn(120);
    try {
      const v = track(new Verifier({ issuer: own.issuer, audiences: [own.audience] }, await own.jwks()));
      await fetch(`${own.issuer}/_control/rotate`, { method: 'POST', body: '{}' });
      const token = await own.mint();
      assert.throws(() => v.verify(token), (e) => e.kind === 'unknown-kid' && e.refreshJwks === true);
      v.replaceJwks(await own.jwks());
      assert.equal(v.verify(token).claims.sub, own.subject);
    } finally {
      own.stop();
    }
  });

  test('keys() lists the usable keys', () => {
    const v = track(new Verifier(config, jwks));
    const [usable, skipped] = v.keys();
    assert.equal(usable[0].kind, 'RSA-2048');
    assert.deepEqual(skipped, []);
  });

  test('verifyGitlabToken one-shot', async () => {
    assert.equal(verifyGitlabToken(await s.mint(), jwks, config).claims.gitlab.projectId, '4242');
    const noExp = await s.mint({ exp: null });
    assert.throws(() => verifyGitlabToken(noExp, jwks, config), (e) => e.kind === 'claim-missing' && e.detail === 'exp');
  });
});

describe('exchange', () => {
  test('buildAzureAssertion: the documented federated form', async () => {
    const token = await s.mint();
    const r = buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id, scopes: [ARM] }, token);
    assert.equal(r.method, 'POST');
    assert.equal(r.url, `https://login.microsoftonline.com/${s.tenant}/oauth2/v2.0/token`);
    assert.deepEqual(r.headers[0], ['Content-Type', 'application/x-www-form-urlencoded']);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(r.body)), {
      client_id: s.client_id, scope: ARM, grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: token,
    });
  });

  test('target and credential errors', () => {
    throwsKind(() => buildAzureAssertion({ tenant: 'common', clientId: s.client_id }, 'a.b.c'), ExchangeError, 'reserved-tenant');
    throwsKind(() => buildAzureAssertion({ tenant: s.tenant, clientId: 'nope' }, 'a.b.c'), ExchangeError, 'invalid-client-id');
    assert.throws(() => buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, { privateKeyPem: 'junk', certificatePem: 'junk' }),
      (e) => e.category === 'credential' && e.kind === 'no-pem-block');
    assert.throws(() => buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, certificate({ lifetime: 100000 })),
      (e) => e.category === 'credential' && e.kind === 'lifetime-out-of-range');
    assert.throws(() => buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, 42), TypeError);
  });

  test('certificate credential signs a PS256 assertion', () => {
    const r = buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, certificate(), 1_700_000_000);
    const [h, p] = new URLSearchParams(r.body).get('client_assertion').split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url')));
    assert.equal(h.alg, 'PS256');
    assert.ok(h['x5t#S256']);
    assert.equal(p.aud, r.url);
    assert.equal(p.nbf, 1_700_000_000);
  });

  test('parseTokenResponse: success and every error category', () => {
    const body = '{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ.x.y"}';
    const t = parseTokenResponse(200, { 'content-type': 'application/json' }, body, 1000);
    assert.deepEqual([t.token, t.tokenType, t.expiresIn, t.expiresAt], ['eyJ.x.y', 'Bearer', 3599n, 4599n]);
    assert.throws(() => parseTokenResponse(401, [['content-type', 'application/json']], '{"error":"invalid_client","error_codes":[700213]}'),
      (e) => e.category === 'entra' && e.kind === 'entra-error' && e.entra.errorCodes[0] === 700213n && e.entra.hint && !e.retryable);
    assert.throws(() => parseTokenResponse(429, { 'Retry-After': '7' }, ''), (e) => e.category === 'rate-limited' && e.retryable && e.retryAfterSeconds === 7n);
    assert.throws(() => parseTokenResponse(503, {}, '{"error":"temporarily_unavailable"}'), (e) => e.category === 'server-error' && e.retryable);
    assert.throws(() => parseTokenResponse(200, { 'content-type': 'text/html' }, '<html></html>'), (e) => e.category === 'bad-response' && e.kind === 'html-page');
  });

  test('round trip through the Entra stand-in, and its refusals', async () => {
    const target = { tenant: s.tenant, clientId: s.client_id, scopes: [ARM], insecureAuthorityUrl: s.entra };
    const send = async (r) => { const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body }); return [res.status, res.headers, new Uint8Array(await res.arrayBuffer())]; };
    const ok = parseTokenResponse(...(await send(buildAzureAssertion(target, await s.mint()))));
    assert.equal(ok.tokenType, 'Bearer');
    for (const [behaviour, category] of [[{ mode: 'error', code: 700213 }, 'entra'], [{ mode: 'status', status: 429, retry_after: '1', times: 1 }, 'rate-limited'], [{ mode: 'garbage' }, 'bad-response']]) {
      await s.behaviour(behaviour);
      const answer = await send(buildAzureAssertion(target, await s.mint()));
      assert.throws(() => parseTokenResponse(...answer), (e) => e instanceof ExchangeError && e.category === category);
      await s.behaviour({ mode: 'normal' });
    }
  });

  test('federatedSubject is the token\'s sub', async () => {
    const t = verifyGitlabToken(await s.mint(), jwks, config);
    assert.equal(federatedSubject(t), s.subject);
    assert.equal(federatedSubject(t.claims), s.subject);
  });
});

describe('policy', () => {
  test('decide allows protected main and explains a deny', async () => {
    const p = track(Policy.fromFile(DEMO_POLICY));
    const token = await s.mint();
    const d = p.decide(verifyGitlabToken(token, jwks, config), token);
    assert.equal(d.allow, true);
    assert.equal(d.rule, 'deploy-production');
    assert.equal(targetOf(d).clientId, s.client_id);
    assert.ok(!d.auditJson.includes(token));
    const mr = p.decide(verifyGitlabToken(await s.mint({ pipeline_source: 'merge_request_event' }), jwks, config));
    assert.equal(mr.allow, false);
    assert.equal(mr.rule, 'no-merge-requests');
    assert.deepEqual(mr.outcomes.map((o) => o.rule), ['no-merge-requests', 'deploy-production', 'release-tags']);
    assert.throws(() => targetOf(mr), /did not allow/);
  });

  test('policy errors carry kind, rule and field', () => {
    assert.throws(() => new Policy('{'), (e) => e instanceof PolicyError && e.kind === 'policy-json');
    assert.throws(() => new Policy({ rules: [{ name: 'x', effect: 'allow', when: { project_path: 'a/b' } }] }),
      (e) => e.kind === 'policy-missing-field' && e.rule === 'x' && e.field === 'azure');
  });

  test('warnings and plan', () => {
    const p = track(new Policy(readFileSync(DEMO_POLICY, 'utf8')));
    assert.ok(Array.isArray(p.warnings()));
    const plan = p.plan(s.issuer);
    assert.equal(JSON.parse(plan.credentialsJson).apps[0].client_id, s.client_id);
    assert.ok(plan.commands.some((c) => c.includes('federated-credential create')));
    assert.ok(plan.warnings.some((w) => w.includes('deny rules')));
  });

  test('preflight', async () => {
    const t = verifyGitlabToken(await s.mint(), jwks, config);
    const creds = [{ name: 'gitlab', issuer: s.issuer, subject: s.subject, audiences: [s.audience] }];
    const yes = preflight(t, JSON.stringify(creds));
    assert.equal(yes.accepted, true);
    assert.equal(yes.acceptedBy, 'gitlab');
    creds[0].subject = s.subject.replace(':main', ':dev');
    const no = preflight(t.claims, JSON.stringify(creds));
    assert.equal(no.accepted, false);
    assert.ok(no.differences.some((d) => d.includes('AADSTS700213')));
    throwsKind(() => preflight(t, 'nope'), PolicyError, 'credentials-json');
  });
});

describe('runtime', () => {
  test('the exports are the versioned interfaces', () => {
    const root = new Runtime().instance().root;
    for (const name of ['gitlab-azure:oidc/verify@0.1.0', 'gitlab-azure:oidc/exchange@0.1.0', 'gitlab-azure:oidc/policy@0.1.0']) assert.ok(root[name], name);
  });

  test('a fault inside a guest call is followed by a fresh instance', async () => {
    // jco has no fuel: the fault is injected through a WASI import (wasi:random, which the
    // certificate assertion needs) that throws while the guest is running.
    let fail = false;
    const rt = new Runtime({
      wasi: {
        'wasi:random/random': {
          getRandomBytes(n) {
            if (fail) throw new Error('injected fault');
            return crypto.getRandomValues(new Uint8Array(Number(n)));
          },
          getRandomU64() { return crypto.getRandomValues(new BigUint64Array(1))[0]; },
        },
      },
    });
    const v = new Verifier(config, jwks, { runtime: rt });
    const p = new Policy(readFileSync(DEMO_POLICY, 'utf8'), { runtime: rt });
    const token = await s.mint();
    assert.equal(v.verify(token).claims.sub, s.subject);
    assert.equal(rt.instancesCreated, 1);

    fail = true;
    assert.throws(() => rt.buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, certificate()),
      (e) => e instanceof GuestTrap && e.kind === 'guest-trap' && /injected fault/.test(e.message));
    fail = false;

    assert.equal(rt.buildAzureAssertion({ tenant: s.tenant, clientId: s.client_id }, certificate()).method, 'POST');
    assert.equal(rt.instancesCreated, 2);
    const again = v.verify(token); // rebuilt in the fresh instance
    assert.equal(again.claims.sub, s.subject);
    assert.equal(p.decide(again.claims, token).allow, true);
    assert.throws(() => v.verify('a.b'), VerifyError);
    assert.equal(rt.instancesCreated, 2);
    v.close(); p.close();
  });

  test('close() and [Symbol.dispose]() drop the resource deterministically', () => {
    const rt = new Runtime();
    const v = new Verifier(config, jwks, { runtime: rt });
    const handle = v.handle;
    assert.ok(v.keys()[0].length);
    v[Symbol.dispose]();
    assert.throws(() => handle.keys(), 'the guest handle is gone');
    const v2 = new Verifier(config, jwks, { runtime: rt });
    v2.close();
    v2.close();
    assert.throws(() => v2.verify('a.b.c'), /closed/);
  });

  test('the default runtime is shared', () => {
    assert.equal(defaultRuntime(), defaultRuntime());
  });
});
