package anyauth

import (
	"errors"
	"strings"
)

// A Challenge is one challenge of a WWW-Authenticate or
// Proxy-Authenticate field (RFC 9110 §11.3): an auth-scheme followed by
// either a token68 or a list of auth-params.
type Challenge struct {
	// Scheme is the auth-scheme as the server sent it, such as "Digest".
	// Compare it with Is, which ignores case.
	Scheme string
	// Token68 is the token68 form of the challenge's data, if it has one
	// (Negotiate sends its token this way). A challenge has either a
	// Token68 or Params, never both.
	Token68 string
	// Params holds the auth-params in the order they came, names
	// lower-cased, quoted-string values unquoted.
	Params []Param
}

// A Param is one auth-param of a challenge.
type Param struct {
	// Name is the parameter name, lower-cased.
	Name string
	// Value is the value with quotes and backslash escapes removed.
	Value string
}

// Is reports whether c's auth-scheme is scheme, ignoring case.
func (c *Challenge) Is(scheme string) bool { return strings.EqualFold(c.Scheme, scheme) }

// Param returns the value of the parameter called name (matched without
// regard to case), or "" when c has none.
func (c *Challenge) Param(name string) string {
	v, _ := c.Lookup(name)
	return v
}

// Lookup returns the value of the parameter called name (matched without
// regard to case) and whether c has it.
func (c *Challenge) Lookup(name string) (string, bool) {
	for i := range c.Params {
		if strings.EqualFold(c.Params[i].Name, name) {
			return c.Params[i].Value, true
		}
	}
	return "", false
}

// Realm returns the challenge's realm parameter.
func (c *Challenge) Realm() string { return c.Param("realm") }

// String formats c as it would appear in a header field: values that are
// not tokens are quoted, with '"' and '\' escaped.
func (c *Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteByte(' ')
		b.WriteString(c.Token68)
		return b.String()
	}
	for i, p := range c.Params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		if isToken(p.Value) {
			b.WriteString(p.Value)
		} else {
			writeQuoted(&b, p.Value)
		}
	}
	return b.String()
}

// AppendQuoted appends s to dst as an RFC 9110 quoted-string and returns
// the extended buffer, as strconv.AppendQuote does for Go strings: '"' and
// '\' are escaped with '\', everything else is copied as it is.
func AppendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// writeQuoted writes s to b as AppendQuoted would append it.
func writeQuoted(b *strings.Builder, s string) {
	var scratch [128]byte
	b.Write(AppendQuoted(scratch[:0], s))
}

// ErrMalformedParams is returned by ParseAuthParams for a list that is
// not a well-formed #auth-param list.
var ErrMalformedParams = errors.New("anyauth: malformed auth-param list")

// ParseAuthParams parses field values that hold a bare list of
// auth-params, such as Authentication-Info and Proxy-Authentication-Info
// (RFC 9110 §11.6.3): name=value pairs, values tokens or quoted strings,
// names lower-cased, empty list elements skipped. Each field value is one
// header line; they are read as one list. A repeated name, a bad token, an
// unterminated quoted string or a control byte makes the whole list
// malformed: it returns nil and ErrMalformedParams. At most 64 parameters
// are accepted.
func ParseAuthParams(fieldValues ...string) ([]Param, error) {
	p := parser{open: true}
	for _, s := range fieldValues {
		i := 0
		for {
			i = skipListSeparators(s, i)
			if i >= len(s) {
				break
			}
			end := scanToken(s, i)
			eq := skipOWS(s, end)
			if end == i || eq >= len(s) || s[eq] != '=' {
				return nil, ErrMalformedParams
			}
			i = p.parseParamValue(s, strings.ToLower(s[i:end]), eq+1)
			if p.bad {
				return nil, ErrMalformedParams
			}
		}
	}
	return p.params, nil
}

// Limits that keep parsing bounded on hostile input.
const (
	// maxParamsPerChallenge drops a challenge with more auth-params, which
	// also keeps the duplicate-name check linear in the input.
	maxParamsPerChallenge = 64
	// maxChallenges is the most challenges kept from one response.
	maxChallenges = 64
)

