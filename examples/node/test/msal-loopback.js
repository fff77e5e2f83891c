// Test helpers for @azure/msal-node: a network client that sends MSAL's requests to a loopback
// HTTP server, and the metadata that spares MSAL any network discovery.
//
// MSAL only accepts an https authority, so the authority stays
// https://login.microsoftonline.com/{tenant}; this client (MSAL's `system.networkClient` option)
// does what MSAL's default fetch-based HttpClient does, with that origin replaced by the loopback
// server's. URL path, headers and body are MSAL's own, unchanged.
export const LOGIN = 'https://login.microsoftonline.com';

export class LoopbackNetworkClient {
  constructor(base) {
    this.base = base;
    this.requests = [];
  }

  rewrite(url) {
    if (!url.startsWith(`${LOGIN}/`)) throw new Error(`unexpected MSAL request to ${url}`);
    return this.base + url.slice(LOGIN.length);
  }

  async send(method, url, options = {}) {
    this.requests.push({ method, url, headers: options.headers ?? {}, body: options.body });
    const res = await fetch(this.rewrite(url), { method, headers: options.headers, body: method === 'POST' ? options.body ?? '' : undefined });
    const headers = {};
    res.headers.forEach((v, k) => { headers[k] = v; });
    return { headers, body: await res.json(), status: res.status };
  }

  sendGetRequestAsync(url, options) {
    return this.send('GET', url, options);
  }

  sendPostRequestAsync(url, options) {
    return this.send('POST', url, options);
  }
}

/** MSAL configuration for a confidential client with a client assertion, no network discovery. */
export function msalConfig({ tenant, clientId, assertion, networkClient }) {
  return {
    auth: {
      clientId,
      authority: `${LOGIN}/${tenant}`,
      clientAssertion: assertion,
      knownAuthorities: ['login.microsoftonline.com'],
      cloudDiscoveryMetadata: JSON.stringify({
        tenant_discovery_endpoint: `${LOGIN}/${tenant}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: 'login.microsoftonline.com', preferred_cache: 'login.windows.net', aliases: ['login.microsoftonline.com', 'login.windows.net'] }],
      }),
      authorityMetadata: JSON.stringify({
        token_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/logout`,
        issuer: `${LOGIN}/${tenant}/v2.0`,
        jwks_uri: `${LOGIN}/${tenant}/discovery/v2.0/keys`,
      }),
    },
    system: { networkClient },
  };
}
