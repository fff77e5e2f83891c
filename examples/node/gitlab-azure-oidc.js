// Verify GitLab CI ID tokens, decide with a policy and build the Microsoft Entra token request,
// through the `gitlab-azure:oidc@0.1.0` WebAssembly component transpiled by jco (`npm run build`).
//
// The component has no clock and no network: `now` (seconds since the epoch, number or bigint)
// defaults to the current time; the caller fetches the JWKS and sends the request. WIT u64 values
// come back as `bigint` (jco's mapping).
//
// A guest trap poisons a WebAssembly instance. The runtime then throws `GuestTrap` and makes a
// fresh instance for the next call; `Verifier` and `Policy` rebuild their resource in it.

import { constants, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { instantiate } from './generated/gitlab-azure-oidc.js';

/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').VerifierConfig} VerifierConfig */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').VerifiedToken} VerifiedToken */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').Claims} Claims */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').KeyInfo} KeyInfo */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-verify.js').Algorithm} Algorithm */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-exchange.js').AzureTarget} AzureTarget */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-exchange.js').Certificate} Certificate */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-exchange.js').HttpRequest} HttpRequest */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-exchange.js').AccessToken} AccessToken */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-exchange.js').EntraError} EntraError */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').Decision} Decision */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').PlanReport} PlanReport */
/** @typedef {import('./generated/interfaces/gitlab-azure-oidc-policy.js').PreflightReport} PreflightReport */

/**
 * What a verifier checks. Only `issuer` and `audiences` are required.
 * @typedef {object} VerifierOptions
 * @property {string} issuer The GitLab URL, without a trailing slash.
 * @property {string[]} audiences Accepted `aud` values.
 * @property {Algorithm[]} [algorithms] The allow-list; empty or absent: RS256 only.
 * @property {number|bigint} [leeway] Clock-skew leeway in seconds (default 60).
 * @property {number|bigint} [maxAge] Refuse tokens issued longer ago than this.
 * @property {boolean} [insecureSkipAudience] Accept tokens without `aud` (insecure).
 */

/**
 * The Azure identity to become. Empty `scopes`: ARM's.
 * @typedef {object} TargetOptions
 * @property {string} tenant
 * @property {string} clientId
 * @property {string[]} [scopes]
 * @property {string} [authorityHost]
 * @property {string} [insecureAuthorityUrl] Any authority base URL, e.g. a loopback stand-in.
 */

/**
 * A certificate credential: the component signs its own client assertion.
 * @typedef {object} CertificateOptions
 * @property {string} privateKeyPem RSA private key, PKCS#8 PEM.
 * @property {string} certificatePem
 * @property {'ps256'|'rs256'} [algorithm] Default `ps256` (with `x5t#S256`).
 * @property {number|bigint} [lifetime] Seconds; default 300, at most 600.
 */

const GENERATED = join(dirname(fileURLToPath(import.meta.url)), 'generated');

