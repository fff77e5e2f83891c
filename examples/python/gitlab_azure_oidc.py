"""Exchange GitLab CI ID tokens for Microsoft Entra access tokens through the
`gitlab-azure:oidc@0.2.0` WebAssembly component on wasmtime-py.

The component judges everything; this module fetches, sends and reads the clock (``now``,
seconds since the epoch, defaults to the current time). The exchange is a `Gate`:

    with Gate(GateConfig(VerifierConfig("https://gitlab.com", ["api://AzureADTokenExchange"]),
                         policy=Path("policy.json").read_text())) as gate:
        access = exchange(gate, id_token, send, fetch_jwks=fetch_jwks)  # raises OidcError

`Verifier`, `Policy`, `verify_gitlab_token`, `preflight`, `claim_table` and `lint_pipeline` are
for tooling.

The component is compiled once per process (``Runtime``) and each runtime has one instance.
A guest trap (fuel or memory exhausted, a bug) poisons an instance: ``GuestTrap`` is raised and
the next call runs in a fresh instance, where ``Gate``, ``Verifier`` and ``Policy`` rebuild their
resource (a gate loses its kept decisions and the audit events not yet taken).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
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
    "OidcError", "GuestTrap", "Location", "EntraDetails",
    "Gate", "GateConfig", "Certificate", "Admission", "exchange",
    "VerifierConfig", "Verifier", "verify_gitlab_token", "claim_table", "ClaimSpec",
    "VerifiedToken", "Header", "RegisteredClaims", "GitlabClaims", "UserIdentity", "JobConfig",
    "CheckedToken", "KeyInfo", "AzureTarget", "HttpRequest", "AccessToken",
    "Policy", "Decision", "RuleOutcome", "PlanOptions", "PlanReport", "RuleWarnings",
    "PreflightReport", "preflight", "AuditOptions", "RbacReport", "audit_rbac",
    "lint_pipeline", "CiFile", "LintContext", "LintReport", "SeverityCounts",
]

_VERIFY = "gitlab-azure:oidc/verify@0.2.0"
_GATE = "gitlab-azure:oidc/gate@0.2.0"
_POLICY = "gitlab-azure:oidc/policy@0.2.0"
_LINT = "gitlab-azure:oidc/lint@0.2.0"
_SIGNATURES = "gitlab-azure:oidc/signatures@0.2.0"

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where in a policy document a problem is: the rule (None for top-level fields), the field."""
    rule: Optional[str]
    field: str


@dataclass(frozen=True)
class EntraDetails:
    """Entra's error answer, field by field. ``trace_id`` is what Microsoft support asks for."""
    status: int
    error: str
    error_description: Optional[str]
    error_codes: List[int]
    trace_id: Optional[str]
    correlation_id: Optional[str]


class OidcError(Exception):
    """Every refusal of the component (WIT `failure`); it never holds a token, key or assertion.

    ``kind``: stable kebab-case name (``expired``, ``policy-denied``, ``entra-error``, ...);
    ``category``: ``config``, ``jwks``, ``token``, ``denied``, ``request`` or ``entra``;
    ``message``: what happened, naming the values; ``hint``: a further action (Entra's hint, the
    deny explanation); ``refetch_jwks``: fetching the JWKS again may fix it; ``retryable`` and
    ``retry_after`` (seconds): the same call may pass later; ``http_status``: what a broker
    answers; ``location``: where in a policy; ``entra``: Entra's error answer."""

    def __init__(self, kind: str, category: str, message: str, hint: Optional[str] = None,
                 refetch_jwks: bool = False, retryable: bool = False,
                 retry_after: Optional[int] = None, http_status: int = 500,
                 location: Optional[Location] = None, entra: Optional[EntraDetails] = None) -> None:
        super().__init__(f"{kind}: {message}" + (f"\n{hint}" if hint else ""))
        self.kind, self.category, self.message, self.hint = kind, category, message, hint
        self.refetch_jwks, self.retryable, self.retry_after = refetch_jwks, retryable, retry_after
        self.http_status, self.location, self.entra = http_status, location, entra

    @classmethod
    def _from_wit(cls, failure: Record) -> "OidcError":
        return cls(**{name: _from_wit(tp, getattr(failure, _wit_name(name)))
                      for name, tp in _hints(cls.__init__).items() if name != "return"})


