// GitLab CI ID token -> Microsoft Entra access token, through the `gitlab-azure:oidc@0.2.0`
// WebAssembly component transpiled by jco (`npm run build`).
//
// The component judges everything: the `Gate` verifies the token, decides with the policy, builds
// the Entra request and reads Entra's answer. This host fetches the JWKS, sends the request and
// reads the clock: `exchange()` is that sequence with its retry rule. `now` (seconds since the
// epoch, number or bigint) defaults to the current time; WIT u64 values come back as `bigint`.
//
// A guest trap poisons a WebAssembly instance. The runtime then throws `GuestTrap` and makes a
// fresh instance for the next call; `Gate`, `Verifier` and `Policy` rebuild their resource in it
// (a gate with the last JWKS installed; its caches and unread audit events are lost).

import { constants, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { instantiate } from './generated/gitlab-azure-oidc.js';

/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').VerifierConfig} VerifierConfig */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').AzureTarget} AzureTarget */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').HttpRequest} HttpRequest */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').AccessToken} AccessToken */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').Failure} Failure */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-gate.js').Admission} Admission */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').ClaimSpec} ClaimSpec */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').Decision} Decision */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').PlanReport} PlanReport */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').RbacReport} RbacReport */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-lint.js').LintReport} LintReport */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-lint.js').Severity} Severity */

/**
 * One CI file: its path from the repository root, its YAML as JSON (text or object; anchors
 * resolved, `!reference [a, b]` as `{"!reference": ["a", "b"]}`) and, optionally, the 1-based
 * line of each top-level key (`{deploy: 12}` or `[['deploy', 12]]`).
 * @typedef {{path: string, json: string|object, keyLines?: Record<string, number>|Array<[string, number]>}} CiFileOptions
 */
/**
 * What the CI file does not say (WIT `lint-context`); absent fields are the defaults: branch
 * `main` (protected), issuer `https://gitlab.com`, `sub` from project_path, ref_type, ref.
 * @typedef {{projectPath: string, projectId?: string, namespaceId?: string, defaultBranch?: string,
 *   defaultBranchProtected?: boolean, protectedBranches?: string[], protectedTags?: string[],
 *   protectedEnvironments?: string[], issuer?: string, subClaimComponents?: string[],
 *   extraAudiences?: string[], appId?: string}} LintContextOptions
 */

/**
 * A verified token: the component's record, plus its payload parsed and GitLab's claims typed.
 * @typedef {import('./generated/interfaces/gitlab-azure-oidc-types.js').VerifiedToken & {payload: Record<string, unknown>, gitlab: GitLabClaims}} VerifiedToken
 */

/**
 * GitLab's claims, typed by the component's claim table (absent or null: undefined); ids are
 * strings, as GitLab sends them. test/claims.test.js checks these names against that table.
 * @typedef {object} GitLabClaims
 * @property {string} [namespaceId] @property {string} [namespacePath] @property {string} [projectId]
 * @property {string} [projectPath] The fork, for merge-request pipelines from forks.
 * @property {string} [jobProjectId] @property {string} [jobProjectPath] The project running the job.
 * @property {string} [jobNamespaceId] @property {string} [jobNamespacePath] @property {string} [userId]
 * @property {string} [userLogin] @property {string} [userEmail] @property {string} [userAccessLevel]
 * @property {{provider: string, externUid: string}[]} [userIdentities] @property {string} [pipelineId]
 * @property {string} [pipelineSource] @property {string} [jobId] @property {string} [ref] @property {string} [refType]
 * @property {string} [refPath] @property {boolean} [refProtected] @property {string[]} [groupsDirect]
 * @property {string} [environment] @property {boolean} [environmentProtected] @property {string} [deploymentTier]
 * @property {string} [environmentAction] @property {bigint} [runnerId] @property {string} [runnerEnvironment]
 * @property {string} [sha] @property {string} [ciConfigRefUri] @property {string} [ciConfigSha]
 * @property {string} [projectVisibility] @property {string} [jobSource]
 * @property {{url?: string, sha?: string}} [jobConfig] @property {string} [targetAudience]
 */

