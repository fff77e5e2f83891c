//! Federated identity credentials, as Microsoft Graph and `az ad app federated-credential list`
//! return them (facts 2.1).

use serde_json::{json, Map, Value};

use super::expression::Expression;
use super::{CredentialError, ExpressionError};
use crate::text::json::{self, JsonProblem};

/// Largest accepted credentials document, in bytes (20 credentials take a few KiB).
const MAX_CREDENTIALS_BYTES: usize = 1024 * 1024;
/// Deepest accepted JSON nesting.
const MAX_CREDENTIALS_DEPTH: usize = 16;

/// A flexible credential's `claimsMatchingExpression`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimsMatchingExpression {
    /// The parsed `value`.
    pub value: Expression,
    /// `languageVersion`: always 1.
    pub language_version: i64,
}

/// One federated identity credential of an app registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The credential's name (unique within the app).
    pub name: String,
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// Classic credentials: must equal the token's `sub` exactly (case-sensitive).
    pub subject: Option<String>,
    /// Must contain the token's `aud` (Entra accepts a single value).
    pub audiences: Vec<String>,
    /// Flexible credentials (preview): the expression the token's claims must satisfy.
    pub claims_matching_expression: Option<ClaimsMatchingExpression>,
    /// The free-text description, if any.
    pub description: Option<String>,
}

impl FederatedCredential {
    /// Parses a JSON array of credentials, or Graph's `{"value": [...]}`. Fields other than
    /// `name`, `issuer`, `subject`, `audiences`, `claimsMatchingExpression` and `description`
    /// (such as `id` and `@odata.*`) are ignored.
    ///
    /// # Errors
    /// A [`CredentialError`] for invalid JSON, missing or mistyped fields, a credential with both
    /// or neither of `subject` and `claimsMatchingExpression`, or an expression that does not
    /// parse.
    pub fn parse_list(input: &[u8]) -> Result<Vec<Self>, CredentialError> {
        if input.len() > MAX_CREDENTIALS_BYTES {
            return Err(CredentialError::TooLarge {
                size: input.len(),
                limit: MAX_CREDENTIALS_BYTES,
            });
        }
        let doc = json::parse(input, MAX_CREDENTIALS_DEPTH).map_err(|p| match p {
            JsonProblem::Syntax(detail) => CredentialError::Json { detail },
            JsonProblem::DuplicateMember(name) => {
                CredentialError::Json { detail: format!("member `{name}` appears twice") }
            }
            JsonProblem::TooDeep(limit) => {
                CredentialError::Json { detail: format!("nested deeper than {limit}") }
            }
        })?;
        let items = match doc {
            Value::Array(items) => items,
            Value::Object(mut obj) => match obj.remove("value") {
                Some(Value::Array(items)) => items,
                _ => return Err(CredentialError::NotAList),
            },
            _ => return Err(CredentialError::NotAList),
        };
        items.iter().enumerate().map(|(index, item)| Self::from_value(index, item)).collect()
    }

