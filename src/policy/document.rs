//! Reading a policy document: strict, with the rule, the field and a suggestion in every error.

use serde_json::{Map, Value};

use super::condition::{Condition, MatchKind, Test};
use super::decision::Effect;
use super::glob::Glob;
use super::Access;
use super::{Location, PolicyError, Rule};
use crate::entra::AzureTarget;
use crate::rbac::{RbacError, RoleNeed};
use crate::text::ident::{canonical_guid, did_you_mean, suggest};
use crate::text::json::{self, JsonProblem};
use crate::verify::claim_spec;
use crate::CLAIMS;

/// Largest accepted policy document, in bytes.
pub(crate) const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Deepest accepted JSON nesting (each `all`/`any`/`not` level takes one or two).
pub(crate) const MAX_POLICY_DEPTH: usize = 32;
/// Most rules in one policy.
pub(crate) const MAX_RULES: usize = 256;
/// Longest rule name: FIC names derived from it must stay within Entra's 120 characters.
pub(crate) const MAX_RULE_NAME: usize = 64;

/// The fields of the document object.
pub(crate) const DOCUMENT_FIELDS: &[&str] = &["$schema", "description", "rules"];
/// The fields of a rule.
pub(crate) const RULE_FIELDS: &[&str] = &[
    "name",
    "description",
    "effect",
    "when",
    "azure",
    "same_project",
    "max_token_age",
    "runner_environment",
    "pipeline_source",
];
/// The fields of a rule's `azure` target.
pub(crate) const AZURE_FIELDS: &[&str] = &[
    "tenant",
    "client_id",
    "scopes",
    "authority_host",
    "credential",
    "principal_id",
    "groups",
    "roles",
];
/// The operators of a matcher object.
pub(crate) const OPERATORS: &[&str] = &["equals", "one_of", "glob", "present"];
/// The combinators of a condition object.
pub(crate) const COMBINATORS: &[&str] = &["all", "any", "not"];
/// Parses and compiles a whole document.
pub(crate) fn parse(input: &[u8]) -> Result<Vec<Rule>, PolicyError> {
    if input.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge { size: input.len(), limit: MAX_POLICY_BYTES });
    }
    let doc = json::parse(input, MAX_POLICY_DEPTH).map_err(|p| match p {
        JsonProblem::Syntax(detail) => PolicyError::Json { detail },
        JsonProblem::DuplicateMember(name) => PolicyError::DuplicateMember { name },
        JsonProblem::TooDeep(limit) => PolicyError::JsonTooDeep { limit },
    })?;
    let top = Ctx { rule: None };
    let Value::Object(doc) = doc else {
        return Err(top.wrong_type("", "an object with `rules`", &doc));
    };
    top.known_fields(&doc, "", DOCUMENT_FIELDS)?;
    if let Some(v) = doc.get("$schema") {
        top.string(v, "$schema")?;
    }
    if let Some(v) = doc.get("description") {
        top.string(v, "description")?;
    }
    let rules = doc.get("rules").ok_or_else(|| top.missing("rules"))?;
    let Value::Array(rules) = rules else {
        return Err(top.wrong_type("rules", "an array of rules", rules));
    };
    if rules.is_empty() {
        return Err(PolicyError::NoRules);
    }
    if rules.len() > MAX_RULES {
        return Err(PolicyError::TooManyRules { count: rules.len(), limit: MAX_RULES });
    }
    let mut compiled: Vec<Rule> = Vec::with_capacity(rules.len());
    for (index, value) in rules.iter().enumerate() {
        let rule = parse_rule(index, value)?;
        if compiled.iter().any(|r| r.name == rule.name) {
            return Err(PolicyError::DuplicateRule { name: rule.name });
        }
        compiled.push(rule);
    }
    check_identities(&compiled)?;
    Ok(compiled)
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// The rule being read, for error locations.
pub(super) struct Ctx {
    rule: Option<String>,
}

impl Ctx {
    pub(super) fn at(&self, field: &str) -> Location {
        Location { rule: self.rule.clone(), field: field.to_owned() }
    }