/**
 * What a gate is built from. Without `verifier`: only a federated gate with a fixed `target`.
 * @typedef {object} GateOptions
 * @property {VerifierOptions} [verifier] How tokens are verified.
 * @property {string|object} [policy] The policy document (JSON text or object).
 * @property {AzureTarget} [target] The one identity, when there is no policy.
 * @property {'federated'|CertificateOptions} [credential] Default: federated (the job's token).
 * @property {string} [dangerousAuthorityUrl] Send token requests here instead (a loopback stand-in).
 */
/**
 * `leeway` (default 60) and `maxAge` in seconds; `algorithms` absent: RS256 only.
 * @typedef {{issuer: string, audiences: string[], algorithms?: VerifierConfig['algorithms'], leeway?: number|bigint,
 *   maxAge?: number|bigint, dangerousSkipAudienceCheck?: boolean}} VerifierOptions
 */
/**
 * The component signs its own client assertion: PKCS#8 RSA key, `ps256` (default) or `rs256`,
 * `lifetime` in seconds (default 300, at most 600).
 * @typedef {{privateKeyPem: string, certificatePem: string, algorithm?: 'ps256'|'rs256', lifetime?: number|bigint}} CertificateOptions
 */

const GENERATED = join(dirname(fileURLToPath(import.meta.url)), 'generated');

/**
 * Any failure of the component, with the WIT `failure` record's fields: `kind` (stable,
 * kebab-case), `category`, `message`, `hint`, `refetchJwks`, `retryable`, `retryAfter` (seconds,
 * bigint), `httpStatus`, `location` (policy documents) and `entra` (Entra's error answer).
 */
export class OidcError extends Error {
  /** @param {Failure} failure */
  constructor(failure) {
    super(failure.message);
    this.name = 'OidcError';
    /** @type {Failure['kind']} */ this.kind = failure.kind;
    /** @type {Failure['category']} */ this.category = failure.category;
    /** @type {Failure['hint']} */ this.hint = failure.hint;
    this.refetchJwks = failure.refetchJwks;
    this.retryable = failure.retryable;
    /** @type {Failure['retryAfter']} */ this.retryAfter = failure.retryAfter;
    this.httpStatus = failure.httpStatus;
    /** @type {Failure['location']} */ this.location = failure.location;
    /** @type {Failure['entra']} */ this.entra = failure.entra;
  }
}

/** The component trapped (a bug, not a refusal); the next call gets a fresh instance. */
export class GuestTrap extends Error {
  constructor(cause) {
    super(String(cause?.message ?? cause), { cause });
    this.name = 'GuestTrap';
    this.kind = 'guest-trap';
  }
}

const isComponentError = (e) => e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload');
const now64 = (now) => BigInt(now ?? Math.floor(Date.now() / 1000));
const opt64 = (v) => (v === undefined || v === null ? undefined : BigInt(v));
const json = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
/** A verified token's signed payload, claims written by hand (object) or JSON text. */
const claimsJson = (c) => (typeof c === 'string' ? c : c.payloadJson ?? JSON.stringify(c));

/** @param {VerifierOptions} c @returns {VerifierConfig} */
function verifierConfig(c) {
  const { issuer, audiences = [], algorithms = [], leeway, maxAge, dangerousSkipAudienceCheck = false } = c;
  return { issuer, audiences, algorithms, leeway: opt64(leeway), maxAge: opt64(maxAge), dangerousSkipAudienceCheck };
}

