// The tooling half of the wrapper (Verifier, Policy, preflight) and its runtime: every failure
// kind it surfaces, a fault followed by a fresh instance, and deterministic resource disposal,
// against the stand-ins. The exchange itself is gate.test.js's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  Gate, GuestTrap, OidcError, Policy, Runtime, Verifier, auditRbac, defaultRuntime, lintPipeline, preflight, verifyGitlabToken,
} from '../gitlab-azure-oidc.js';
import { DEMO_POLICY, REPO, TESTDATA, startStandIn } from './standin.js';

const MONOREPO = join(REPO, 'examples/policies/monorepo.json');
const MONOREPO_EXPORT = join(REPO, 'host-test/tests/data/monorepo-assignments.json');

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

/** Asserts that `fn` throws an OidcError of `kind` and returns it for further checks. */
function failure(fn, kind) {
  let caught;
  assert.throws(fn, (e) => { caught = e; return true; });
  assert.ok(caught instanceof OidcError, String(caught));
  assert.equal(caught.kind, kind, caught.message);
  return caught;
}

describe('verify', () => {
  test('Verifier.verify returns the registered claims, the payload and typed GitLab claims', async () => {
    const v = track(new Verifier(config, jwks));
    const t = v.verify(await s.mint());
    assert.equal(t.header.alg, 'rs256');
    assert.equal(t.claims.iss, s.issuer);
    assert.equal(t.claims.sub, s.subject);
    assert.deepEqual(t.claims.aud, [s.audience]);
    assert.equal(typeof t.claims.exp, 'bigint');
    assert.equal(t.gitlab.projectPath, 'acme/payments');
    assert.equal(t.gitlab.ref, 'main');
    assert.equal(t.gitlab.refProtected, true);
    assert.equal(t.payload.project_id, '4242');
    assert.equal(JSON.parse(t.payloadJson).ref_protected, 'true');
    assert.match(t.fingerprint, /^[0-9a-f]{64}$/);
  });

  test('token failures carry kind, category and the values in the message', async () => {
    const v = track(new Verifier(config, jwks));
    assert.match(failure(() => v.verify('a.b'), 'not-compact').message, /found 2/);
    const expiredToken = await s.mint({ iat: 900, nbf: 900, exp: 1000 });
    const expired = failure(() => v.verify(expiredToken), 'expired');
    assert.equal(expired.category, 'token');
    assert.equal(expired.httpStatus, 401);
    assert.equal(expired.refetchJwks, false);
    assert.match(expired.message, /expired at 1000\b/);
    const token = await s.mint();
    const iat = v.verify(token).claims.iat;
    failure(() => v.verify(token, iat + 36000n), 'expired');
    assert.equal(v.verify(token, Number(iat)).claims.iat, iat);
  });

  test('audience, issuer and algorithm refusals', async () => {
    const v = track(new Verifier(config, jwks));
    const wrongAud = await s.mint({ aud: s.issuer });
    const aud = failure(() => v.verify(wrongAud), 'audience-mismatch');
    assert.ok(aud.message.includes(s.issuer) && !aud.message.includes(wrongAud));
    const ok = await s.mint();
    assert.match(failure(() => verifyGitlabToken(ok, jwks, { ...config, issuer: `${s.issuer}/` }), 'issuer-mismatch').message, /trailing slash/);
    failure(() => verifyGitlabToken(ok, jwks, { ...config, algorithms: ['ps256'] }), 'algorithm-not-allowed');
    failure(() => verifyGitlabToken(ok, jwks, { ...config, maxAge: 60 }, Date.now() / 1000 + 600 | 0), 'too-old');
    failure(() => v.verify(ok.slice(0, -4) + (ok.endsWith('AAAA') ? 'BBBB' : 'AAAA')), 'bad-signature');
  });

  test('config and JWKS failures', () => {
    assert.equal(failure(() => new Verifier({ issuer: '', audiences: ['a'] }, jwks), 'empty-issuer').category, 'config');
    assert.equal(failure(() => new Verifier({ issuer: s.issuer, audiences: [] }, jwks), 'no-audience').category, 'config');
    const noKeys = failure(() => new Verifier(config, '{"keys": 1}'), 'jwks-no-keys-array');
    assert.equal(noKeys.category, 'jwks');
    const v = track(new Verifier(config, jwks));
    assert.equal(failure(() => v.replaceJwks('nope'), 'jwks-json').category, 'jwks');
  });

  test('unknown kid asks for a refetch; replaceJwks fixes it', async () => {
    const own = await startStandIn(120);
    try {
      const v = track(new Verifier({ issuer: own.issuer, audiences: [own.audience] }, await own.jwks()));
      await fetch(`${own.issuer}/_control/rotate`, { method: 'POST', body: '{}' });
      const token = await own.mint();
      const e = failure(() => v.verify(token), 'unknown-kid');
      assert.equal(e.refetchJwks, true);
      assert.match(e.hint, /JWKS/);
      v.replaceJwks(await own.jwks());
      assert.equal(v.verify(token).claims.sub, own.subject);
    } finally {
      own.stop();
    }
  });

  test('keys() lists the usable keys', () => {
    const [usable, skipped] = track(new Verifier(config, jwks)).keys();
    assert.equal(usable[0].kind, 'RSA-2048');
    assert.deepEqual(skipped, []);
  });

  test('verifyGitlabToken one-shot', async () => {
    assert.equal(verifyGitlabToken(await s.mint(), jwks, config).gitlab.projectId, '4242');
    const noExp = await s.mint({ exp: null });
    assert.match(failure(() => verifyGitlabToken(noExp, jwks, config), 'claim-missing').message, /\bexp\b/);
  });
});

