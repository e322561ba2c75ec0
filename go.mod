module github.com/anyauth/anyauth

go 1.26.8

require (
	github.com/icholy/digest v1.2.0
	github.com/mccutchen/go-httpbin/v2 v2.26.0
)
