"""Verify GitLab CI ID tokens, decide with a policy and build the Microsoft Entra token request,
through the `gitlab-azure:oidc@0.1.0` WebAssembly component on wasmtime-py.

The component has no clock and no network: this module passes the time (``now``, seconds since
the epoch, default: the current time), and the caller fetches the JWKS and sends the request.

    from gitlab_azure_oidc import Verifier, VerifierConfig, Policy, AzureTarget, build_azure_assertion

    with Verifier(VerifierConfig("https://gitlab.com", ["api://AzureADTokenExchange"]), jwks) as v:
        token = v.verify(id_token)            # raises VerifyError with .kind, e.g. "expired"

The component is compiled once per process (``Runtime``) and each runtime has one instance.
A guest trap (fuel or memory exhausted, a bug) poisons a WebAssembly instance; the runtime then
raises ``GuestTrap`` and the next call runs in a fresh instance. ``Verifier`` and ``Policy``
recreate their resource there from what they were built with, so a trap never makes them unusable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
import typing
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from wasmtime import Config, Engine, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Linker, Record, ResourceAny, Variant

__all__ = [
    "Runtime", "default_runtime", "component_path",
    "VerifierConfig", "Verifier", "verify_gitlab_token",
    "VerifiedToken", "CheckedToken", "Header", "Claims", "GitlabClaims", "UserIdentity", "JobConfig", "KeyInfo",
    "AzureTarget", "Certificate", "HttpRequest", "AccessToken", "EntraError",
    "build_azure_assertion", "parse_token_response", "federated_subject",
    "Policy", "Decision", "RuleOutcome", "PolicyTarget", "PlanReport", "PreflightReport", "preflight",
    "OidcError", "VerifyError", "ExchangeError", "PolicyError", "GuestTrap",
]

PACKAGE = "gitlab-azure:oidc@0.1.0"
_VERIFY = "gitlab-azure:oidc/verify@0.1.0"
_EXCHANGE = "gitlab-azure:oidc/exchange@0.1.0"
_POLICY = "gitlab-azure:oidc/policy@0.1.0"
_SIGNATURES = "gitlab-azure:oidc/signatures@0.1.0"

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class OidcError(Exception):
    """Any refusal by the component: ``kind`` is its stable kebab-case name (for logs and
    metrics), ``message`` says what to change and never contains a token or key."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class VerifyError(OidcError):
    """A configuration, JWKS or token refused by the `verify` interface.

    ``category`` is ``config``, ``jwks`` or ``verify``; ``case`` the WIT case (e.g. ``expired``,
    ``unknown-kid``); ``detail`` its payload as plain Python (dicts with snake_case keys);
    ``refresh_jwks`` is true when refetching the JWKS may help."""

    def __init__(self, kind: str, message: str, category: str, case: str, detail: Any,
                 refresh_jwks: bool) -> None:
        super().__init__(kind, message)
        self.category = category
        self.case = case
        self.detail = detail
        self.refresh_jwks = refresh_jwks


class ExchangeError(OidcError):
    """No request could be built, or Entra's answer holds no token.

    ``category``: ``target``, ``credential``, ``request``, ``entra``, ``rate-limited``,
    ``server-error`` or ``bad-response``; ``entra`` is Entra's error body when it sent one."""

    def __init__(self, kind: str, message: str, category: str, entra: Optional["EntraError"],
                 retryable: bool, retry_after: Optional[str],
                 retry_after_seconds: Optional[int]) -> None:
        super().__init__(kind, message)
        self.category = category
        self.entra = entra
        self.retryable = retryable
        self.retry_after = retry_after
        self.retry_after_seconds = retry_after_seconds


class PolicyError(OidcError):
    """A policy document that does not load, or claims it cannot judge."""

    def __init__(self, kind: str, message: str, rule: Optional[str], field: Optional[str]) -> None:
        super().__init__(kind, message)
        self.rule = rule
        self.field = field


class GuestTrap(OidcError):
    """The component trapped (fuel or memory exhausted, or a bug). The instance is discarded;
    the next call runs in a fresh one."""

    def __init__(self, message: str) -> None:
        super().__init__("guest-trap", message)


