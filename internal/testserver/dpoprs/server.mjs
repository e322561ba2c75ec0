// DPoP-enforcing OAuth 2.0 resource server (RFC 9449, RFC 9728) for
// anyauth's integration tests. Started by internal/testserver/dpoprs.go as
//
//	node server.mjs CONFIG.json
//
// where CONFIG.json holds the port, the server's own origin, the issuer, its
// JWKS URL, the resource identifier (the access tokens' "aud"), the nonce
// policy, the accepted proof algorithms and the path of the event log (see
// dpopResourceConfig in the Go file). Everything is in memory and lives as
// long as the process.
//
// The validation is Auth0's express-oauth2-jwt-bearer (pinned in
// package.json): it verifies the access token (RS256 JWT from the JWKS URL,
// typ at+jwt, iss, aud, exp, iat, sub, client_id, jti) and the DPoP proof
// (typ dpop+jwt, an asymmetric alg, the signature with the embedded public
// jwk, iat within the window, htm, htu, presence of jti, ath, and that the
// token's cnf.jkt is the thumbprint of the proof's jwk). It knows nothing of
// server nonces and does not remember jti values, so this script adds:
//   - server nonces (RFC 9449 section 9): a proof without the current or the
//     previous nonce is answered 401 use_dpop_nonce with a DPoP-Nonce
//     header; the nonce rotates every cfg.nonceEvery accepted requests and
//     every accepted request's response carries the current one;
//   - jti replay detection: a jti seen in an accepted proof within the iat
//     window is answered invalid_dpop_proof;
//   - the restriction of proof algorithms to cfg.algs (the library accepts
//     every asymmetric JWS alg);
//   - its own challenges: the library answers 400 to invalid proofs (the
//     token endpoint's status) and names all its algorithms and no
//     resource_metadata; here every refusal is a 401 with one DPoP (or
//     Bearer) challenge carrying algs and resource_metadata (RFC 9728),
//     except on cfg.pathBearerNative (below);
//   - the protected resource metadata (RFC 9728) and an event log: one JSON
//     line per answered request, nonce rotation and metadata fetch, written
//     synchronously before the response is sent.
//
// The locations cfg.pathDPoPWrite and cfg.pathBearerWrite are cfg.pathDPoP
// and cfg.pathBearer plus a scope: once every check of the base location
// passed, the library's own requiredScopes(cfg.writeScope) middleware runs,
// and its InsufficientScopeError is answered as the library builds it
// (status 403, its WWW-Authenticate: Bearer realm="api",
// error="insufficient_scope", error_description="...", scope="..."), with
// Cache-Control: no-store, a JSON body {error, error_description} and, on
// the DPoP location, the DPoP-Nonce. On the DPoP location such a request's
// token and proof were accepted: its jti is remembered and it counts
// towards the nonce rotation like a 200.
//
// The location cfg.pathBearerNative is cfg.pathBearer with the library's
// own refusals: the request goes to the library as it came (no check of
// the Authorization header first), and the error it passes to next is
// answered with its own status and WWW-Authenticate, without
// resource_metadata: 401 Bearer realm="api" (UnauthorizedError) without
// credentials; 401 Bearer realm="api", error="invalid_token",
// error_description="..." (InvalidTokenError) for a token that is not
// valid; 400 with the header its InvalidRequestError carries for a
// malformed request (another scheme, a token in the header and the
// query). A DPoP-bound token, which the library takes as a Bearer token
// when DPoP is off, is refused with the library's InvalidTokenError made
// here. A client must find the metadata itself (RFC 9728 section 3.1).
//
// The URL the proofs' htu must name is the server's own,
// cfg.origin + path: the Host header is replaced by the configured
// authority before the library computes the request URL, so that a client
// that reached the server under another name is refused, as a real server
// behind its one public name would.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';

import express from 'express';
import {
  auth, InsufficientScopeError, InvalidTokenError, requiredScopes, UnauthorizedError,
} from 'express-oauth2-jwt-bearer';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const authority = new URL(cfg.origin).host;

// --- event log -------------------------------------------------------------

const eventFd = fs.openSync(cfg.eventLog, 'a');

function record(event) {
  const buf = Buffer.from(`${JSON.stringify({ t: Date.now(), ...event })}\n`);
  for (let off = 0; off < buf.length;) {
    off += fs.writeSync(eventFd, buf, off, buf.length - off);
  }
}

