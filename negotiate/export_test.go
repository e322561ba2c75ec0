package negotiate

import "time"

// AgeTickets makes every ticket k holds look d older: a test's way to
// bring expiry near without waiting for it. tgt and service choose which.
func AgeTickets(k *Kerberos, d time.Duration, tgt, service bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.sources {
		s.mu.Lock()
		if tgt && s.tgt != nil {
			c := *s.tgt
			c.start, c.end = c.start.Add(-d), c.end.Add(-d)
			s.tgt = &c
		}
		if service {
			for spn, t := range s.tickets {
				c := *t
				c.start, c.end = c.start.Add(-d), c.end.Add(-d)
				s.tickets[spn] = &c
			}
		}
		s.mu.Unlock()
	}
}

// TGTRenewable reports whether k's sources hold renewable TGTs.
func TGTRenewable(k *Kerberos) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.sources {
		s.mu.Lock()
		ok := s.tgt != nil && s.tgt.renewTill.After(s.tgt.end)
		s.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
