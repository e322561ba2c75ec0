//go:build !unix

package credhelper

import "os/exec"

// setProcessGroup leaves cmd as it is: where there are no process groups,
// cancellation kills the program itself (exec.CommandContext's default).
func setProcessGroup(*exec.Cmd) {}
