// SPAWN, Go's side (bench/spawn.c is tide's): start /bin/true and wait
// for it, N times one after another (default 1000; argv[1] overrides),
// with os/exec's Cmd.Run.
// Prints: SPAWN go-os-exec us_per_spawn=... us n=...
// SPDX-License-Identifier: MIT
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

func main() {
	n := 1000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "spawn: N must be a positive integer")
			os.Exit(2)
		}
		n = v
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			os.Exit(1)
		}
	}
	t := time.Since(t0).Seconds()
	fmt.Printf("SPAWN go-os-exec us_per_spawn=%.1f us n=%d\n", t/float64(n)*1e6, n)
}
