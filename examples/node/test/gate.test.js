// The exchange through the Gate against the stand-ins: fetch -> admit -> send -> finish, the
// request's form, every failure the gate surfaces (config, keys, token, deny, Entra), the audit
// events, and exchange()'s retry rule.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Gate, OidcError, exchange } from '../gitlab-azure-oidc.js';
import { ARM, DEMO_POLICY, TESTDATA, startStandIn } from './standin.js';

let s; let jwks; let verifier; let policy;
before(async () => {
  s = await startStandIn();
  jwks = await s.jwks();
  verifier = { issuer: s.issuer, audiences: [s.audience] };
  policy = readFileSync(DEMO_POLICY, 'utf8');
});
after(() => s?.stop());

const open = [];
const track = (r) => { open.push(r); return r; };
afterEach(() => { while (open.length) open.pop()[Symbol.dispose](); });

const nowSeconds = () => Math.floor(Date.now() / 1000);
const send = async (r) => {
  const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body });
  return [res.status, res.headers, new Uint8Array(await res.arrayBuffer())];
};
/** Asserts that `fn` throws an OidcError of `kind` and returns it. */
function failure(fn, kind) {
  let caught;
  assert.throws(fn, (e) => { caught = e; return true; });
  assert.ok(caught instanceof OidcError, String(caught));
  assert.equal(caught.kind, kind, caught.message);
  return caught;
}
async function rejection(promise, kind) {
  let caught;
  await assert.rejects(promise, (e) => { caught = e; return true; });
  assert.ok(caught instanceof OidcError, String(caught));
  assert.equal(caught.kind, kind, caught.message);
  return caught;
}
const certificate = (extra = {}) => ({
  privateKeyPem: readFileSync(join(TESTDATA, 'rsa-2048.key.pem'), 'utf8'),
  certificatePem: readFileSync(join(TESTDATA, 'rsa-2048.cert.pem'), 'utf8'),
  ...extra,
});
const policyGate = () => track(new Gate({ verifier, policy, dangerousAuthorityUrl: s.entra }, jwks));