    fn from_value(index: usize, item: &Value) -> Result<Self, CredentialError> {
        let field_error =
            |name: Option<&str>, field: &str, expected: &str| CredentialError::Field {
                index,
                name: name.map(str::to_owned),
                field: field.to_owned(),
                expected: expected.to_owned(),
            };
        let Value::Object(obj) = item else {
            return Err(field_error(None, "(credential)", "an object"));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(field_error(None, "name", "a string")),
        };
        let string = |field: &str, required: bool| -> Result<Option<String>, CredentialError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                None | Some(Value::Null) if !required => Ok(None),
                _ => Err(field_error(Some(&name), field, "a string")),
            }
        };
        let issuer = string("issuer", true)?.unwrap_or_default();
        let subject = string("subject", false)?;
        let description = string("description", false)?;
        let audiences = match obj.get("audiences") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| field_error(Some(&name), "audiences", "an array of strings"))?,
            _ => return Err(field_error(Some(&name), "audiences", "an array of strings")),
        };
        let claims_matching_expression = match obj.get("claimsMatchingExpression") {
            None | Some(Value::Null) => None,
            Some(Value::Object(cme)) => Some(Self::expression(cme).map_err(|e| match e {
                Ok(error) => CredentialError::Expression { name: name.clone(), error },
                Err(field) => field_error(Some(&name), field, "present with the right type"),
            })?),
            Some(_) => {
                return Err(field_error(
                    Some(&name),
                    "claimsMatchingExpression",
                    "an object {value, languageVersion} or null",
                ))
            }
        };
        match (&subject, &claims_matching_expression) {
            (Some(_), Some(_)) => Err(CredentialError::SubjectAndExpression { name, both: true }),
            (None, None) => Err(CredentialError::SubjectAndExpression { name, both: false }),
            _ => Ok(Self {
                name,
                issuer,
                subject,
                audiences,
                claims_matching_expression,
                description,
            }),
        }
    }

    /// Reads `{value, languageVersion}`: `Err(Ok(e))` for a parse error, `Err(Err(field))` for a
    /// missing or mistyped field.
    fn expression(
        cme: &Map<String, Value>,
    ) -> Result<ClaimsMatchingExpression, Result<ExpressionError, &'static str>> {
        let value = cme
            .get("value")
            .and_then(Value::as_str)
            .ok_or(Err("claimsMatchingExpression.value"))?;
        let version = cme
            .get("languageVersion")
            .and_then(Value::as_i64)
            .ok_or(Err("claimsMatchingExpression.languageVersion"))?;
        if version != 1 {
            return Err(Ok(ExpressionError::UnsupportedVersion { version }));
        }
        let value = Expression::parse(value).map_err(Ok)?;
        Ok(ClaimsMatchingExpression { value, language_version: version })
    }

    /// A classic credential.
    pub(crate) fn classic(name: String, issuer: &str, subject: String, audience: &str) -> Self {
        Self {
            name,
            issuer: issuer.to_owned(),
            subject: Some(subject),
            audiences: vec![audience.to_owned()],
            claims_matching_expression: None,
            description: None,
        }
    }

    /// The credential in the shape Graph takes in `POST .../federatedIdentityCredentials` (and
    /// `az ad app federated-credential create --parameters` for classic ones).
    pub fn to_json(&self) -> Value {
        let mut obj = json!({
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": self.audiences,
        });
        if let Some(map) = obj.as_object_mut() {
            if let Some(description) = &self.description {
                map.insert("description".to_owned(), Value::String(description.clone()));
            }
            if let Some(cme) = &self.claims_matching_expression {
                map.insert(
                    "claimsMatchingExpression".to_owned(),
                    json!({"value": cme.value.as_str(), "languageVersion": cme.language_version}),
                );
            }
        }
        obj
    }

    /// The shell command that creates the credential on app `client_id`: `az ad app
    /// federated-credential create` for a classic credential, `az rest` against Graph beta on
    /// `graph_host` for a flexible one (the CLI does not create those).
    pub fn create_command(&self, client_id: &str, graph_host: &str) -> String {
        let body = format!("'{}'", self.to_json().to_string().replace('\'', "'\\''"));
        if self.claims_matching_expression.is_some() {
            format!(
                "az rest --method POST --uri \"https://{graph_host}/beta/applications(appId=\
                 '{client_id}')/federatedIdentityCredentials\" --headers \
                 Content-Type=application/json --body {body}"
            )
        } else {
            format!("az ad app federated-credential create --id {client_id} --parameters {body}")
        }
    }

    /// What the credential matches `sub` with, for messages: the subject or the expression.
    pub fn matcher(&self) -> &str {
        match (&self.subject, &self.claims_matching_expression) {
            (Some(subject), _) => subject,
            (None, Some(cme)) => cme.value.as_str(),
            (None, None) => "",
        }
    }
}