class GuestTrap(RuntimeError):
    """The component trapped (fuel or memory exhausted, or a bug): no judgement, so not an
    `OidcError`. The instance is discarded; the next call runs in a fresh one."""

    kind = "guest-trap"

    def __init__(self, message: str) -> None:
        super().__init__(f"guest-trap: {message}")
        self.message = message


# ---------------------------------------------------------------------------------------------
# Types (WIT records as dataclasses; WIT kebab-case names become snake_case)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierConfig:
    """What a verifier checks (WIT `verifier-config`); empty ``algorithms`` means RS256 only,
    ``leeway`` None means 60 s. ``dangerous_skip_audience_check`` accepts tokens without `aud`."""
    issuer: str
    audiences: Sequence[str]
    algorithms: Sequence[str] = ()  # rs256, rs384, rs512, ps256, ps384, ps512, es256, es384
    leeway: Optional[int] = None
    max_age: Optional[int] = None
    dangerous_skip_audience_check: bool = False


@dataclass(frozen=True)
class RegisteredClaims:
    """The registered claims of a verified token (RFC 7519 4.1); ``aud`` is always a list."""
    iss: str
    sub: Optional[str]
    aud: List[str]
    exp: int
    nbf: Optional[int]
    iat: Optional[int]
    jti: Optional[str]


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
    """GitLab's own claims, typed, each None when absent or null.

    The fields are the component's `claim-table` (its non-registered claims, in its order), typed
    by their kind: text and id are `str`, flag `bool`, integer `int`, text-list `List[str]`.
    tests/test_wit.py fails when the table and this class differ and prints the fields to add.
    Claims this version does not name are in `VerifiedToken.payload`."""
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

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "GitlabClaims":
        """From a verified payload (the component has checked every named claim's type)."""
        hints = _hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            value = payload.get(f.name)
            if value is None:
                continue
            tp = hints[f.name]
            if tp == Optional[bool]:  # GitLab sends flags as "true"/"false"
                value = value == "true"
            elif tp == Optional[List[UserIdentity]]:
                value = [UserIdentity(i["provider"], i["extern_uid"]) for i in value]
            elif tp == Optional[JobConfig]:
                value = JobConfig(value.get("url"), value.get("sha"))
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class Header:
    alg: str
    kid: Optional[str]
    typ: Optional[str]


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims verified. ``payload_json`` is the payload exactly as
    signed; `payload` parses it and `gitlab` types GitLab's claims. Log ``fingerprint`` or
    ``claims.jti``, never the token."""
    header: Header
    claims: RegisteredClaims
    payload_json: str = field(repr=False)
    fingerprint: str

    @functools.cached_property
    def payload(self) -> dict:
        """Every claim, including those this version does not name."""
        return json.loads(self.payload_json)

    @functools.cached_property
    def gitlab(self) -> GitlabClaims:
        return GitlabClaims.from_payload(self.payload)


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
class ClaimSpec:
    """One claim of the component's claim table (WIT `claim-spec`)."""
    name: str
    kind: str  # text, id, flag, integer, time, text-list, audience, identities, object
    nullable: bool
    since: Optional[str]
    registered: bool
    values: List[str]  # GitLab's documented values, e.g. ["branch", "tag"] for ref_type
    values_complete: bool


@dataclass(frozen=True)
class AzureTarget:
    """An Azure identity (WIT `azure-target`). Empty scopes mean ARM's; ``authority_host``
    None means the public cloud."""
    tenant: str
    client_id: str
    scopes: Sequence[str] = ()
    authority_host: Optional[str] = None


@dataclass(frozen=True)
class Certificate:
    """A certificate credential: the gate signs its own client assertion with the key."""
    private_key_pem: str = field(repr=False)
    certificate_pem: str = field(repr=False)
    algorithm: str = "ps256"  # or "rs256"
    lifetime: Optional[int] = None


@dataclass(frozen=True)
class GateConfig:
    """What a gate is built from (WIT `gate-config`). ``verifier`` None only for a federated gate
    with a fixed ``target`` (Entra verifies the token); ``policy``: the JSON document whose allow
    rule names the identity, else ``target``; ``credential`` None: federated (the job's token is
    the assertion), else a `Certificate`; ``dangerous_authority_url``: send token requests there
    instead of Entra (a proxy, a loopback stand-in): it receives the credential."""
    verifier: Optional[VerifierConfig]
    policy: Optional[str] = None
    target: Optional[AzureTarget] = None
    credential: Optional[Certificate] = None
    dangerous_authority_url: Optional[str] = None