// ParseChallenges parses every challenge of every field value given (one
// per header line, as http.Header.Values returns them) by the grammar of
// RFC 9110 §11: several challenges per line, token68 or auth-params,
// quoted strings with '\' escapes, names compared without case, optional
// whitespace around '=', empty list elements skipped.
//
// A malformed challenge (a bad token, an unterminated quoted string, a
// repeated parameter name, a control byte) is dropped and the well-formed
// challenges around it are kept. Parsing takes time linear in the input,
// keeps at most 64 challenges of at most 64 parameters each, and never
// panics.
func ParseChallenges(fieldValues ...string) []Challenge {
	n := 0
	for _, v := range fieldValues {
		n += strings.Count(v, "=")
	}
	p := parser{params: make([]Param, 0, min(n, maxChallenges*maxParamsPerChallenge))}
	// The field lines are one list (RFC 9110 §5.3): a challenge's
	// parameters may go on on the next line, exactly as if the lines had
	// been joined with a comma.
	for _, v := range fieldValues {
		p.parseField(v)
		if len(p.out) >= maxChallenges {
			break
		}
	}
	p.end()
	return p.out
}

type parser struct {
	out    []Challenge
	params []Param // shared backing array of every challenge's Params
	start  int     // index in params where the open challenge's params begin
	open   bool    // a challenge is being built
	bad    bool    // the open challenge is malformed and will be dropped
	cur    Challenge
}

// begin opens a new challenge named scheme, closing the one before.
func (p *parser) begin(scheme string) {
	p.end()
	p.open, p.bad = true, false
	p.start = len(p.params)
	p.cur = Challenge{Scheme: scheme}
}

// end closes the open challenge, keeping it unless it is malformed.
func (p *parser) end() {
	if !p.open {
		return
	}
	p.open = false
	if p.bad || len(p.out) >= maxChallenges {
		p.params = p.params[:p.start]
		return
	}
	if len(p.params) > p.start {
		p.cur.Params = p.params[p.start:len(p.params):len(p.params)]
	}
	if p.out == nil {
		p.out = make([]Challenge, 0, 2)
	}
	p.out = append(p.out, p.cur)
}

// addParam adds name=value to the open challenge, marking it malformed on
// a repeated name or too many parameters.
func (p *parser) addParam(name, value string) {
	if p.bad {
		return
	}
	if p.cur.Token68 != "" || len(p.params)-p.start >= maxParamsPerChallenge {
		p.bad = true
		return
	}
	for _, q := range p.params[p.start:] {
		if q.Name == name {
			p.bad = true
			return
		}
	}
	p.params = append(p.params, Param{Name: name, Value: value})
}

func (p *parser) parseField(s string) {
	i := 0
	for {
		i = skipListSeparators(s, i)
		if i >= len(s) {
			return
		}
		tokEnd := scanToken(s, i)
		if tokEnd == i {
			// Not a token: the element is malformed. Drop the open
			// challenge and resume after the next comma.
			p.markBad()
			i = skipElement(s, i)
			continue
		}
		name := s[i:tokEnd]
		j := skipOWS(s, tokEnd)
		if p.open && p.cur.Token68 != "" && j < len(s) && s[j] == '=' {
			// A token68 challenge has no parameters: keep it, and let
			// the stray parameter be dropped as an element of its own.
			p.end()
		}
		if p.open && j < len(s) && s[j] == '=' {
			i = p.parseParamValue(s, strings.ToLower(name), j+1)
			continue
		}
		// A token not followed by '=' starts a new challenge.
		p.begin(name)
		i = p.afterScheme(s, tokEnd)
	}
}

