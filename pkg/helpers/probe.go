package helpers

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/nfpass/nfpass/pkg/ruleset"
)

// NetnsProber asks the kernel by creating the ct helper object in a table
// inside a throwaway network namespace (`unshare --net nft -f -`): the
// namespace, and the table with it, vanish when nft exits, so no namespace
// nfpass cares about is touched. Needs root (CAP_SYS_ADMIN).
type NetnsProber struct {
	// Unshare and Nft are the programs to run; empty means "unshare" and
	// "nft" from PATH.
	Unshare, Nft string
}

var (
	bareWord  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	typeChars = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// ProbeCtHelper implements Prober.
func (p NetnsProber) ProbeCtHelper(ctx context.Context, h ruleset.CtHelper) error {
	if !typeChars.MatchString(h.Type) {
		return fmt.Errorf("helper type %q: unexpected characters", h.Type)
	}
	switch h.Protocol {
	case "tcp", "udp":
	default:
		return fmt.Errorf("helper protocol %q is not tcp or udp", h.Protocol)
	}
	switch h.L3Proto {
	case "ip", "ip6", "inet":
	default:
		return fmt.Errorf("helper l3proto %q is not ip, ip6 or inet", h.L3Proto)
	}
	name := h.Name
	if !bareWord.MatchString(name) {
		name = "probe"
	}
	unshare, nft := p.Unshare, p.Nft
	if unshare == "" {
		unshare = "unshare"
	}
	if nft == "" {
		nft = "nft"
	}
	script := fmt.Sprintf("table inet nfpass_probe {\n\tct helper %s {\n\t\ttype %q protocol %s\n\t\tl3proto %s\n\t}\n}\n", name, h.Type, h.Protocol, h.L3Proto)
	cmd := exec.CommandContext(ctx, unshare, "--net", nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if _, exited := err.(*exec.ExitError); exited && strings.Contains(msg, "No such file or directory") {
		// nft reports the kernel's ENOENT: no helper of that type (for
		// that l3proto and protocol).
		return fmt.Errorf("%w: type %q protocol %s l3proto %s: %s", ErrHelperUnknown, h.Type, h.Protocol, h.L3Proto, firstLine(msg))
	}
	return fmt.Errorf("%s --net %s -f -: %w: %s", unshare, nft, err, msg)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
