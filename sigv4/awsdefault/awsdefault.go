// Package awsdefault gives sigv4 the AWS SDK's default credentials and
// region: the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION,
// ...), the shared config and credentials files, SSO, web identity, ECS and
// EC2 instance roles, as config.LoadDefaultConfig finds them.
//
// It is a module of its own (github.com/anyauth/anyauth/sigv4/awsdefault)
// because the SDK's config module brings a dozen more (sso, ssooidc, sts,
// imds, ini, ...): anyauth and its sigv4 package need only the SDK's core
// module.
package awsdefault

import (
	"context"
	"errors"
	"fmt"

	"github.com/anyauth/anyauth/sigv4"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// ErrNoRegion is wrapped by the error of Signer when neither the
// environment nor the shared config names a region.
var ErrNoRegion = errors.New("awsdefault: no region in the environment or the shared config (set AWS_REGION, or give one)")

// Credentials returns the default chain's credentials provider (cached:
// temporary credentials are renewed before they expire) and the region the
// default config names, "" when none does. optFns refine the loading as
// config.LoadDefaultConfig's do (config.WithSharedConfigProfile, ...).
func Credentials(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.CredentialsProvider, string, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, "", fmt.Errorf("awsdefault: loading the default AWS config: %w", err)
	}
	if cfg.Credentials == nil {
		return nil, "", errors.New("awsdefault: the default AWS config has no credentials provider")
	}
	return cfg.Credentials, cfg.Region, nil
}

// Signer returns a sigv4.Signer for service that signs the requests to
// origins with the default chain's credentials, for region, or the default
// config's region when region is "".
func Signer(ctx context.Context, region, service string, origins ...string) (*sigv4.Signer, error) {
	creds, defRegion, err := Credentials(ctx)
	if err != nil {
		return nil, err
	}
	if region == "" {
		region = defRegion
	}
	if region == "" {
		return nil, ErrNoRegion
	}
	return sigv4.New(region, service, creds, origins...), nil
}
