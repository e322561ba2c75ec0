// OAuth 2.0 authorization server for anyauth's integration tests, built on
// oidc-provider (pinned in package.json). Started by
// internal/testserver/oidcprovider.go as
//
//	node provider.mjs CONFIG.json
//
// where CONFIG.json holds the issuer, port (and an HTTPS port with its
// certificate and key), clients, TTLs, resource indicator and the path of
// the event log (see oidcProviderConfig in the Go file). Everything is in
// memory and lives as long as the process.
//
// What it adds to oidc-provider:
//   - JWT access tokens (RS256, a key generated at start) for the one
//     resource indicator of the configuration, which is also the default
//     resource, so that client_credentials without a resource parameter
//     gets a JWT too;
//   - an interaction handler that logs in without asking (the account is
//     login_hint, else the configured one) and grants every scope asked
//     for, so that the authorization-code flow runs without a person;
//   - an event log: one JSON line per token endpoint outcome (grant.success,
//     grant.error with oidc-provider's error_detail, which the response
//     does not carry, and grant.revoked when a grant is revoked), written
//     synchronously before the response is sent;
//   - DPoP proofs with any asymmetric algorithm (oidc-provider's default
//     is ES256 and EdDSA only);
//   - an adapter that never evicts (oidc-provider's memory adapter is an
//     LRU of 1000 entries, which long tests could overflow).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

// --- event log -------------------------------------------------------------

const eventFd = fs.openSync(cfg.eventLog, 'a');

function record(event) {
  const buf = Buffer.from(`${JSON.stringify({ t: Date.now(), ...event })}\n`);
  for (let off = 0; off < buf.length;) {
    off += fs.writeSync(eventFd, buf, off, buf.length - off);
  }
}

function tokenRequest(ctx) {
  return {
    grant_type: ctx.oidc?.params?.grant_type ?? ctx.request?.body?.grant_type ?? '',
    client_id: ctx.oidc?.client?.clientId ?? '',
  };
}

// --- storage ---------------------------------------------------------------

// Models whose instances belong to a grant and go with it when it is revoked.
const grantable = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);
const store = new Map(); // "Model:id" -> { payload, expiresAt (ms, 0: never) }
const grantMembers = new Map(); // grantId -> Set of "Model:id"
const sessionUids = new Map(); // session uid -> id
const userCodes = new Map(); // user code -> id

function live(key) {
  const entry = store.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt !== 0 && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt !== 0 && entry.expiresAt <= now) store.delete(key);
  }
}, 60_000).unref();

class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
    if (grantable.has(this.model) && payload.grantId) {
      let members = grantMembers.get(payload.grantId);
      if (!members) grantMembers.set(payload.grantId, (members = new Set()));
      members.add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const members = grantMembers.get(grantId);
    if (!members) return;
    for (const key of members) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// --- provider ----------------------------------------------------------------

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `anyauth-${randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

const resourceServer = {
  scope: cfg.resourceScopes.join(' '),
  audience: cfg.resource,
  accessTokenTTL: cfg.accessTokenTTL,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'RS256' } },
};

const provider = new Provider(cfg.issuer, {
  adapter: Adapter,
  clients: cfg.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', ...cfg.resourceScopes],
  claims: { openid: ['sub'] },
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  rotateRefreshToken: true,
  pkce: { required: () => false },
  ttl: {
    AccessToken: cfg.accessTokenTTL,
    ClientCredentials: cfg.accessTokenTTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: cfg.refreshTokenTTL,
    Grant: cfg.refreshTokenTTL,
    RefreshToken: cfg.refreshTokenTTL,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  // Every asymmetric JWS algorithm for DPoP proofs, not only oidc-provider's
  // default ES256 and EdDSA: resource servers decide what they accept.
  enabledJWA: {
    dPoPSigningAlgValues: [
      'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
      'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
    ],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? cfg.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== cfg.resource) throw new errors.InvalidTarget();
        return resourceServer;
      },
    },
    dPoP: {
      enabled: true,
      nonceSecret: cfg.dpopNonces ? randomBytes(32) : undefined,
      requireNonce: () => cfg.dpopNonces,
    },
  },
});
provider.proxy = false;

// The interaction handler: no page, no person. Login as login_hint (else the
// configured account), then consent to whatever is missing.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !/^\/interaction\/[^/]+$/.test(ctx.path)) {
    return next();
  }
  const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  switch (prompt.name) {
    case 'login':
      result = { login: { accountId: params.login_hint || cfg.account } };
      break;
    case 'consent': {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { details } = prompt;
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
      break;
    }
    default:
      result = { error: 'access_denied', error_description: `unexpected prompt ${prompt.name}` };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.redirect(returnTo);
  ctx.status = 303;
  return undefined;
});

provider.on('grant.success', (ctx) => {
  record({ event: 'grant.success', ...tokenRequest(ctx) });
});
provider.on('grant.error', (ctx, err) => {
  record({
    event: 'grant.error',
    ...tokenRequest(ctx),
    error: err.error ?? err.message,
    error_description: err.error_description,
    error_detail: err.error_detail,
  });
});
provider.on('grant.revoked', (ctx, grantId) => {
  record({ event: 'grant.revoked', ...tokenRequest(ctx), route: ctx.oidc?.route ?? '', grant: grantId });
});
provider.on('server_error', (ctx, err) => {
  if (ctx.oidc?.route === 'token') {
    record({ event: 'grant.error', ...tokenRequest(ctx), error: 'server_error', error_description: String(err?.message ?? err) });
  }
  console.error('server_error', ctx.method, ctx.path, err);
});

// Clients are validated when first used; fail now rather than at the first
// token request.
for (const { client_id: id } of cfg.clients) {
  await provider.Client.find(id);
}

function exitOnError(server) {
  server.on('error', (err) => {
    console.error(`listen: ${err.code ?? ''} ${err.message}`);
    process.exit(1);
  });
}

exitOnError(provider.listen(cfg.port, '127.0.0.1', () => {
  console.log(`oidc-provider ${cfg.issuer} listening`);
}));
// The same provider over HTTPS on another port, for clients that fetch only
// https URLs (mod_auth_openidc's OIDCOAuthVerifyJwksUri). Its discovery
// document still names the http endpoints.
if (cfg.tlsPort) {
  const tls = { cert: fs.readFileSync(cfg.tlsCert), key: fs.readFileSync(cfg.tlsKey) };
  exitOnError(https.createServer(tls, provider.callback()).listen(cfg.tlsPort, '127.0.0.1', () => {
    console.log(`oidc-provider ${cfg.issuer} also on https://127.0.0.1:${cfg.tlsPort}`);
  }));
}
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
