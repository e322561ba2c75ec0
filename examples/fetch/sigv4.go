package main

import (
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/sigv4"
)

// This file is fetch's -aws-sigv4, curl's --aws-sigv4: requests to the
// URLs' origins are signed with AWS Signature Version 4 for the region and
// service the flag names, with -u's ACCESS_KEY:SECRET, from the first
// request. -u is then the AWS key and nothing else: it answers no Basic or
// Digest challenge. A session token goes in a header, as with curl:
// -H "X-Amz-Security-Token: TOKEN".

// sigv4Usage is the help of -aws-sigv4.
const sigv4Usage = "sign requests to the URLs' origins with AWS Signature Version 4, like curl --aws-sigv4: `aws:amz:REGION:SERVICE`, with -u ACCESS_KEY:SECRET (then not a Basic or Digest password)"

// addSigV4 adds the signer of -aws-sigv4 to t for origins, and reports
// whether it did, so that -u is not used otherwise; nothing without the
// flag.
func addSigV4(o *options, t *anyauth.Transport, origins []string) (bool, error) {
	if o.sigv4 == "" {
		return false, nil
	}
	region, service, err := sigv4.ParseCurl(o.sigv4)
	if err != nil {
		return false, usageError{"-aws-sigv4: " + strings.TrimPrefix(err.Error(), "sigv4: invalid configuration: ")}
	}
	key, secret, ok := strings.Cut(o.userPass, ":")
	if !ok || key == "" || secret == "" {
		return false, usageError{"-aws-sigv4 signs with -u ACCESS_KEY:SECRET: give it"}
	}
	if o.negotiate || o.ntlm || o.netrc {
		return false, usageError{"-aws-sigv4 takes -u as the AWS key: not with -negotiate, -ntlm or -netrc"}
	}
	t.Schemes = append(t.Schemes, sigv4.New(region, service, sigv4.StaticCredentials(key, secret, ""), origins...))
	return true, nil
}