@dataclass(frozen=True)
class HttpRequest:
    """The token request to send as is. ``body`` holds a credential: never log it."""
    method: str
    url: str
    headers: List[Tuple[str, str]]
    body: str = field(repr=False)


@dataclass(frozen=True)
class Admission:
    """An admitted job: its verified token (None for an unverifying gate), the allow rule and
    the explanation (none without a policy), the target, whether the decision was made now
    (``fresh``) or a kept one reused, the Azure token cache key, and the request to send with its
    ``client-request-id`` (``request_id``: give the admission back to `Gate.finish`)."""
    verified: Optional[VerifiedToken]
    rule: Optional[str]
    explanation: List[str]
    target: AzureTarget
    fresh: bool
    azure_key: Optional[str]
    request_id: str
    request: HttpRequest


@dataclass(frozen=True)
class AccessToken:
    """An Azure access token: a bearer credential, never printed by ``repr``."""
    token: str = field(repr=False)
    token_type: str
    expires_in: int
    ext_expires_in: Optional[int]
    expires_at: int


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    effect: str
    matched: bool
    reason: Optional[str]


@dataclass(frozen=True)
class Decision:
    """A policy decision, always explained; ``target`` is printable (``client {id} in tenant
    ...``); ``audit_json`` never contains the token."""
    allow: bool
    rule: Optional[str]
    target: Optional[str]
    summary: str
    outcomes: List[RuleOutcome]
    lines: List[str]
    audit_json: str


@dataclass(frozen=True)
class PreflightReport:
    accepted: bool
    accepted_by: Optional[str]
    nearest: Optional[str]
    differences: List[str]
    report: str


@dataclass(frozen=True)
class PlanOptions:
    """What a plan is made for (WIT `plan-options`): ``issuer`` exactly as tokens carry it in
    ``iss`` (a near miss is refused with the fix), ``audience`` None for each app's cloud's,
    ``subject_form`` ``"project-path"`` (GitLab's default) or ``"project-id"`` (immutable)."""
    issuer: str
    audience: Optional[str] = None
    subject_form: str = "project-path"


@dataclass(frozen=True)
class RuleWarnings:
    """The warnings of one rule (``rule`` None: about apps or the whole plan), one line each."""
    rule: Optional[str]
    warnings: List[str]


@dataclass(frozen=True)
class PlanReport:
    """The federated credentials and role assignments a policy needs: ``document`` is the whole
    plan as one JSON document, ``text`` the same for people."""
    document: str
    text: str
    credentials_json: str
    commands: List[str]
    role_commands: List[str]
    role_assignments_json: str
    warnings: List[RuleWarnings]


@dataclass(frozen=True)
class AuditOptions:
    """How `audit_rbac` judges (``fail_on``: info, low, medium, high, critical) and where its Code
    Quality issues point (the policy file, relative to the repository)."""
    fail_on: str = "high"
    code_quality_path: str = "policy.json"


@dataclass(frozen=True)
class RbacReport:
    """What an audit of role assignments found: for people, as one JSON document, and as a GitLab
    Code Quality report; ``fails`` when a finding is at or above ``fail_on``."""
    text: str
    json: str
    code_quality: str
    fails: bool
    findings: int


@dataclass(frozen=True)
class CiFile:
    """One CI file for `lint_pipeline` (WIT `ci-file`): its path from the repository root, its
    YAML as JSON text (anchors resolved, ``!reference [a, b]`` as ``{"!reference": ["a", "b"]}``)
    and the 1-based line of each top-level key (empty: findings point at line 1)."""
    path: str
    json: str
    key_lines: Sequence[Tuple[str, int]] = ()


@dataclass(frozen=True)
class LintContext:
    """What the CI file does not say about the project (WIT `lint-context`). None and empty
    lists are the defaults: branch ``main`` (protected), issuer ``https://gitlab.com``, `sub`
    from ``project_path``, ``ref_type``, ``ref``; Entra's audiences are always accepted."""
    project_path: str
    project_id: Optional[str] = None
    namespace_id: Optional[str] = None
    default_branch: Optional[str] = None
    default_branch_protected: Optional[bool] = None
    protected_branches: Sequence[str] = ()
    protected_tags: Sequence[str] = ()
    protected_environments: Sequence[str] = ()
    issuer: Optional[str] = None
    sub_claim_components: Sequence[str] = ()
    extra_audiences: Sequence[str] = ()
    app_id: Optional[str] = None


