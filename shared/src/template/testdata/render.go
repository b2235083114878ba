// Renders each template read from stdin (one a line, `\n` standing for a newline) with Go's
// text/template, as ko does (missingkey=error), against the same data as the Rust tests, and
// prints one line per template: its output as a JSON string, or ERR.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

func main() {
	data := map[string]interface{}{
		"Env":       map[string]string{"LDFLAGS": "", "VERSION": "1.2.3"},
		"Git":       map[string]interface{}{"ShortCommit": "abc1234", "IsDirty": false},
		"Timestamp": int64(42),
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		text := strings.ReplaceAll(in.Text(), `\n`, "\n")
		var out bytes.Buffer
		t, err := template.New("t").Option("missingkey=error").Parse(text)
		if err == nil {
			err = t.Execute(&out, data)
		}
		if err != nil {
			fmt.Println("ERR")
			continue
		}
		// As serde_json writes it: no HTML escapes.
		var quoted bytes.Buffer
		enc := json.NewEncoder(&quoted)
		enc.SetEscapeHTML(false)
		enc.Encode(out.String())
		fmt.Print(quoted.String())
	}
}
