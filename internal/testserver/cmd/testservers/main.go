// Command testservers starts the Apache httpd and lighttpd test servers of
// package testserver, prints where they listen and what they protect, and
// runs until SIGINT or SIGTERM, then stops them and removes their files.
//
//	go run ./internal/testserver/cmd/testservers [-apache=false] [-lighttpd=false]
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
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("testservers: ")

	var servers []*testserver.Server
	stopAll := func() {
		for _, s := range servers {
			if err := s.Close(); err != nil {
				log.Printf("stopping %s: %v", s.Name, err)
			}
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
		fmt.Printf("  each location serves index.txt and echo (POST/PUT: sha256 and length of the body)\n")
		fmt.Printf("  e.g. curl --digest -u '%s:%s' %s%s\n", testserver.User, testserver.Password, s.URL, s.Locations[1].Path+"index.txt")
	}
	fmt.Printf("\nCtrl-C to stop.\n")

	<-sig
	stopAll()
}