describe('policy', () => {
  test('decide allows protected main, explains a deny, and answers a what-if', async () => {
    const p = track(Policy.fromFile(DEMO_POLICY));
    const token = await s.mint();
    const verified = verifyGitlabToken(token, jwks, config);
    const d = p.decide(verified);
    assert.equal(d.allow, true);
    assert.equal(d.rule, 'deploy-production');
    assert.ok(d.target.includes(s.client_id), d.target);
    assert.equal(JSON.parse(d.auditJson).token_sha256, verified.fingerprint);
    assert.ok(!d.auditJson.includes(token));
    const mr = p.decide(verifyGitlabToken(await s.mint({ pipeline_source: 'merge_request_event' }), jwks, config));
    assert.equal(mr.allow, false);
    assert.equal(mr.rule, 'no-merge-requests');
    assert.deepEqual(mr.outcomes.map((o) => o.rule), ['no-merge-requests', 'deploy-production', 'release-tags']);
    assert.equal(mr.target, undefined);
    // Claims written by hand (an object or JSON text), with a fingerprint of our choosing.
    const whatIf = p.decide({ ...verified.payload, ref: 'dev' }, undefined, 'what-if');
    assert.equal(whatIf.allow, false);
    assert.ok(whatIf.lines.some((l) => l.includes('ref is dev')), whatIf.lines.join('\n'));
    assert.equal(JSON.parse(whatIf.auditJson).token_sha256, 'what-if');
    assert.equal(p.decide(verified.payloadJson).allow, true);
  });

  test('policy failures carry kind and location', () => {
    assert.equal(failure(() => new Policy('{'), 'policy-json').category, 'config');
    const e = failure(() => new Policy({ rules: [{ name: 'x', effect: 'allow', when: { project_path: 'a/b' } }] }), 'policy-missing-field');
    assert.deepEqual(e.location, { rule: 'x', field: 'azure' });
    assert.equal(e.category, 'config');
  });

  test('warnings and plan', () => {
    const p = track(new Policy(readFileSync(DEMO_POLICY, 'utf8')));
    assert.ok(Array.isArray(p.warnings()));
    const plan = p.plan(s.issuer);
    assert.equal(JSON.parse(plan.credentialsJson).apps[0].client_id, s.client_id);
    assert.ok(plan.commands.some((c) => c.includes('federated-credential create')));
    assert.ok(plan.warnings.flatMap((g) => g.warnings).some((w) => w.includes('deny rules')));
    assert.equal(JSON.parse(plan.document).issuer, s.issuer);
  });

  test('plan role assignments, issuer near misses and the rbac audit', () => {
    const monorepo = readFileSync(MONOREPO, 'utf8');
    const p = track(new Policy(monorepo));
    const plan = p.plan('https://gitlab.com');
    assert.equal(JSON.parse(plan.roleAssignmentsJson).length, 6);
    assert.ok(plan.roleCommands.some((c) => c.includes('--role 8311e382-0749-4cb8-b61a-304f252e45ec')));
    assert.equal(p.plan('https://gitlab.com').document, plan.document, 'byte-identical');
    assert.ok(p.plan('https://gitlab.com', { subjectForm: 'project-id' }).credentialsJson.includes('project_id:4242:ref_type:branch:ref:main'));
    assert.match(failure(() => p.plan('https://gitlab.com/'), 'issuer-near-miss').message, /use `https:\/\/gitlab\.com`/);
    const report = auditRbac(monorepo, readFileSync(MONOREPO_EXPORT, 'utf8'), undefined, { failOn: 'critical' });
    assert.equal(report.fails, true);
    assert.equal(report.findings, 1);
    assert.ok(report.text.includes('critical privileged-wide-scope'));
    assert.equal(JSON.parse(report.codeQuality)[0].severity, 'blocker');
    failure(() => auditRbac(monorepo, '{}'), 'rbac-not-an-array');
  });

  test('preflight', async () => {
    const t = verifyGitlabToken(await s.mint(), jwks, config);
    const creds = [{ name: 'gitlab', issuer: s.issuer, subject: s.subject, audiences: [s.audience] }];
    const yes = preflight(t, creds);
    assert.equal(yes.accepted, true);
    assert.equal(yes.acceptedBy, 'gitlab');
    creds[0].subject = s.subject.replace(':main', ':dev');
    const no = preflight(t.payload, JSON.stringify(creds));
    assert.equal(no.accepted, false);
    assert.equal(no.nearest, 'gitlab');
    assert.ok(no.differences.some((d) => d.includes('AADSTS700213')));
    failure(() => preflight(t, 'nope'), 'credentials-json');
  });
});

