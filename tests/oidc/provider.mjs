// An independent OpenID Connect provider (panva/oidc-provider) for the identity tests.
//
// Listens on a free loopback port, then prints one JSON line to stdout:
//   {"issuer": "http://127.0.0.1:PORT", "client_id": ..., "client_secret": ...}
// The client may use the client_credentials grant; access tokens are JWTs (RS256) for the
// audience in OIDC_AUDIENCE, carrying the force, roles, vetting and units claims the gateway maps
// to an analyst. Environment: OIDC_AUDIENCE, OIDC_FORCE, OIDC_VETTING (all optional).
import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const audience = process.env.OIDC_AUDIENCE ?? 'urn:police-gateway:test';
const force = process.env.OIDC_FORCE ?? '20';
const vetting = process.env.OIDC_VETTING ?? 'NPPV2';
const clientId = 'analyst-desk';
const clientSecret = crypto.randomBytes(24).toString('base64url');

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `rs-${crypto.randomBytes(4).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== audience) throw new errors.InvalidTarget();
          return {
            scope: 'search',
            audience,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: () => ({
      force, roles: ['analyst'], vetting, units: ['MSU'],
    }),
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, client_id: clientId, client_secret: clientSecret })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