/** @param {GateOptions} g */
function gateConfig(g) {
  const c = g.credential ?? 'federated';
  let credential;
  if (c === 'federated') credential = { tag: 'federated' };
  else if (typeof c?.privateKeyPem === 'string') {
    const { privateKeyPem, certificatePem, algorithm = 'ps256', lifetime } = c;
    credential = { tag: 'certificate', val: { privateKeyPem, certificatePem, algorithm, lifetime: opt64(lifetime) } };
  } else throw new TypeError("credential: 'federated' or a certificate {privateKeyPem, certificatePem}");
  return {
    verifier: g.verifier && verifierConfig(g.verifier),
    policy: g.policy === undefined ? undefined : json(g.policy),
    target: g.target && { ...g.target, scopes: [...(g.target.scopes ?? [])] },
    credential,
    dangerousAuthorityUrl: g.dangerousAuthorityUrl,
  };
}

/** Each claim kind as JavaScript (after JSON.parse). */
const FROM_JSON = {
  text: String, id: String, flag: (v) => v === 'true' || v === true, integer: BigInt, time: BigInt,
  'text-list': (v) => [...v], audience: (v) => (Array.isArray(v) ? v : [v]),
  identities: (v) => v.map((i) => ({ provider: i.provider, externUid: i.extern_uid })),
  object: (v) => ({ url: v.url ?? undefined, sha: v.sha ?? undefined }),
};
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

