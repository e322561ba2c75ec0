'use strict';

// A fake S3 for anyauth's sigv4 tests: s3rver (objects, buckets,
// ListObjectsV2) behind a verifier of AWS Signature Version 4.
//
// s3rver 3.7.1 itself does not verify V4 signatures: its authentication
// middleware checks that the access key exists, that x-amz-content-sha256
// is present and the clock skew, and then accepts any V4 signature ("V4
// signatures have incomplete support"); it has no option to do more. So
// this script puts a verifier in front of it that recomputes each
// signature with aws4 (github.com/mhart/aws4, a SigV4 implementation
// independent of the Go SDK the client signs with) from the request as it
// arrived, and answers as S3 does:
//
//   - no Authorization header: 403 AccessDenied (the bucket is private);
//   - an unknown access key: 403 InvalidAccessKeyId;
//   - X-Amz-Date more than 15 minutes from the server's clock: 403
//     RequestTimeTooSkewed (with the server's Date header);
//   - a malformed header, a scope not for s3 or another day: 400
//     AuthorizationHeaderMalformed;
//   - an x-amz-* header that is not signed: 403 AccessDenied;
//   - another signature: 403 SignatureDoesNotMatch (with the canonical
//     request and string to sign the verifier computed);
//   - a body whose SHA-256 is not x-amz-content-sha256: 400
//     XAmzContentSHA256Mismatch; UNSIGNED-PAYLOAD is accepted (over plain
//     http too) without looking at the body.
//
// Usage: node server.js CONFIG.json, where CONFIG holds port, directory,
// bucket, eventLog and keys ({accessKeyId: secret}). Every request
// appends one JSON line to eventLog before its response is sent.

const crypto = require('crypto');
const fs = require('fs');
const { PassThrough } = require('stream');
const aws4 = require('aws4');
const S3rver = require('s3rver');
const S3Error = require('s3rver/lib/models/error');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const maxSkewMillis = 15 * 60 * 1000;
const maxBody = 64 << 20;
const readyPath = '/_anyauth_ready';

function s3Error(code, message, status, detail) {
  const err = new S3Error(code, message, detail || {});
  if (status) err.status = status;
  return err;
}