// --- nonces and jti ----------------------------------------------------------

const newNonce = () => randomBytes(18).toString('base64url');
let nonce = newNonce();
let previousNonce = '';
let accepted = 0;

// jti -> time (ms) after which the proof's iat is outside the window anyway.
const seenJTIs = new Map();
setInterval(() => {
  const now = Date.now();
  for (const [jti, until] of seenJTIs) {
    if (until <= now) seenJTIs.delete(jti);
  }
}, 10_000).unref();

// --- validators ----------------------------------------------------------------

const common = {
  issuer: cfg.issuer,
  jwksUri: cfg.jwksUrl,
  audience: cfg.resource,
  tokenSigningAlg: 'RS256',
  strict: true, // RFC 9068: typ at+jwt, iat, sub, client_id, jti required
  // No leeway: a token is expired from its exp second on, so that tests of
  // clients that refresh early or late are exact.
  clockTolerance: 0,
};
const dpopAuth = auth({
  ...common,
  dpop: { enabled: true, required: true, iatOffset: cfg.iatWindow, iatLeeway: cfg.iatWindow },
});
const bearerAuth = auth({ ...common, dpop: { enabled: false } });
// The scope check of the write locations, run after the auth middleware
// above set req.auth.
const writeScope = requiredScopes(cfg.writeScope);

// runAuth runs an express middleware of the library and resolves with the
// error it passed to next, undefined if none.
function runAuth(middleware, req, res) {
  return new Promise((resolve) => {
    middleware(req, res, (err) => resolve(err));
  });
}

// --- answers -------------------------------------------------------------------

// An auth-param value: a quoted-string without quotes or backslashes, and
// only the characters RFC 6750 allows in error_description.
function quoted(s) {
  return `"${String(s).replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '?')}"`;
}

function challenge(scheme, metadataUrl, error, description) {
  const params = [];
  if (error) params.push(`error=${quoted(error)}`, `error_description=${quoted(description)}`);
  if (scheme === 'DPoP') params.push(`algs=${quoted(cfg.algs.join(' '))}`);
  params.push(`resource_metadata=${quoted(metadataUrl)}`);
  return `${scheme} ${params.join(', ')}`;
}

const statusOf = { no_token: 401, invalid_token: 401, invalid_dpop_proof: 401, use_dpop_nonce: 401, invalid_request: 400 };

function refuse(res, kind, scheme, metadataUrl, outcome, description) {
  const error = outcome === 'no_token' ? '' : outcome;
  record({ event: 'request', path: kind, outcome, description });
  res.status(statusOf[outcome]);
  res.set('WWW-Authenticate', challenge(scheme, metadataUrl, error, description));
  res.set('Cache-Control', 'no-store');
  if (outcome === 'use_dpop_nonce') res.set('DPoP-Nonce', nonce);
  res.json(error ? { error, error_description: description } : { error_description: description });
}

// libraryOutcome is the outcome of an error of the library: its code
// (invalid_token, invalid_request, insufficient_scope), else no_token for
// its bare UnauthorizedError (401, no credentials) and invalid_request for
// its InvalidRequestError without code (400); '' for any other error.
function libraryOutcome(err) {
  if (!(err instanceof UnauthorizedError)) return '';
  if (err.code) return err.code;
  if (err.status === 401) return 'no_token';
  if (err.status === 400) return 'invalid_request';
  return '';
}

// refuseAsLibrary answers err, an error of the library whose outcome is
// outcome, as the library built it: its status and WWW-Authenticate, plus
// Cache-Control: no-store, the current DPoP-Nonce on a DPoP location
// (dpop) and a JSON body {error, error_description} (error only if the
// error has a code; the description is its message, or its class name
// when it has none, as the library's InvalidRequestError without code).
function refuseAsLibrary(res, kind, outcome, err, dpop = false) {
  const description = err.message || err.name;
  record({ event: 'request', path: kind, outcome, description });
  res.status(err.status);
  res.set(err.headers);
  res.set('Cache-Control', 'no-store');
  if (dpop && cfg.nonce) res.set('DPoP-Nonce', nonce);
  res.json(err.code ? { error: err.code, error_description: description } : { error_description: description });
}

