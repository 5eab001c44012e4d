package packaging

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCopyrightNamesEveryModule: /usr/share/doc/nfpass/copyright names the
// license of every Go module linked into /usr/bin/nfpass; a new dependency
// fails here until it is added there.
func TestCopyrightNamesEveryModule(t *testing.T) {
	b, err := os.ReadFile("../../rules/packaging/debian/copyright")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(b)), " ")
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "../../cmd/nfpass").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, m := range strings.Fields(string(out)) {
		if m == "github.com/nfpass/nfpass" {
			continue
		}
		if !strings.Contains(text, " "+m+",") && !strings.Contains(text, " "+m+".") {
			t.Errorf("copyright does not name module %s (and its license)", m)
		}
	}
}
