package textwrap

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWrap(t *testing.T) {
	long := strings.Repeat("x", 90)
	tests := []struct {
		name, s, first, rest string
		width                int
		want                 string
	}{
		{"fits", "a b c", "", "", 80, "a b c"},
		{"spaces collapse", "  a \n b\tc  ", "", "", 80, "a b c"},
		{"breaks at width", "aaaa bbbb cccc", "", "", 9, "aaaa bbbb\ncccc"},
		{"first and rest", "aaaa bbbb cccc", "- ", "  ", 9, "- aaaa\n  bbbb\n  cccc"},
		{"long word alone", "a " + long + " b", "", "", 80, "a\n" + long + "\nb"},
		{"empty", "", "> ", "  ", 80, "> "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Wrap(tt.s, tt.first, tt.rest, tt.width)); diff != "" {
				t.Errorf("Wrap (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("hanging", func(t *testing.T) {
		got := Hanging("fix: ", "run nfpass apply --confirm 60s then confirm", 24)
		want := "fix: run nfpass apply\n     --confirm 60s then\n     confirm"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Hanging (-want +got):\n%s", diff)
		}
	})
}
