//! The Azure side of the exchange: which tenant, which application, which resource, which cloud.
//!
//! Checked once, when built, against what Entra would refuse later with a less helpful message:
//! multi-tenant aliases (AADSTS9001023), scopes without `/.default` or for several resources
//! (AADSTS70011, AADSTS700022), and unknown authority hosts.

use std::fmt;

use crate::entra::TargetError;
use crate::text::ident::{is_domain_name, is_guid};

/// The scope used when none is given: Azure Resource Manager, what `az login` asks for.
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

/// The authority hosts of the Microsoft clouds this crate knows: public, US Government, China
/// (azure-sdk `KnownAuthorities`; the German cloud, `login.microsoftonline.de`, was closed).
pub const KNOWN_AUTHORITY_HOSTS: [&str; 3] =
    ["login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"];

/// One Microsoft cloud: its authority host, the audience its federated credentials take, its
/// Azure Resource Manager scope and its Microsoft Graph host.
struct Cloud {
    authority_host: &'static str,
    audience: &'static str,
    arm_scope: &'static str,
    graph_host: &'static str,
}

/// The clouds of [`KNOWN_AUTHORITY_HOSTS`], in that order. Audiences: Entra's federated
/// credential documentation (`api://AzureADTokenExchange`, `...USGov`, `...China`); Resource
/// Manager and Graph endpoints: each cloud's published endpoints (`az cloud show`).
const CLOUDS: [Cloud; 3] = [
    Cloud {
        authority_host: "login.microsoftonline.com",
        audience: "api://AzureADTokenExchange",
        arm_scope: DEFAULT_SCOPE,
        graph_host: "graph.microsoft.com",
    },
    Cloud {
        authority_host: "login.microsoftonline.us",
        audience: "api://AzureADTokenExchangeUSGov",
        arm_scope: "https://management.usgovcloudapi.net/.default",
        graph_host: "graph.microsoft.us",
    },
    Cloud {
        authority_host: "login.chinacloudapi.cn",
        audience: "api://AzureADTokenExchangeChina",
        arm_scope: "https://management.chinacloudapi.cn/.default",
        graph_host: "microsoftgraph.chinacloudapi.cn",
    },
];

/// Tenant aliases the client-credentials grant refuses (AADSTS9001023).
const RESERVED_TENANTS: [&str; 3] = ["common", "consumers", "organizations"];

/// A validated Azure target. Build it with [`AzureTarget::builder`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AzureTarget {
    tenant: String,
    client_id: String,
    scopes: Vec<String>,
    /// Whether the scopes were given, or are the cloud's Resource Manager by default (which
    /// follows the cloud when the target moves to another authority host).
    scopes_given: bool,
    /// `https://{authority-host}`, or the overriding base URL, without a trailing slash.
    authority_base: String,
}

/// Builds an [`AzureTarget`] with safe defaults.
#[derive(Clone, Debug)]
#[must_use]
pub struct AzureTargetBuilder {
    tenant: String,
    client_id: String,
    scopes: Vec<String>,
    authority_host: Option<String>,
    insecure_authority_url: Option<String>,
}

