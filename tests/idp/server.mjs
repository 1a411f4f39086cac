// A real OpenID Connect provider (the certified `oidc-provider` package) for wopigate's
// integration tests. Started by `testkit/src/real_idp.rs`; everything comes from one JSON file:
//
//   { "port": 0, "issuer": "http://127.0.0.1:PORT", "resource": "https://wopigate.test/",
//     "state_dir": "/tmp/...", "keys": [{ "kid": "rsa-1", "kty": "RSA" }, ...],
//     "clients": [{ "client_id", "client_secret", "redirect_uri", "alg": "RS256" | "ES256",
//                   "backchannel_logout_uri" (optional) }] }
//
// Signing keys are generated on first use and kept in `state_dir/<kid>.json`, so a restart with
// a different `keys` list is a key rotation: the first key of a type signs, the others are only
// published. Logins use the provider's own development interactions (login + consent forms),
// which any HTTP client can fill in. Access tokens are JWTs for `resource`, signed with the
// client's `alg`, and carry the login session's `sid` for clients with a back-channel logout URI,
// which the provider calls (OpenID Connect Back-Channel Logout 1.0) when the session ends.

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function privateJwk({ kid, kty }) {
  const file = join(settings.state_dir, `${kid}.json`);
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const { privateKey } = kty === 'EC'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = {
    ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: kty === 'EC' ? 'ES256' : 'RS256',
  };
  writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

const algOf = new Map(settings.clients.map((c) => [c.client_id, c.alg]));

const provider = new Provider(settings.issuer, {
  clients: settings.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: [c.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(c.backchannel_logout_uri ? {
      backchannel_logout_uri: c.backchannel_logout_uri,
      backchannel_logout_session_required: true,
    } : {}),
  })),
  jwks: { keys: settings.keys.map(privateJwk) },
  cookies: { keys: [settings.cookie_key] },
  pkce: { required: () => true },
  scopes: ['openid', 'wopi'],
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => settings.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator, client) => {
        if (indicator !== settings.resource) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'wopi',
          audience: settings.resource,
          accessTokenTTL: settings.access_token_ttl ?? 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: algOf.get(client.clientId) ?? 'RS256' } },
        };
      },
    },
  },
  // Claims the gateway maps onto the REVA user (sub and iss are always there).
  extraTokenClaims: (_ctx, token) => ({
    preferred_username: token.accountId,
    ...(token.sid ? { sid: token.sid } : {}),
  }),
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  // The back-channel logout goes to the gateway under test on 127.0.0.1, which the provider's
  // guard against server-side request forgery refuses (special-use addresses): its dispatcher is
  // dropped here, for this loopback-only test provider.
  fetch: (url, options) => {
    const { dispatcher: _guard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
});

// Failures are printed for the test log (descriptions only: no tokens or codes).
for (const event of ['grant.error', 'authorization.error', 'server_error', 'backchannel.error']) {
  provider.on(event, (_ctx, err) => console.error(`${event}: ${err.message} ${err.error_detail ?? ''}`));
}

const server = provider.listen(settings.port, '127.0.0.1', () => {
  console.log(`listening ${settings.issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
