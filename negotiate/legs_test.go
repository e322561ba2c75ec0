package negotiate_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	gss "github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Multi-leg and error paths that mod_auth_gssapi cannot be made to take,
// against an httptest server that decrypts the client's AP-REQ with the
// test KDC's service keytab (SPN HTTP/127.0.0.1) and answers as a
// scripted acceptor would.

// fakeAcceptor scripts a Negotiate server.
type fakeAcceptor struct {
	t  *testing.T
	kt *keytab.Keytab
	// answer decides the response to the n-th request (from 0) that
	// carried the AP-REQ whose authenticator is auth.
	answer func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter)

	mu    sync.Mutex
	n     int
	trips int
	seen  []string // tickets' ciphertexts, to tell new ones
}

func (f *fakeAcceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.trips++
	f.mu.Unlock()
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Negotiate ") {
		w.Header().Set("WWW-Authenticate", "Negotiate")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Negotiate "))
	if err != nil {
		f.t.Errorf("token: %v", err)
		return
	}
	var tok spnego.SPNEGOToken
	if err := tok.Unmarshal(raw); err != nil || !tok.Init {
		f.t.Errorf("SPNEGO: %v", err)
		return
	}
	var mt spnego.KRB5Token
	if err := mt.Unmarshal(tok.NegTokenInit.MechTokenBytes); err != nil || !mt.IsAPReq() {
		f.t.Errorf("krb5 token: %v", err)
		return
	}
	req := mt.APReq
	if err := req.Ticket.DecryptEncPart(f.kt, nil); err != nil {
		f.t.Errorf("ticket: %v", err)
		return
	}
	key := req.Ticket.DecryptedEncPart.Key
	if err := req.DecryptAuthenticator(key); err != nil {
		f.t.Errorf("authenticator: %v", err)
		return
	}
	f.mu.Lock()
	n := f.n
	f.n++
	f.seen = append(f.seen, string(req.Ticket.EncPart.Cipher))
	f.mu.Unlock()
	f.answer(n, req.Authenticator, key, w)
}

// negTokenResp returns a "Negotiate <token>" value: a NegTokenResp with
// state and a GSS-framed krb5 token (id, msg) if msg is not nil.
func negTokenResp(t *testing.T, state int, id []byte, msg []byte) string {
	t.Helper()
	r := spnego.NegTokenResp{NegState: asn1.Enumerated(state), SupportedMech: gss.OIDKRB5.OID()}
	if msg != nil {
		oid, _ := asn1.Marshal(gss.OIDKRB5.OID())
		r.ResponseToken = asn1tools.AddASNAppTag(append(append(oid, id...), msg...), 0)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b)
}

func krbError(t *testing.T, code int32, stime time.Time) []byte {
	t.Helper()
	e := messages.NewKRBError(types.NewPrincipalName(3, "HTTP/127.0.0.1"), testserver.KerberosRealm, code, "scripted")
	if !stime.IsZero() {
		e.STime, e.Susec = stime.UTC().Truncate(time.Second), stime.Nanosecond()/1000
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apRep builds the AP-REP answering auth, with cusec changed by skewUsec.
func apRep(t *testing.T, auth types.Authenticator, key types.EncryptionKey, skewUsec int) []byte {
	t.Helper()
	part := messages.EncAPRepPart{CTime: auth.CTime, Cusec: auth.Cusec + skewUsec}
	pb, err := asn1.Marshal(part)
	if err != nil {
		t.Fatal(err)
	}
	pb = asn1tools.AddASNAppTag(pb, asnAppTag.EncAPRepPart)
	ed, err := crypto.GetEncryptedData(pb, key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed}
	b, err := asn1.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return asn1tools.AddASNAppTag(b, asnAppTag.APREP)
}

var (
	idAPRep    = []byte{2, 0}
	idKRBError = []byte{3, 0}
)

func fake(t *testing.T, answer func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter)) (*fakeAcceptor, string, *testserver.KDC) {
	kdc, _ := gssapi(t)
	kt, err := keytab.Load(kdc.Keytab)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAcceptor{t: t, kt: kt, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL, kdc
}

func accept(t *testing.T, w http.ResponseWriter, auth types.Authenticator, key types.EncryptionKey, skewUsec int) {
	w.Header().Set("WWW-Authenticate", negTokenResp(t, 0, idAPRep, apRep(t, auth, key, skewUsec)))
	w.Write([]byte("ok\n"))
}

func reject(w http.ResponseWriter, value string) {
	w.Header().Set("WWW-Authenticate", value)
	w.WriteHeader(http.StatusUnauthorized)
}

func kerberos(kdc *testserver.KDC) *negotiate.Kerberos {
	return &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}
}

// TestSkew: KRB_AP_ERR_SKEW with the server's time: the retry's
// authenticator is on the server's clock.
func TestSkew(t *testing.T) {
	serverAhead := 20 * time.Minute
	f, url, kdc := fake(t, func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
		if d := auth.CTime.Sub(time.Now().Add(serverAhead)); d < -time.Minute || d > time.Minute {
			reject(w, negTokenResp(t, 2, idKRBError, krbError(t, errorcode.KRB_AP_ERR_SKEW, time.Now().Add(serverAhead))))
			return
		}
		accept(t, w, auth, key, 0)
	})
	resp, body, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
	if err != nil || resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("%v %v %q", resp, err, body)
	}
	if f.trips != 3 {
		t.Errorf("%d round trips, want 3 (challenge, skew, accepted)", f.trips)
	}
}

