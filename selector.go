package anyauth

import (
	"slices"
)

// A Candidate is a challenge that a configured Scheme understands, with
// the strength that Scheme gave it.
type Candidate struct {
	Challenge *Challenge
	Scheme    Scheme
	Strength  Strength
}

// A Selector orders the candidates of one response, most preferred first,
// and leaves out those it will not answer. The Transport tries them in
// that order and answers with the first one that has credentials.
type Selector interface {
	Select(candidates []Candidate) []Candidate
}

// SelectorFunc adapts a function to a Selector.
type SelectorFunc func([]Candidate) []Candidate

// Select calls f.
func (f SelectorFunc) Select(c []Candidate) []Candidate { return f(c) }

// StrongestFirst is the default Selector: it orders candidates by
// Strength, strongest first (Negotiate > Bearer > NTLM > Digest > Basic;
// inside
// Digest SHA-512-256 > SHA-256 > MD5, -sess above plain, qop auth-int >
// auth > none), keeping the server's order between equals, and leaves out
// every candidate weaker than Floor.
//
// For example StrongestFirst{Floor: schemes.StrengthDigestSHA256} never
// answers Basic or Digest MD5.
type StrongestFirst struct {
	// Floor is the weakest Strength answered; zero answers everything.
	Floor Strength
}

// Select orders c strongest first and drops what is below the floor. It
// reorders c in place.
func (s StrongestFirst) Select(c []Candidate) []Candidate {
	kept := c[:0]
	for _, x := range c {
		if x.Strength >= s.Floor {
			kept = append(kept, x)
		}
	}
	slices.SortStableFunc(kept, func(a, b Candidate) int { return int(b.Strength - a.Strength) })
	return kept
}