// Each scheme of the `signatures` import as node:crypto's hash and options; EC keys carry no
// curve, the scheme names it.
const PSS = (saltLength) => ({ padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
const SCHEMES = {
  'rsa-pkcs1-sha256': ['sha256', {}], 'rsa-pkcs1-sha384': ['sha384', {}], 'rsa-pkcs1-sha512': ['sha512', {}],
  'rsa-pss-sha256': ['sha256', PSS(32)], 'rsa-pss-sha384': ['sha384', PSS(48)], 'rsa-pss-sha512': ['sha512', PSS(64)],
  'ecdsa-p256-sha256': ['sha256', { dsaEncoding: 'ieee-p1363' }, 'P-256'],
  'ecdsa-p384-sha384': ['sha384', { dsaEncoding: 'ieee-p1363' }, 'P-384'],
};

/**
 * The component's `signatures` import, answered with `node:crypto` (OpenSSL): RSA there costs
 * about a twentieth of the component's own. The component has made every refusal; this does
 * only the arithmetic, and answers `unsupported` on any error so the component checks itself.
 */
export class NativeSignatures {
  /** `checks`: signatures checked natively so far; `keys`: parsed keys by their JWK. */
  constructor() {
    this.checks = 0;
    /** @type {Map<string, import('node:crypto').KeyObject>} */ this.keys = new Map();
  }

  keyObject(key, curve) {
    const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
    const jwk = key.tag === 'rsa'
      ? { kty: 'RSA', n: b64(key.val.n), e: b64(key.val.e) }
      : { kty: 'EC', crv: curve, x: b64(key.val.x), y: b64(key.val.y) };
    const id = JSON.stringify(jwk);
    if (!this.keys.has(id)) {
      if (this.keys.size >= 16) this.keys.clear();
      this.keys.set(id, createPublicKey({ key: jwk, format: 'jwk' }));
    }
    return this.keys.get(id);
  }

  /** @returns {'valid'|'invalid'|'unsupported'} */
  verifySignature(scheme, key, message, signature) {
    const [hash, options, curve] = SCHEMES[scheme] ?? [];
    if (!hash || (curve === undefined) !== (key.tag === 'rsa')) return 'unsupported';
    try {
      const ok = cryptoVerify(hash, message, { key: this.keyObject(key, curve), ...options }, signature);
      this.checks += 1;
      return ok ? 'valid' : 'invalid';
    } catch {
      return 'unsupported';
    }
  }
}

/** The compiled component and one live instance, shared by everything built from it. */
export class Runtime {
  /**
   * `dir`: the jco output (default ./generated). `wasi`: per-interface overrides merged over the
   * WASI shim (e.g. `{'wasi:random/random': {...}}`), for tests and sandboxes. `nativeSignatures`:
   * check signatures with `node:crypto` (default true); false leaves them to the component.
   * @param {{dir?: string, wasi?: Record<string, object>, nativeSignatures?: boolean}} [options]
   */
  constructor({ dir = GENERATED, wasi = {}, nativeSignatures = true } = {}) {
    this.dir = dir;
    this.wasi = wasi;
    /** The native signature checks, or null when turned off. */
    this.native = nativeSignatures ? new NativeSignatures() : null;
    /** @type {Map<string, WebAssembly.Module>} */
    this.modules = new Map();
    this.current = null;
    /** Instances created so far (1 after the first call, +1 after every trap). */
    this.instancesCreated = 0;
    /** @type {{name: string, field: string, from: (v: any) => any}[]|null} */
    this.gitlabKinds = null;
  }

  /** The live instance, instantiating (synchronously) when there is none. */
  instance() {
    if (this.current === null || !this.current.alive) {
      const getCoreModule = (path) => {
        if (!this.modules.has(path)) this.modules.set(path, new WebAssembly.Module(readFileSync(join(this.dir, path))));
        return this.modules.get(path);
      };
      const native = this.native;
      const signatures = { verifySignature: (...args) => (native ? native.verifySignature(...args) : 'unsupported') };
      const imports = { ...new WASIShim().getImportObject(), 'gitlab-azure:oidc/signatures': signatures, ...this.wasi };
      const root = instantiate(getCoreModule, imports, (module, imp) => new WebAssembly.Instance(module, imp));
      if (typeof root?.then === 'function') throw new Error('jco instantiate unexpectedly returned a promise');
      this.current = { root, alive: true };
      this.instancesCreated += 1;
    }
    return this.current;
  }

  /**
   * Runs `fn(root)` in `inst` (default: the live instance). A `ComponentError` becomes an
   * `OidcError`; anything else thrown inside the guest is a trap: the instance is discarded.
   * @template T @param {(root: any) => T} fn @param {{root: any, alive: boolean}} [inst] @returns {T}
   */
  call(fn, inst = this.instance()) {
    try {
      return fn(inst.root);
    } catch (e) {
      if (isComponentError(e)) throw new OidcError(e.payload);
      if (e instanceof TypeError || e instanceof RangeError) throw e; // bad arguments, caught before entering the guest
      inst.alive = false;
      throw new GuestTrap(e);
    }
  }

  /** Every claim the component names. @returns {ClaimSpec[]} */
  claimTable() {
    return this.call((r) => r.verify.claimTable());
  }

  /** The component's verified token with `payload` parsed and `gitlab` typed by the claim table. @returns {VerifiedToken} */
  token(t) {
    this.gitlabKinds ??= this.claimTable().filter((s) => !s.registered)
      .map((s) => ({ name: s.name, field: camel(s.name), from: FROM_JSON[s.kind] ?? ((v) => v) }));
    const payload = JSON.parse(t.payloadJson);
    const gitlab = {};
    for (const { name, field, from } of this.gitlabKinds) {
      if (payload[name] !== undefined && payload[name] !== null) gitlab[field] = from(payload[name]);
    }
    return { ...t, payload, gitlab };
  }
}

let defaultRuntimeValue = null;
/** The process-wide runtime, compiled on first use. */
export function defaultRuntime() {
  defaultRuntimeValue ??= new Runtime();
  return defaultRuntimeValue;
}

/** A guest resource that survives traps; `close()` or `using` drops it deterministically. */
class GuestResource {
  /** @param {Runtime|undefined} runtime @param {(root: any) => any} make The guest class. @param {any[]} args */
  constructor(runtime, make, args) {
    this.runtime = runtime ?? defaultRuntime();
    Object.assign(this, { make, args, owner: null, handle: null, closed: false });
    this.ensure();
  }

  ensure() {
    if (this.closed) throw new Error(`${this.constructor.name} is closed`);
    if (this.handle === null || !this.owner.alive) {
      const inst = this.runtime.instance();
      this.handle = this.runtime.call((r) => new (this.make(r))(...this.args), inst);
      this.owner = inst;
    }
    return this.owner;
  }

  method(fn) {
    const inst = this.ensure();
    return this.runtime.call(() => fn(this.handle), inst);
  }

  /** Drops the guest resource now. */
  close() {
    if (this.handle !== null && this.owner?.alive) {
      try {
        this.handle[Symbol.dispose]();
      } catch {
        this.owner.alive = false;
      }
    }
    Object.assign(this, { handle: null, owner: null, closed: true });
  }

  [Symbol.dispose]() {
    this.close();
  }
}

/** The exchange: keys, verified tokens and decisions inside, bounded. */
export class Gate extends GuestResource {
  /**
   * @param {GateOptions} config @param {string} [jwks] The issuer's JWKS, installed at once.
   * @param {{runtime?: Runtime}} [options] @throws {OidcError} category `config` or `jwks`
   */
  constructor(config, jwks, { runtime } = {}) {
    super(runtime, (r) => r.gate.Gate, [gateConfig(config), jwks]);
  }

  /** Installs the issuer's JWKS (after `refetchJwks`); verified tokens and decisions are forgotten. @param {string} jwks */
  installJwks(jwks) {
    this.method((h) => h.installJwks(jwks));
    this.args[1] = jwks; // a fresh instance after a trap gets these keys
  }

  /** True when the gate can admit: it has keys, or it does not verify. */
  ready() {
    return this.method((h) => h.ready());
  }

  /**
   * Verifies, decides and builds the Entra request. A deny is an `OidcError` (`policy-denied`).
   * @param {string} token @param {number|bigint} [now]
   * @returns {Omit<Admission, 'verified'> & {verified?: VerifiedToken}}
   */
  admit(token, now) {
    const a = this.method((h) => h.admit(token, now64(now)));
    return a.verified ? { ...a, verified: this.runtime.token(a.verified) } : a;
  }

  /**
   * Reads Entra's answer to the request of `admission` (or of its `requestId`) and queues its
   * audit event, joined to the decision.
   * @param {{requestId: string}|string} admission
   * @param {number} status @param {Headers|Record<string,string>|Array<[string,string]>} headers
   * @param {Uint8Array|ArrayBuffer|string} body @param {number|bigint} [now] @returns {AccessToken}
   */
  finish(admission, status, headers, body, now) {
    const requestId = typeof admission === 'string' ? admission : String(admission?.requestId ?? '');
    const pairs = (Array.isArray(headers) ? headers
      : typeof headers?.entries === 'function' && headers.constructor !== Object ? [...headers.entries()]
        : Object.entries(headers ?? {})).map(([k, v]) => [String(k), String(v)]);
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body);
    return this.method((h) => h.finish(requestId, status, pairs, bytes, now64(now)));
  }

  /** The audit events queued since the last call, one JSON line each; never the token. @returns {string[]} */
  takeAudit() {
    return this.method((h) => h.takeAudit());
  }

  /** Queues the counts of requests that reused kept decisions (periodically, and before stopping). */
  summarize(now) {
    this.method((h) => h.summarize(now64(now)));
  }
}

/** Sends an Entra request with `fetch`. @param {HttpRequest} r */
const fetchRequest = (r) => fetch(r.url, { method: r.method, headers: r.headers, body: r.body });

/**
 * The exchange with this wrapper's retry rule: admit, send, finish. The JWKS is fetched (with
 * `fetchJwks`) when the gate has none and once more when a token names an unknown key. A
 * retryable failure from Entra is retried once after its `Retry-After` (1 s when absent), when
 * that is at most `maxWait` seconds; anything else is thrown as it came.
 * @param {Gate} gate
 * @param {string} token The job's GitLab ID token.
 * @param {(r: HttpRequest) => Promise<{status: number, headers: any, arrayBuffer(): Promise<ArrayBuffer>}>} [send] Default: fetch.
 * @param {{now?: number|bigint, fetchJwks?: () => Promise<string>, maxWait?: number}} [options]
 * @returns {Promise<{admission: ReturnType<Gate['admit']>, accessToken: AccessToken}>}
 */
export async function exchange(gate, token, send = fetchRequest, { now, fetchJwks, maxWait = 10 } = {}) {
  if (fetchJwks && !gate.ready()) gate.installJwks(await fetchJwks());
  let admission;
  try {
    admission = gate.admit(token, now);
  } catch (e) {
    if (!(fetchJwks && e instanceof OidcError && e.refetchJwks)) throw e;
    gate.installJwks(await fetchJwks());
    admission = gate.admit(token, now);
  }
  for (let retried = false; ; retried = true) {
    const res = await send(admission.request);
    try {
      return { admission, accessToken: gate.finish(admission, res.status, res.headers, await res.arrayBuffer(), now) };
    } catch (e) {
      const wait = e instanceof OidcError && e.retryable ? Number(e.retryAfter ?? 1n) : Infinity;
      if (retried || wait > maxWait) throw e;
      await sleep(wait * 1000);
    }
  }
}

/** A verifier, for tooling (the `Gate` verifies for the exchange). */
export class Verifier extends GuestResource {
  /** @param {VerifierOptions} config @param {string} jwks @param {{runtime?: Runtime}} [options] @throws {OidcError} */
  constructor(config, jwks, { runtime } = {}) {
    super(runtime, (r) => r.verify.Verifier, [verifierConfig(config), jwks]);
  }

  /** @param {string} token @param {number|bigint} [now] @returns {VerifiedToken} @throws {OidcError} */
  verify(token, now) {
    return this.runtime.token(this.method((h) => h.verify(token, now64(now))));
  }

  /** Judges `token` like `verify` but returns only `{fingerprint, jti, expiresAt}`. */
  check(token, now) {
    return this.method((h) => h.check(token, now64(now)));
  }

  /** Replaces the keys (after `refetchJwks`). @param {string} jwks */
  replaceJwks(jwks) {
    this.method((h) => h.replaceJwks(jwks));
    this.args[1] = jwks;
  }

  /** The usable keys, and the skipped ones with reasons. */
  keys() {
    return this.method((h) => h.keys());
  }
}

/** A loaded policy, for tooling: decide on claims (a what-if), lint, plan. */
export class Policy extends GuestResource {
  /** @param {string|object} document JSON text or object. @param {{runtime?: Runtime}} [options] @throws {OidcError} */
  constructor(document, { runtime } = {}) {
    super(runtime, (r) => r.policy.Policy, [json(document)]);
  }

  /** @param {string} path @param {{runtime?: Runtime}} [options] */
  static fromFile(path, options) {
    return new Policy(readFileSync(path, 'utf8'), options);
  }

  /**
   * Decides for claims; a refusal is `allow: false`, not an exception.
   * @param {VerifiedToken|object|string} claims A verified token, or claims written by hand.
   * @param {number|bigint} [now]
   * @param {string} [fingerprint] Names the token in the audit event (default: the verified token's).
   * @returns {Decision}
   */
  decide(claims, now, fingerprint = claims.fingerprint ?? '') {
    return this.method((h) => h.decide(claimsJson(claims), fingerprint, now64(now)));
  }

  /** @returns {string[]} */
  warnings() {
    return this.method((h) => h.warnings());
  }

  /**
   * The federated credentials Entra needs, and the role assignments each identity needs.
   * @param {string} issuer Exactly as tokens carry it; a near miss throws `issuer-near-miss`.
   * @param {{audience?: string, subjectForm?: 'project-path'|'project-id'}} [options] The audience
   *   defaults to each app's cloud's.
   * @returns {PlanReport} @throws {OidcError}
   */
  plan(issuer, { audience, subjectForm = 'project-path' } = {}) {
    return this.method((h) => h.plan({ issuer, audience, subjectForm }));
  }
}

/**
 * One-shot verification: parses config and JWKS, verifies, forgets them.
 * @param {string} token @param {string} jwks @param {VerifierOptions} config @param {number|bigint} [now]
 * @returns {VerifiedToken}
 */
export function verifyGitlabToken(token, jwks, config, now, runtime = defaultRuntime()) {
  return runtime.token(runtime.call((r) => r.verify.verifyGitlabToken(token, jwks, verifierConfig(config), now64(now))));
}

/**
 * Would Entra accept these claims with these federated credentials (`az ad app
 * federated-credential list`)? @param {VerifiedToken|object|string} claims @param {string|object[]} credentials
 */
export function preflight(claims, credentials, runtime = defaultRuntime()) {
  return runtime.call((r) => r.policy.preflight(claimsJson(claims), json(credentials)));
}

/**
 * Audits role assignments (`az role assignment list --all --include-inherited --include-groups
 * -o json`) against the roles the policy declares; findings on an identity any branch can become
 * are raised one severity step.
 * @param {string|object} policy @param {string|object[]} assignments @param {string|object[]} [definitions]
 * @param {{failOn?: 'info'|'low'|'medium'|'high'|'critical', codeQualityPath?: string}} [options]
 * @returns {RbacReport} @throws {OidcError}
 */
export function auditRbac(policy, assignments, definitions, { failOn = 'high', codeQualityPath = 'policy.json' } = {}, runtime = defaultRuntime()) {
  const defs = definitions === undefined ? undefined : json(definitions);
  return runtime.call((r) => r.policy.auditRbac(json(policy), json(assignments), defs, { failOn, codeQualityPath }));
}

/** Every claim the component names, registered claims first. @returns {ClaimSpec[]} */
export const claimTable = (runtime = defaultRuntime()) => runtime.claimTable();

/** @param {CiFileOptions} f */
function ciFile(f) {
  const lines = Array.isArray(f.keyLines) ? f.keyLines : Object.entries(f.keyLines ?? {});
  return { path: f.path, json: json(f.json), keyLines: lines.map(([k, v]) => [String(k), Number(v)]) };
}

/**
 * Lints a `.gitlab-ci.yml` (`root`) with the local files it includes, against the policy and the
 * federated credentials (`az ad app federated-credential list`) when given. `fails` is set at
 * `failOn` (default `high`) and above.
 * @param {CiFileOptions} root @param {LintContextOptions} context
 * @param {{included?: CiFileOptions[], policy?: string|object, credentials?: string|object[],
 *   failOn?: Severity, runtime?: Runtime}} [options]
 * @returns {LintReport} @throws {OidcError} category `config` when the input cannot be linted
 */
export function lintPipeline(root, context, { included = [], policy, credentials, failOn = 'high', runtime = defaultRuntime() } = {}) {
  const c = {
    projectPath: context.projectPath, projectId: context.projectId, namespaceId: context.namespaceId,
    defaultBranch: context.defaultBranch, defaultBranchProtected: context.defaultBranchProtected,
    protectedBranches: [...(context.protectedBranches ?? [])], protectedTags: [...(context.protectedTags ?? [])],
    protectedEnvironments: [...(context.protectedEnvironments ?? [])], issuer: context.issuer,
    subClaimComponents: [...(context.subClaimComponents ?? [])], extraAudiences: [...(context.extraAudiences ?? [])],
    appId: context.appId,
  };
  return runtime.call((r) => r.lint.lintPipeline(
    ciFile(root), included.map(ciFile), c,
    policy === undefined ? undefined : json(policy), credentials === undefined ? undefined : json(credentials), failOn,
  ));
}