impl AzureTarget {
    /// Starts a target for the application `client_id` (a GUID: the app registration's
    /// "Application (client) ID", or a user-assigned managed identity's client id) in `tenant`
    /// (the directory's GUID or one of its verified domain names, e.g. `contoso.onmicrosoft.com`).
    pub fn builder(tenant: impl Into<String>, client_id: impl Into<String>) -> AzureTargetBuilder {
        AzureTargetBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            scopes: Vec::new(),
            authority_host: None,
            insecure_authority_url: None,
        }
    }

    /// The tenant, as given.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The application (client) id, as given.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The scopes, without duplicates, in the order given.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The authority host of a sovereign cloud (`login.microsoftonline.us`,
    /// `login.chinacloudapi.cn`); `None` for the public cloud and for an overridden URL.
    pub fn authority_host(&self) -> Option<&str> {
        self.authority_base
            .strip_prefix("https://")
            .filter(|host| KNOWN_AUTHORITY_HOSTS.iter().skip(1).any(|known| known == host))
    }

    /// The audience a federated credential for this app takes in its cloud:
    /// `api://AzureADTokenExchange` (public, and any overridden authority URL),
    /// `api://AzureADTokenExchangeUSGov` or `api://AzureADTokenExchangeChina`.
    pub fn federation_audience(&self) -> &'static str {
        self.cloud().audience
    }

    /// The Microsoft Graph host of the app's cloud (`graph.microsoft.com`, `graph.microsoft.us`,
    /// `microsoftgraph.chinacloudapi.cn`): where its federated credentials are managed.
    pub fn graph_host(&self) -> &'static str {
        self.cloud().graph_host
    }

    fn cloud(&self) -> &'static Cloud {
        let host = self.authority_host().unwrap_or(KNOWN_AUTHORITY_HOSTS[0]);
        CLOUDS.iter().find(|c| c.authority_host == host).unwrap_or(&CLOUDS[0])
    }

    /// The base of the token endpoint: `https://{authority-host}` or the insecure override.
    pub fn authority_base(&self) -> &str {
        &self.authority_base
    }

    /// The same target with its token endpoint under `url` (see
    /// [`DangerousAzureTarget::authority_url`]).
    pub(crate) fn with_authority_url(&self, url: &str) -> Result<Self, TargetError> {
        Ok(Self { authority_base: check_authority_url(url)?, ..self.clone() })
    }

    /// The same target in the cloud of `host`: checked again, with that cloud's Resource
    /// Manager as the scope unless scopes were given.
    pub(crate) fn with_authority_host(&self, host: &str) -> Result<Self, TargetError> {
        let mut builder = Self::builder(self.tenant.clone(), self.client_id.clone());
        if self.scopes_given {
            for scope in &self.scopes {
                builder = builder.scope(scope.clone());
            }
        }
        builder.authority_host(host).build()
    }

    /// The token endpoint: `{authority-base}/{tenant}/oauth2/v2.0/token`. It is also the `aud` of
    /// a certificate-signed client assertion.
    pub fn token_endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority_base, self.tenant)
    }
}

impl fmt::Display for AzureTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} in tenant {} (scopes {})",
            self.client_id,
            self.tenant,
            self.scopes.join(" ")
        )
    }
}

impl AzureTargetBuilder {
    /// Adds a scope: the resource's application ID URI followed by `/.default`, e.g.
    /// `https://graph.microsoft.com/.default`. Several scopes must name one resource. Defaults to
    /// the Azure Resource Manager of the authority host's cloud when none is added
    /// ([`DEFAULT_SCOPE`] for the public cloud, `https://management.usgovcloudapi.net/.default`,
    /// `https://management.chinacloudapi.cn/.default`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// The authority host of the cloud: one of [`KNOWN_AUTHORITY_HOSTS`]. A `https://` prefix and
    /// a trailing slash are accepted, as in `AZURE_AUTHORITY_HOST`. Defaults to
    /// `login.microsoftonline.com`.
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// The switches that send the request somewhere unusual.
    pub fn dangerous(self) -> DangerousAzureTarget {
        DangerousAzureTarget(self)
    }

    /// Checks and returns the target.
    ///
    /// # Errors
    /// - [`TargetError::ReservedTenant`] for `common`, `consumers` or `organizations`.
    /// - [`TargetError::InvalidTenant`] when the tenant is neither a GUID nor a domain name.
    /// - [`TargetError::InvalidClientId`] when the client id is not a GUID.
    /// - [`TargetError::InvalidScope`], [`TargetError::ScopeNotDefault`] and
    ///   [`TargetError::SeveralResources`] for scopes Entra would refuse.
    /// - [`TargetError::ScopeOfAnotherCloud`] for another cloud's Resource Manager scope.
    /// - [`TargetError::UnknownAuthorityHost`] for a host outside [`KNOWN_AUTHORITY_HOSTS`].
    /// - [`TargetError::InvalidAuthorityUrl`] for an override that is not a plain base URL, or
    ///   that uses `http://` with a host that is not loopback.
    pub fn build(self) -> Result<AzureTarget, TargetError> {
        let tenant = self.tenant;
        if RESERVED_TENANTS.iter().any(|r| r.eq_ignore_ascii_case(&tenant)) {
            return Err(TargetError::ReservedTenant { tenant });
        }
        if !is_guid(&tenant) && !is_domain_name(&tenant) {
            return Err(TargetError::InvalidTenant { tenant });
        }
        if !is_guid(&self.client_id) {
            return Err(TargetError::InvalidClientId { client_id: self.client_id });
        }
        let overridden = self.insecure_authority_url.is_some();
        let authority_base = match (self.insecure_authority_url, self.authority_host) {
            (Some(url), _) => check_authority_url(&url)?,
            (None, Some(host)) => format!("https://{}", check_authority_host(&host)?),
            (None, None) => format!("https://{}", KNOWN_AUTHORITY_HOSTS[0]),
        };
        let scopes_given = !self.scopes.is_empty();
        let mut target = AzureTarget {
            tenant,
            client_id: self.client_id,
            scopes: Vec::new(),
            scopes_given,
            authority_base,
        };
        let cloud = target.cloud();
        target.scopes = check_scopes(self.scopes, cloud.arm_scope)?;
        // Another cloud's Resource Manager: Entra would not find the resource. An overridden
        // authority (a private cloud, a proxy) may front any of them.
        let other_arm = CLOUDS
            .iter()
            .filter(|c| !overridden && c.authority_host != cloud.authority_host)
            .find_map(|c| target.scopes.iter().find(|s| s.eq_ignore_ascii_case(c.arm_scope)));
        if let Some(scope) = other_arm {
            return Err(TargetError::ScopeOfAnotherCloud {
                scope: scope.clone(),
                host: cloud.authority_host,
                expected: cloud.arm_scope,
            });
        }
        Ok(target)
    }
}

