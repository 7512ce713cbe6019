// The reference point of bench/run.sh: npm oidc-provider's device authorization endpoint
// (RFC 8628 section 3.1, `POST /device/auth`), mounted at the root, over HTTPS with the same
// self-signed certificate that restoregate generated into its data directory.
//
//   node bench/oidc-provider-bench.mjs      (after `npm ci` in bench/)
//
// Environment:
//   BENCH_PORT       port to listen on on 127.0.0.1                 (required)
//   BENCH_TLS_CERT   PEM certificate (restoregate's DATA/tls-cert.pem); without it, plain HTTP
//   BENCH_TLS_KEY    PEM private key  (restoregate's DATA/tls-key.pem)
//   BENCH_CLIENT_ID  the public client's id                          [a fixed GUID]
//
// One public client (token_endpoint_auth_method 'none') with the device_code grant. Storage is
// oidc-provider's default MemoryAdapter (an in-process LRU of 1000 entries): nothing is written
// to disk, unlike restoregate's sandbox, which commits every device code to SQLite.
//
// Prints one JSON line on stdout once listening: {"port", "issuer", "client_id", "tls"}.
// Logs nothing per request (a bench measures the endpoint, not the logger).
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const PORT = Number(process.env.BENCH_PORT || 0);
const CLIENT_ID = process.env.BENCH_CLIENT_ID || '6f3b0d2e-1c4a-4e59-9a7e-2b8f5d9c1a01';
const CERT = process.env.BENCH_TLS_CERT;
const KEY = process.env.BENCH_TLS_KEY;
const tls = Boolean(CERT && KEY);

const server = tls
  ? createHttpsServer({ cert: readFileSync(CERT), key: readFileSync(KEY) })
  : createHttpServer();
// Keep the load generator's connections open for the whole run, as restoregate (hyper) does.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'restoregate bench',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256', kid: 'bench-1' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access'],
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
  },
  ttl: { DeviceCode: 900 },
});
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`server_error: ${err.message}\n`);
});

server.on('request', provider.callback());

const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`${JSON.stringify({ port, issuer, client_id: CLIENT_ID, tls })}\n`);
