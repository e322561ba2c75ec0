package schemes

import (
	"context"
	"fmt"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// NewClientCredentialsBearer returns a Bearer that fetches tokens with the
// client credentials grant of cfg and sends them to origins only. Its
// StoreKey names cfg's token URL, client, secret, scopes and the
// "audience" and "resource" endpoint parameters, so setting Store is
// enough to share its tokens with the fleet.
func NewClientCredentialsBearer(cfg *clientcredentials.Config, origins ...string) *Bearer {
	b := NewBearer(cfg.Token, origins...)
	b.StoreKey = TokenKey{
		TokenURL:     cfg.TokenURL,
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Scopes:       cfg.Scopes,
		Audience:     append(append([]string(nil), cfg.EndpointParams["audience"]...), cfg.EndpointParams["resource"]...),
	}
	return b
}

// NewRefreshBearer returns a Bearer that renews its tokens with cfg's
// refresh-token grant, starting from seed (the token of a login: its
// access token is used while valid, its refresh token redeemed next) and
// sends them to origins only. Each renewal redeems the newest refresh
// token the Bearer knows, and keeps the one the server returns (or the
// old one, when it returns none), so refresh tokens that rotate on every
// use work.
//
// Several processes sharing one grant must share a Store: otherwise each
// redeems the same refresh token, and a server that rotates them refuses
// all but the first (invalid_grant). With a Store, one process redeems at
// a time, under the store's lease, the refresh token the fleet stored
// last, and stores the new pair at once. Set StoreKey.Subject to the user
// the grant is for; StoreKey's other fields are set from cfg.
func NewRefreshBearer(cfg *oauth2.Config, seed *oauth2.Token, origins ...string) *Bearer {
	b := &Bearer{Origins: origins}
	b.StoreKey = refreshKey(cfg)
	b.Renew = refreshWith(cfg, seed, nil)
	if seed != nil && seed.AccessToken != "" {
		b.cache.held = &heldToken{token: completed(seed, nil)}
	}
	return b
}

// refreshKey is the TokenKey of cfg's refresh-token grant, without its
// subject.
func refreshKey(cfg *oauth2.Config) TokenKey {
	return TokenKey{TokenURL: cfg.Endpoint.TokenURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: cfg.Scopes}
}

// refreshWith returns a Renew that redeems last's refresh token (seed's
// when last has none) with cfg; client, when set, gives the context of
// the token request its HTTP client.
func refreshWith(cfg *oauth2.Config, seed *oauth2.Token, client func(context.Context) context.Context) func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	return func(ctx context.Context, last *oauth2.Token) (*oauth2.Token, error) {
		if last == nil || last.RefreshToken == "" {
			last = seed
		}
		if last == nil || last.RefreshToken == "" {
			return nil, fmt.Errorf("bearer: %w: no refresh token to renew the access token with", anyauth.ErrNoCredentials)
		}
		if client != nil {
			ctx = client(ctx)
		}
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: last.RefreshToken}).Token()
	}
}
