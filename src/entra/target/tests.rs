use super::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

fn builder() -> AzureTargetBuilder {
    AzureTarget::builder(TENANT, CLIENT)
}

fn err(b: AzureTargetBuilder) -> TargetError {
    b.build().expect_err("target must be refused")
}

#[test]
fn defaults_to_arm_on_the_public_cloud() {
    let t = builder().build().unwrap();
    assert_eq!(t.scopes(), [DEFAULT_SCOPE]);
    assert_eq!(t.tenant(), TENANT);
    assert_eq!(t.client_id(), CLIENT);
    assert_eq!(t.authority_base(), "https://login.microsoftonline.com");
    assert_eq!(
        t.token_endpoint(),
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
    );
}

#[test]
fn accepts_guid_and_domain_tenants() {
    for tenant in [
        TENANT,
        "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
        "contoso.onmicrosoft.com",
        "login-test.contoso.co.uk",
        "1contoso.com",
    ] {
        let t = AzureTarget::builder(tenant, CLIENT).build().unwrap();
        assert!(t.token_endpoint().contains(&format!("/{tenant}/oauth2/v2.0/token")));
    }
}

#[test]
fn refuses_multi_tenant_aliases_with_aadsts9001023() {
    for tenant in ["common", "consumers", "organizations", "Common", "ORGANIZATIONS"] {
        let e = err(AzureTarget::builder(tenant, CLIENT));
        assert_eq!(e, TargetError::ReservedTenant { tenant: tenant.into() });
        assert!(e.to_string().contains("AADSTS9001023"), "{e}");
        assert!(e.to_string().contains("tenant) ID"), "{e}");
    }
}

#[test]
fn refuses_tenants_that_are_neither_guid_nor_domain() {
    for tenant in [
        "",
        "contoso",
        "-contoso.com",
        "contoso-.com",
        "conto so.com",
        "contoso.com/",
        "contoso..com",
        "10.0.0.1",
        "72f988bf-86f1-41af-91ab-2d7cd011db4",
        "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
        "contoso.com/../evil",
        "contoso.com?x=1",
    ] {
        assert_eq!(
            err(AzureTarget::builder(tenant, CLIENT)),
            TargetError::InvalidTenant { tenant: tenant.into() },
            "{tenant:?}"
        );
    }
    let long = format!("{}.com", "a".repeat(64));
    assert!(matches!(err(AzureTarget::builder(long, CLIENT)), TargetError::InvalidTenant { .. }));
}

#[test]
fn refuses_client_ids_that_are_not_guids() {
    for client in [
        "",
        "my-app",
        "11111111222233334444555555555555",
        "{11111111-2222-3333-4444-555555555555}",
        "11111111-2222-3333-4444-55555555555g",
        "11111111-2222-3333-4444-5555555555555",
    ] {
        let e = err(AzureTarget::builder(TENANT, client));
        assert_eq!(e, TargetError::InvalidClientId { client_id: client.into() });
        assert!(e.to_string().contains("Application (client) ID"), "{e}");
    }
}

#[test]
fn scopes_must_end_in_default_and_name_one_resource() {
    let e = err(builder().scope("https://graph.microsoft.com/User.Read"));
    assert_eq!(
        e,
        TargetError::ScopeNotDefault { scope: "https://graph.microsoft.com/User.Read".into() }
    );
    assert!(e.to_string().contains("/.default"), "{e}");
    assert!(matches!(err(builder().scope("/.default")), TargetError::ScopeNotDefault { .. }));
    assert!(matches!(err(builder().scope(".default")), TargetError::ScopeNotDefault { .. }));

    let e = err(builder()
        .scope("https://management.azure.com/.default")
        .scope("https://graph.microsoft.com/.default"));
    assert_eq!(
        e,
        TargetError::SeveralResources {
            scopes: vec![
                "https://management.azure.com/.default".into(),
                "https://graph.microsoft.com/.default".into()
            ]
        }
    );
    assert!(e.to_string().contains("AADSTS700022"), "{e}");

    for scope in ["", "https://a/.default https://b/.default", "https://a/.default\n"] {
        assert_eq!(err(builder().scope(scope)), TargetError::InvalidScope { scope: scope.into() });
    }
}

#[test]
fn repeated_scopes_are_kept_once() {
    let t = builder()
        .scope("https://graph.microsoft.com/.default")
        .scope("https://graph.microsoft.com/.default")
        .build()
        .unwrap();
    assert_eq!(t.scopes(), ["https://graph.microsoft.com/.default"]);
}