// TestTicketRefused: KRB_AP_ERR_TKT_EXPIRED and KRB_AP_ERR_MODIFIED drop
// the service ticket and retry once with a new one; a second refusal
// ends the request with the 401.
func TestTicketRefused(t *testing.T) {
	for _, code := range []int32{errorcode.KRB_AP_ERR_TKT_EXPIRED, errorcode.KRB_AP_ERR_MODIFIED} {
		f, url, kdc := fake(t, func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
			if n == 0 {
				reject(w, negTokenResp(t, 2, idKRBError, krbError(t, code, time.Time{})))
				return
			}
			accept(t, w, auth, key, 0)
		})
		tgs0 := kdc.TGSRequestsFor(testserver.KerberosSPNAddr)
		resp, _, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("code %d: %v %v", code, resp, err)
		}
		if tgs := kdc.TGSRequestsFor(testserver.KerberosSPNAddr) - tgs0; tgs != 2 {
			t.Errorf("code %d: %d TGS-REQs, want 2 (the refused ticket replaced)", code, tgs)
		}
		if len(f.seen) != 2 || f.seen[0] == f.seen[1] {
			t.Errorf("code %d: the retry did not carry a new ticket", code)
		}
	}
	// Always refused: one retry, then the 401 goes back.
	f, url, kdc := fake(t, func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
		reject(w, negTokenResp(t, 2, idKRBError, krbError(t, errorcode.KRB_AP_ERR_MODIFIED, time.Time{})))
	})
	resp, _, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
	if err != nil || resp.StatusCode != 401 || f.trips != 3 {
		t.Fatalf("always refused: %v %v, %d round trips (want the 401 after 3)", resp, err, f.trips)
	}
}

// TestAcceptIncomplete: a NegTokenResp accept-incomplete asks for another
// leg; a SPNEGO reject or a bare Negotiate ends the request with the 401.
func TestAcceptIncomplete(t *testing.T) {
	f, url, kdc := fake(t, func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
		if n == 0 {
			reject(w, negTokenResp(t, 1, nil, nil))
			return
		}
		accept(t, w, auth, key, 0)
	})
	resp, _, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
	if err != nil || resp.StatusCode != 200 || f.trips != 3 {
		t.Fatalf("%v %v, %d round trips, want 200 after 3", resp, err, f.trips)
	}
	for _, refusal := range []string{"Negotiate oQcwBaADCgEC", "Negotiate", "Negotiate !!!notbase64"} {
		f, url, kdc := fake(t, func(n int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
			reject(w, refusal)
		})
		resp, _, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
		if err != nil || resp.StatusCode != 401 || f.trips != 2 {
			t.Fatalf("%q: %v %v, %d round trips, want the 401 after 2", refusal, resp, err, f.trips)
		}
	}
}

// TestBadAPRep: an AP-REP for another authenticator, or garbage, on the
// 200.
func TestBadAPRep(t *testing.T) {
	for name, answer := range map[string]func(types.Authenticator, types.EncryptionKey, http.ResponseWriter){
		"other cusec": func(auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
			accept(t, w, auth, key, 1)
		},
		"garbage": func(_ types.Authenticator, _ types.EncryptionKey, w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", "Negotiate AAAA")
		},
		"KRB-ERROR": func(_ types.Authenticator, _ types.EncryptionKey, w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", negTokenResp(t, 0, idKRBError, krbError(t, errorcode.KRB_AP_ERR_MODIFIED, time.Time{})))
		},
	} {
		_, url, kdc := fake(t, func(_ int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
			answer(auth, key, w)
		})
		_, _, err := get(t, transport([]anyauth.Scheme{kerberos(kdc)}, nil), url)
		if !errors.Is(err, negotiate.ErrMutualAuth) || !anyauth.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent ErrMutualAuth", name, err)
		}
	}
}

// TestPreemptiveAfterFirstSuccess: once a Negotiate answer succeeded in a
// space, later requests carry a fresh AP-REQ from the start: 3 requests,
// 4 round trips, on every origin (Preemptive no longer matters). A
// preemptive answer the server refuses falls back to the challenge.
func TestPreemptiveAfterFirstSuccess(t *testing.T) {
	refuse := false
	f, url, kdc := fake(t, func(_ int, auth types.Authenticator, key types.EncryptionKey, w http.ResponseWriter) {
		if refuse {
			refuse = false
			w.Header().Set("WWW-Authenticate", "Negotiate")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		accept(t, w, auth, key, 0)
	})
	tr := transport([]anyauth.Scheme{kerberos(kdc)}, nil)
	for i := 0; i < 3; i++ {
		if resp, _, err := get(t, tr, url); err != nil || resp.StatusCode != 200 {
			t.Fatal(resp, err)
		}
	}
	if f.trips != 4 {
		t.Errorf("%d round trips for 3 requests, want 4", f.trips)
	}
	f.trips, refuse = 0, true
	if resp, _, err := get(t, tr, url); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	if f.trips != 2 {
		t.Errorf("a refused preemptive answer: %d round trips, want 2 (refused, then answered again)", f.trips)
	}
}