// checkScope runs the library's requiredScopes middleware (scoped
// locations only) and, when the token lacks the scope, answers with the
// library's own status and WWW-Authenticate, plus the current DPoP-Nonce on
// a DPoP location (dpop). It returns whether it answered. Errors other than
// the library's InsufficientScopeError are thrown.
async function checkScope(scoped, dpop, req, res, kind) {
  if (!scoped) return false;
  const err = await runAuth(writeScope, req, res);
  if (!err) return false;
  if (!(err instanceof InsufficientScopeError)) throw err;
  refuseAsLibrary(res, kind, err.code, err, dpop);
  return true;
}

async function readBody(req) {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of req) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { body_sha256: hash.digest('hex'), body_bytes: bytes };
}

// decodePart decodes one part of a compact JWS already verified by the
// library; {} if it is not JSON.
function decodePart(jws, i) {
  try {
    return JSON.parse(Buffer.from(String(jws).split('.')[i], 'base64url').toString('utf8'));
  } catch {
    return {};
  }
}

// The scheme and token of the Authorization header: scheme '' when there is
// none or the scheme is neither Bearer nor DPoP.
function credentials(req) {
  const m = /^(Bearer|DPoP) +(\S*)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) return { scheme: '', token: '' };
  return { scheme: m[1].toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: m[2] };
}

// --- handlers -----------------------------------------------------------------

// protectedDPoP serves a location that wants DPoP-bound tokens with a proof
// (and the server nonce); its challenges point to metadataUrl. A scoped
// location wants cfg.writeScope too.
function protectedDPoP(kind, metadataUrl, scoped = false) {
  return async (req, res, next) => {
    const deny = (outcome, description) => refuse(res, kind, 'DPoP', metadataUrl, outcome, description);
    try {
      const { scheme, token } = credentials(req);
      if (scheme === '' || token === '') {
        return deny('no_token', 'DPoP-bound access token required');
      }
      if (scheme !== 'DPoP') {
        return deny('invalid_token', 'DPoP-bound access token required: use the DPoP scheme with a DPoP proof');
      }
      if (!req.headers.dpop) {
        return deny('invalid_token', 'DPoP proof required with a DPoP-bound access token');
      }
      req.headers.host = authority;
      const err = await runAuth(dpopAuth, req, res);
      if (err) {
        switch (err.code) {
          case 'invalid_token':
            return deny('invalid_token', err.message);
          case 'invalid_dpop_proof':
            return deny('invalid_dpop_proof', err.message);
          case 'invalid_request':
            return deny('invalid_request', err.message);
          default:
            if (err.statusCode === 400 || err.statusCode === 401) {
              return deny('invalid_dpop_proof', err.message || 'invalid request');
            }
            throw err;
        }
      }
      const proofHeader = decodePart(req.headers.dpop, 0);
      const proof = decodePart(req.headers.dpop, 1);
      if (!cfg.algs.includes(proofHeader.alg)) {
        return deny('invalid_dpop_proof', `DPoP proof alg ${proofHeader.alg} is not one of ${cfg.algs.join(' ')}`);
      }
      if (cfg.nonce) {
        if (proof.nonce === undefined) {
          return deny('use_dpop_nonce', 'Resource server requires nonce in DPoP proof');
        }
        if (proof.nonce !== nonce && (previousNonce === '' || proof.nonce !== previousNonce)) {
          return deny('use_dpop_nonce', 'DPoP proof nonce is not the current one');
        }
      }
      if (typeof proof.jti !== 'string' || seenJTIs.has(proof.jti)) {
        record({ event: 'jti.repeated' });
        return deny('invalid_dpop_proof', 'DPoP proof jti was already used');
      }
      seenJTIs.set(proof.jti, (proof.iat + cfg.iatWindow + 1) * 1000);
      record({ event: 'jti.new' });
      accepted++;
      if (cfg.nonce && accepted % cfg.nonceEvery === 0) {
        previousNonce = nonce;
        nonce = newNonce();
        record({ event: 'nonce.rotated' });
      }
      if (await checkScope(scoped, true, req, res, kind)) return undefined;
      const claims = req.auth.payload;
      const body = await readBody(req);
      record({ event: 'request', path: kind, outcome: 'ok' });
      if (cfg.nonce) res.set('DPoP-Nonce', nonce);
      res.set('Cache-Control', 'no-store');
      return res.json({
        sub: claims.sub,
        client_id: claims.client_id,
        scope: claims.scope,
        jkt: claims.cnf?.jkt,
        jti: proof.jti,
        token_jti: claims.jti,
        method: req.method,
        path: req.path,
        ...body,
      });
    } catch (e) {
      return next(e);
    }
  };
}