/** Any refusal by the component: `kind` is its stable kebab-case name. */
export class OidcError extends Error {
  /** @param {string} kind @param {string} message @param {unknown} [cause] */
  constructor(kind, message, cause) {
    super(`${kind}: ${message}`, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** @type {string} */ this.kind = kind;
    /** @type {string} */ this.detailMessage = message;
  }
}

/** A configuration (`category` 'config'), JWKS ('jwks') or token ('verify') refused. */
export class VerifyError extends OidcError {
  constructor(failure) {
    super(failure.kind, failure.message);
    /** @type {'config'|'jwks'|'verify'} */ this.category = failure.error.tag;
    const inner = failure.error.val;
    /** The WIT case, e.g. `expired`, `unknown-kid`. @type {string} */
    this.case = typeof inner === 'object' && inner !== null ? inner.tag : String(inner);
    /** The case's payload (records as camelCase objects). */
    this.detail = typeof inner === 'object' && inner !== null ? inner.val : undefined;
    /** True when refetching the JWKS may help. @type {boolean} */
    this.refreshJwks = failure.refreshJwks;
  }
}

/** No request could be built, or Entra's answer holds no token. */
export class ExchangeError extends OidcError {
  constructor(failure) {
    super(failure.kind, failure.message);
    /** `target`, `credential`, `request`, `entra`, `rate-limited`, `server-error`, `bad-response`. */
    this.category = failure.error.tag;
    const val = failure.error.val;
    /** Entra's error body, when it sent one. @type {EntraError|undefined} */
    this.entra = typeof val === 'object' && val !== null ? val : undefined;
    /** @type {boolean} */ this.retryable = failure.retryable;
    /** @type {string|undefined} */ this.retryAfter = failure.retryAfter;
    /** @type {bigint|undefined} */ this.retryAfterSeconds = failure.retryAfterSeconds;
  }
}

/** A policy document that does not load, or claims it cannot judge. */
export class PolicyError extends OidcError {
  constructor(failure) {
    super(failure.kind, failure.message);
    /** @type {string|undefined} */ this.rule = failure.rule;
    /** @type {string|undefined} */ this.field = failure.field;
  }
}

/** The component trapped; its instance was discarded and the next call gets a fresh one. */
export class GuestTrap extends OidcError {
  constructor(cause) {
    super('guest-trap', String(cause && cause.message ? cause.message : cause), cause);
  }
}

const isComponentError = (e) => e !== null && typeof e === 'object' && Object.prototype.hasOwnProperty.call(e, 'payload');
const now64 = (now) => BigInt(now ?? Math.floor(Date.now() / 1000));
const opt64 = (v) => (v === undefined || v === null ? undefined : BigInt(v));

/** @param {VerifierOptions} c */
function verifierConfig(c) {
  return {
    issuer: c.issuer,
    audiences: [...(c.audiences ?? [])],
    algorithms: [...(c.algorithms ?? [])],
    leeway: opt64(c.leeway),
    maxAge: opt64(c.maxAge),
    insecureSkipAudience: Boolean(c.insecureSkipAudience),
  };
}

/** @param {TargetOptions} t */
function azureTarget(t) {
  return {
    tenant: t.tenant,
    clientId: t.clientId,
    scopes: [...(t.scopes ?? [])],
    authorityHost: t.authorityHost,
    insecureAuthorityUrl: t.insecureAuthorityUrl,
  };
}

/** @param {string|CertificateOptions} c */
function credential(c) {
  if (typeof c === 'string') return { tag: 'federated', val: c };
  if (c && typeof c.privateKeyPem === 'string') {
    return {
      tag: 'certificate',
      val: {
        privateKeyPem: c.privateKeyPem,
        certificatePem: c.certificatePem,
        algorithm: c.algorithm ?? 'ps256',
        lifetime: opt64(c.lifetime),
      },
    };
  }
  throw new TypeError('credential: the GitLab ID token (string) or a certificate');
}

const HASHES = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/**
 * The component's `gitlab-azure:oidc/signatures` import, answered with `node:crypto`
 * (OpenSSL): RSA there costs about a twentieth of the component's own RSA code. The component
 * has refused by itself everything it would refuse (allow-list, key type, size, signature
 * length); this only does the arithmetic. On any error the answer is `unsupported`, so the
 * component judges the signature with its own code: only speed is ever lost.
 */
export class NativeSignatures {
  constructor() {
    /** Signatures checked natively so far. */
    this.checks = 0;
    /** Parsed keys by their bytes: a JWKS holds a handful. @type {Map<string, import('node:crypto').KeyObject>} */
    this.keys = new Map();
  }

  keyObject(key) {
    const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
    const id = key.tag === 'rsa' ? `rsa:${b64(key.val.n)}:${b64(key.val.e)}` : `ec:${key.val.curve}:${b64(key.val.x)}:${b64(key.val.y)}`;
    let parsed = this.keys.get(id);
    if (!parsed) {
      const jwk = key.tag === 'rsa'
        ? { kty: 'RSA', n: b64(key.val.n), e: b64(key.val.e) }
        : { kty: 'EC', crv: key.val.curve, x: b64(key.val.x), y: b64(key.val.y) };
      parsed = createPublicKey({ key: jwk, format: 'jwk' });
      if (this.keys.size >= 16) this.keys.clear();
      this.keys.set(id, parsed);
    }
    return parsed;
  }

