package sigv4

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// The Signer against the fake S3 (s3rver behind a verifier that
// recomputes every signature with aws4, see internal/testserver/s3rver):
// objects from a file and from a stream, read back, listed; a wrong
// secret; a skewed clock; and through Squid's Basic port.

const mib = 1 << 20

// s3Transport is a Transport that signs for s's origin, sending through a
// counting base without a proxy.
func s3Transport(t *testing.T, s *testserver.S3rver, sig *Signer) (*anyauth.Transport, *counting, *logBuffer) {
	base := &http.Transport{Proxy: nil}
	t.Cleanup(base.CloseIdleConnections)
	c := &counting{rt: base}
	log, buf := newLog(t)
	return &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{sig}, Logger: log}, c, buf
}

func s3Signer(s *testserver.S3rver, secret string) *Signer {
	return New(testserver.S3rverRegion, "s3", StaticCredentials(testserver.S3rverAccessKeyID, secret, ""), s.URL)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// objectURL is the URL of key in the bucket, each segment escaped.
func objectURL(s *testserver.S3rver, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return s.URL + "/" + testserver.S3rverBucket + "/" + strings.Join(segs, "/")
}

// do sends req through tr and returns the status and body.
func do(t *testing.T, tr http.RoundTripper, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, readAll(t, resp)
}

func mustNewRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// oneTrip checks that the last request cost one round trip, answered want.
func oneTrip(t *testing.T, c *counting, want int) trip {
	t.Helper()
	trips := c.take()
	if len(trips) != 1 || trips[0].status != want {
		t.Fatalf("round trips %+v, want 1 answered %d", trips, want)
	}
	if !strings.HasPrefix(trips[0].auth, Name+" Credential="+testserver.S3rverAccessKeyID+"/") {
		t.Fatalf("round trip not signed: Authorization %q", trips[0].auth)
	}
	return trips[0]
}

// lastEvent checks that the fake S3 saw exactly one request since n, and
// returns it.
func lastEvent(t *testing.T, s *testserver.S3rver, n int) testserver.S3rverEvent {
	t.Helper()
	ev := events(s, n)
	if len(ev) != 1 {
		t.Fatalf("the fake S3 saw %d requests, want 1: %+v", len(ev), ev)
	}
	return ev[0]
}

type listResult struct {
	KeyCount int `xml:"KeyCount"`
	Contents []struct {
		Key  string `xml:"Key"`
		Size int64  `xml:"Size"`
	} `xml:"Contents"`
	CommonPrefixes []struct {
		Prefix string `xml:"Prefix"`
	} `xml:"CommonPrefixes"`
}

// TestS3rverObjects: a 1 MiB object PUT from a file (seekable, its
// SHA-256 signed and checked by the server), another from a stream
// (io.Pipe, UNSIGNED-PAYLOAD, chunked), a small one under a key that needs
// escaping, each read back; then ListObjectsV2 with query parameters that
// need encoding. Every request costs one round trip.
func TestS3rverObjects(t *testing.T) {
	s := s3rver(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("objects-%d/", time.Now().UnixNano())

	signed := s3Signer(s, testserver.S3rverSecretAccessKey)
	tr, c, logs := s3Transport(t, s, signed)

	// From a file: the Transport replays it by seeking, and the hash is
	// read through the round trip's GetBody (ReadAt).
	fileData := randomBytes(t, mib)
	path := filepath.Join(dir, "file.bin")
	if err := os.WriteFile(path, fileData, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	req := mustNewRequest(t, http.MethodPut, objectURL(s, prefix+"file.bin"), f)
	req.ContentLength = mib
	n := len(s.Events())
	if code, body := do(t, tr, req); code != http.StatusOK {
		t.Fatalf("PUT from a file: %d %s", code, body)
	}
	oneTrip(t, c, http.StatusOK)
	ev := lastEvent(t, s, n)
	if !ev.Verified || ev.Payload != "signed" || ev.BodyLength != mib || !strings.Contains(ev.SignedHeaders, "content-length") {
		t.Fatalf("PUT from a file: the server saw %+v, want a verified signature over the hash of 1 MiB and its length", ev)
	}

	// From a stream, with UNSIGNED-PAYLOAD: the body is not read before
	// it is sent.
	unsigned := s3Signer(s, testserver.S3rverSecretAccessKey)
	unsigned.Payload = PayloadUnsigned
	utr, uc, _ := s3Transport(t, s, unsigned)
	streamData := randomBytes(t, mib)
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(streamData); off += 100_000 {
			if _, err := pw.Write(streamData[off:min(off+100_000, len(streamData))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req = mustNewRequest(t, http.MethodPut, objectURL(s, prefix+"stream.bin"), pr)
	n = len(s.Events())
	if code, body := do(t, utr, req); code != http.StatusOK {
		t.Fatalf("PUT from a stream: %d %s", code, body)
	}
	if tp := oneTrip(t, uc, http.StatusOK); tp.contentSHA256 != UnsignedPayload {
		t.Fatalf("X-Amz-Content-Sha256 %q, want %s", tp.contentSHA256, UnsignedPayload)
	}
	if ev := lastEvent(t, s, n); !ev.Verified || ev.Payload != "unsigned" || ev.TransferEncoding != "chunked" {
		t.Fatalf("PUT from a stream: the server saw %+v, want a verified UNSIGNED-PAYLOAD signature of a chunked body", ev)
	}

	// A key whose path needs escaping, from a bytes.Reader (GetBody).
	oddKey := prefix + "odd dir/a b+c=d~ü.txt"
	oddData := []byte("hello, odd key\n")
	req = mustNewRequest(t, http.MethodPut, objectURL(s, oddKey), bytes.NewReader(oddData))
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("X-Amz-Meta-Note", "signed  metadata")
	if code, body := do(t, tr, req); code != http.StatusOK {
		t.Fatalf("PUT %q: %d %s", oddKey, code, body)
	}
	oneTrip(t, c, http.StatusOK)

	for key, want := range map[string][]byte{prefix + "file.bin": fileData, prefix + "stream.bin": streamData, oddKey: oddData} {
		code, body := do(t, tr, mustNewRequest(t, http.MethodGet, objectURL(s, key), nil))
		if code != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("GET %q: %d, %d bytes, equal %t", key, code, len(body), bytes.Equal(body, want))
		}
		oneTrip(t, c, http.StatusOK)
	}

	// ListObjectsV2: every query parameter is signed.
	q := url.Values{"list-type": {"2"}, "prefix": {prefix}, "delimiter": {"/"}, "max-keys": {"10"}}
	code, body := do(t, tr, mustNewRequest(t, http.MethodGet, s.URL+"/"+testserver.S3rverBucket+"?"+q.Encode(), nil))
	if code != http.StatusOK {
		t.Fatalf("ListObjectsV2: %d %s", code, body)
	}
	oneTrip(t, c, http.StatusOK)
	var list listResult
	if err := xml.Unmarshal(body, &list); err != nil {
		t.Fatalf("ListObjectsV2: %v\n%s", err, body)
	}
	keys := map[string]int64{}
	for _, o := range list.Contents {
		keys[o.Key] = o.Size
	}
	if keys[prefix+"file.bin"] != mib || keys[prefix+"stream.bin"] != mib || len(list.CommonPrefixes) != 1 || list.CommonPrefixes[0].Prefix != prefix+"odd dir/" {
		t.Fatalf("ListObjectsV2 listed %v and prefixes %+v", keys, list.CommonPrefixes)
	}
	// A prefix with a space and a '+': the query must be signed in the
	// form it is sent in.
	q = url.Values{"list-type": {"2"}, "prefix": {prefix + "odd dir/a b+"}}
	code, body = do(t, tr, mustNewRequest(t, http.MethodGet, s.URL+"/"+testserver.S3rverBucket+"?"+q.Encode(), nil))
	var odd listResult
	if code != http.StatusOK || xml.Unmarshal(body, &odd) != nil || odd.KeyCount != 1 || odd.Contents[0].Key != oddKey {
		t.Fatalf("ListObjectsV2 by an odd prefix: %d %s", code, body)
	}
	oneTrip(t, c, http.StatusOK)

	if strings.Contains(logs.String(), testserver.S3rverSecretAccessKey+"\"") {
		t.Fatal("the secret key is in the log")
	}
}

// TestS3rverWrongSecret: a wrong secret key is refused with 403
// SignatureDoesNotMatch in one round trip: the Transport does not loop,
// and the secret is in no log or error.
func TestS3rverWrongSecret(t *testing.T) {
	s := s3rver(t)
	const secret = "wrong-secret-0123456789"
	tr, c, logs := s3Transport(t, s, s3Signer(s, secret))
	n := len(s.Events())
	code, body := do(t, tr, mustNewRequest(t, http.MethodGet, s.URL+"/"+testserver.S3rverBucket+"?list-type=2", nil))
	if code != http.StatusForbidden || !bytes.Contains(body, []byte("<Code>SignatureDoesNotMatch</Code>")) {
		t.Fatalf("got %d %s, want 403 SignatureDoesNotMatch", code, body)
	}
	oneTrip(t, c, http.StatusForbidden)
	if ev := lastEvent(t, s, n); ev.Verified || ev.Code != "SignatureDoesNotMatch" {
		t.Fatalf("the server saw %+v", ev)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the secret key is in the log")
	}
}

// TestS3rverAutoPayload: PayloadAuto over plain http signs the hash of a
// stream that fits Transport.MaxBodyBuffer (read once, into the replay
// buffer), and refuses one that does not, before anything is sent.
func TestS3rverAutoPayload(t *testing.T) {
	s := s3rver(t)
	tr, c, _ := s3Transport(t, s, s3Signer(s, testserver.S3rverSecretAccessKey))
	tr.MaxBodyBuffer = 64 << 10
	key := fmt.Sprintf("auto-%d", time.Now().UnixNano())

	small := randomBytes(t, 48<<10)
	n := len(s.Events())
	req := mustNewRequest(t, http.MethodPut, objectURL(s, key), io.MultiReader(bytes.NewReader(small))) // neither GetBody nor Seek
	if code, body := do(t, tr, req); code != http.StatusOK {
		t.Fatalf("PUT a small stream: %d %s", code, body)
	}
	oneTrip(t, c, http.StatusOK)
	if ev := lastEvent(t, s, n); !ev.Verified || ev.Payload != "signed" || ev.BodyLength != int64(len(small)) {
		t.Fatalf("the server saw %+v, want the hash of the stream signed", ev)
	}

	large := randomBytes(t, 256<<10)
	req = mustNewRequest(t, http.MethodPut, objectURL(s, key+"-large"), io.MultiReader(bytes.NewReader(large)))
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("PUT a large stream over http with PayloadAuto: %s, want an error", resp.Status)
	}
	if !errors.Is(err, anyauth.ErrBodyNotReplayable) || !strings.Contains(err.Error(), "sigv4:") {
		t.Fatalf("error %v, want a sigv4 error wrapping ErrBodyNotReplayable", err)
	}
	if trips := c.take(); len(trips) != 0 {
		t.Fatalf("round trips %+v, want none", trips)
	}
}

// TestS3rverClockSkew: a Signer whose clock is 20 minutes behind is
// refused with RequestTimeTooSkewed; the Transport shows the refusal to the
// Leg (anyauth.RetryingLeg), which takes the server's clock from its Date
// and asks for the request again: one request, two round trips, 200. The
// next request is signed on the server's clock from the start.
func TestS3rverClockSkew(t *testing.T) {
	s := s3rver(t)
	sig := s3Signer(s, testserver.S3rverSecretAccessKey)
	sig.now = func() time.Time { return time.Now().Add(-20 * time.Minute) }
	tr, c, _ := s3Transport(t, s, sig)
	// Not truncated: s3rver 3.7.1 makes continuation tokens with
	// crypto.createCipher, which node 17 and later refuse (a 500).
	list := s.URL + "/" + testserver.S3rverBucket + "?list-type=2&prefix=skew-none/"

	code, body := do(t, tr, mustNewRequest(t, http.MethodGet, list, nil))
	if code != http.StatusOK {
		t.Fatalf("got %d %s, want 200 after one retry", code, body)
	}
	trips := c.take()
	if len(trips) != 2 || trips[0].status != http.StatusForbidden || trips[1].status != http.StatusOK {
		t.Fatalf("round trips %+v, want 403 then 200", trips)
	}
	if off := sig.ClockOffset(s.URL); off < 19*time.Minute || off > 21*time.Minute {
		t.Fatalf("clock offset %v, want about 20m", off)
	}
	code, body = do(t, tr, mustNewRequest(t, http.MethodGet, list, nil))
	if code != http.StatusOK {
		t.Fatalf("second request: %d %s", code, body)
	}
	tp := oneTrip(t, c, http.StatusOK)
	signedAt, err := time.Parse("20060102T150405Z", tp.date)
	if err != nil || time.Since(signedAt).Abs() > time.Minute {
		t.Fatalf("signed at %q (%v), want the server's time", tp.date, err)
	}

	// A wrong secret is not retried: the clock was right.
	wtr, wc, _ := s3Transport(t, s, s3Signer(s, "wrong"))
	if code, _ := do(t, wtr, mustNewRequest(t, http.MethodGet, list, nil)); code != http.StatusForbidden {
		t.Fatalf("wrong secret: %d", code)
	}
	oneTrip(t, wc, http.StatusForbidden)
}

var _ anyauth.RetryingLeg = (*leg)(nil)

// TestS3rverThroughSquid: plain-http requests to the fake S3 through
// Squid's Basic port, on a fresh Transport each (so that the proxy
// challenges the first request). The first request is answered 407 by the
// proxy, then sent again with Basic proxy credentials and a new signature
// (another X-Amz-Date: the test's clock moves a second per reading); the
// fake S3 sees only that one, and accepts it. The proxy's space is then
// remembered, so the next request costs one round trip.
//
// Both bodies go with the first request as they are. Squid may answer a
// 1 MiB one 407 and close while it is still being written; the write
// then fails (reset, broken pipe) before net/http reads the 407, and the
// Transport sends the request again with "Expect: 100-continue": such a
// lost round trip is counted apart, and signed like the others.
func TestS3rverThroughSquid(t *testing.T) {
	s, sq := s3rver(t), squid(t)
	for _, size := range []int{16 << 10, mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			sig := s3Signer(s, testserver.S3rverSecretAccessKey)
			var ticks atomic.Int64
			start := time.Now()
			sig.now = func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Second) }
			proxy := sq.URL(testserver.SquidBasic, nil)
			base := &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true, ExpectContinueTimeout: 5 * time.Second}
			t.Cleanup(base.CloseIdleConnections)
			c := &counting{rt: base}
			log, _ := newLog(t)
			tr := &anyauth.Transport{
				Base:             c,
				Proxy:            http.ProxyURL(proxy),
				Schemes:          []anyauth.Scheme{schemes.Basic{}, sig},
				ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.User, testserver.Password),
				Logger:           log,
			}
			data := randomBytes(t, size)
			key := fmt.Sprintf("squid-%d-%d.bin", size, time.Now().UnixNano())
			squidBefore, squid407Before := sq.Count(testserver.SquidBasic, http.MethodPut)
			n := len(s.Events())

			req := mustNewRequest(t, http.MethodPut, objectURL(s, key), bytes.NewReader(data))
			if code, body := do(t, tr, req); code != http.StatusOK {
				t.Fatalf("PUT through Squid: %d %s", code, body)
			}
			trips, resets := c.take(), 0
			for len(trips) > 2 && trips[0].status == 0 && resets < 1 {
				if !strings.HasPrefix(trips[0].auth, Name+" ") {
					t.Fatalf("the round trip the proxy reset was not signed: %+v", trips[0])
				}
				trips, resets = trips[1:], resets+1
			}
			t.Logf("PUT of %d bytes: %d round trips lost to a reset while the body was written", size, resets)
			if len(trips) != 2 || trips[0].status != http.StatusProxyAuthRequired || trips[1].status != http.StatusOK {
				t.Fatalf("round trips %+v, want 407 then 200", trips)
			}
			for _, tp := range trips {
				if !strings.HasPrefix(tp.auth, Name+" ") || tp.date == "" {
					t.Fatalf("round trip not signed: %+v", tp)
				}
			}
			if trips[0].date == trips[1].date || trips[0].auth == trips[1].auth {
				t.Fatalf("the replay after the 407 was not signed again: X-Amz-Date %s and %s", trips[0].date, trips[1].date)
			}
			ev := lastEvent(t, s, n)
			if !ev.Verified || ev.Payload != "signed" || ev.BodyLength != int64(size) || ev.AmzDate != trips[1].date || ev.Via == "" {
				t.Fatalf("the fake S3 saw %+v, want the replay (X-Amz-Date %s) through Squid, verified", ev, trips[1].date)
			}
			total, refused := sq.Count(testserver.SquidBasic, http.MethodPut)
			if total-squidBefore != 2+resets || refused-squid407Before != 1+resets {
				t.Fatalf("Squid logged %d PUTs (%d refused 407), want %d (%d)", total-squidBefore, refused-squid407Before, 2+resets, 1+resets)
			}

			code, body := do(t, tr, mustNewRequest(t, http.MethodGet, objectURL(s, key), nil))
			if code != http.StatusOK || !bytes.Equal(body, data) {
				t.Fatalf("GET through Squid: %d, %d bytes", code, len(body))
			}
			if trips := c.take(); len(trips) != 1 || trips[0].status != http.StatusOK {
				t.Fatalf("round trips %+v, want one 200 (the proxy's space is remembered)", trips)
			}
		})
	}
}