// afterScheme parses what follows an auth-scheme at i: nothing, a
// token68, or the first auth-param. It returns where the list goes on.
func (p *parser) afterScheme(s string, i int) int {
	if i >= len(s) || s[i] == ',' {
		return i
	}
	if s[i] != ' ' && s[i] != '\t' {
		p.bad = true
		return skipElement(s, i)
	}
	j := skipOWS(s, i)
	if j >= len(s) || s[j] == ',' {
		return j
	}
	// token68: 1*tchar68 *"=" followed by the end of the element.
	k := j
	for k < len(s) && isToken68Char(s[k]) {
		k++
	}
	if k > j {
		e := k
		for e < len(s) && s[e] == '=' {
			e++
		}
		if r := skipOWS(s, e); r >= len(s) || s[r] == ',' {
			p.cur.Token68 = s[j:e]
			return r
		}
	}
	// Otherwise the first auth-param follows.
	tokEnd := scanToken(s, j)
	if tokEnd == j {
		p.bad = true
		return skipElement(s, j)
	}
	eq := skipOWS(s, tokEnd)
	if eq >= len(s) || s[eq] != '=' {
		p.bad = true
		return skipElement(s, j)
	}
	return p.parseParamValue(s, strings.ToLower(s[j:tokEnd]), eq+1)
}

// parseParamValue parses the value of auth-param name starting after its
// '=' at i, and the separator after it.
func (p *parser) parseParamValue(s, name string, i int) int {
	i = skipOWS(s, i)
	var value string
	switch {
	case i < len(s) && s[i] == '"':
		v, end, ok := scanQuoted(s, i)
		if !ok {
			p.bad = true
			return end
		}
		value, i = v, end
	default:
		end := scanToken(s, i)
		if end == i {
			p.bad = true
			return skipElement(s, i)
		}
		value, i = s[i:end], end
	}
	i = skipOWS(s, i)
	if i < len(s) && s[i] != ',' {
		p.bad = true
		return skipElement(s, i)
	}
	p.addParam(name, value)
	return i
}

func (p *parser) markBad() {
	if p.open {
		p.bad = true
	}
}

// scanQuoted reads the quoted-string that starts at s[i] == '"'. It
// returns the unescaped value and the index after the closing quote, or
// ok false (and len(s)) when the string is unterminated or holds a control
// byte.
func scanQuoted(s string, i int) (value string, end int, ok bool) {
	j := i + 1
	escaped := false
	for j < len(s) {
		c := s[j]
		switch {
		case c == '"':
			if !escaped {
				return s[i+1 : j], j + 1, true
			}
			return unescapeQuoted(s[i+1 : j]), j + 1, true
		case c == '\\':
			if j+1 >= len(s) {
				return "", len(s), false
			}
			if !isQuotedPairChar(s[j+1]) {
				// Drop this element only: resume after its closing quote.
				return "", skipElementQuoted(s, j+2), false
			}
			escaped = true
			j += 2
		case c == '\t' || (c >= 0x20 && c != 0x7f):
			j++
		default:
			return "", skipElementQuoted(s, j), false
		}
	}
	return "", len(s), false
}

// skipElementQuoted resumes after a control byte inside a quoted string:
// it skips to the closing quote and then past the element.
func skipElementQuoted(s string, j int) int {
	for j < len(s) {
		switch s[j] {
		case '\\':
			j += 2
			continue
		case '"':
			return skipElement(s, j+1)
		}
		j++
	}
	return len(s)
}

func unescapeQuoted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// skipElement skips to the next ',' that is not inside a quoted string.
func skipElement(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ',':
			return i
		case '"':
			_, end, _ := scanQuoted(s, i)
			if end <= i {
				end = i + 1
			}
			i = end
			continue
		}
		i++
	}
	return len(s)
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func skipListSeparators(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
		i++
	}
	return i
}

func scanToken(s string, i int) int {
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return i
}

func isToken(s string) bool {
	return s != "" && scanToken(s, 0) == len(s)
}

// tchar per RFC 9110 §5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isTokenChar(c byte) bool { return tokenChars[c] }

func isToken68Char(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// isQuotedPairChar: HTAB / SP / VCHAR / obs-text.
func isQuotedPairChar(c byte) bool { return c == '\t' || (c >= 0x20 && c != 0x7f) }