  /** @returns {'valid'|'invalid'|'unsupported'} */
  verifySignature(alg, key, message, signature) {
    const hash = HASHES[alg.slice(2)];
    const family = alg.slice(0, 2);
    if (!hash || alg.length !== 5) return 'unsupported';
    try {
      const pub = this.keyObject(key);
      let options;
      if (key.tag === 'rsa' && family === 'RS') options = pub;
      else if (key.tag === 'rsa' && family === 'PS') {
        options = { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 };
      } else if (key.tag === 'ec' && family === 'ES') options = { key: pub, dsaEncoding: 'ieee-p1363' };
      else return 'unsupported';
      const ok = cryptoVerify(hash, message, options, signature);
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
   * @param {object} [options]
   * @param {string} [options.dir] The jco output (default ./generated).
   * @param {Record<string, object>} [options.wasi] Per-interface overrides merged over the
   *   WASI shim (e.g. `{'wasi:random/random': {...}}`), for tests and sandboxes.
   * @param {boolean} [options.nativeSignatures] Check signatures with `node:crypto` for the
   *   component (default true); false leaves them to the component's own code.
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
  }

  /** The live instance's exports, instantiating (synchronously) when there is none. */
  instance() {
    if (this.current === null || !this.current.alive) {
      const getCoreModule = (path) => {
        if (!this.modules.has(path)) this.modules.set(path, new WebAssembly.Module(readFileSync(join(this.dir, path))));
        return this.modules.get(path);
      };
      const native = this.native;
      const signatures = {
        verifySignature: (alg, key, message, signature) =>
          native ? native.verifySignature(alg, key, message, signature) : 'unsupported',
      };
      const imports = { ...new WASIShim().getImportObject(), 'gitlab-azure:oidc/signatures': signatures, ...this.wasi };
      const root = instantiate(getCoreModule, imports, (module, imp) => new WebAssembly.Instance(module, imp));
      if (typeof root?.then === 'function') throw new Error('jco instantiate unexpectedly returned a promise');
      this.current = { root, alive: true };
      this.instancesCreated += 1;
    }
    return this.current;
  }

  /**
   * Runs `fn(root)` in `inst` (default: the live instance). A `ComponentError` becomes the
   * interface's error through `toError`; anything else is a trap: the instance is discarded.
   * @template T
   * @param {(root: any) => T} fn
   * @param {(payload: any) => Error} toError
   * @param {{root: any, alive: boolean}} [inst]
   * @returns {T}
   */
  call(fn, toError, inst = this.instance()) {
    try {
      return fn(inst.root);
    } catch (e) {
      if (isComponentError(e)) throw toError(e.payload);
      if (e instanceof TypeError || e instanceof RangeError) throw e; // bad arguments, caught before entering the guest
      inst.alive = false;
      throw new GuestTrap(e);
    }
  }

  /** @param {string} token @param {string} jwks @param {VerifierOptions} config @param {number|bigint} [now] @returns {VerifiedToken} */
  verifyGitlabToken(token, jwks, config, now) {
    return this.call((r) => r.verify.verifyGitlabToken(token, jwks, { config: verifierConfig(config), now: now64(now) }),
      (p) => new VerifyError(p));
  }

  /** @param {TargetOptions} target @param {string|CertificateOptions} cred @param {number|bigint} [now] @returns {HttpRequest} */
  buildAzureAssertion(target, cred, now) {
    const t = azureTarget(target);
    const c = credential(cred);
    return this.call((r) => r.exchange.buildAzureAssertion(t, c, now64(now)), (p) => new ExchangeError(p));
  }

  /**
   * @param {number} status
   * @param {Headers|Record<string,string>|Array<[string,string]>} headers
   * @param {Uint8Array|ArrayBuffer|string} body
   * @param {number|bigint} [now]
   * @returns {AccessToken}
   */
  parseTokenResponse(status, headers, body, now) {
    const pairs = Array.isArray(headers)
      ? headers.map(([k, v]) => [String(k), String(v)])
      : typeof headers?.entries === 'function' && !(headers.constructor === Object)
        ? [...headers.entries()].map(([k, v]) => [String(k), String(v)])
        : Object.entries(headers ?? {}).map(([k, v]) => [k, String(v)]);
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body);
    return this.call((r) => r.exchange.parseTokenResponse(status, pairs, bytes, now64(now)), (p) => new ExchangeError(p));
  }

  /** @param {Claims|VerifiedToken} claims @returns {string|undefined} */
  federatedSubject(claims) {
    const c = claims.claims ?? claims;
    return this.call((r) => r.exchange.federatedSubject(c), (p) => new ExchangeError(p));
  }

  /** @param {Claims|VerifiedToken} claims @param {string} credentialsJson @returns {PreflightReport} */
  preflight(claims, credentialsJson) {
    const c = claims.claims ?? claims;
    return this.call((r) => r.policy.preflight(c, credentialsJson), (p) => new PolicyError(p));
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
  constructor(runtime) {
    this.runtime = runtime ?? defaultRuntime();
    this.owner = null;
    this.handle = null;
    this.closed = false;
  }

  ensure() {
    if (this.closed) throw new Error(`${this.constructor.name} is closed`);
    if (this.handle === null || !this.owner.alive) {
      const inst = this.runtime.instance();
      this.handle = this.runtime.call((r) => this.construct(r), (p) => this.toError(p), inst);
      this.owner = inst;
    }
    return this.owner;
  }

  method(fn) {
    const inst = this.ensure();
    return this.runtime.call(() => fn(this.handle), (p) => this.toError(p), inst);
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
    this.handle = null;
    this.owner = null;
    this.closed = true;
  }

  [Symbol.dispose]() {
    this.close();
  }
}

/** A verifier: configuration checked and JWKS parsed once, reused for every token. */
export class Verifier extends GuestResource {
  /**
   * @param {VerifierOptions} config
   * @param {string} jwks The JWKS document (JSON text).
   * @param {{runtime?: Runtime}} [options]
   * @throws {VerifyError} category `config` or `jwks`
   */
  constructor(config, jwks, { runtime } = {}) {
    super(runtime);
    this.config = verifierConfig(config);
    this.jwks = jwks;
    this.ensure();
  }