    pub(super) fn missing(&self, field: &str) -> PolicyError {
        PolicyError::MissingField { at: self.at(field) }
    }

    pub(super) fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> PolicyError {
        PolicyError::WrongType {
            at: self.at(field),
            expected: expected.to_owned(),
            found: json::type_name(found).to_owned(),
        }
    }

    pub(super) fn invalid(
        &self,
        field: &str,
        value: &Value,
        expected: impl Into<String>,
    ) -> PolicyError {
        let mut shown = value.to_string();
        if shown.chars().count() > 80 {
            shown = shown.chars().take(77).collect::<String>() + "...";
        }
        PolicyError::InvalidValue { at: self.at(field), value: shown, expected: expected.into() }
    }

    pub(super) fn known_fields(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        allowed: &[&str],
    ) -> Result<(), PolicyError> {
        match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(PolicyError::UnknownField {
                at: self.at(&join(prefix, unknown)),
                suggestion: suggest(unknown, allowed.iter().copied()),
                allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            }),
        }
    }

    pub(super) fn string<'v>(&self, value: &'v Value, field: &str) -> Result<&'v str, PolicyError> {
        value.as_str().ok_or_else(|| self.wrong_type(field, "a string", value))
    }

    /// A string, or a non-empty array of strings.
    fn strings(&self, value: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
        let items = match value {
            Value::String(s) => return Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() => items,
            Value::Array(_) => {
                return Err(self.invalid(field, value, "a non-empty list of strings"));
            }
            other => return Err(self.wrong_type(field, "a string or an array of strings", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| self.string(v, &format!("{field}[{i}]")).map(str::to_owned))
            .collect()
    }
}

fn valid_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= MAX_RULE_NAME
}

fn parse_rule(index: usize, value: &Value) -> Result<Rule, PolicyError> {
    let mut ctx = Ctx { rule: Some(format!("rules[{index}]")) };
    let Value::Object(obj) = value else {
        return Err(Ctx { rule: None }.wrong_type(
            &format!("rules[{index}]"),
            "a rule object",
            value,
        ));
    };
    // The name first, so every later error names the rule.
    let name_value = obj.get("name").ok_or_else(|| ctx.missing("name"))?;
    let name = ctx.string(name_value, "name")?;
    if !valid_rule_name(name) {
        return Err(ctx.invalid(
            "name",
            name_value,
            "1 to 64 letters, digits, `-` or `_`, starting with a letter or digit (federated \
             credential names are derived from it)",
        ));
    }
    ctx.rule = Some(name.to_owned());
    ctx.known_fields(obj, "", RULE_FIELDS)?;

    let description = match obj.get("description") {
        Some(v) => Some(ctx.string(v, "description")?.to_owned()),
        None => None,
    };
    let effect_value = obj.get("effect").ok_or_else(|| ctx.missing("effect"))?;
    let effect = match ctx.string(effect_value, "effect")? {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            let hint = did_you_mean(other, ["allow", "deny"]);
            return Err(ctx.invalid("effect", effect_value, format!("`allow` or `deny`{hint}")));
        }
    };
    let when_value = obj.get("when").ok_or_else(|| ctx.missing("when"))?;
    let when = parse_condition(&ctx, when_value, "when")?;

    let target = match (effect, obj.get("azure")) {
        (Effect::Allow, Some(v)) => Some(parse_target(&ctx, v)?),
        (Effect::Allow, None) => return Err(ctx.missing("azure")),
        (Effect::Deny, Some(v)) => {
            return Err(ctx.invalid(
                "azure",
                v,
                "no Azure target on a deny rule; remove `azure` or make the rule `allow`",
            ))
        }
        (Effect::Deny, None) => None,
    };
    // `azure.credential` (allow rules only: a deny rule has no `azure`).
    let credential = match obj.get("azure").and_then(|azure| azure.get("credential")) {
        Some(v) => Some(super::credential::parse(&ctx, v, name)?),
        None => None,
    };
    let same_project = match obj.get("same_project") {
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(ctx.wrong_type("same_project", "true or false", other)),
        None => false,
    };
    let max_token_age = match obj.get("max_token_age") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(seconds) if seconds > 0 => Some(seconds),
            _ => return Err(ctx.invalid("max_token_age", v, "a positive number of seconds")),
        },
    };
    let mut guards = Vec::new();
    for claim in ["runner_environment", "pipeline_source"] {
        if let Some(v) = obj.get(claim) {
            let values = ctx.strings(v, claim)?;
            for (i, value) in values.iter().enumerate() {
                let at = if matches!(v, Value::Array(_)) {
                    format!("{claim}[{i}]")
                } else {
                    claim.to_owned()
                };
                check_value(&ctx, claim, value, &at)?;
            }
            guards.push(Condition::Claim { claim: claim.to_owned(), test: Test::OneOf(values) });
        }
    }
    let access = match (effect, obj.get("azure")) {
        (Effect::Allow, Some(Value::Object(azure))) => Some(parse_access(&ctx, azure)?),
        _ => None,
    };
    Ok(Rule {
        name: name.to_owned(),
        description,
        effect,
        when,
        same_project,
        max_token_age,
        guards,
        target,
        credential,
        access,
    })
}