describe('sequence', () => {
  test('fetch, admit, send, finish against the stand-ins', async () => {
    const gate = track(new Gate({ verifier, policy, dangerousAuthorityUrl: s.entra }));
    const token = await s.mint();
    assert.equal(gate.ready(), false);
    const noKeys = failure(() => gate.admit(token), 'jwks-unavailable');
    assert.deepEqual([noKeys.category, noKeys.refetchJwks, noKeys.httpStatus], ['jwks', true, 503]);
    gate.installJwks(await s.jwks());
    assert.equal(gate.ready(), true);

    const before = (await s.stats()).token_requests;
    const now = nowSeconds();
    const admission = gate.admit(token, now);
    assert.equal(admission.rule, 'deploy-production');
    assert.ok(admission.explanation.includes('rule deploy-production: matched'), admission.explanation.join('\n'));
    assert.deepEqual([admission.target.tenant, admission.target.clientId, admission.target.scopes], [s.tenant, s.client_id, [ARM]]);
    assert.equal(admission.fresh, true);
    assert.match(admission.azureKey, /^[0-9a-f]{64}$/);
    assert.equal(admission.verified.gitlab.projectPath, 'acme/payments');
    assert.equal(admission.verified.claims.sub, s.subject);
    assert.ok(admission.request.url.startsWith(`${s.entra}/${s.tenant}/`), admission.request.url);

    const access = gate.finish(admission, ...(await send(admission.request)), now);
    assert.equal(access.tokenType, 'Bearer');
    assert.equal(access.token.split('.').length, 3);
    assert.equal(access.expiresAt, BigInt(now) + access.expiresIn);
    const stats = await s.stats();
    assert.equal(stats.token_requests, before + 1);
    assert.equal(stats.last_form.client_id, s.client_id);
    // The decision, then Entra's answer joined to it by the request id; never a token.
    const [decision, answer] = gate.takeAudit().map((l) => JSON.parse(l));
    assert.equal(answer.event, 'entra_answer');
    assert.equal(answer.client_request_id, admission.requestId);
    assert.ok(admission.request.headers.some(([n, v]) => n === 'client-request-id' && v === admission.requestId));
    assert.deepEqual([answer.rule, answer.jti, answer.outcome], [decision.rule, decision.jti, 'access-token']);
    assert.ok(!JSON.stringify(answer).includes(access.token));

    const again = gate.admit(token, now + 1);
    assert.equal(again.fresh, false, 'the kept decision was reused');
    assert.equal(again.azureKey, admission.azureKey);
  });

  test('the federated request is the documented form, the job\'s token verbatim', async () => {
    const token = await s.mint();
    const gate = track(new Gate({ verifier, target: { tenant: s.tenant, clientId: s.client_id, scopes: [ARM] } }, jwks));
    const a = gate.admit(token);
    assert.equal(a.rule, undefined);
    assert.deepEqual(a.explanation, []);
    // What Entra matches the federated credential's subject against: the token's own `sub`.
    assert.equal(a.verified.claims.sub, s.subject);
    const r = a.request;
    assert.equal(r.method, 'POST');
    assert.equal(r.url, `https://login.microsoftonline.com/${s.tenant}/oauth2/v2.0/token`);
    assert.deepEqual(r.headers[0], ['Content-Type', 'application/x-www-form-urlencoded']);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(r.body)), {
      client_id: s.client_id, scope: ARM, grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: token,
    });
  });

  test('a gate without a verifier leaves the judging to Entra', async () => {
    const gate = track(new Gate({ target: { tenant: s.tenant, clientId: s.client_id }, dangerousAuthorityUrl: s.entra }));
    assert.equal(gate.ready(), true);
    const token = await s.mint();
    const { admission, accessToken } = await exchange(gate, token);
    assert.equal(admission.verified, undefined);
    assert.equal(accessToken.tokenType, 'Bearer');
    failure(() => gate.admit('not a token'), 'assertion-invalid-character');
  });

  test('certificate credential signs a PS256 assertion, reused while valid', async () => {
    const gate = track(new Gate({ verifier, target: { tenant: s.tenant, clientId: s.client_id }, credential: certificate() }, jwks));
    const now = nowSeconds();
    const r = gate.admit(await s.mint(), now).request;
    const assertion = new URLSearchParams(r.body).get('client_assertion');
    const [h, p] = assertion.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url')));
    assert.equal(h.alg, 'PS256');
    assert.ok(h['x5t#S256']);
    assert.equal(p.aud, r.url);
    assert.equal(p.nbf, now);
    assert.equal(new URLSearchParams(gate.admit(await s.mint(), now + 1).request.body).get('client_assertion'), assertion);
  });
});