# ---------------------------------------------------------------------------------------------
# Types (WIT records as dataclasses; WIT kebab-case names become snake_case)
# ---------------------------------------------------------------------------------------------

#: A JWS algorithm: rs256, rs384, rs512, ps256, ps384, ps512, es256, es384 (WIT enum `algorithm`).
Algorithm = str


@dataclass(frozen=True)
class VerifierConfig:
    """What a verifier checks (WIT `verifier-config`)."""
    issuer: str
    audiences: Sequence[str]
    algorithms: Sequence[Algorithm] = ()
    leeway: Optional[int] = None
    max_age: Optional[int] = None
    insecure_skip_audience: bool = False


@dataclass(frozen=True)
class UserIdentity:
    provider: str
    extern_uid: str


@dataclass(frozen=True)
class JobConfig:
    url: Optional[str]
    sha: Optional[str]


@dataclass(frozen=True)
class GitlabClaims:
    """GitLab's own claims, each None when absent (WIT `gitlab-claims`)."""
    namespace_id: Optional[str] = None
    namespace_path: Optional[str] = None
    project_id: Optional[str] = None
    project_path: Optional[str] = None
    job_project_id: Optional[str] = None
    job_project_path: Optional[str] = None
    job_namespace_id: Optional[str] = None
    job_namespace_path: Optional[str] = None
    user_id: Optional[str] = None
    user_login: Optional[str] = None
    user_email: Optional[str] = None
    user_access_level: Optional[str] = None
    user_identities: Optional[List[UserIdentity]] = None
    pipeline_id: Optional[str] = None
    pipeline_source: Optional[str] = None
    job_id: Optional[str] = None
    ref: Optional[str] = None
    ref_type: Optional[str] = None
    ref_path: Optional[str] = None
    ref_protected: Optional[bool] = None
    groups_direct: Optional[List[str]] = None
    environment: Optional[str] = None
    environment_protected: Optional[bool] = None
    deployment_tier: Optional[str] = None
    environment_action: Optional[str] = None
    runner_id: Optional[int] = None
    runner_environment: Optional[str] = None
    sha: Optional[str] = None
    ci_config_ref_uri: Optional[str] = None
    ci_config_sha: Optional[str] = None
    project_visibility: Optional[str] = None
    job_source: Optional[str] = None
    job_config: Optional[JobConfig] = None
    target_audience: Optional[str] = None


@dataclass(frozen=True)
class Claims:
    """The claims of a verified token (WIT `claims`)."""
    iss: str
    sub: Optional[str]
    aud: List[str]
    exp: int
    nbf: Optional[int]
    iat: Optional[int]
    jti: Optional[str]
    gitlab: GitlabClaims
    raw_json: str

    @property
    def raw(self) -> dict:
        """Every claim, including those this version does not name."""
        return json.loads(self.raw_json)


@dataclass(frozen=True)
class Header:
    alg: Algorithm
    kid: Optional[str]
    typ: Optional[str]


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims verified. Log ``fingerprint`` or ``claims.jti``,
    never the token."""
    header: Header
    claims: Claims
    fingerprint: str


@dataclass(frozen=True)
class CheckedToken:
    """What `Verifier.check` returns: the token's identity without its claims."""
    fingerprint: str
    jti: Optional[str]
    expires_at: int


@dataclass(frozen=True)
class KeyInfo:
    kid: Optional[str]
    alg: Optional[str]
    kind: str


@dataclass(frozen=True)
class AzureTarget:
    """The Azure identity to become (WIT `exchange.azure-target`). Empty scopes mean ARM's."""
    tenant: str
    client_id: str
    scopes: Sequence[str] = ()
    authority_host: Optional[str] = None
    #: Any authority base URL, e.g. a loopback stand-in. Insecure outside tests.
    insecure_authority_url: Optional[str] = None


