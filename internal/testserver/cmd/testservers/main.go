// Command testservers starts the test servers of package testserver
// (Apache httpd, lighttpd, the NTLM Apache, and an MIT KDC with the
// Kerberos Apache), prints where they listen, what they protect and how
// to try them, and runs until SIGINT or SIGTERM, then stops them and
// removes their files.
//
//	go run ./internal/testserver/cmd/testservers [-apache=false] [-lighttpd=false] [-ntlm=false] [-kerberos=false]
//
// A server that is not installed is reported and skipped. Stop it with
// Ctrl-C, or with SIGINT/SIGTERM sent to the testservers process itself:
// "go run" does not pass a SIGTERM it receives on to its child.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/anyauth/anyauth/internal/testserver"
)

func main() {
	apache := flag.Bool("apache", true, "start Apache httpd")
	lighttpd := flag.Bool("lighttpd", true, "start lighttpd")
	ntlm := flag.Bool("ntlm", true, "start the NTLM Apache (mod_auth_gssapi with gss-ntlmssp)")
	kerberos := flag.Bool("kerberos", true, "start an MIT KDC and the Kerberos (Negotiate) Apache")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("testservers: ")

	var servers []*testserver.Server
	var kdc *testserver.KDC
	stopAll := func() {
		for _, s := range servers {
			if err := s.Close(); err != nil {
				log.Printf("stopping %s: %v", s.Name, err)
			}
		}
		if kdc != nil {
			kdc.Close()
		}
	}
	// Catch signals before starting anything, so nothing is left behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	for _, c := range []struct {
		on    bool
		name  string
		start func() (*testserver.Server, error)
	}{
		{*apache, "apache", testserver.StartApache},
		{*lighttpd, "lighttpd", testserver.StartLighttpd},
		{*ntlm, "apache-ntlm", testserver.StartNTLMApache},
		{*kerberos, "apache-gssapi", func() (*testserver.Server, error) {
			k, err := testserver.StartKDC()
			if err != nil {
				return nil, err
			}
			s, err := testserver.StartGSSAPIApache(k)
			if err != nil {
				k.Close()
				return nil, err
			}
			kdc = k
			return s, nil
		}},
	} {
		if !c.on {
			continue
		}
		s, err := c.start()
		if errors.Is(err, testserver.ErrNotInstalled) {
			log.Printf("%s skipped: %v", c.name, err)
			continue
		}
		if err != nil {
			stopAll()
			log.Fatalf("%s: %v", c.name, err)
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		log.Fatal("no server started")
	}

	fmt.Printf("user %q, password %q\n", testserver.User, testserver.Password)
	for _, s := range servers {
		fmt.Printf("\n%s at %s (started in %v, files in %s)\n", s.Name, s.URL, s.Startup.Round(1e6), s.Dir)
		for _, l := range s.Locations {
			fmt.Printf("  %-14s realm %-22q %s\n", l.Path, l.Realm, l.Auth)
		}
		switch s.Name {
		case "apache-ntlm":
			fmt.Printf("  e.g. go run ./examples/fetch -ntlm -u '%s\\%s:%s' %s%s%s\n", testserver.NTLMDomain, testserver.User, testserver.Password, s.URL, testserver.PathNTLM, testserver.WhoamiPath)
		case "apache-gssapi":
			fmt.Printf("  KDC for realm %s at %s; principal %s, password %q\n", kdc.Realm, kdc.Addr, kdc.Principal, kdc.Password)
			fmt.Printf("  e.g. export KRB5_CONFIG=%s KRB5CCNAME=FILE:/tmp/anyauth-krb5cc; kinit %s\n", kdc.Config, kdc.Principal)
			fmt.Printf("       go run ./examples/fetch -negotiate %s%s%s\n", s.URL, testserver.PathNegotiate, testserver.WhoamiPath)
		default:
			fmt.Printf("  each location serves index.txt and echo (POST/PUT: sha256 and length of the body)\n")
			fmt.Printf("  e.g. curl --digest -u '%s:%s' %s%s\n", testserver.User, testserver.Password, s.URL, s.Locations[1].Path+"index.txt")
		}
	}
	fmt.Printf("\nCtrl-C to stop.\n")

	<-sig
	stopAll()
}