@dataclass(frozen=True)
class SeverityCounts:
    critical: int
    high: int
    medium: int
    low: int
    info: int


@dataclass(frozen=True)
class LintReport:
    """The linter's report: ``text`` for people, ``json`` (one document), ``code_quality``
    (GitLab's Code Quality array), ``fails`` at the threshold given, and the counts."""
    text: str
    json: str
    code_quality: str
    fails: bool
    counts: SeverityCounts
    jobs: int
    azure_jobs: int


# ---------------------------------------------------------------------------------------------
# Conversions between dataclasses and wasmtime-py values
# ---------------------------------------------------------------------------------------------
# wasmtime-py names record fields as in WIT (kebab-case) and needs `Record` instances wherever a
# record sits in an untagged option/variant (it tests `isinstance(value, Record)`), so inputs are
# always converted to `Record`s. A variant or result is tagged (`Variant(tag, payload)`) only when
# its cases' Python classes overlap: `result<record, failure>` is tagged, `result<resource,
# failure>` and `result<_, failure>` are not; `variant credential` is None (federated) or a Record.


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


@functools.lru_cache(maxsize=None)
def _hints(cls: Any) -> dict:
    return typing.get_type_hints(cls)


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


def _result(value: Any, ok_type: Any) -> Any:
    """A `result<T, failure>` as T (converted) or a raised `OidcError`."""
    if isinstance(value, Variant) and value.tag in ("ok", "err"):  # tagged: T is a record
        ok, payload = value.tag == "ok", value.payload
    elif isinstance(value, Record):  # untagged: T is a resource or nothing
        ok, payload = False, value
    else:
        ok, payload = True, value
    if not ok:
        raise OidcError._from_wit(payload)
    return payload if ok_type is None else _from_wit(ok_type, payload)


def _now(now: Optional[int]) -> int:
    return int(time.time()) if now is None else int(now)