describe('failures', () => {
  test('configurations refused with kind, category and status', () => {
    const target = { tenant: s.tenant, clientId: s.client_id };
    const reserved = failure(() => new Gate({ target: { ...target, tenant: 'common' } }), 'reserved-tenant');
    assert.deepEqual([reserved.category, reserved.httpStatus], ['config', 500]);
    failure(() => new Gate({ target: { ...target, clientId: 'nope' } }), 'invalid-client-id');
    failure(() => new Gate({ target, credential: { privateKeyPem: 'junk', certificatePem: 'junk' } }), 'no-pem-block');
    failure(() => new Gate({ target, credential: certificate({ lifetime: 100000 }) }), 'lifetime-out-of-range');
    assert.throws(() => new Gate({ target, credential: 42 }), TypeError);
    failure(() => new Gate({ verifier, policy, target }), 'policy-and-target');
    failure(() => new Gate({ verifier }), 'no-target');
    // A policy needs verified claims, and a gate that signs its own assertion must verify what
    // it vouches for: only a federated exchange may skip verification (Entra verifies then).
    assert.equal(failure(() => new Gate({ policy }), 'policy-without-verification').category, 'config');
    failure(() => new Gate({ target, credential: certificate() }), 'unverified-credential');
    failure(() => new Gate({ verifier, policy }, '{"keys": 1}'), 'jwks-no-keys-array');
    failure(() => new Gate({ verifier, policy: '{' }), 'policy-json');
  });

  test('a deny names its rule, and the token failures still reach the host', async () => {
    const gate = policyGate();
    const mr = await s.mint({ pipeline_source: 'merge_request_event' });
    const old = await s.mint({ iat: 900, nbf: 900, exp: 1000 });
    const deny = failure(() => gate.admit(mr), 'policy-denied');
    assert.deepEqual([deny.category, deny.httpStatus, deny.retryable, deny.refetchJwks], ['denied', 403, false, false]);
    assert.match(deny.message, /no-merge-requests/);
    assert.ok(deny.hint.split('\n').includes('rule no-merge-requests: matched'), deny.hint);
    const [event] = gate.takeAudit().map((l) => JSON.parse(l));
    assert.deepEqual([event.decision, event.rule], ['deny', 'no-merge-requests']);
    const expired = failure(() => gate.admit(old), 'expired');
    assert.deepEqual([expired.category, expired.httpStatus], ['token', 401]);
    failure(() => gate.admit('a.b'), 'not-compact');
  });

  test('unknown kid: refetch the JWKS, then admit', async () => {
    const own = await startStandIn(120);
    try {
      const gate = track(new Gate({ verifier: { issuer: own.issuer, audiences: [own.audience] }, target: { tenant: own.tenant, clientId: own.client_id }, dangerousAuthorityUrl: own.entra }, await own.jwks()));
      await fetch(`${own.issuer}/_control/rotate`, { method: 'POST', body: '{}' });
      const token = await own.mint();
      const e = failure(() => gate.admit(token), 'unknown-kid');
      assert.deepEqual([e.category, e.refetchJwks, e.httpStatus], ['token', true, 401]);
      // exchange() does the refetch: once, then admits.
      let fetches = 0;
      const fetchJwks = () => { fetches += 1; return own.jwks(); };
      const { accessToken } = await exchange(gate, token, undefined, { fetchJwks });
      assert.equal(accessToken.tokenType, 'Bearer');
      assert.equal(fetches, 1);
    } finally {
      own.stop();
    }
  });

  test('finish: success, and every Entra failure', () => {
    const gate = policyGate();
    const t = gate.finish('', 200, { 'content-type': 'application/json' }, '{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.x.y"}', 1000);
    assert.deepEqual([t.token, t.tokenType, t.expiresIn, t.extExpiresIn, t.expiresAt], ['eyJ.x.y', 'Bearer', 3599n, 3599n, 4599n]);
    const refused = failure(() => gate.finish('', 401, [['content-type', 'application/json']], '{"error":"invalid_client","error_codes":[700213]}'), 'entra-error');
    assert.deepEqual([refused.category, refused.retryable, refused.httpStatus], ['entra', false, 403]);
    assert.deepEqual([refused.entra.status, refused.entra.error, [...refused.entra.errorCodes]], [401, 'invalid_client', [700213n]]);
    assert.match(refused.hint, /subject/);
    const throttled = failure(() => gate.finish('', 429, new Headers({ 'Retry-After': '7' }), ''), 'rate-limited');
    assert.deepEqual([throttled.category, throttled.retryable, throttled.retryAfter, throttled.httpStatus], ['entra', true, 7n, 503]);
    const down = failure(() => gate.finish('', 503, {}, '{"error":"temporarily_unavailable"}'), 'server-error');
    assert.deepEqual([down.retryable, down.httpStatus], [true, 503]);
    assert.equal(failure(() => gate.finish('', 200, { 'content-type': 'text/html' }, '<html></html>'), 'html-page').httpStatus, 502);
  });

  test('the Entra stand-in\'s refusals, through the gate', async () => {
    const gate = policyGate();
    for (const [behaviour, kind] of [[{ mode: 'error', code: 700213 }, 'entra-error'], [{ mode: 'status', status: 429, retry_after: '1', times: 1 }, 'rate-limited'], [{ mode: 'garbage' }, 'html-page']]) {
      await s.behaviour(behaviour);
      const answer = await send(gate.admit(await s.mint()).request);
      const e = failure(() => gate.finish('', ...answer), kind);
      if (kind === 'entra-error') assert.match(e.entra.traceId, /^[0-9a-f-]{36}$/);
      await s.behaviour({ mode: 'normal' });
    }
  });
});

