package schemes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// TokenClient returns an HTTP client for token requests of d's key: each
// request gets a fresh proof (without ath), with the token endpoint's
// last nonce; a 400 (or 401) with error use_dpop_nonce and a DPoP-Nonce
// header other than the one sent is sent again with that nonce (RFC 9449
// §8), up to three times. Give it to a
// golang.org/x/oauth2 flow through the context:
//
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, d.TokenClient(nil))
//	tok, err := cfg.Exchange(ctx, code) // a DPoP-bound token
//
// base carries the requests; nil means http.DefaultTransport.
func (d *DPoP) TokenClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &dpopTokenTransport{d: d, base: base}}
}

// dpopTokenTransport adds proofs to token requests.
type dpopTokenTransport struct {
	d    *DPoP
	base http.RoundTripper
}

// maxTokenError bounds the error body read to look for use_dpop_nonce.
const maxTokenError = 64 << 10

// RoundTrip sends req with a proof, and again with the server's nonce
// when it asks for one other than the one just sent (up to maxNonceAsks
// times) and req's body can be read again.
func (t *dpopTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.d.init(); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	origin := originOfURL(req.URL)
	nonce := t.d.nonce(origin)
	r := req.Clone(req.Context())
	for asks := 0; ; asks++ {
		proof, err := t.d.key.proof(r.Method, r.URL, "", nonce)
		if err != nil {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, err
		}
		r.Header.Set("DPoP", proof)
		resp, err := t.base.RoundTrip(r)
		t.d.noteNonce(origin, resp)
		if err != nil || asks == maxNonceAsks || req.GetBody == nil ||
			(resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized) {
			return resp, err
		}
		asked := resp.Header.Get("DPoP-Nonce")
		if !validNonce(asked) || asked == nonce {
			return resp, nil
		}
		if ok, err := asksForNonce(resp); err != nil || !ok {
			return resp, err
		}
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("dpop: replaying the token request with the server's nonce: %w", err)
		}
		nonce = asked
		r = req.Clone(req.Context())
		r.Body = body
	}
}

// asksForNonce reports whether resp says use_dpop_nonce, in its
// WWW-Authenticate or its JSON error body. It reads the body and, when
// the answer is no, puts back what it read; when yes, it closes it.
func asksForNonce(resp *http.Response) (bool, error) {
	for _, c := range anyauth.ParseChallenges(resp.Header.Values("WWW-Authenticate")...) {
		if strings.EqualFold(c.Scheme, "DPoP") && c.Param("error") == "use_dpop_nonce" {
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxTokenError))
			resp.Body.Close()
			return true, nil
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenError))
	if err != nil {
		resp.Body.Close()
		return false, fmt.Errorf("dpop: reading the token endpoint's error: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error == "use_dpop_nonce" {
		resp.Body.Close()
		return true, nil
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
	return false, nil
}