@dataclass(frozen=True)
class Certificate:
    """A certificate credential: the component signs its own client assertion."""
    private_key_pem: str
    certificate_pem: str
    algorithm: str = "ps256"  # or "rs256"
    lifetime: Optional[int] = None

    def __repr__(self) -> str:  # never print the key
        return f"Certificate(algorithm={self.algorithm!r}, lifetime={self.lifetime!r})"


@dataclass(frozen=True)
class HttpRequest:
    """The token request to send as is. ``body`` holds a credential: never log it."""
    method: str
    url: str
    headers: List[Tuple[str, str]]
    body: str = field(repr=False)


@dataclass(frozen=True)
class EntraError:
    """Entra's error answer, field by field, plus ``hint``: what to change."""
    status: int
    error: str
    error_description: Optional[str]
    error_codes: List[int]
    trace_id: Optional[str]
    correlation_id: Optional[str]
    timestamp: Optional[str]
    error_uri: Optional[str]
    hint: str


@dataclass(frozen=True)
class AccessToken:
    """An Azure access token: a bearer credential, never printed by ``repr``."""
    token: str = field(repr=False)
    token_type: str
    expires_in: int
    ext_expires_in: Optional[int]
    expires_at: int


@dataclass(frozen=True)
class PolicyTarget:
    """An Azure identity a policy rule grants (WIT `policy.azure-target`)."""
    tenant: str
    client_id: str
    scopes: List[str]


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    effect: str
    matched: bool
    reason: Optional[str]


@dataclass(frozen=True)
class Decision:
    """A policy decision, always explained; ``audit_json`` never contains the token."""
    allow: bool
    rule: Optional[str]
    target: Optional[PolicyTarget]
    summary: str
    outcomes: List[RuleOutcome]
    lines: List[str]
    audit_json: str

    def azure_target(self, **extra: Any) -> AzureTarget:
        """The granted identity as an `AzureTarget` for `build_azure_assertion`
        (``extra``: ``authority_host`` or ``insecure_authority_url``)."""
        if self.target is None:
            raise ValueError(f"the policy did not allow this job: {self.summary}")
        return AzureTarget(self.target.tenant, self.target.client_id, tuple(self.target.scopes),
                           **extra)


@dataclass(frozen=True)
class PreflightReport:
    accepted: bool
    accepted_by: Optional[str]
    nearest: Optional[str]
    differences: List[str]
    report: str


@dataclass(frozen=True)
class PlanReport:
    credentials_json: str
    commands: List[str]
    warnings: List[str]


# ---------------------------------------------------------------------------------------------
# Conversions between dataclasses and wasmtime-py values
# ---------------------------------------------------------------------------------------------
# wasmtime-py names record fields as in WIT (kebab-case) and needs `Record` instances wherever a
# record sits in an untagged option/variant (it tests `isinstance(value, Record)`), so inputs are
# always converted to `Record`s.


def _wit_name(name: str) -> str:
    return name.replace("_", "-")


def _to_wit(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        record = Record()
        for f in dataclasses.fields(value):
            setattr(record, _wit_name(f.name), _to_wit(getattr(value, f.name)))
        return record
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return [_to_wit(v) for v in value]
    return value


_HINTS: dict = {}


def _hints(cls: type) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _from_wit(tp: Any, value: Any) -> Any:
    """Converts a wasmtime-py value to ``tp`` (a dataclass, Optional, List, Tuple or scalar)."""
    origin = typing.get_origin(tp)
    if origin is Union:  # Optional[X]: untagged in wasmtime-py (None or the bare value)
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _from_wit(inner, value)
    if origin in (list, List):
        (inner,) = typing.get_args(tp)
        return [_from_wit(inner, v) for v in value]
    if origin in (tuple, Tuple):
        return tuple(_from_wit(t, v) for t, v in zip(typing.get_args(tp), value))
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: _from_wit(hints[f.name], getattr(value, _wit_name(f.name)))
                     for f in dataclasses.fields(tp)})
    return value


