package tokenstoretest_test

import (
	"testing"

	"github.com/anyauth/anyauth/schemes"
	"github.com/anyauth/anyauth/tokencache/tokenstoretest"
)

func TestMemoryTokenStore(t *testing.T) {
	tokenstoretest.Run(t, func(*testing.T) schemes.TokenStore { return &schemes.MemoryTokenStore{} })
}
