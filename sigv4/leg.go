package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/anyauth/anyauth"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// session is a Signer's Session for one origin. It holds nothing per
// request but the origin whose clock offset it keeps.
type session struct {
	s      *Signer
	origin string
	header string // Authorization
	log    *slog.Logger
}

// Start returns the request's Leg, or the Signer's configuration error:
// a Signer that cannot sign fails the request rather than send it
// unsigned.
func (ss *session) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	if err := ss.s.check(); err != nil {
		return nil, err
	}
	return &leg{ss: ss}, nil
}

// String describes the session without secrets.
func (ss *session) String() string {
	return fmt.Sprintf("sigv4 session for %s, %s/%s (secret REDACTED)", ss.origin, ss.s.Region, ss.s.Service)
}

// Format prints String whatever the verb.
func (ss *session) Format(f fmt.State, _ rune) { io.WriteString(f, ss.String()) }

// leg signs one request, anew on every round trip.
type leg struct {
	ss *session
	// hash is the body's X-Amz-Content-Sha256, once computed: every
	// round trip of the request sends the same body.
	hash string
	// sentAt is the local time the last round trip was signed at, and
	// offset the clock offset it was signed with.
	sentAt time.Time
	offset time.Duration
	// retried is set once the request was sent again after a refusal
	// that a skewed clock explains.
	retried bool
}

// hopByHop are the headers a proxy may remove or change: they are never
// signed.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Authenticate": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// Headers that Apply sets: X-Amz-Date always, X-Amz-Content-Sha256 unless
// the caller set it, X-Amz-Security-Token when the credentials hold a
// session token.
const (
	hdrDate          = "X-Amz-Date"
	hdrSecurityToken = "X-Amz-Security-Token"
	hdrContentSHA256 = "X-Amz-Content-Sha256"
)

// Apply signs req for this round trip: the payload hash (computed once per
// request), a fresh X-Amz-Date on the origin's clock, and the
// Authorization header.
func (l *leg) Apply(req *http.Request) error {
	s := l.ss.s
	ctx := req.Context()
	creds, err := s.st.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("sigv4: retrieving credentials: %w", err)
	}
	if !creds.HasKeys() {
		return fmt.Errorf("sigv4: %w: the credentials provider gave no access key", anyauth.ErrNoCredentials)
	}
	hash, err := l.payloadHash(req)
	if err != nil {
		return err
	}
	if _, err := url.ParseQuery(req.URL.RawQuery); err != nil {
		// The SDK would sign (and send) what it could parse, dropping
		// the rest.
		return fmt.Errorf("sigv4: the query of %s %s cannot be signed as it is: %w", req.Method, req.URL.EscapedPath(), err)
	}

	// Sign a copy that holds only what may be signed, and take from it
	// what the signature needs the request to carry.
	c := *req
	u := *req.URL
	c.URL = &u
	escapeOnce := s.Service == "s3" || s.escapeOnce
	if escapeOnce && u.Opaque == "" {
		// S3 signs the path as UriEncode of each segment; send it so.
		if err := s3Path(&u); err != nil {
			return fmt.Errorf("sigv4: the path of %s %s cannot be signed: %w", req.Method, req.URL.EscapedPath(), err)
		}
	}
	c.Header = signable(req.Header)
	if !s.omitContentSHA256 {
		c.Header[hdrContentSHA256] = []string{hash}
	}
	now := s.clock()
	l.offset = 0
	if !s.DisableClockSkewCorrection {
		l.offset = s.st.clocks.offset(l.ss.origin)
	}
	l.sentAt = now
	err = s.st.signer.SignHTTP(ctx, creds, &c, hash, s.Service, s.Region, now.Add(l.offset), func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = escapeOnce
	})
	if err != nil {
		return fmt.Errorf("sigv4: signing %s %s: %w", req.Method, req.URL.EscapedPath(), err)
	}
	for _, k := range []string{hdrDate, hdrSecurityToken, hdrContentSHA256} {
		if v, ok := c.Header[k]; ok {
			req.Header[k] = v
		}
	}
	req.Header[l.ss.header] = c.Header["Authorization"]
	req.URL.RawQuery = c.URL.RawQuery
	req.URL.Path, req.URL.RawPath = c.URL.Path, c.URL.RawPath
	req.Host = c.Host
	return nil
}

// signable returns the headers of h that are signed: all but the
// hop-by-hop ones and those Connection names, Authorization and
// X-Amz-Date, which the signature sets. A caller's X-Amz-Security-Token
// is signed as it is (curl's way of passing a session token) unless the
// credentials hold one, which replaces it.
func signable(h http.Header) http.Header {
	out := make(http.Header, len(h)+3)
	var named map[string]bool
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if named == nil {
					named = make(map[string]bool)
				}
				named[textproto.CanonicalMIMEHeaderKey(f)] = true
			}
		}
	}
	for k, v := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case hopByHop[ck], named[ck], ck == "Authorization", ck == hdrDate:
			continue
		}
		out[ck] = append(out[ck], v...)
	}
	return out
}

