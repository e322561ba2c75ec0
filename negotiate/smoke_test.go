package negotiate_test

import (
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
)

func TestSmokeKeytab(t *testing.T) {
	kdc, srv := gssapi(t)
	_ = kdc
	k := &negotiate.Kerberos{Config: kdc.Config, Password: kdc.Password, Principal: kdc.Principal, Mutual: negotiate.MutualRequired}
	tr := transport([]anyauth.Scheme{k}, nil)
	resp, body, err := get(t, tr, srv.URL+testserver.PathNegotiate+testserver.WhoamiPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(resp.Status, body, resp.Header)
}
