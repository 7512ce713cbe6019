// A real, independent RFC 8628 authorization server for restoregate's interoperability test:
// npm oidc-provider with its device flow, mounted so that its issuer is
// http://127.0.0.1:PORT/<tenant>/v2.0 (restoregate reads
// {authority}/{tenant}/v2.0/.well-known/openid-configuration).
//
// Prints one JSON line on stdout once listening: {"port", "issuer", "authority", "client_id",
// "tenant", "login"}. Logs (no secrets: no device codes, no tokens) go to stderr.
//
// Environment (all optional):
//   OIDC_TENANT     tenant path segment            [abc.onmicrosoft.com]
//   OIDC_CLIENT_ID  the public client's id (GUID)  [11111111-2222-3333-4444-555555555555]
//   OIDC_PORT       port to listen on              [0: a free one]
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const TENANT = process.env.OIDC_TENANT || 'abc.onmicrosoft.com';
const CLIENT_ID = process.env.OIDC_CLIENT_ID || '11111111-2222-3333-4444-555555555555';
const PORT = Number(process.env.OIDC_PORT || 0);
// What restoregate asks for in the Worldwide region: Graph's .default plus offline_access.
const GRAPH = 'https://graph.microsoft.com';
const GRAPH_DEFAULT = `${GRAPH}/.default`;
const PREFIX = `/${TENANT}/v2.0`;

// The test account. The development interaction pages of oidc-provider do not check passwords
// (they are a quick-start feature); the account lookup below knows only this login.
const ACCOUNT = {
  login: 'megan',
  claims: {
    sub: 'megan',
    preferred_username: `megan@${TENANT}`,
    email: `megan@${TENANT}`,
    name: 'Megan Bowen',
  },
};

const log = (event, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), event, ...fields })}\n`);
};

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const issuer = `${origin}${PREFIX}`;

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'restoregate interop',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256', kid: 'interop-1' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access'],
  features: {
    deviceFlow: { enabled: true },
    // devInteractions (on by default) are oidc-provider's own sign-in and consent pages.
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    // Microsoft's `https://graph.microsoft.com/.default` is a scope of the Graph resource: model
    // it as a resource server, the default resource of every request without `resource`.
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => GRAPH,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== GRAPH) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: GRAPH_DEFAULT,
          audience: GRAPH,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Like Microsoft's Graph tokens, the access token names the account that signed in.
  extraTokenClaims: async (_ctx, token) => (token.accountId === ACCOUNT.login
    ? { preferred_username: ACCOUNT.claims.preferred_username } : undefined),
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
  findAccount: async (_ctx, id) => (id === ACCOUNT.login
    ? { accountId: id, claims: async () => ({ ...ACCOUNT.claims }) }
    : undefined),
  ttl: {
    DeviceCode: 600,
    AccessToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    RefreshToken: 86400,
    IdToken: 3600,
  },
});

provider.on('device_authorization.success', (_ctx, body) => log('device_authorization.success', {
  user_code: body.user_code, verification_uri: body.verification_uri, expires_in: body.expires_in,
}));
provider.on('device_authorization.error', (_ctx, err) => log('device_authorization.error', {
  error: err.error, description: err.error_description,
}));
provider.on('grant.success', (ctx) => log('grant.success', { grant_type: ctx.oidc.params?.grant_type }));
provider.on('grant.error', (ctx, err) => {
  if (err.error !== 'authorization_pending') {
    log('grant.error', { grant_type: ctx.oidc.params?.grant_type, error: err.error, description: err.error_description });
  }
});
provider.on('code_verification.error', (_ctx, err) => log('code_verification.error', { error: err.error || err.name, description: err.error_description || err.message }));
provider.on('server_error', (_ctx, err) => log('server_error', { message: err.message, stack: err.stack }));

// Mounted under PREFIX the way connect/express mount it: the provider sees the rest of the path
// and finds its mount path from req.originalUrl (see oidc-provider's docs, "Mounting").
const callback = provider.callback();
server.on('request', (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    const path = (req.originalUrl || req.url).split('?')[0];
    log('http', { method: req.method, path, status: res.statusCode, ms: Date.now() - started });
  });
  const { url } = req;
  if (url === PREFIX || url.startsWith(`${PREFIX}/`) || url.startsWith(`${PREFIX}?`)) {
    req.originalUrl = url;
    req.url = url.slice(PREFIX.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    callback(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'invalid_request', error_description: `no tenant here: use ${PREFIX}` }));
});

const shutdown = () => server.close(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`${JSON.stringify({
  port, issuer, authority: origin, client_id: CLIENT_ID, tenant: TENANT, login: ACCOUNT.login,
})}\n`);
