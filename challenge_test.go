package anyauth_test

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

type vectorChallenge struct {
	Scheme  string            `json:"scheme"`
	Token68 *string           `json:"token68"`
	Params  map[string]string `json:"params"`
}

type challengeVector struct {
	Name    string   `json:"name"`
	Field   string   `json:"field"`
	Headers []string `json:"headers"`
	Expect  struct {
		Valid      bool              `json:"valid"`
		Challenges []vectorChallenge `json:"challenges"`
	} `json:"expect"`
}

// TestChallengeVectors parses every public example of RFC 9110/7235,
// 7616, 7617, 6750, 4559, 2617 and MDN in testdata/challenges.json.
func TestChallengeVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/challenges.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []challengeVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			got := anyauth.ParseChallenges(v.Headers...)
			if len(got) != len(v.Expect.Challenges) {
				t.Fatalf("got %d challenges %+v, want %d", len(got), got, len(v.Expect.Challenges))
			}
			for i, want := range v.Expect.Challenges {
				g := got[i]
				if g.Scheme != want.Scheme {
					t.Errorf("challenge %d: scheme %q, want %q", i, g.Scheme, want.Scheme)
				}
				wantT68 := ""
				if want.Token68 != nil {
					wantT68 = *want.Token68
				}
				if g.Token68 != wantT68 {
					t.Errorf("challenge %d: token68 %q, want %q", i, g.Token68, wantT68)
				}
				params := map[string]string{}
				for _, p := range g.Params {
					params[p.Name] = p.Value
				}
				if want.Params == nil {
					want.Params = map[string]string{}
				}
				if !reflect.DeepEqual(params, want.Params) {
					t.Errorf("challenge %d: params %v, want %v", i, params, want.Params)
				}
			}
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("challenge vectors: %d of %d pass", passed, len(vectors))
	if len(vectors) < 28 {
		t.Fatalf("only %d vectors loaded", len(vectors))
	}
}

