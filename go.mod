module github.com/anyauth/anyauth

go 1.26.0

require (
	github.com/Azure/go-ntlmssp v0.1.1
	github.com/aws/aws-sdk-go-v2 v1.48.0
	github.com/docker/docker-credential-helpers v0.9.13
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/icholy/digest v1.2.0
	github.com/jcmturner/gofork v1.7.6
	github.com/jcmturner/gokrb5/v8 v8.4.4
	github.com/mccutchen/go-httpbin/v2 v2.26.0
	github.com/redis/go-redis/v9 v9.17.3
	golang.org/x/net v0.7.0
	golang.org/x/oauth2 v0.38.0
)

require (
	github.com/aws/smithy-go v1.28.9 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-uuid v1.0.3 // indirect
	github.com/jcmturner/aescts/v2 v2.0.0 // indirect
	github.com/jcmturner/dnsutils/v2 v2.0.0 // indirect
	github.com/jcmturner/goidentity/v6 v6.0.1 // indirect
	github.com/jcmturner/rpc/v2 v2.0.3 // indirect
	golang.org/x/crypto v0.6.0 // indirect
)