describe('lint', () => {
  test('lintPipeline finds each planted problem of the core\'s sample pipeline', () => {
    const testdata = join(REPO, 'src/pipeline/testdata');
    const read = (name) => readFileSync(join(testdata, name), 'utf8');
    const report = lintPipeline(
      { path: '.gitlab-ci.yml', json: read('planted.json'), keyLines: { secret: 42 } },
      { projectPath: 'acme/app', projectId: '4242', protectedBranches: ['release'] },
      { policy: read('planted.policy.json'), credentials: JSON.parse(read('planted.credentials.json')), failOn: 'critical' },
    );
    assert.equal(report.fails, true);
    assert.deepEqual([report.jobs, report.azureJobs, report.counts.critical, report.counts.high], [8, 8, 2, 6]);
    const findings = JSON.parse(report.json).findings;
    assert.deepEqual(findings.map((f) => f.kind).sort(), [
      'audience-not-accepted', 'azure-without-id-token', 'legacy-job-jwt', 'no-matching-credential',
      'policy-condition-not-in-entra', 'policy-denies', 'protected-ref-reachable', 'static-secret',
    ]);
    assert.equal(findings.find((f) => f.kind === 'static-secret').line, 42);
    assert.equal(JSON.parse(report.codeQuality).length, 8);
    assert.ok(!(report.text + report.json + report.codeQuality).includes('Xk73Q~AbeuEchsVEoR7TJYHSDATOCN1D61_k7U4O'));
    const e = failure(() => lintPipeline({ path: '.gitlab-ci.yml', json: [] }, { projectPath: 'acme/app' }), 'not-a-mapping');
    assert.equal(e.category, 'config');
  });
});

describe('runtime', () => {
  test('the exports are the 0.2.0 interfaces', () => {
    const root = new Runtime().instance().root;
    for (const name of ['verify', 'gate', 'policy', 'lint']) assert.ok(root[`gitlab-azure:oidc/${name}@0.2.0`], name);
    assert.equal(root['gitlab-azure:oidc/exchange@0.2.0'], undefined);
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
    const certificate = {
      privateKeyPem: readFileSync(join(TESTDATA, 'rsa-2048.key.pem'), 'utf8'),
      certificatePem: readFileSync(join(TESTDATA, 'rsa-2048.cert.pem'), 'utf8'),
    };
    const gate = new Gate({ verifier: config, target: { tenant: s.tenant, clientId: s.client_id }, credential: certificate }, undefined, { runtime: rt });
    gate.installJwks(jwks); // after construction: the rebuilt gate must get these keys
    const v = new Verifier(config, jwks, { runtime: rt });
    const p = new Policy(readFileSync(DEMO_POLICY, 'utf8'), { runtime: rt });
    const token = await s.mint();
    assert.equal(v.verify(token).claims.sub, s.subject);
    assert.equal(rt.instancesCreated, 1);

    fail = true;
    assert.throws(() => gate.admit(token), (e) => e instanceof GuestTrap && e.kind === 'guest-trap' && /injected fault/.test(e.message));
    fail = false;

    assert.equal(gate.admit(token).request.method, 'POST'); // rebuilt, keys and all, in the fresh instance
    assert.equal(rt.instancesCreated, 2);
    const again = v.verify(token);
    assert.equal(again.claims.sub, s.subject);
    assert.equal(p.decide(again).allow, true);
    assert.throws(() => v.verify('a.b'), OidcError);
    assert.equal(rt.instancesCreated, 2);
    gate.close(); v.close(); p.close();
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
