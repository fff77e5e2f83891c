// Interop with @azure/msal-node (ConfidentialClientApplication with clientAssertion):
// 1. the federated token request a gate admits with equals MSAL's field by field (names, values,
//    encoding), both captured by a loopback HTTP server written here, and the gate reads the
//    answer MSAL read;
// 2. MSAL accepts the Entra stand-in's answers, success and error.
//
// MSAL telemetry fields ignored in the comparison (TELEMETRY below): x-client-SKU, x-client-VER,
// x-client-OS, x-client-CPU, x-ms-lib-capability, x-client-current-telemetry,
// x-client-last-telemetry, client-request-id (in the body and in the URL's query string), and
// x-app-name, x-app-ver, which MSAL sends only when
// application telemetry is configured: it is not here.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { ConfidentialClientApplication } from '@azure/msal-node';
import { Gate } from '../gitlab-azure-oidc.js';
import { LOGIN, LoopbackNetworkClient, msalConfig } from './msal-loopback.js';
import { ARM, startStandIn } from './standin.js';

export const TELEMETRY = new Set([
  'x-client-SKU', 'x-client-VER', 'x-client-OS', 'x-client-CPU', 'x-ms-lib-capability',
  'x-client-current-telemetry', 'x-client-last-telemetry', 'client-request-id', 'x-app-name', 'x-app-ver',
]);

let s;
before(async () => { s = await startStandIn(); });
after(() => s?.stop());

/** A loopback token endpoint that records each request and answers like Entra's success. */
async function captureServer() {
  const captured = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      captured.push({ method: req.method, path: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: 'eyJ0eXAiOiJKV1QifQ.e30.c2ln' }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, captured, close: () => new Promise((r) => server.close(r)) };
}

/** The body as [name, raw encoded value] pairs, in order. */
const rawFields = (body) => body.split('&').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1)]; });

test('our federated token request equals msal-node\'s, field by field', async () => {
  const server = await captureServer();
  try {
    const token = await s.mint();
    // MSAL, through its own request builder, sent to the loopback server.
    const msal = new ConfidentialClientApplication(msalConfig({ tenant: s.tenant, clientId: s.client_id, assertion: token, networkClient: new LoopbackNetworkClient(server.base) }));
    const result = await msal.acquireTokenByClientCredential({ scopes: [ARM] });
    assert.equal(result.accessToken, 'eyJ0eXAiOiJKV1QifQ.e30.c2ln');
    // Ours: a verifying gate for the same app, its request sent by plain fetch to the same server.
    const gate = new Gate({
      verifier: { issuer: s.issuer, audiences: [s.audience] },
      target: { tenant: s.tenant, clientId: s.client_id, scopes: [ARM] },
      dangerousAuthorityUrl: server.base,
    }, await s.jwks());
    const admission = gate.admit(token);
    const ours = admission.request;
    const res = await fetch(ours.url, { method: ours.method, headers: ours.headers, body: ours.body });
    const access = gate.finish(admission, res.status, res.headers, await res.arrayBuffer());
    gate.close();
    assert.equal(access.token, result.accessToken);

    assert.equal(server.captured.length, 2, 'MSAL made no other request: no network discovery');
    const [fromMsal, fromUs] = server.captured;
    assert.equal(fromUs.method, fromMsal.method);
    // MSAL also puts its correlation id in the query string (`client-request-id`): telemetry, ignored.
    const msalUrl = new URL(fromMsal.path, server.base);
    assert.deepEqual([...msalUrl.searchParams.keys()].filter((k) => !TELEMETRY.has(k)), []);
    assert.equal(fromUs.path, msalUrl.pathname);
    assert.equal(fromUs.path, `/${s.tenant}/oauth2/v2.0/token`);
    assert.equal(ours.url.slice(server.base.length), new URL(`${LOGIN}/${s.tenant}/oauth2/v2.0/token`).pathname);
    const media = (h) => h['content-type'].split(';')[0].trim();
    assert.equal(media(fromUs.headers), media(fromMsal.headers));

    const msalFields = rawFields(fromMsal.body).filter(([k]) => !TELEMETRY.has(k));
    const ourFields = rawFields(fromUs.body);
    const ignored = rawFields(fromMsal.body).filter(([k]) => TELEMETRY.has(k)).map(([k]) => k);
    assert.deepEqual(new Set(ourFields.map(([k]) => k)).size, ourFields.length, 'no duplicate fields');
    // Same names, same raw (encoded) values; order is not significant in a form body.
    assert.deepEqual(Object.fromEntries(ourFields), Object.fromEntries(msalFields));
    assert.deepEqual(ourFields.map(([k]) => k).sort(), ['client_assertion', 'client_assertion_type', 'client_id', 'grant_type', 'scope']);
    // The telemetry fields MSAL actually sent are the ones listed above, nothing else.
    assert.ok(ignored.every((k) => TELEMETRY.has(k)) && ignored.includes('x-client-SKU'), ignored.join(','));
    assert.equal(Object.fromEntries(ourFields).client_assertion, token);
  } finally {
    await server.close();
  }
});

test('msal-node accepts the Entra stand-in\'s success', async () => {
  await s.behaviour({ mode: 'normal' });
  const net = new LoopbackNetworkClient(s.entra);
  const msal = new ConfidentialClientApplication(msalConfig({ tenant: s.tenant, clientId: s.client_id, assertion: await s.mint(), networkClient: net }));
  const result = await msal.acquireTokenByClientCredential({ scopes: [ARM] });
  assert.equal(result.tokenType, 'Bearer');
  assert.equal(result.accessToken.split('.').length, 3);
  assert.ok(result.expiresOn instanceof Date && result.expiresOn > new Date());
  assert.equal(net.requests.length, 1);
  assert.equal((await s.stats()).last_form.client_id, s.client_id);
});

test('msal-node reads the Entra stand-in\'s error', async () => {
  await s.behaviour({ mode: 'error', code: 700213 });
  try {
    const msal = new ConfidentialClientApplication(msalConfig({ tenant: s.tenant, clientId: s.client_id, assertion: await s.mint(), networkClient: new LoopbackNetworkClient(s.entra) }));
    await assert.rejects(msal.acquireTokenByClientCredential({ scopes: [ARM] }), (e) => {
      assert.equal(e.errorCode, 'invalid_client');
      assert.match(e.errorMessage, /Error\(s\): 700213 .*Description: AADSTS700213:/);
      assert.equal(Number(e.errorNo), 700213);
      assert.match(e.errorMessage, /Trace ID: [0-9a-f-]{36}/);
      return true;
    });
  } finally {
    await s.behaviour({ mode: 'normal' });
  }
});