def _plain(value: Any) -> Any:
    """Error payloads as plain Python: records become dicts with snake_case keys."""
    if isinstance(value, Record):
        return {k.replace("-", "_"): _plain(v) for k, v in vars(value).items()}
    if isinstance(value, Variant):
        return {"case": value.tag, "value": _plain(value.payload)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _tagged_result(value: Any) -> Tuple[bool, Any]:
    """``result<record, record>``: both sides are `Record`s, so wasmtime-py tags them as
    ``Variant('ok'|'err', payload)``."""
    if not isinstance(value, Variant) or value.tag not in ("ok", "err"):
        raise TypeError(f"expected a tagged result from the component, got {value!r}")
    return value.tag == "ok", value.payload


def _untagged_result(value: Any, ok_type: type) -> Tuple[bool, Any]:
    """``result<resource, record>`` or ``result<_, record>``: the classes differ, so wasmtime-py
    returns the bare payload; tell the sides apart with ``isinstance``."""
    if isinstance(value, ok_type):
        return True, value
    if isinstance(value, Record):
        return False, value
    raise TypeError(f"unexpected result from the component: {value!r}")


def _verify_error(failure: Record) -> VerifyError:
    error = failure.error  # variant error { config, jwks, verify }: tagged, payloads overlap
    inner = error.payload
    case, detail = (inner.tag, _plain(inner.payload)) if isinstance(inner, Variant) else ("", None)
    return VerifyError(failure.kind, failure.message, error.tag, case, detail,
                       getattr(failure, "refresh-jwks"))


def _exchange_error(failure: Record) -> ExchangeError:
    error = failure.error  # tagged: string and record payloads overlap across cases
    entra = error.payload if isinstance(error.payload, Record) else None
    return ExchangeError(failure.kind, failure.message, error.tag,
                         _from_wit(EntraError, entra) if entra is not None else None,
                         failure.retryable, getattr(failure, "retry-after"),
                         getattr(failure, "retry-after-seconds"))


def _policy_error(failure: Record) -> PolicyError:
    return PolicyError(failure.kind, failure.message, failure.rule, failure.field)


def _now(now: Optional[int]) -> int:
    return int(time.time()) if now is None else int(now)


# ---------------------------------------------------------------------------------------------
# Runtime: the compiled component and its current instance
# ---------------------------------------------------------------------------------------------


def component_path() -> Path:
    """Where the component is: ``$GITLAB_AZURE_OIDC_COMPONENT``, else ``gitlab_azure_oidc.wasm``
    next to this file, else the repository's build output."""
    env = os.environ.get("GITLAB_AZURE_OIDC_COMPONENT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    candidates = [here / "gitlab_azure_oidc.wasm"]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(Path(target) / "wasm32-wasip2/component/gitlab_azure_oidc.wasm")
    candidates.append(here.parent.parent / "target/wasm32-wasip2/component/gitlab_azure_oidc.wasm")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "gitlab_azure_oidc.wasm not found: run `make component` and set GITLAB_AZURE_OIDC_COMPONENT "
        "to $CARGO_TARGET_DIR/wasm32-wasip2/component/gitlab_azure_oidc.wasm, or copy it next to "
        + __file__)


class _Instance:
    """One store and one instance; dead after a trap."""

    def __init__(self, runtime: "Runtime") -> None:
        self.store = Store(runtime._engine)
        self.store.set_wasi(WasiConfig())  # no files, no env, no network: the component needs none
        if runtime.memory_limit is not None:
            self.store.set_limits(memory_size=runtime.memory_limit)
        if runtime.fuel is not None:
            self.store.set_fuel(runtime.fuel)  # instantiation runs guest code too
        self.instance = runtime._linker.instantiate(self.store, runtime._component)
        self.alive = True
        self._funcs: dict = {}

    def func(self, interface: str, name: str) -> Any:
        key = (interface, name)
        if key not in self._funcs:
            iface = self.instance.get_export_index(self.store, interface)
            index = self.instance.get_export_index(self.store, name, iface)
            if index is None:
                raise LookupError(f"{interface} has no export {name}")
            self._funcs[key] = self.instance.get_func(self.store, index)
        return self._funcs[key]


class _NativeSignatures:
    """RS*, PS* and ES* checked with the ``cryptography`` package (OpenSSL): about 20 times
    faster than the component's own RSA code in WebAssembly. Without the package every answer
    is ``unsupported`` and the component checks signatures itself, so only speed is lost."""

    _HASHES = {"256": "SHA256", "384": "SHA384", "512": "SHA512"}

    def __init__(self) -> None:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
        except ImportError:  # pragma: no cover - the example's requirements pin it
            self._ok = False
            return
        self._ok = True
        self._invalid, self._hashes, self._ec, self._padding, self._rsa, self._utils = (
            InvalidSignature, hashes, ec, padding, rsa, utils)
        #: Parsed public keys by their bytes: a JWKS holds a handful, parsed once.
        self._keys: dict = {}

    def _key(self, key: Any) -> Any:
        tag, val = (key.tag, key.payload) if isinstance(key, Variant) else (None, key)
        cache_key = (tag, getattr(val, "curve", None),
                     *(bytes(getattr(val, part, b"")) for part in ("n", "e", "x", "y")))
        parsed = self._keys.get(cache_key)
        if parsed is None:
            if tag == "rsa":
                parsed = self._rsa.RSAPublicNumbers(
                    int.from_bytes(val.e, "big"), int.from_bytes(val.n, "big")).public_key()
            else:
                curve = {"P-256": self._ec.SECP256R1, "P-384": self._ec.SECP384R1}[val.curve]()
                parsed = self._ec.EllipticCurvePublicNumbers(
                    int.from_bytes(val.x, "big"), int.from_bytes(val.y, "big"), curve).public_key()
            if len(self._keys) >= 16:
                self._keys.clear()
            self._keys[cache_key] = parsed
        return tag, parsed

    def verify(self, alg: str, key: Any, message: bytes, signature: bytes) -> str:
        if not self._ok or len(alg) != 5 or alg[2:] not in self._HASHES:
            return "unsupported"
        hash_alg = getattr(self._hashes, self._HASHES[alg[2:]])()
        try:
            tag, public = self._key(key)
            if tag == "rsa" and alg.startswith("RS"):
                public.verify(bytes(signature), bytes(message), self._padding.PKCS1v15(), hash_alg)
            elif tag == "rsa" and alg.startswith("PS"):
                pss = self._padding.PSS(mgf=self._padding.MGF1(hash_alg),
                                        salt_length=hash_alg.digest_size)
                public.verify(bytes(signature), bytes(message), pss, hash_alg)
            elif tag == "ec" and alg.startswith("ES"):
                # JWS carries r || s; OpenSSL wants DER.
                half = len(signature) // 2
                der = self._utils.encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
                public.verify(der, bytes(message), self._ec.ECDSA(hash_alg))
            else:
                return "unsupported"
        except self._invalid:
            return "invalid"
        except (ValueError, TypeError, KeyError):
            # A key OpenSSL will not load: let the component judge it with its own code.
            return "unsupported"
        return "valid"


class Runtime:
    """The compiled component and one live instance, shared by everything built from it.

    ``fuel``: WebAssembly fuel per call (None: unlimited); ``memory_limit``: bytes of linear
    memory per instance. Calls are serialised with a lock (a wasmtime store is single-threaded).
    """

    def __init__(self, path: Union[str, Path, None] = None, *, fuel: Optional[int] = None,
                 memory_limit: Optional[int] = 64 * 1024 * 1024,
                 native_signatures: bool = True) -> None:
        self.path = Path(path) if path is not None else component_path()
        self.fuel = fuel
        self.memory_limit = memory_limit
        #: Signatures checked by the ``cryptography`` package for the component (see
        #: ``native_signatures``); the component checks the rest itself.
        self.native_signature_checks = 0
        self._native = _NativeSignatures() if native_signatures else None
        config = Config()
        config.consume_fuel = fuel is not None
        self._engine = Engine(config)
        self._component = Component.from_file(self._engine, str(self.path))
        self._linker = Linker(self._engine)
        self._linker.add_wasip2()
        with self._linker.root() as root:
            with root.add_instance(_SIGNATURES) as signatures:
                signatures.add_func("verify-signature", self._verify_signature)
        self._lock = threading.RLock()
        self._current: Optional[_Instance] = None
        self._pending_drops: List[Tuple[_Instance, ResourceAny]] = []
        #: Instances created so far (1 after the first call; +1 after every trap).
        self.instances_created = 0

    def _verify_signature(self, _store: Any, alg: str, key: Any, message: bytes,
                          signature: bytes) -> str:
        """The component's ``signatures`` import. It has refused by itself everything it would
        refuse (allow-list, key type, size, signature length); this only does the arithmetic."""
        if self._native is None:
            return "unsupported"
        verdict = self._native.verify(alg, key, message, signature)
        if verdict != "unsupported":
            self.native_signature_checks += 1
        return verdict

    def _instance(self) -> _Instance:
        if self._current is None or not self._current.alive:
            try:
                self._current = _Instance(self)
            except WasmtimeError as trap:
                raise GuestTrap(str(trap).strip().splitlines()[-1]) from trap
            self.instances_created += 1
        return self._current

    def _call(self, interface: str, name: str, *args: Any,
              instance: Optional[_Instance] = None) -> Any:
        """Calls an export; on a trap, retires the instance and raises `GuestTrap`."""
        with self._lock:
            self._drain_drops()
            inst = instance if instance is not None else self._instance()
            if self.fuel is not None:
                inst.store.set_fuel(self.fuel)
            try:
                return inst.func(interface, name)(inst.store, *args)
            except WasmtimeError as trap:
                inst.alive = False
                raise GuestTrap(str(trap).strip().splitlines()[-1]) from trap

    def _drop(self, inst: _Instance, handle: ResourceAny) -> None:
        with self._lock:
            if inst.alive:
                try:
                    handle.drop(inst.store)
                except WasmtimeError:
                    inst.alive = False

    def _drop_later(self, inst: _Instance, handle: ResourceAny) -> None:
        # From a finalizer: never enter the store here (it may be mid-call); the next call drops.
        self._pending_drops.append((inst, handle))

    def _drain_drops(self) -> None:
        while self._pending_drops:
            inst, handle = self._pending_drops.pop()
            self._drop(inst, handle)

    # The API, bound to this runtime ------------------------------------------------------

    def verifier(self, config: VerifierConfig, jwks: str) -> "Verifier":
        return Verifier(config, jwks, runtime=self)

    def policy(self, document: str) -> "Policy":
        return Policy(document, runtime=self)

    def verify_gitlab_token(self, token: str, jwks: str, config: VerifierConfig,
                            now: Optional[int] = None) -> VerifiedToken:
        options = Record()
        options.config = _to_wit(config)
        options.now = _now(now)
        ok, value = _tagged_result(self._call(_VERIFY, "verify-gitlab-token", token, jwks, options))
        if not ok:
            raise _verify_error(value)
        return _from_wit(VerifiedToken, value)

    def build_azure_assertion(self, target: AzureTarget, credential: Union[str, Certificate],
                              now: Optional[int] = None) -> HttpRequest:
        # variant credential { federated(string), certificate(certificate) } is untagged in
        # wasmtime-py: a str is `federated`, a Record is `certificate`.
        if not isinstance(credential, (str, Certificate)):
            raise TypeError("credential: the GitLab ID token (str) or a Certificate")
        ok, value = _tagged_result(self._call(_EXCHANGE, "build-azure-assertion",
                                              _to_wit(target), _to_wit(credential), _now(now)))
        if not ok:
            raise _exchange_error(value)
        return _from_wit(HttpRequest, value)

    def parse_token_response(self, status: int,
                             headers: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
                             body: Union[bytes, str], now: Optional[int] = None) -> AccessToken:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        pairs = [(str(k), str(v)) for k, v in items]
        data = body.encode() if isinstance(body, str) else bytes(body)
        ok, value = _tagged_result(self._call(_EXCHANGE, "parse-token-response",
                                              int(status), pairs, data, _now(now)))
        if not ok:
            raise _exchange_error(value)
        return _from_wit(AccessToken, value)

    def federated_subject(self, claims: Union[Claims, VerifiedToken]) -> Optional[str]:
        claims = claims.claims if isinstance(claims, VerifiedToken) else claims
        return self._call(_EXCHANGE, "federated-subject", _to_wit(claims))

    def preflight(self, claims: Union[Claims, VerifiedToken], credentials_json: str) -> PreflightReport:
        claims = claims.claims if isinstance(claims, VerifiedToken) else claims
        ok, value = _tagged_result(self._call(_POLICY, "preflight", _to_wit(claims), credentials_json))
        if not ok:
            raise _policy_error(value)
        return _from_wit(PreflightReport, value)


_DEFAULT: Optional[Runtime] = None
_DEFAULT_LOCK = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime, compiled on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Runtime()
        return _DEFAULT


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


class _Resource:
    """A guest resource that survives traps: rebuilt in the runtime's current instance when the
    one it lived in was discarded. Use it as a context manager (or call `close`) to drop it."""

    _interface = ""
    _constructor = ""

    def __init__(self, runtime: Optional[Runtime]) -> None:
        self._runtime = runtime if runtime is not None else default_runtime()
        self._owner: Optional[_Instance] = None
        self._handle: Optional[ResourceAny] = None
        self._closed = False
        self._finalizer: Optional[weakref.finalize] = None

    def _constructor_args(self) -> Tuple[Any, ...]:
        raise NotImplementedError

    def _raise(self, failure: Record) -> typing.NoReturn:
        raise NotImplementedError

    def _ensure(self) -> Tuple[_Instance, ResourceAny]:
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")
        rt = self._runtime
        with rt._lock:
            if self._handle is None or self._owner is None or not self._owner.alive:
                inst = rt._instance()
                value = rt._call(self._interface, self._constructor, *self._constructor_args(),
                                 instance=inst)
                ok, value = _untagged_result(value, ResourceAny)
                if not ok:
                    self._raise(value)
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._owner, self._handle = inst, value
                self._finalizer = weakref.finalize(self, rt._drop_later, inst, value)
            return self._owner, self._handle

    def _method(self, name: str, *args: Any) -> Any:
        with self._runtime._lock:
            inst, handle = self._ensure()
            return self._runtime._call(self._interface, name, handle, *args, instance=inst)

    def close(self) -> None:
        """Drops the guest resource now."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._handle is not None and self._owner is not None:
            self._runtime._drop(self._owner, self._handle)
        self._handle, self._owner, self._closed = None, None, True

    def __enter__(self) -> "_Resource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Verifier(_Resource):
    """A verifier (WIT resource `verifier`): the configuration checked and the JWKS parsed once.

    Raises `VerifyError` (category ``config`` or ``jwks``) when either is refused."""

    _interface = _VERIFY
    _constructor = "[constructor]verifier"

    def __init__(self, config: VerifierConfig, jwks: str, *, runtime: Optional[Runtime] = None) -> None:
        super().__init__(runtime)
        self.config = config
        self._jwks = jwks
        self._ensure()

    def _constructor_args(self) -> Tuple[Any, ...]:
        return (_to_wit(self.config), self._jwks)

    def _raise(self, failure: Record) -> typing.NoReturn:
        raise _verify_error(failure)

    def __enter__(self) -> "Verifier":
        return self

    def verify(self, token: str, now: Optional[int] = None) -> VerifiedToken:
        """Verifies ``token`` at ``now`` (default: the current time); raises `VerifyError`."""
        ok, value = _tagged_result(self._method("[method]verifier.verify", token, _now(now)))
        if not ok:
            raise _verify_error(value)
        return _from_wit(VerifiedToken, value)

    def check(self, token: str, now: Optional[int] = None) -> CheckedToken:
        """Judges ``token`` like `verify` but returns only its fingerprint, ``jti`` and ``exp``:
        the cheap call when the claims from the first `verify` are kept by fingerprint."""
        ok, value = _tagged_result(self._method("[method]verifier.check", token, _now(now)))
        if not ok:
            raise _verify_error(value)
        return _from_wit(CheckedToken, value)

    def replace_jwks(self, jwks: str) -> None:
        """Replaces the keys, e.g. after an ``unknown-kid`` (``refresh_jwks``) and a refetch."""
        ok, value = _untagged_result(self._method("[method]verifier.replace-jwks", jwks), type(None))
        if not ok:
            raise _verify_error(value)
        self._jwks = jwks

    def keys(self) -> Tuple[List[KeyInfo], List[str]]:
        """The usable keys, and the skipped ones with reasons."""
        return _from_wit(Tuple[List[KeyInfo], List[str]], self._method("[method]verifier.keys"))


class Policy(_Resource):
    """A loaded policy (WIT resource `policy`). Raises `PolicyError` when the document is refused."""

    _interface = _POLICY
    _constructor = "[constructor]policy"

    def __init__(self, document: Union[str, Mapping[str, Any]], *,
                 runtime: Optional[Runtime] = None) -> None:
        super().__init__(runtime)
        self.document = document if isinstance(document, str) else json.dumps(document)
        self._ensure()

    @classmethod
    def from_file(cls, path: Union[str, Path], *, runtime: Optional[Runtime] = None) -> "Policy":
        return cls(Path(path).read_text(encoding="utf-8"), runtime=runtime)

    def _constructor_args(self) -> Tuple[Any, ...]:
        return (self.document,)

    def _raise(self, failure: Record) -> typing.NoReturn:
        raise _policy_error(failure)

    def __enter__(self) -> "Policy":
        return self

    def decide(self, claims: Union[Claims, VerifiedToken], token: str = "",
               now: Optional[int] = None) -> Decision:
        """Decides for a verified token's claims; ``token`` is only fingerprinted for the audit
        event. A refusal is a `Decision` with ``allow=False``, not an exception."""
        claims = claims.claims if isinstance(claims, VerifiedToken) else claims
        ok, value = _tagged_result(self._method("[method]policy.decide", _to_wit(claims), token,
                                                _now(now)))
        if not ok:
            raise _policy_error(value)
        return _from_wit(Decision, value)

    def warnings(self) -> List[str]:
        return list(self._method("[method]policy.warnings"))

    def plan(self, issuer: str, audience: str = "api://AzureADTokenExchange") -> PlanReport:
        """The federated credentials Entra needs so it accepts every job this policy allows."""
        return _from_wit(PlanReport, self._method("[method]policy.plan", issuer, audience))


# ---------------------------------------------------------------------------------------------
# Module-level functions on the default runtime
# ---------------------------------------------------------------------------------------------


def verify_gitlab_token(token: str, jwks: str, config: VerifierConfig,
                        now: Optional[int] = None) -> VerifiedToken:
    """One-shot verification (parses config and JWKS every time; prefer `Verifier` for many)."""
    return default_runtime().verify_gitlab_token(token, jwks, config, now)


def build_azure_assertion(target: AzureTarget, credential: Union[str, Certificate],
                          now: Optional[int] = None) -> HttpRequest:
    """The Entra token request: ``credential`` is the verified GitLab ID token (federated) or a
    `Certificate`. Send it as is; its body holds a credential."""
    return default_runtime().build_azure_assertion(target, credential, now)


def parse_token_response(status: int, headers: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
                         body: Union[bytes, str], now: Optional[int] = None) -> AccessToken:
    """Judges Entra's answer: an `AccessToken`, or `ExchangeError` (``retryable`` for 429/5xx)."""
    return default_runtime().parse_token_response(status, headers, body, now)


def federated_subject(claims: Union[Claims, VerifiedToken]) -> Optional[str]:
    """The subject Entra matches against the app's federated credentials."""
    return default_runtime().federated_subject(claims)


def preflight(claims: Union[Claims, VerifiedToken], credentials_json: str) -> PreflightReport:
    """Would Entra accept this token with these federated credentials (as `az ad app
    federated-credential list` prints them)?"""
    return default_runtime().preflight(claims, credentials_json)