describe('audit', () => {
  test('one event per fresh decision, reuse counted by summarize, never the token', async () => {
    const gate = policyGate();
    const token = await s.mint();
    const now = nowSeconds();
    const first = gate.admit(token, now);
    gate.admit(token, now + 1);
    gate.admit(token, now + 2);
    const events = gate.takeAudit();
    assert.equal(events.length, 1);
    const event = JSON.parse(events[0]);
    assert.deepEqual([event.time, event.decision, event.rule], [now, 'allow', 'deploy-production']);
    assert.equal(event.token_sha256, first.verified.fingerprint);
    assert.equal(event.jti, first.verified.claims.jti);
    assert.deepEqual(gate.takeAudit(), []);
    gate.summarize(now + 3);
    const [summary] = gate.takeAudit().map((l) => JSON.parse(l));
    assert.deepEqual([summary.event, summary.requests, summary.first_request, summary.last_request], ['decision_reused', 2, now + 1, now + 2]);
    assert.equal(summary.token_sha256, first.verified.fingerprint);
    for (const line of [...events, JSON.stringify(summary)]) assert.ok(!line.includes(token) && !line.includes(token.split('.')[2]));
  });
});

describe('exchange()', () => {
  test('429 then success: one retry after Retry-After', async () => {
    const gate = policyGate();
    const before = (await s.stats()).token_requests;
    await s.behaviour({ mode: 'status', status: 429, retry_after: '1', times: 1 });
    const started = Date.now();
    const { admission, accessToken } = await exchange(gate, await s.mint());
    assert.equal(accessToken.tokenType, 'Bearer');
    assert.equal(admission.rule, 'deploy-production');
    assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    assert.equal((await s.stats()).token_requests, before + 2);
  });

  test('no retry: a refusal, a Retry-After beyond maxWait, a second failure, a deny', async () => {
    const gate = policyGate();
    const requests = async () => (await s.stats()).token_requests;
    try {
      let before = await requests();
      await s.behaviour({ mode: 'error', code: 700213 });
      await rejection(exchange(gate, await s.mint()), 'entra-error');
      assert.equal(await requests(), before + 1);

      before = await requests();
      await s.behaviour({ mode: 'status', status: 429, retry_after: '60', times: 1 });
      const started = Date.now();
      assert.equal((await rejection(exchange(gate, await s.mint(), undefined, { maxWait: 5 }), 'rate-limited')).retryAfter, 60n);
      assert.ok(Date.now() - started < 5000);
      assert.equal(await requests(), before + 1);

      before = await requests();
      await s.behaviour({ mode: 'status', status: 503, retry_after: '0', times: 2 });
      await rejection(exchange(gate, await s.mint()), 'server-error');
      assert.equal(await requests(), before + 2, 'one retry, not more');

      before = await requests();
      await rejection(exchange(gate, await s.mint({ pipeline_source: 'merge_request_event' })), 'policy-denied');
      assert.equal(await requests(), before, 'a deny sends nothing');
    } finally {
      await s.behaviour({ mode: 'normal' });
    }
  });
});