/// `error` with its place inside the `roles` array made a place in the rule (`azure.roles[0]`).
fn at_roles(error: RbacError) -> RbacError {
    let full = |at: String| format!("azure.roles{at}");
    match error {
        RbacError::InvalidValue { at, value, expected } => {
            RbacError::InvalidValue { at: full(at), value, expected }
        }
        RbacError::MissingField { at } => RbacError::MissingField { at: full(at) },
        RbacError::Scope { at, error } => RbacError::Scope { at: full(at), error },
        RbacError::UnknownField { at, field, allowed } => {
            RbacError::UnknownField { at: full(at), field, allowed }
        }
        RbacError::UnknownRole { at, role, suggestion } => {
            RbacError::UnknownRole { at: full(at), role, suggestion }
        }
        RbacError::WrongType { at, expected, found } => {
            RbacError::WrongType { at: full(at), expected, found }
        }
        other => other,
    }
}

/// Rules that name one app are one identity: they must agree on its object id, and their roles
/// together stay within [`crate::rbac::MAX_NEEDS`].
fn check_identities(rules: &[Rule]) -> Result<(), PolicyError> {
    for (i, rule) in rules.iter().enumerate() {
        if let Some(target) = &rule.target {
            let needs: usize = rules
                .iter()
                .take(i + 1)
                .filter(|r| r.target.as_ref().is_some_and(|t| t.client_id() == target.client_id()))
                .map(|r| r.access.as_ref().map_or(0, |a| a.roles().len()))
                .sum();
            if needs > crate::rbac::MAX_NEEDS {
                return Err(PolicyError::Role {
                    at: Ctx { rule: Some(rule.name.clone()) }.at("azure.roles"),
                    error: Box::new(RbacError::TooMany {
                        what: "role needs of one app (all its rules together)",
                        count: needs,
                        limit: crate::rbac::MAX_NEEDS,
                    }),
                });
            }
        }
        let (Some(target), Some(id)) =
            (&rule.target, rule.access.as_ref().and_then(|a| a.principal_id()))
        else {
            continue;
        };
        let other = rules.iter().take(i).find(|r| {
            r.target.as_ref().is_some_and(|t| t.client_id() == target.client_id())
                && r.access.as_ref().and_then(|a| a.principal_id()).is_some_and(|o| o != id)
        });
        if let Some(other) = other {
            let ctx = Ctx { rule: Some(rule.name.clone()) };
            return Err(ctx.invalid(
                "azure.principal_id",
                &Value::String(id.to_owned()),
                format!(
                    "the object id rule {} gives the same app ({}): one app has one service \
                     principal; `az ad sp show --id {} --query id -o tsv` prints it",
                    other.name,
                    target.client_id(),
                    target.client_id()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a value GitLab never sends for `claim` (per the claim table's documented values),
/// with the closest documented value.
fn check_value(ctx: &Ctx, claim: &str, value: &str, at: &str) -> Result<(), PolicyError> {
    let Some(spec) = claim_spec(claim) else { return Ok(()) };
    spec.check_value(value).map_err(|suggestion| PolicyError::UnknownValue {
        at: ctx.at(at),
        claim: spec.name,
        value: value.to_owned(),
        suggestion: suggestion.and_then(|s| spec.values.iter().copied().find(|v| *v == s)),
        values: spec.values,
    })
}

/// Refuses a glob that matches none of the values GitLab sends for `claim`, when the claim
/// table lists them all.
fn check_glob(ctx: &Ctx, claim: &str, glob: &Glob, at: &str) -> Result<(), PolicyError> {
    let Some(spec) = claim_spec(claim).filter(|s| s.values_complete) else { return Ok(()) };
    if spec.values.iter().any(|v| glob.matches(v)) {
        return Ok(());
    }
    Err(PolicyError::UnknownValue {
        at: ctx.at(at),
        claim: spec.name,
        value: format!("matching {}", glob.as_str()),
        suggestion: None,
        values: spec.values,
    })
}

/// The RBAC side of an allow rule's `azure` block: the service principal's object id, its
/// groups and the role assignments it needs.
fn parse_access(ctx: &Ctx, azure: &Map<String, Value>) -> Result<Access, PolicyError> {
    let role_error = |field: &str, error: RbacError| PolicyError::Role {
        at: ctx.at(field),
        error: Box::new(error),
    };
    let guid = |value: &Value, field: &str| -> Result<String, PolicyError> {
        let text = ctx.string(value, field)?;
        canonical_guid(text).ok_or_else(|| {
            ctx.invalid(
                field,
                value,
                "an object id (a GUID): the service principal's, from `az ad sp show --id \
                 <client-id> --query id -o tsv`; it is not the client id",
            )
        })
    };
    let principal_id =
        azure.get("principal_id").map(|v| guid(v, "azure.principal_id")).transpose()?;
    let groups = match azure.get("groups") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| guid(v, &format!("azure.groups[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ctx.wrong_type("azure.groups", "an array of group object ids", other))
        }
    };
    let roles = match azure.get("roles") {
        None => Vec::new(),
        Some(value) => RoleNeed::parse_list(value).map_err(|error| {
            let error = at_roles(error);
            let field = match &error {
                RbacError::InvalidValue { at, .. }
                | RbacError::MissingField { at }
                | RbacError::Scope { at, .. }
                | RbacError::UnknownField { at, .. }
                | RbacError::UnknownRole { at, .. }
                | RbacError::WrongType { at, .. } => at.clone(),
                _ => "azure.roles".to_owned(),
            };
            role_error(&field, error)
        })?,
    };
    Ok(Access { principal_id, groups, roles })
}

/// An allow rule's `azure` block, built and checked by the Entra side ([`AzureTarget::builder`]):
/// one validation for `check`, `plan` and the request builder.
fn parse_target(ctx: &Ctx, value: &Value) -> Result<AzureTarget, PolicyError> {
    let Value::Object(obj) = value else {
        return Err(ctx.wrong_type("azure", "an object with tenant and client_id", value));
    };
    ctx.known_fields(obj, "azure", AZURE_FIELDS)?;
    let required = |name: &str| {
        let path = format!("azure.{name}");
        obj.get(name).ok_or_else(|| ctx.missing(&path)).map(|v| (v, path))
    };
    let (tenant_value, path) = required("tenant")?;
    let tenant = ctx.string(tenant_value, &path)?;
    let (client_value, path) = required("client_id")?;
    let client_id = ctx.string(client_value, &path)?;
    let mut builder = AzureTarget::builder(tenant, client_id);
    if let Some(scopes_value) = obj.get("scopes") {
        for scope in ctx.strings(scopes_value, "azure.scopes")? {
            builder = builder.scope(scope);
        }
    }
    if let Some(host) = obj.get("authority_host") {
        builder = builder.authority_host(ctx.string(host, "azure.authority_host")?);
    }
    builder.build().map_err(|error| PolicyError::Target {
        at: ctx.at(&format!("azure.{}", error.field())),
        error,
    })
}

fn parse_condition(ctx: &Ctx, value: &Value, path: &str) -> Result<Condition, PolicyError> {
    match value {
        Value::Array(items) => parse_list(ctx, value, items, path).map(Condition::All),
        Value::Object(obj) if obj.is_empty() => Err(ctx.invalid(
            path,
            value,
            "at least one claim or combinator (an empty condition would match every job)",
        )),
        Value::Object(obj) if obj.contains_key("claim") => parse_explicit(ctx, obj, path),
        Value::Object(obj) => {
            let mut parts = Vec::with_capacity(obj.len());
            for (key, v) in obj {
                let here = join(path, key);
                parts.push(match key.as_str() {
                    "all" | "any" => {
                        let Value::Array(items) = v else {
                            return Err(ctx.wrong_type(&here, "an array of conditions", v));
                        };
                        let list = parse_list(ctx, v, items, &here)?;
                        if key == "all" {
                            Condition::All(list)
                        } else {
                            Condition::Any(list)
                        }
                    }
                    "not" => Condition::Not(Box::new(parse_condition(ctx, v, &here)?)),
                    claim => {
                        if !MatchKind::known(claim) {
                            let known = CLAIMS.iter().map(|spec| spec.name);
                            if let Some(suggestion) =
                                suggest(claim, known.chain(COMBINATORS.iter().copied()))
                            {
                                return Err(PolicyError::ClaimTypo {
                                    at: ctx.at(&here),
                                    claim: claim.to_owned(),
                                    suggestion,
                                });
                            }
                        }
                        Condition::Claim {
                            claim: claim.to_owned(),
                            test: parse_matcher(ctx, claim, v, &here)?,
                        }
                    }
                });
            }
            Ok(match parts.len() {
                1 => parts.pop().unwrap_or(Condition::All(Vec::new())),
                _ => Condition::All(parts),
            })
        }
        other => Err(ctx.wrong_type(path, "a condition object (or an array of them)", other)),
    }
}

fn parse_list(
    ctx: &Ctx,
    value: &Value,
    items: &[Value],
    path: &str,
) -> Result<Vec<Condition>, PolicyError> {
    if items.is_empty() {
        return Err(ctx.invalid(path, value, "at least one condition"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_condition(ctx, item, &format!("{path}[{i}]")))
        .collect()
}

/// `{"claim": "name", "<operator>": ...}`: for any claim name, typos included.
fn parse_explicit(
    ctx: &Ctx,
    obj: &Map<String, Value>,
    path: &str,
) -> Result<Condition, PolicyError> {
    let claim_value = obj.get("claim").ok_or_else(|| ctx.missing(&join(path, "claim")))?;
    let claim = ctx.string(claim_value, &join(path, "claim"))?;
    if claim.is_empty() {
        return Err(ctx.invalid(&join(path, "claim"), claim_value, "a claim name"));
    }
    let mut allowed = vec!["claim"];
    allowed.extend_from_slice(OPERATORS);
    ctx.known_fields(obj, path, &allowed)?;
    let mut ops = obj.iter().filter(|(k, _)| k.as_str() != "claim");
    let (Some((op, v)), None) = (ops.next(), ops.next()) else {
        return Err(ctx.invalid(
            path,
            &Value::Object(obj.clone()),
            "exactly one of equals, one_of, glob, present next to `claim`",
        ));
    };
    let mut single = Map::new();
    single.insert(op.clone(), v.clone());
    let here = join(path, claim);
    let test = parse_matcher(ctx, claim, &Value::Object(single), &here)?;
    Ok(Condition::Claim { claim: claim.to_owned(), test })
}

/// A matcher, with its values checked against the ones GitLab documents for the claim.
fn parse_matcher(ctx: &Ctx, claim: &str, value: &Value, path: &str) -> Result<Test, PolicyError> {
    let test = parse_test(ctx, claim, value, path)?;
    match &test {
        Test::OneOf(values) => {
            values.iter().try_for_each(|v| check_value(ctx, claim, v, path))?;
        }
        Test::Glob(globs) => globs.iter().try_for_each(|g| check_glob(ctx, claim, g, path))?,
        Test::Present(_) => {}
    }
    Ok(test)
}

fn parse_test(ctx: &Ctx, claim: &str, value: &Value, path: &str) -> Result<Test, PolicyError> {
    let kind = MatchKind::of(claim);
    match value {
        Value::Array(items) => Ok(Test::OneOf(scalars(ctx, kind, value, items, path)?)),
        Value::Object(obj) => {
            ctx.known_fields(obj, path, OPERATORS)?;
            let mut ops = obj.iter();
            let (Some((op, v)), None) = (ops.next(), ops.next()) else {
                return Err(ctx.invalid(
                    path,
                    value,
                    "exactly one operator: equals, one_of, glob or present",
                ));
            };
            let here = join(path, op);
            match op.as_str() {
                "equals" => Ok(Test::OneOf(vec![canonical(ctx, kind, v, &here)?])),
                "one_of" => match v {
                    Value::Array(items) => Ok(Test::OneOf(scalars(ctx, kind, v, items, &here)?)),
                    other => Err(ctx.wrong_type(&here, "an array of values", other)),
                },
                "glob" => {
                    if kind == MatchKind::Flag {
                        return Err(ctx.invalid(
                            &here,
                            v,
                            format!("true or false: {claim} is a flag, not a pattern"),
                        ));
                    }
                    let patterns = ctx.strings(v, &here)?;
                    let globs = patterns
                        .iter()
                        .map(|p| {
                            Glob::new(p).map_err(|problem| PolicyError::Glob {
                                at: ctx.at(&here),
                                glob: p.clone(),
                                position: problem.position,
                                reason: problem.reason.to_owned(),
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Test::Glob(globs))
                }
                _ => match v {
                    Value::Bool(b) => Ok(Test::Present(*b)),
                    other => Err(ctx.wrong_type(&here, "true or false", other)),
                },
            }
        }
        scalar => Ok(Test::OneOf(vec![canonical(ctx, kind, scalar, path)?])),
    }
}

fn scalars(
    ctx: &Ctx,
    kind: MatchKind,
    value: &Value,
    items: &[Value],
    path: &str,
) -> Result<Vec<String>, PolicyError> {
    if items.is_empty() {
        return Err(ctx.invalid(path, value, "at least one value (an empty list matches nothing)"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| canonical(ctx, kind, v, &format!("{path}[{i}]")))
        .collect()
}

/// A policy value as the canonical string claims are compared with: ids as digits, flags as
/// `true`/`false`. Refuses values that could never match a claim of this kind.
fn canonical(ctx: &Ctx, kind: MatchKind, value: &Value, path: &str) -> Result<String, PolicyError> {
    match (kind, value) {
        (MatchKind::Flag, Value::Bool(b)) => Ok(b.to_string()),
        (MatchKind::Flag, Value::String(s)) if s == "true" || s == "false" => Ok(s.clone()),
        (MatchKind::Flag, other) => {
            Err(ctx.invalid(path, other, "true or false (GitLab sends \"true\" or \"false\")"))
        }
        (MatchKind::Id, Value::String(s))
            if !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit()) =>
        {
            Ok(s.clone())
        }
        (MatchKind::Id | MatchKind::Time | MatchKind::Other, Value::Number(n)) => {
            match n.as_u64() {
                Some(id) => Ok(id.to_string()),
                None => Err(ctx.invalid(path, value, "a non-negative integer")),
            }
        }
        (MatchKind::Id, other) => {
            Err(ctx.invalid(path, other, "a numeric id such as 42 or \"42\""))
        }
        (MatchKind::Text, Value::String(s))
        | (MatchKind::Time | MatchKind::Other, Value::String(s)) => Ok(s.clone()),
        (MatchKind::Other, Value::Bool(b)) => Ok(b.to_string()),
        (MatchKind::Text | MatchKind::Time, other) => Err(ctx.wrong_type(path, "a string", other)),
        (MatchKind::Other, other) => {
            Err(ctx.wrong_type(path, "a string, a number or a boolean", other))
        }
    }
}
