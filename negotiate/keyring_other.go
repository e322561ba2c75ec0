//go:build !linux

package negotiate

import "fmt"

// locateKeyring: KEYRING: caches live in the Linux kernel's key retention
// service (keyring_linux.go); elsewhere there are none to read.
func locateKeyring(name, residual, from string) ccacheLocation {
	return ccacheLocation{name: name, from: from,
		err: fmt.Errorf("credential cache %s: KEYRING: caches exist on Linux only", name)}
}
