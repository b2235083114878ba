// Command hello-ko is the README's example: build it with
//
//	KO_DOCKER_REPO=registry.example.com/me kubectl ko build .
//
// and the image prints a greeting and the message shipped in kodata/.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	fmt.Println("Hello from kubectl-ko!")
	msg, err := os.ReadFile(filepath.Join(os.Getenv("KO_DATA_PATH"), "message.txt"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading kodata:", err)
		os.Exit(1)
	}
	fmt.Println(strings.TrimSpace(string(msg)))
}