  construct(root) {
    return new root.verify.Verifier(this.config, this.jwks);
  }

  toError(p) {
    return new VerifyError(p);
  }

  /** @param {string} token @param {number|bigint} [now] @returns {VerifiedToken} @throws {VerifyError} */
  verify(token, now) {
    return this.method((h) => h.verify(token, now64(now)));
  }

  /**
   * Judges `token` like `verify` but returns only `{fingerprint, jti, expiresAt}`: the cheap
   * call when the claims from the first `verify` are kept by fingerprint.
   * @param {string} token @param {number|bigint} [now] @throws {VerifyError}
   */
  check(token, now) {
    return this.method((h) => h.check(token, now64(now)));
  }

  /** Replaces the keys (after `refreshJwks` and a refetch). @param {string} jwks */
  replaceJwks(jwks) {
    this.method((h) => h.replaceJwks(jwks));
    this.jwks = jwks;
  }

  /** The usable keys, and the skipped ones with reasons. @returns {[KeyInfo[], string[]]} */
  keys() {
    return this.method((h) => h.keys());
  }
}

/** A loaded policy: parsed and compiled once. */
export class Policy extends GuestResource {
  /**
   * @param {string|object} document The policy (JSON text or object).
   * @param {{runtime?: Runtime}} [options]
   * @throws {PolicyError}
   */
  constructor(document, { runtime } = {}) {
    super(runtime);
    this.document = typeof document === 'string' ? document : JSON.stringify(document);
    this.ensure();
  }

  /** @param {string} path @param {{runtime?: Runtime}} [options] */
  static fromFile(path, options) {
    return new Policy(readFileSync(path, 'utf8'), options);
  }

  construct(root) {
    return new root.policy.Policy(this.document);
  }

  toError(p) {
    return new PolicyError(p);
  }

  /**
   * Decides for a verified token's claims; a refusal is `allow: false`, not an exception.
   * @param {Claims|VerifiedToken} claims
   * @param {string} [token] Only fingerprinted for the audit event.
   * @param {number|bigint} [now]
   * @returns {Decision}
   */
  decide(claims, token = '', now) {
    const c = claims.claims ?? claims;
    return this.method((h) => h.decide(c, token, now64(now)));
  }

  /** @returns {string[]} */
  warnings() {
    return this.method((h) => h.warnings());
  }

  /** @param {string} issuer @param {string} [audience] @returns {PlanReport} */
  plan(issuer, audience = 'api://AzureADTokenExchange') {
    return this.method((h) => h.plan(issuer, audience));
  }
}

/**
 * The granted identity of an allowing decision as build-azure-assertion's target.
 * @param {Decision} decision
 * @param {{authorityHost?: string, insecureAuthorityUrl?: string}} [extra]
 * @returns {TargetOptions}
 */
export function targetOf(decision, extra = {}) {
  if (!decision.allow || !decision.target) throw new Error(`the policy did not allow this job: ${decision.summary}`);
  return { ...decision.target, ...extra };
}

/** One-shot verification. @param {string} token @param {string} jwks @param {VerifierOptions} config @param {number|bigint} [now] */
export const verifyGitlabToken = (token, jwks, config, now) => defaultRuntime().verifyGitlabToken(token, jwks, config, now);
/** The Entra token request; send it as is. @param {TargetOptions} target @param {string|CertificateOptions} cred @param {number|bigint} [now] */
export const buildAzureAssertion = (target, cred, now) => defaultRuntime().buildAzureAssertion(target, cred, now);
/** Judges Entra's answer. @param {number} status @param {any} headers @param {Uint8Array|ArrayBuffer|string} body @param {number|bigint} [now] */
export const parseTokenResponse = (status, headers, body, now) => defaultRuntime().parseTokenResponse(status, headers, body, now);
/** The subject Entra matches. @param {Claims|VerifiedToken} claims */
export const federatedSubject = (claims) => defaultRuntime().federatedSubject(claims);
/** Would Entra accept this token with these federated credentials? @param {Claims|VerifiedToken} claims @param {string} credentialsJson */
export const preflight = (claims, credentialsJson) => defaultRuntime().preflight(claims, credentialsJson);