def _claims_json(claims: Union["VerifiedToken", Mapping[str, Any], str]) -> str:
    if isinstance(claims, VerifiedToken):
        return claims.payload_json
    return claims if isinstance(claims, str) else json.dumps(claims)


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
    """The `signatures` import's schemes checked with the ``cryptography`` package (OpenSSL),
    about 20 times faster than RSA in WebAssembly. Without the package every answer is
    ``unsupported`` and the component checks signatures itself, so only speed is lost."""

    #: WIT `scheme` -> (padding or "ecdsa", hash, curve). tests/test_wit.py checks it covers the enum.
    SCHEMES = {
        "rsa-pkcs1-sha256": ("pkcs1", "SHA256", None),
        "rsa-pkcs1-sha384": ("pkcs1", "SHA384", None),
        "rsa-pkcs1-sha512": ("pkcs1", "SHA512", None),
        "rsa-pss-sha256": ("pss", "SHA256", None),
        "rsa-pss-sha384": ("pss", "SHA384", None),
        "rsa-pss-sha512": ("pss", "SHA512", None),
        "ecdsa-p256-sha256": ("ecdsa", "SHA256", "SECP256R1"),
        "ecdsa-p384-sha384": ("ecdsa", "SHA384", "SECP384R1"),
    }

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

    @functools.lru_cache(maxsize=16)  # by the whole key: a JWKS holds a handful, parsed once
    def _key(self, curve: Optional[str], n: bytes, e: bytes, x: bytes, y: bytes) -> Any:
        number = functools.partial(int.from_bytes, byteorder="big")
        if curve is None:
            return self._rsa.RSAPublicNumbers(number(e), number(n)).public_key()
        return self._ec.EllipticCurvePublicNumbers(number(x), number(y),
                                                   getattr(self._ec, curve)()).public_key()

    def verify(self, scheme: str, key: Any, message: bytes, signature: bytes) -> str:
        form = self.SCHEMES.get(scheme)
        # public-key is a tagged variant (both cases are records): rsa for rsa-*, ec for ecdsa-*.
        if not self._ok or form is None or not isinstance(key, Variant) or \
                key.tag != ("ec" if form[0] == "ecdsa" else "rsa"):
            return "unsupported"
        kind, hash_name, curve = form
        hash_alg = getattr(self._hashes, hash_name)()
        message, signature = bytes(message), bytes(signature)
        try:
            public = self._key(curve, *(bytes(getattr(key.payload, p, b"")) for p in "nexy"))
            if kind == "pkcs1":
                public.verify(signature, message, self._padding.PKCS1v15(), hash_alg)
            elif kind == "pss":
                pss = self._padding.PSS(mgf=self._padding.MGF1(hash_alg),
                                        salt_length=hash_alg.digest_size)
                public.verify(signature, message, pss, hash_alg)
            else:  # JWS carries r || s; OpenSSL wants DER.
                half = len(signature) // 2
                der = self._utils.encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
                public.verify(der, message, self._ec.ECDSA(hash_alg))
        except self._invalid:
            return "invalid"
        except (ValueError, TypeError):
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

    def _verify_signature(self, _store: Any, scheme: str, key: Any, message: bytes,
                          signature: bytes) -> str:
        """The component's ``signatures`` import. It has refused by itself everything it would
        refuse (allow-list, key type, size, signature length); this only does the arithmetic."""
        if self._native is None:
            return "unsupported"
        verdict = self._native.verify(scheme, key, message, signature)
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

    def gate(self, config: GateConfig, jwks: Optional[str] = None) -> "Gate":
        return Gate(config, jwks, runtime=self)

    def verifier(self, config: VerifierConfig, jwks: str) -> "Verifier":
        return Verifier(config, jwks, runtime=self)

    def policy(self, document: Union[str, Mapping[str, Any]]) -> "Policy":
        return Policy(document, runtime=self)



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
    _name = ""

    def __init__(self, runtime: Optional[Runtime], *args: Any) -> None:
        self._runtime = runtime if runtime is not None else default_runtime()
        self._args = list(args)  # the constructor's: what the resource is rebuilt from
        self._owner: Optional[_Instance] = None
        self._handle: Optional[ResourceAny] = None
        self._closed = False
        self._finalizer: Optional[weakref.finalize] = None
        self._ensure()

    def _ensure(self) -> Tuple[_Instance, ResourceAny]:
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")
        rt = self._runtime
        with rt._lock:
            if self._handle is None or self._owner is None or not self._owner.alive:
                inst = rt._instance()
                handle = _result(rt._call(self._interface, f"[constructor]{self._name}",
                                          *self._args, instance=inst), None)
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._owner, self._handle = inst, handle
                self._finalizer = weakref.finalize(self, rt._drop_later, inst, handle)
            return self._owner, self._handle

    def _method(self, name: str, *args: Any) -> Any:
        with self._runtime._lock:
            inst, handle = self._ensure()
            return self._runtime._call(self._interface, f"[method]{self._name}.{name}", handle,
                                       *args, instance=inst)

    def close(self) -> None:
        """Drops the guest resource now."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._handle is not None and self._owner is not None:
            self._runtime._drop(self._owner, self._handle)
        self._handle, self._owner, self._closed = None, None, True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Gate(_Resource):
    """The exchange (WIT resource `gate`): verify, decide, build the Entra request, read the
    answer. Keys, verified tokens, decisions and the audit queue live inside, bounded.

    Raises `OidcError` (category ``config``) when the configuration is refused."""

    _interface, _name = _GATE, "gate"

    def __init__(self, config: GateConfig, jwks: Optional[str] = None, *,
                 runtime: Optional[Runtime] = None) -> None:
        self.config = config
        super().__init__(runtime, _to_wit(config), jwks)

    def install_jwks(self, jwks: str) -> None:
        """Installs the issuer's JWKS (first, or after a failure with ``refetch_jwks``)."""
        _result(self._method("install-jwks", jwks), None)
        self._args[1] = jwks

    def ready(self) -> bool:
        """True when the gate can admit: it has keys, or it does not verify."""
        return bool(self._method("ready"))

    def admit(self, token: str, now: Optional[int] = None) -> Admission:
        """Verifies ``token``, decides and builds the Entra request; raises `OidcError`
        (``refetch_jwks``: install a fresh JWKS and admit again; ``policy-denied``: ``hint``
        holds the explanation)."""
        return _result(self._method("admit", token, _now(now)), Admission)

    def finish(self, admission: Union[Admission, str], status: int,
               headers: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
               body: Union[bytes, str], now: Optional[int] = None) -> AccessToken:
        """Reads Entra's answer to the request of ``admission`` (or of its ``request_id``) and
        queues its audit event, joined to the decision; raises `OidcError` (category ``entra``;
        ``retryable`` and ``retry_after`` say whether and when to send it again)."""
        request_id = admission if isinstance(admission, str) else admission.request_id
        items = headers.items() if isinstance(headers, Mapping) else headers
        pairs = [(str(k), str(v)) for k, v in items]
        data = body.encode() if isinstance(body, str) else bytes(body)
        answer = self._method("finish", request_id, int(status), pairs, data, _now(now))
        return _result(answer, AccessToken)

    def take_audit(self) -> List[str]:
        """The audit events queued since the last call, one JSON line each, never the token."""
        return list(self._method("take-audit"))

    def summarize(self, now: Optional[int] = None) -> None:
        """Queues the counts of requests that reused kept decisions (call it periodically and
        before stopping; the events come out of `take_audit`)."""
        self._method("summarize", _now(now))