// payloadHash returns the request's X-Amz-Content-Sha256: the caller's,
// the hash of no body, UNSIGNED-PAYLOAD, or the body's SHA-256 read through
// req.GetBody.
func (l *leg) payloadHash(req *http.Request) (string, error) {
	if v := req.Header.Get(hdrContentSHA256); v != "" {
		return v, nil // the caller's own
	}
	if req.Body == nil || req.Body == http.NoBody {
		// Also a round trip the Transport sends without the body (a
		// proxy's handshake leg): the hash is of what is sent.
		return EmptyPayloadHash, nil
	}
	s := l.ss.s
	if s.Payload == PayloadUnsigned {
		return UnsignedPayload, nil
	}
	if l.hash != "" {
		return l.hash, nil
	}
	var why error
	if req.GetBody != nil {
		sum, err := hashBody(req.GetBody)
		if err == nil {
			l.hash = sum
			return sum, nil
		}
		if !errors.Is(err, anyauth.ErrBodyNotReplayable) {
			return "", fmt.Errorf("sigv4: hashing the body of %s %s: %w", req.Method, req.URL.EscapedPath(), err)
		}
		why = err
	} else {
		why = anyauth.ErrBodyNotReplayable
	}
	if s.Payload == PayloadAuto && strings.EqualFold(req.URL.Scheme, "https") {
		if l.ss.log != nil {
			l.ss.log.Debug("sigv4: the body cannot be read before it is sent; signing it as UNSIGNED-PAYLOAD over https",
				slog.String("method", req.Method), slog.String("path", req.URL.EscapedPath()))
		}
		l.hash = UnsignedPayload
		return UnsignedPayload, nil
	}
	return "", fmt.Errorf("sigv4: the body of %s %s cannot be read before it is sent, so its SHA-256 cannot be signed (Payload %s, %s): set Request.GetBody, use a seekable body, or sign it as UNSIGNED-PAYLOAD (Signer.Payload = PayloadUnsigned, S3 only): %w",
		req.Method, req.URL.EscapedPath(), s.Payload, req.URL.Scheme, why)
}

// hashBody returns the hex SHA-256 of a body read through getBody.
func hashBody(getBody func() (io.ReadCloser, error)) (string, error) {
	r, err := getBody()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Continue returns false: a challenge after a signature is a refusal, and
// the same signature would be refused again. The response's Date still
// tells the clock offset.
func (l *leg) Continue(_ context.Context, resp *http.Response, _ *anyauth.Challenge) (bool, error) {
	l.observe(resp)
	return false, nil
}

// Finish notes the server's clock from resp's Date header (see the
// package documentation); it accepts every response.
func (l *leg) Finish(resp *http.Response) error {
	l.observe(resp)
	return nil
}

// observe sets the origin's clock offset from resp, when resp can be
// trusted for it, and returns the offset it tells.
func (l *leg) observe(resp *http.Response) (time.Duration, bool) {
	s := l.ss.s
	if s.DisableClockSkewCorrection || l.sentAt.IsZero() {
		return 0, false
	}
	skew, ok := candidateSkew(resp, l.sentAt, s.clock())
	if !ok {
		return 0, false
	}
	skew = skew.Truncate(time.Second)
	if old := s.st.clocks.offset(l.ss.origin); old != skew {
		s.st.clocks.set(l.ss.origin, skew)
		if l.ss.log != nil && (skew-old > time.Minute || old-skew > time.Minute) {
			l.ss.log.Info("sigv4: the server's clock differs from the local one; signing on the server's",
				slog.String("origin", l.ss.origin), slog.Duration("offset", skew))
		}
	}
	return skew, true
}

// RetryAfterResponse is the hook for a Transport that lets a Leg cure a
// final response that is not a challenge (the anyauth Transport calls
// Continue only for 401 and 407, so this is not called today). It reports
// whether the request should be sent again, signed anew: once per
// request, when resp is a 403 or 400 whose AWS error code says the
// signature's time was refused (RequestTimeTooSkewed, RequestExpired,
// RequestInTheFuture) or possibly so (SignatureDoesNotMatch,
// InvalidSignatureException, AuthFailure), and the clock offset its Date
// tells differs from the one the request was signed with by more than 4
// minutes (the SDK's rule). peek returns the first bytes of the body (at
// most n) and keeps them for the caller.
func (l *leg) RetryAfterResponse(_ context.Context, resp *http.Response, peek func(n int) ([]byte, error)) (bool, error) {
	if l.retried || resp == nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest) {
		l.observe(resp)
		return false, nil
	}
	used := l.offset
	skew, ok := l.observe(resp)
	if !ok || absDuration(skew-used) <= skewThreshold {
		return false, nil
	}
	var body []byte
	if peek != nil {
		body, _ = peek(maxErrorPeek)
	}
	code := errorCode(resp, body)
	if !definiteSkewCodes[code] && !possibleSkewCodes[code] {
		return false, nil
	}
	l.retried = true
	if l.ss.log != nil {
		l.ss.log.Info("sigv4: request refused for the time it was signed at; signing it again on the server's clock",
			slog.String("origin", l.ss.origin), slog.String("code", code), slog.Duration("offset", skew))
	}
	return true, nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// String describes the leg without secrets.
func (l *leg) String() string {
	return fmt.Sprintf("sigv4 leg for %s (secret REDACTED)", l.ss.origin)
}

// Format prints String whatever the verb.
func (l *leg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }

// s3Path sets u's RawPath to the form S3 signs: each segment of the path
// as sent, decoded, then percent-encoded but for the unreserved characters
// (A-Z a-z 0-9 - . _ ~), so that "$", "+", "=" and the like are sent as
// they are signed. An encoded "/" (%2F) stays within its segment.
func s3Path(u *url.URL) error {
	segs := strings.Split(u.EscapedPath(), "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return err
		}
		segs[i] = uriEncode(dec)
	}
	raw := strings.Join(segs, "/")
	path, err := url.PathUnescape(raw)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = path, raw
	return nil
}

// uriEncode is AWS's UriEncode of a path segment.
func uriEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