// TestParseChallengesGrammar covers the rules of RFC 9110 §11 one by one,
// and the recovery from malformed input.
func TestParseChallengesGrammar(t *testing.T) {
	type ch = string // "Scheme|token68|name=value;name=value"
	tests := []struct {
		name  string
		lines []string
		want  []ch
	}{
		{"bare scheme", []string{"Negotiate"}, []ch{"Negotiate||"}},
		{"token68", []string{"Negotiate YIIB+/x=="}, []ch{"Negotiate|YIIB+/x==|"}},
		{"token68 then challenge", []string{"Negotiate abc=, Basic realm=x"}, []ch{"Negotiate|abc=|", "Basic||realm=x"}},
		{"case-insensitive names lower-cased", []string{`Basic REALM="a", Charset=UTF-8`}, []ch{"Basic||realm=a;charset=UTF-8"}},
		{"whitespace around =", []string{"Basic realm = \"a\" ,  x\t=\ty"}, []ch{"Basic||realm=a;x=y"}},
		{"empty list elements", []string{" , ,Basic realm=a,, ,Digest nonce=n,,"}, []ch{"Basic||realm=a", "Digest||nonce=n"}},
		{"escapes", []string{`Basic realm="a \"q\" \\ b"`}, []ch{`Basic||realm=a "q" \ b`}},
		{"comma inside quotes", []string{`Digest qop="auth, auth-int", realm="a,b"`}, []ch{"Digest||qop=auth, auth-int;realm=a,b"}},
		{"two lines", []string{"Basic realm=a", "Digest realm=b"}, []ch{"Basic||realm=a", "Digest||realm=b"}},
		{"empty quoted value", []string{`Basic realm=""`}, []ch{"Basic||realm="}},
		{"obs-text kept", []string{"Basic realm=\"caf\xc3\xa9\""}, []ch{"Basic||realm=caf\xc3\xa9"}},
		{"unterminated quote drops only its challenge", []string{`Basic realm=a, Digest realm="oops`}, []ch{"Basic||realm=a"}},
		{"missing comma drops the challenge", []string{`Digest realm="a" nonce="b", Basic realm=c`}, []ch{"Basic||realm=c"}},
		{"duplicate param drops the challenge", []string{`Basic realm=a, realm=b, Digest realm=c`}, []ch{"Digest||realm=c"}},
		{"control byte in quotes", []string{"Basic realm=\"a\x01b\", Digest realm=c"}, []ch{"Digest||realm=c"}},
		{"backslash at end", []string{`Basic realm="a\`}, nil},
		{"param without scheme", []string{`realm=a, Basic realm=b`}, []ch{"Basic||realm=b"}},
		{"garbage before", []string{`@@@, Basic realm=b`}, []ch{"Basic||realm=b"}},
		{"a stray param after a token68 is dropped, the token68 kept", []string{`Negotiate abc, realm=x, Basic realm=b`}, []ch{"Negotiate|abc|", "Basic||realm=b"}},
		{"a stray param after a token68 with padding", []string{`Negotiate YWJj==, realm="x"`}, []ch{"Negotiate|YWJj==|"}},
		{"params go on on the next line", []string{`Digest realm="r", nonce="n"`, `qop="auth"`}, []ch{"Digest||realm=r;nonce=n;qop=auth"}},
		{"lines split anywhere mean the joined list", []string{`Digest realm="r"`, `nonce="n", Basic`, `realm=b`}, []ch{"Digest||realm=r;nonce=n", "Basic||realm=b"}},
		{"control byte after a backslash drops its challenge only", []string{"Basic realm=\"a\\\x01b\", Digest realm=c, Bearer realm=d"}, []ch{"Digest||realm=c", "Bearer||realm=d"}},
		{"name= alone is a token68", []string{`Basic realm=, Digest realm=c`}, []ch{"Basic|realm=|", "Digest||realm=c"}},
		{"value missing after a param", []string{`Basic a=b, realm=, Digest realm=c`}, []ch{"Digest||realm=c"}},
		{"same params in two challenges are not duplicates", []string{`Digest realm=a, nonce=1, Digest realm=a, nonce=2`}, []ch{"Digest||realm=a;nonce=1", "Digest||realm=a;nonce=2"}},
		{"empty", []string{""}, nil},
		{"only separators", []string{" , \t ,"}, nil},
		{"scheme glued to =", []string{"Basic=x, Digest realm=c"}, []ch{"Digest||realm=c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := anyauth.ParseChallenges(tt.lines...)
			var flat []ch
			for _, c := range got {
				var ps []string
				for _, p := range c.Params {
					ps = append(ps, p.Name+"="+p.Value)
				}
				flat = append(flat, c.Scheme+"|"+c.Token68+"|"+strings.Join(ps, ";"))
			}
			if !reflect.DeepEqual(flat, tt.want) {
				t.Errorf("ParseChallenges(%q)\n got %q\nwant %q", tt.lines, flat, tt.want)
			}
		})
	}
}

// TestParseChallengesBounded feeds hostile sizes: every one must finish,
// keep at most 64 challenges, and drop what is malformed.
func TestParseChallengesBounded(t *testing.T) {
	huge := `Basic realm="` + strings.Repeat("a", 1<<20) + `"`
	if got := anyauth.ParseChallenges(huge); len(got) != 1 || len(got[0].Realm()) != 1<<20 {
		t.Fatalf("1 MiB realm: got %d challenges", len(got))
	}
	many := strings.Repeat("Basic realm=x, ", 20000)
	if got := anyauth.ParseChallenges(many); len(got) != 64 {
		t.Fatalf("20,000 challenges: kept %d, want the first 64", len(got))
	}
	manyParams := "Digest " + strings.Repeat("p=1, ", 20000)
	if got := anyauth.ParseChallenges(manyParams, "Basic realm=ok"); len(got) != 1 || got[0].Scheme != "Basic" {
		t.Fatalf("20,000 params: got %+v, want only the Basic challenge", got)
	}
	quotes := strings.Repeat(`"\`, 1<<19)
	if got := anyauth.ParseChallenges("Basic realm=" + quotes); len(got) != 0 {
		t.Fatalf("unbalanced quotes: got %d challenges", len(got))
	}
	invalidUTF8 := "Basic realm=\xff\xfe, Digest realm=\"\xff\""
	if got := anyauth.ParseChallenges(invalidUTF8); len(got) != 1 || got[0].Scheme != "Digest" {
		t.Fatalf("invalid UTF-8: got %+v", got)
	}
}

func TestChallengeStringRoundTrip(t *testing.T) {
	in := `Digest realm="a \"b\"", qop="auth, auth-int", algorithm=SHA-256, nonce="x y"`
	c := anyauth.ParseChallenges(in)[0]
	again := anyauth.ParseChallenges(c.String())
	if len(again) != 1 || !reflect.DeepEqual(again[0], c) {
		t.Fatalf("round trip of %q: %q parsed to %+v", in, c.String(), again)
	}
	if v, ok := c.Lookup("ALGORITHM"); !ok || v != "SHA-256" {
		t.Fatalf("Lookup is not case-insensitive: %q %v", v, ok)
	}
}

// TestHostileChallengeHeaders sends huge and broken challenge headers
// through the Transport: each returns the 401 untouched, without a panic.
func TestHostileChallengeHeaders(t *testing.T) {
	headers := map[string][]string{
		"1 MiB realm":               {`Basic realm="` + strings.Repeat("a", 1<<20) + `"`},
		"20,000 challenges":         {strings.Repeat("Newauth realm=x, ", 20000)},
		"20,000 params":             {"Digest " + strings.Repeat("p=1, ", 20000)},
		"unbalanced quotes":         {strings.Repeat(`Digest realm="\`, 1000)},
		"invalid UTF-8 and control": {"Digest realm=\"\xff\xfe\x00\x01\", nonce=\x7f"},
		"many lines":                {strings.Repeat("x", 10), "Digest", "Basic", ",,,", `"`},
	}
	for name, values := range headers {
		t.Run(name, func(t *testing.T) {
			calls := 0
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls++
				resp := fakeResponse(r, 401, "no")
				resp.Header["Www-Authenticate"] = values
				return resp, nil
			})
			tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, Credentials: anyCreds()}
			code, body := get(t, tr, "http://127.0.0.1:9/")
			if code != 401 || body != "no" || calls > anyauth.DefaultMaxAnswers+1 {
				t.Fatalf("status %d %q after %d round trips", code, body, calls)
			}
		})
	}
}
