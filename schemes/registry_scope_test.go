package schemes

import (
	"slices"
	"testing"
)

// TestRegistryScopes: a challenge's scopes come out in one order, each
// scope's actions sorted, whatever order the registry wrote them in
// (distribution writes "pull,push" and "push,pull" from one run to the
// next), so that they key one token cache.
func TestRegistryScopes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"repository:team/app:push,pull", []string{"repository:team/app:pull,push"}},
		{"repository:team/app:pull,push", []string{"repository:team/app:pull,push"}},
		{"repository:b:pull repository:a:push,pull,pull", []string{"repository:a:pull,push", "repository:b:pull"}},
		{"repository:localhost:5000/app:pull", []string{"repository:localhost:5000/app:pull"}},
		{"registry:catalog:*", []string{"registry:catalog:*"}},
		{"odd", []string{"odd"}},
		{"", nil},
	} {
		if got := registryScopes(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("registryScopes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