/// The risky switch of an Azure target. Returns the builder.
#[derive(Clone, Debug)]
#[must_use]
pub struct DangerousAzureTarget(AzureTargetBuilder);

impl DangerousAzureTarget {
    /// Replaces `https://{authority-host}` with `url`, any host: for private clouds, proxies and
    /// loopback test stand-ins. `url` is `https://host[:port][/path]`, or `http://` with a
    /// loopback host (`localhost`, `127.0.0.0/8`, `[::1]`). It takes precedence over
    /// [`AzureTargetBuilder::authority_host`].
    ///
    /// # Security Warning
    /// The token endpoint receives the client assertion (for a federated credential, the GitLab
    /// token, a bearer credential for Azure until it expires) and answers with the Azure access
    /// token. An override that points anywhere but Microsoft Entra (or a proxy you control)
    /// hands both to whoever runs that endpoint.
    pub fn authority_url(mut self, url: impl Into<String>) -> AzureTargetBuilder {
        self.0.insecure_authority_url = Some(url.into());
        self.0
    }
}

fn check_scopes(scopes: Vec<String>, default: &str) -> Result<Vec<String>, TargetError> {
    if scopes.is_empty() {
        return Ok(vec![default.to_owned()]);
    }
    let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        // The scope parameter is space-separated: a scope with whitespace would be two.
        if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TargetError::InvalidScope { scope });
        }
        match scope.strip_suffix("/.default") {
            Some(resource) if !resource.is_empty() => {}
            _ => return Err(TargetError::ScopeNotDefault { scope }),
        }
        if !unique.contains(&scope) {
            unique.push(scope);
        }
    }
    // Every scope ends in "/.default", so distinct scopes name distinct resources (AADSTS700022).
    if unique.len() > 1 {
        return Err(TargetError::SeveralResources { scopes: unique });
    }
    Ok(unique)
}

fn check_authority_host(host: &str) -> Result<String, TargetError> {
    let bare = host.strip_prefix("https://").unwrap_or(host);
    let bare = bare.strip_suffix('/').unwrap_or(bare).to_ascii_lowercase();
    if KNOWN_AUTHORITY_HOSTS.contains(&bare.as_str()) {
        Ok(bare)
    } else {
        Err(TargetError::UnknownAuthorityHost {
            host: host.to_owned(),
            known: KNOWN_AUTHORITY_HOSTS.to_vec(),
        })
    }
}

/// Checks an overriding base URL and returns it without a trailing slash.
fn check_authority_url(url: &str) -> Result<String, TargetError> {
    let invalid = |reason: &str| TargetError::InvalidAuthorityUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err(invalid("it must start with `https://` (or `http://` for a loopback host)"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("it has a query or a fragment; give only the base URL"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(invalid("it has user information (`user@`), which would be sent in clear"));
    }
    let host = host_of(authority).ok_or_else(|| invalid("its host or port is not valid"))?;
    if scheme == "http" && !is_loopback(host) {
        return Err(invalid(
            "plain `http://` is accepted only for a loopback host (localhost, 127.0.0.0/8, \
             [::1]); use `https://`",
        ));
    }
    let path = path.trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// The host of `host[:port]` or `[v6][:port]`, when both parts are well-formed.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']')?;
        let (inside, after) = v6.split_at(end);
        let port = after.strip_prefix(']')?;
        let port = if port.is_empty() { None } else { Some(port.strip_prefix(':')?) };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        (authority.get(..end.checked_add(2)?)?, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (host_ok && port_ok).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