def exchange(gate: Gate, token: str, send: Callable[[HttpRequest], Tuple[int, Any, Any]], *,
             fetch_jwks: Optional[Callable[[], str]] = None, now: Optional[int] = None,
             max_wait: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> AccessToken:
    """A job's GitLab token for an Azure access token: fetch -> admit -> send -> finish, where
    ``send(request)`` POSTs the request and returns ``(status, headers, body)`` (an HTTP error
    status is an answer, not an exception).

    The retry rule: ``fetch_jwks`` is called when the gate has no keys yet, and once more when
    `admit` answers ``refetch_jwks`` (the issuer rotated its keys); a retryable Entra failure
    (throttled, unavailable) is sent once more after its ``retry_after`` (1 s without one),
    unless that exceeds ``max_wait`` seconds. Every other failure is raised as is."""
    if fetch_jwks is not None and not gate.ready():
        gate.install_jwks(fetch_jwks())
    try:
        admission = gate.admit(token, now)
    except OidcError as failure:
        if fetch_jwks is None or not failure.refetch_jwks:
            raise
        gate.install_jwks(fetch_jwks())
        admission = gate.admit(token, now)
    try:
        return gate.finish(admission, *send(admission.request), now=now)
    except OidcError as failure:
        wait = 1 if failure.retry_after is None else failure.retry_after
        if not failure.retryable or wait > max_wait:
            raise
    sleep(wait)
    later = None if now is None else now + int(wait)
    return gate.finish(admission, *send(admission.request), now=later)


class Verifier(_Resource):
    """A verifier (WIT resource `verifier`), for tooling: the configuration checked and the JWKS
    parsed once. Raises `OidcError` (category ``config`` or ``jwks``) when either is refused."""

    _interface, _name = _VERIFY, "verifier"

    def __init__(self, config: VerifierConfig, jwks: str, *, runtime: Optional[Runtime] = None) -> None:
        self.config = config
        super().__init__(runtime, _to_wit(config), jwks)

    def verify(self, token: str, now: Optional[int] = None) -> VerifiedToken:
        """Verifies ``token`` at ``now`` (default: the current time); raises `OidcError`."""
        return _result(self._method("verify", token, _now(now)), VerifiedToken)

    def check(self, token: str, now: Optional[int] = None) -> CheckedToken:
        """Judges ``token`` like `verify` but returns only its fingerprint, ``jti`` and ``exp``:
        the cheap call when the claims from the first `verify` are kept by fingerprint."""
        return _result(self._method("check", token, _now(now)), CheckedToken)

    def replace_jwks(self, jwks: str) -> None:
        """Replaces the keys, e.g. after an ``unknown-kid`` (``refetch_jwks``) and a refetch."""
        _result(self._method("replace-jwks", jwks), None)
        self._args[1] = jwks

    def keys(self) -> Tuple[List[KeyInfo], List[str]]:
        """The usable keys, and the skipped ones with reasons."""
        return _from_wit(Tuple[List[KeyInfo], List[str]], self._method("keys"))


class Policy(_Resource):
    """A loaded policy (WIT resource `policy`), for tooling: decide on claims, lint, plan.
    Raises `OidcError` (category ``config``, with ``location``) when the document is refused."""

    _interface, _name = _POLICY, "policy"

    def __init__(self, document: Union[str, Mapping[str, Any]], *,
                 runtime: Optional[Runtime] = None) -> None:
        self.document = document if isinstance(document, str) else json.dumps(document)
        super().__init__(runtime, self.document)

    @classmethod
    def from_file(cls, path: Union[str, Path], *, runtime: Optional[Runtime] = None) -> "Policy":
        return cls(Path(path).read_text(encoding="utf-8"), runtime=runtime)

    def decide(self, claims: Union[VerifiedToken, Mapping[str, Any], str],
               now: Optional[int] = None, *, fingerprint: Optional[str] = None) -> Decision:
        """Decides for a verified token (or claims written by hand, as a dict or JSON, for a
        what-if). ``fingerprint`` names the token in the audit event (default: the verified
        token's). A refusal is a `Decision` with ``allow=False``, not an exception."""
        if fingerprint is None:
            fingerprint = claims.fingerprint if isinstance(claims, VerifiedToken) else ""
        return _result(self._method("decide", _claims_json(claims), fingerprint, _now(now)),
                       Decision)

    def warnings(self) -> List[str]:
        return list(self._method("warnings"))

    def plan(self, issuer: str, audience: Optional[str] = None,
             subject_form: str = "project-path") -> PlanReport:
        """The federated credentials Entra needs so it accepts every job this policy allows, and
        the role assignments each identity needs. Raises `OidcError` (``issuer-near-miss``) for an
        issuer Entra would never match."""
        options = PlanOptions(issuer, audience, subject_form)
        return _result(self._method("plan", _to_wit(options)), PlanReport)


# ---------------------------------------------------------------------------------------------
# Module-level functions on the default runtime
# ---------------------------------------------------------------------------------------------


def verify_gitlab_token(token: str, jwks: str, config: VerifierConfig, now: Optional[int] = None,
                        *, runtime: Optional[Runtime] = None) -> VerifiedToken:
    """One-shot verification (parses config and JWKS every time; prefer `Verifier` for many)."""
    return _result((runtime or default_runtime())._call(
        _VERIFY, "verify-gitlab-token", token, jwks, _to_wit(config), _now(now)), VerifiedToken)


def claim_table(*, runtime: Optional[Runtime] = None) -> List[ClaimSpec]:
    """Every claim the component names, registered claims first."""
    return _from_wit(List[ClaimSpec], (runtime or default_runtime())._call(_VERIFY, "claim-table"))


def lint_pipeline(root: CiFile, context: LintContext, *, included: Sequence[CiFile] = (),
                  policy: Optional[str] = None, credentials: Optional[str] = None,
                  fail_on: str = "high", runtime: Optional[Runtime] = None) -> LintReport:
    """Lints a `.gitlab-ci.yml` (``root``) with the local files it includes, against the policy
    document and the federated credentials (JSON, as `az ad app federated-credential list`
    prints them) when given; ``fail_on`` is ``info``, ``low``, ``medium``, ``high`` or
    ``critical``. Raises `OidcError` (category ``config``) when the input cannot be linted."""
    def ci_file(f: CiFile) -> Record:
        record = Record()
        record.path, record.json = f.path, f.json
        setattr(record, "key-lines", [(str(k), int(v)) for k, v in f.key_lines])
        return record
    return _result((runtime or default_runtime())._call(
        _LINT, "lint-pipeline", ci_file(root), [ci_file(f) for f in included], _to_wit(context),
        policy, credentials, fail_on), LintReport)


def audit_rbac(policy: str, assignments_json: str, definitions_json: Optional[str] = None, *,
               options: AuditOptions = AuditOptions(),
               runtime: Optional[Runtime] = None) -> RbacReport:
    """Audits role assignments (``az role assignment list --all --include-inherited
    --include-groups -o json``) against the roles the policy document declares; findings on an
    identity any branch can become are raised one severity step."""
    return _result((runtime or default_runtime())._call(
        _POLICY, "audit-rbac", policy, assignments_json, definitions_json, _to_wit(options)),
        RbacReport)


def preflight(claims: Union[VerifiedToken, Mapping[str, Any], str], credentials_json: str, *,
              runtime: Optional[Runtime] = None) -> PreflightReport:
    """Would Entra accept this token with these federated credentials (as `az ad app
    federated-credential list` prints them)?"""
    return _result((runtime or default_runtime())._call(
        _POLICY, "preflight", _claims_json(claims), credentials_json), PreflightReport)
