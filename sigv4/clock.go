package sigv4

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
	"sync"
	"time"
)

// This file keeps the clock offset of each origin, following the SDK's
// clock skew correction: the offset is the server's Date minus the local
// clock when its response came, from every response that can be trusted
// for it.

// skewThreshold is how far the offset a request was signed with must be
// from the one its refusal tells for the refusal to be taken as the
// clock's fault (the SDK's threshold).
const skewThreshold = 4 * time.Minute

// clocks holds the offsets, by origin.
type clocks struct {
	mu sync.Mutex
	m  map[string]time.Duration
}

func (c *clocks) offset(origin string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[origin]
}

func (c *clocks) set(origin string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]time.Duration)
	}
	c.m[origin] = d
}

// candidateSkew is what resp tells of the server's clock: its Date minus
// receivedAt, and false when it tells nothing that can be trusted (no
// Date or an unreadable one; an Age header, which says a cache answered;
// a round trip longer than MaxClockSkew).
func candidateSkew(resp *http.Response, sentAt, receivedAt time.Time) (time.Duration, bool) {
	if resp == nil || resp.Header.Get("Age") != "" {
		return 0, false
	}
	date := resp.Header.Get("Date")
	if date == "" {
		return 0, false
	}
	server, err := http.ParseTime(date)
	if err != nil {
		return 0, false
	}
	if receivedAt.Sub(sentAt) > MaxClockSkew {
		return 0, false
	}
	return server.Sub(receivedAt), true
}

// Error codes of refusals that may be the clock's fault: definitely (the
// server said so) or possibly (a signature refused, which a skewed clock
// also causes on some services). The SDK retries both when the offset
// moved by more than skewThreshold.
var (
	definiteSkewCodes = map[string]bool{"RequestTimeTooSkewed": true, "RequestExpired": true, "RequestInTheFuture": true}
	possibleSkewCodes = map[string]bool{"InvalidSignatureException": true, "SignatureDoesNotMatch": true, "AuthFailure": true}
)

// maxErrorPeek is how much of a refusal's body is read for its error code.
const maxErrorPeek = 4 << 10

// errorCode reads the AWS error code of a refusal: the x-amzn-ErrorType
// header (JSON protocols), else <Code> of an XML error (S3, query
// protocols), else the __type or code of a JSON one.
func errorCode(resp *http.Response, body []byte) string {
	if t := resp.Header.Get("X-Amzn-Errortype"); t != "" {
		return trimErrorType(t)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	if body[0] == '{' {
		var j struct {
			Type string `json:"__type"`
			Code string `json:"code"`
		}
		if json.Unmarshal(body, &j) == nil {
			if j.Type != "" {
				return trimErrorType(j.Type)
			}
			return j.Code
		}
		return ""
	}
	// <Error><Code>..</Code></Error> (S3) or
	// <ErrorResponse><Error><Code>..</Code></Error></ErrorResponse>.
	d := xml.NewDecoder(bytes.NewReader(body))
	inCode := false
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			inCode = t.Name.Local == "Code"
		case xml.CharData:
			if inCode {
				return string(bytes.TrimSpace(t))
			}
		case xml.EndElement:
			inCode = false
		}
	}
}

// trimErrorType keeps the code of "Code:http://..." and
// "aws.protocoltests#Code".
func trimErrorType(t string) string {
	t, _, _ = strings.Cut(t, ":")
	if i := strings.LastIndexByte(t, '#'); i >= 0 {
		t = t[i+1:]
	}
	return t
}