// protectedBearer serves a location that accepts plain (unbound) Bearer
// tokens only. A scoped location wants cfg.writeScope too. A native
// location (metadataUrl null) refuses as the library does (see the top of
// this file): its refusals are the library's errors, answered by
// refuseAsLibrary.
function protectedBearer(kind, metadataUrl, scoped = false) {
  const native = metadataUrl === null;
  return async (req, res, next) => {
    const deny = (outcome, description) => refuse(res, kind, 'Bearer', metadataUrl, outcome, description);
    try {
      if (!native) {
        const { scheme, token } = credentials(req);
        if (scheme === '' || token === '') {
          return deny('no_token', 'Bearer access token required');
        }
        if (scheme !== 'Bearer') {
          return deny('invalid_token', 'this resource accepts Bearer tokens only');
        }
      }
      req.headers.host = authority;
      const err = await runAuth(bearerAuth, req, res);
      if (err) {
        if (native) {
          const outcome = libraryOutcome(err);
          if (outcome === '') throw err;
          return refuseAsLibrary(res, kind, outcome, err);
        }
        if (err.code === 'invalid_request') return deny('invalid_request', err.message);
        if (err.statusCode === 400 || err.statusCode === 401) return deny('invalid_token', err.message || 'invalid token');
        throw err;
      }
      const claims = req.auth.payload;
      if (claims.cnf !== undefined) {
        const description = 'DPoP-bound (or otherwise sender-constrained) token presented as a Bearer token';
        if (native) return refuseAsLibrary(res, kind, 'invalid_token', new InvalidTokenError(description));
        return deny('invalid_token', description);
      }
      if (await checkScope(scoped, false, req, res, kind)) return undefined;
      const body = await readBody(req);
      record({ event: 'request', path: kind, outcome: 'ok' });
      res.set('Cache-Control', 'no-store');
      return res.json({
        sub: claims.sub,
        client_id: claims.client_id,
        scope: claims.scope,
        token_jti: claims.jti,
        method: req.method,
        path: req.path,
        ...body,
      });
    } catch (e) {
      return next(e);
    }
  };
}

function metadata(doc, name) {
  return (req, res) => {
    record({ event: 'metadata', name });
    res.set('Cache-Control', 'max-age=300');
    res.json(doc);
  };
}

const app = express();
app.disable('x-powered-by');
app.set('etag', false);

app.get('/_ready', (_req, res) => res.type('text/plain').send(cfg.readyToken));
for (const path of cfg.metadataPaths) {
  app.get(path, metadata(cfg.metadata, 'metadata'));
}
app.get(cfg.wrongMetadataPath, metadata(cfg.wrongMetadata, 'wrong'));
const locations = [
  [cfg.pathDPoP, protectedDPoP(cfg.pathDPoP, cfg.metadataUrl)],
  [cfg.pathWrongMetadata, protectedDPoP(cfg.pathWrongMetadata, cfg.wrongMetadataUrl)],
  [cfg.pathBearer, protectedBearer(cfg.pathBearer, cfg.metadataUrl)],
  [cfg.pathDPoPWrite, protectedDPoP(cfg.pathDPoPWrite, cfg.metadataUrl, true)],
  [cfg.pathBearerWrite, protectedBearer(cfg.pathBearerWrite, cfg.metadataUrl, true)],
  [cfg.pathBearerNative, protectedBearer(cfg.pathBearerNative, null)],
];
app.use((req, res, next) => {
  const location = locations.find(([prefix]) => req.path.startsWith(prefix));
  return location ? location[1](req, res, next) : next();
});
app.use((req, res) => {
  res.status(404).type('text/plain').send('not found\n');
});
app.use((err, req, res, _next) => {
  console.error('error', req.method, req.originalUrl, err);
  record({ event: 'server_error', message: String(err?.message ?? err) });
  if (!res.headersSent) res.status(500).type('text/plain').send('internal error\n');
});

const server = app.listen(cfg.port, '127.0.0.1', () => {
  console.log(`dpop resource server ${cfg.origin} listening`);
});
server.on('error', (err) => {
  console.error(`listen: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
