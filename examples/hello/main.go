// Command hello-ko is the README's example: build it with
//
//	KO_DOCKER_REPO=registry.example.com/me kubectl ko build .
//
// and the image prints a greeting and the message shipped in kodata/. With PORT set (as
// config/deployment.yaml does), it then serves the same text over HTTP on that port.
package main

import (
	"fmt"
	"net/http"
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
	text := strings.TrimSpace(string(msg))
	fmt.Println(text)
	port := os.Getenv("PORT")
	if port == "" {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "Hello from kubectl-ko!\n%s\n", text)
	})
	fmt.Println("listening on :" + port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
