package sigv4

import (
	"fmt"
	"strings"
)

// ParseCurl reads the argument of curl's --aws-sigv4 in the form this
// package signs: "aws:amz:REGION:SERVICE", and returns the region and
// service. curl's other providers (its first two fields name the
// algorithm and the header prefix) and its guessing of the region and
// service from an amazonaws.com host name are not supported: give both.
func ParseCurl(spec string) (region, service string, err error) {
	f := strings.Split(spec, ":")
	if len(f) != 4 || !strings.EqualFold(f[0], "aws") || !strings.EqualFold(f[1], "amz") || f[2] == "" || f[3] == "" {
		return "", "", fmt.Errorf("%w: %q is not aws:amz:REGION:SERVICE (e.g. aws:amz:us-east-1:s3)", ErrInvalidConfig, spec)
	}
	if strings.ContainsAny(f[2]+f[3], "/ \t\r\n") {
		return "", "", fmt.Errorf("%w: the region and service of %q may not hold '/' or spaces", ErrInvalidConfig, spec)
	}
	return f[2], f[3], nil
}