// amzDate parses "YYYYMMDDTHHMMSSZ".
function amzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
function parseAuthorization(h) {
  const sp = h.indexOf(' ');
  if (sp < 0 || h.slice(0, sp) !== 'AWS4-HMAC-SHA256') return null;
  const parts = {};
  for (const p of h.slice(sp + 1).split(',')) {
    const eq = p.indexOf('=');
    if (eq < 0) return null;
    parts[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  if (!parts.Credential || !parts.SignedHeaders || !parts.Signature) return null;
  const scope = parts.Credential.split('/');
  if (scope.length !== 5) return null;
  return {
    accessKeyId: scope[0],
    date: scope[1],
    region: scope[2],
    service: scope[3],
    terminator: scope[4],
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', c => {
      n += c.length;
      if (n > maxBody) {
        reject(s3Error('EntityTooLarge', 'the verifier buffers at most 64 MiB', 400));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// replaceBody hands s3rver a stream of buf in place of the request, which
// the verifier has read.
function replaceBody(ctx, buf) {
  const orig = ctx.req;
  const pt = new PassThrough();
  for (const k of ['headers', 'rawHeaders', 'url', 'method', 'httpVersion', 'socket', 'connection', 'baseUrl', 'trailers']) {
    pt[k] = orig[k];
  }
  pt.end(buf);
  ctx.req = pt;
  ctx.request.req = pt;
}

async function verify(ctx, ev) {
  const h = ctx.req.headers;
  if (!h.authorization) {
    if ('x-amz-algorithm' in ctx.query || 'X-Amz-Algorithm' in ctx.query) {
      throw s3Error('NotImplemented', 'the verifier checks Authorization headers only, not presigned URLs');
    }
    throw s3Error('AccessDenied', 'Access Denied');
  }
  const a = parseAuthorization(h.authorization);
  if (!a) {
    throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed.');
  }
  ev.accessKeyId = a.accessKeyId;
  ev.signedHeaders = a.signedHeaders.join(';');
  const secret = Object.prototype.hasOwnProperty.call(config.keys, a.accessKeyId) ? config.keys[a.accessKeyId] : undefined;
  if (secret === undefined) {
    throw s3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', 0, { AWSAccessKeyId: a.accessKeyId });
  }
  const date = h['x-amz-date'];
  ev.amzDate = date;
  const t = amzDate(date);
  if (isNaN(t)) {
    throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  const now = Date.now();
  if (Math.abs(now - t) > maxSkewMillis) {
    throw s3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', 0, {
      RequestTime: date,
      ServerTime: new Date(now).toISOString().replace(/\.\d+/, ''),
      MaxAllowedSkewMilliseconds: maxSkewMillis,
    });
  }
  if (a.terminator !== 'aws4_request' || a.service !== 's3' || a.date !== date.slice(0, 8)) {
    throw s3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; the Credential scope ${a.date}/${a.region}/${a.service}/${a.terminator} is not ${date.slice(0, 8)}/REGION/s3/aws4_request.`);
  }
  const signed = new Set(a.signedHeaders);
  for (const name of ['host', 'x-amz-date', 'x-amz-content-sha256']) {
    if (!signed.has(name)) {
      throw s3Error('AccessDenied', `The header ${name} must be signed.`);
    }
  }
  for (const name of Object.keys(h)) {
    if (name.startsWith('x-amz-') && !signed.has(name)) {
      throw s3Error('AccessDenied', 'There were headers present in the request which were not signed', 0, { HeadersNotSigned: name });
    }
  }
  const headers = {};
  for (const name of a.signedHeaders) {
    if (!(name in h)) {
      throw s3Error('AccessDenied', `The signed header ${name} is not in the request.`);
    }
    headers[name] = h[name];
  }
  const signer = new aws4.RequestSigner({
    host: h.host,
    method: ctx.req.method,
    path: ctx.req.url,
    headers,
    service: a.service,
    region: a.region,
    doNotModifyHeaders: true,
  }, { accessKeyId: a.accessKeyId, secretAccessKey: secret });
  // aws4 takes the time from a Date header, or its own clock: the
  // signature's time is X-Amz-Date.
  signer.datetime = date;
  const computed = signer.signature();
  if (signer.signedHeaders() !== a.signedHeaders.slice().sort().join(';')) {
    throw s3Error('NotImplemented', `the verifier would sign ${signer.signedHeaders()}, not ${a.signedHeaders.join(';')}`);
  }
  if (a.signature !== computed) {
    throw s3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', 0, {
      AWSAccessKeyId: a.accessKeyId,
      StringToSign: signer.stringToSign(),
      CanonicalRequest: signer.canonicalString(),
    });
  }
  ev.verified = true;
  const payload = h['x-amz-content-sha256'];
  if (payload === 'UNSIGNED-PAYLOAD') {
    ev.payload = 'unsigned';
    return;
  }
  if (!/^[0-9a-f]{64}$/.test(payload)) {
    throw s3Error('NotImplemented', `x-amz-content-sha256 ${payload} is not supported by the verifier`);
  }
  ev.payload = 'signed';
  const body = await readBody(ctx.req);
  const sum = crypto.createHash('sha256').update(body).digest('hex');
  if (sum !== payload) {
    throw s3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", 400, {
      ClientComputedContentSHA256: payload,
      S3ComputedContentSHA256: sum,
    });
  }
  ev.bodyLength = body.length;
  replaceBody(ctx, body);
}

const app = new S3rver({
  address: '127.0.0.1',
  port: config.port,
  silent: true,
  directory: config.directory,
  vhostBuckets: false,
  configureBuckets: [{ name: config.bucket, configs: [] }],
});

// The verifier runs right after s3rver's request logger, before its XML
// encoder and router; the errors it throws are rendered by s3rver's
// onerror as S3's XML errors.
app.middleware.splice(1, 0, async function verifier(ctx, next) {
  if (ctx.path === readyPath) {
    ctx.body = config.directory + '\n';
    return;
  }
  const ev = {
    method: ctx.method,
    url: ctx.url,
    amzDate: ctx.get('x-amz-date'),
    contentSha256: ctx.get('x-amz-content-sha256'),
    transferEncoding: ctx.get('transfer-encoding'),
    via: ctx.get('via'),
    verified: false,
  };
  try {
    await verify(ctx, ev);
    await next();
    ev.status = ctx.status;
  } catch (err) {
    ev.status = err.status || 500;
    ev.code = err.code || String(err);
    throw err;
  } finally {
    fs.appendFileSync(config.eventLog, JSON.stringify(ev) + '\n');
  }
});

app.run().then(
  addr => process.stdout.write(`listening on ${addr.address}:${addr.port}\n`),
  err => {
    process.stderr.write(`s3rver: ${err.stack || err}\n`);
    process.exit(1);
  },
);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
