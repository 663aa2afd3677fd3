// A process tree built by a Go program (CGO_ENABLED=0: static): it opens a file, runs a
// dynamic child (/bin/echo) and itself as a static leaf (exit 4) through os/exec, and exits 6.
//
//	static_tree [leaf | many N]
//
// With `many N` it runs /bin/true N times and opens /etc/hostname 50*N times (the benchmark).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "leaf" {
		fmt.Println("go leaf")
		os.Exit(4)
	}
	if len(os.Args) > 2 && os.Args[1] == "many" {
		n, _ := strconv.Atoi(os.Args[2])
		for i := 0; i < n; i++ {
			if err := exec.Command("/bin/true").Run(); err != nil {
				os.Exit(1)
			}
			for j := 0; j < 50; j++ {
				f, err := os.Open("/etc/hostname")
				if err == nil {
					f.Close()
				}
			}
		}
		fmt.Println("many done")
		return
	}
	f, err := os.Open("/etc/hostname")
	if err == nil {
		f.Close()
	}
	out, err := exec.Command("/bin/echo", "from", "go").Output()
	if err != nil {
		os.Exit(1)
	}
	fmt.Print(string(out))
	c := exec.Command(os.Args[0], "leaf")
	c.Stdout = os.Stdout
	err = c.Run()
	code := -1
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	}
	fmt.Println("leaf exit " + strconv.Itoa(code))
	os.Exit(6)
}