#[test]
fn known_clouds_are_accepted_in_the_azure_identity_forms() {
    for (given, base) in [
        ("login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("login.microsoftonline.us", "https://login.microsoftonline.us"),
        ("login.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
        ("https://login.microsoftonline.us/", "https://login.microsoftonline.us"),
        ("LOGIN.chinacloudapi.CN", "https://login.chinacloudapi.cn"),
    ] {
        let t = builder().authority_host(given).build().unwrap();
        assert_eq!(t.authority_base(), base, "{given}");
    }
}

#[test]
fn sovereign_clouds_get_their_audience_default_scope_and_graph() {
    for (host, audience, scope, graph) in [
        (
            "login.microsoftonline.com",
            "api://AzureADTokenExchange",
            DEFAULT_SCOPE,
            "graph.microsoft.com",
        ),
        (
            "login.microsoftonline.us",
            "api://AzureADTokenExchangeUSGov",
            "https://management.usgovcloudapi.net/.default",
            "graph.microsoft.us",
        ),
        (
            "login.chinacloudapi.cn",
            "api://AzureADTokenExchangeChina",
            "https://management.chinacloudapi.cn/.default",
            "microsoftgraph.chinacloudapi.cn",
        ),
    ] {
        let t = builder().authority_host(host).build().unwrap();
        assert_eq!(t.federation_audience(), audience, "{host}");
        assert_eq!(t.scopes(), [scope], "{host}");
        assert_eq!(t.graph_host(), graph, "{host}");
    }
    // An overridden authority URL (a stand-in, a proxy) keeps the public cloud's values.
    let t = builder().dangerous().authority_url("http://127.0.0.1:9").build().unwrap();
    assert_eq!(
        (t.federation_audience(), t.scopes()[0].as_str()),
        ("api://AzureADTokenExchange", DEFAULT_SCOPE)
    );
}

#[test]
fn another_clouds_resource_manager_is_refused() {
    let e = err(builder().authority_host("login.microsoftonline.us").scope(DEFAULT_SCOPE));
    assert_eq!(e.kind(), "scope-of-another-cloud");
    assert_eq!(e.field(), "scopes");
    assert!(e.to_string().contains("use `https://management.usgovcloudapi.net/.default`"), "{e}");
    let e = err(builder().scope("https://management.chinacloudapi.cn/.default"));
    assert!(e.to_string().contains("authority host is login.microsoftonline.com"), "{e}");
    // Other resources are the caller's business.
    let t = builder()
        .authority_host("login.microsoftonline.us")
        .scope("https://vault.usgovcloudapi.net/.default")
        .build()
        .unwrap();
    assert_eq!(t.scopes(), ["https://vault.usgovcloudapi.net/.default"]);
}

#[test]
fn unknown_authority_hosts_are_refused_with_the_accepted_list() {
    for host in [
        "login.microsoftonline.de",
        "evil.example.com",
        "http://login.microsoftonline.com",
        "login.microsoftonline.com:8443",
        "127.0.0.1:8080",
    ] {
        let e = err(builder().authority_host(host));
        assert_eq!(
            e,
            TargetError::UnknownAuthorityHost {
                host: host.into(),
                known: KNOWN_AUTHORITY_HOSTS.to_vec()
            }
        );
        let text = e.to_string();
        for known in KNOWN_AUTHORITY_HOSTS {
            assert!(text.contains(known), "{text}");
        }
        assert!(text.contains("override the authority URL"), "{text}");
    }
}

#[test]
fn the_insecure_override_takes_any_https_host_and_http_only_on_loopback() {
    for (url, base) in [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.1.2.3:8080/", "http://127.1.2.3:8080"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("https://entra-proxy.example.com", "https://entra-proxy.example.com"),
        ("https://proxy.example.com:8443/entra/", "https://proxy.example.com:8443/entra"),
    ] {
        let t = builder()
            .authority_host("login.microsoftonline.us")
            .dangerous()
            .authority_url(url)
            .build()
            .unwrap();
        assert_eq!(t.authority_base(), base, "{url}");
        assert_eq!(t.token_endpoint(), format!("{base}/{TENANT}/oauth2/v2.0/token"));
    }
}

#[test]
fn the_insecure_override_refuses_what_is_not_a_base_url() {
    for url in [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://localhost.evil.com",
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "https://",
        "https://user:pw@example.com",
        "https://example.com?x=1",
        "https://example.com/#f",
        "https://example.com:0",
        "https://example.com:99999",
        "https://example.com:",
        "https://exa mple.com",
        "https://[::1",
        "https://[zz]:1",
    ] {
        let e = err(builder().dangerous().authority_url(url));
        assert!(
            matches!(&e, TargetError::InvalidAuthorityUrl { url: u, .. } if u == url),
            "{url}: {e:?}"
        );
        assert_eq!(e.kind(), "invalid-authority-url");
    }
    let e = err(builder().dangerous().authority_url("http://example.com"));
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[test]
fn kinds_are_stable() {
    let kinds = [
        err(builder().dangerous().authority_url("x")).kind(),
        err(AzureTarget::builder(TENANT, "x")).kind(),
        err(builder().scope("")).kind(),
        err(AzureTarget::builder("x", CLIENT)).kind(),
        err(AzureTarget::builder("common", CLIENT)).kind(),
        err(builder().scope("x")).kind(),
        err(builder().scope("a/.default").scope("b/.default")).kind(),
        err(builder().authority_host("x")).kind(),
    ];
    assert_eq!(
        kinds,
        [
            "invalid-authority-url",
            "invalid-client-id",
            "invalid-scope",
            "invalid-tenant",
            "reserved-tenant",
            "scope-not-default",
            "several-resources",
            "unknown-authority-host",
        ]
    );
}
