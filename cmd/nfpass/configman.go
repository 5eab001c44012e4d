//go:build gen

package main

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

// configKeysMD is the config-keys source README.md's table is a copy of.
//
//go:embed configkeys.md
var configKeysMD string

// configKey is one row of the config-keys table.
type configKey struct{ Key, Type, Meaning string }

// parseConfigKeys splits the source body into its table rows (header and
// separator left out) and the text after the table (the environment
// variables). A row must have three cells; `\|` is a literal bar.
func parseConfigKeys(body string) (keys []configKey, rest string, err error) {
	lines := strings.Split(strings.TrimSpace(configKeysBody(body)), "\n")
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		if i < 2 { // | key | type | meaning |, |---|---|---|
			continue
		}
		cells := splitRow(lines[i])
		if len(cells) != 3 {
			return nil, "", fmt.Errorf("configkeys.md: table row %d has %d cells, want 3: %.60s", i-1, len(cells), lines[i])
		}
		keys = append(keys, configKey{cells[0], cells[1], cells[2]})
	}
	if len(keys) == 0 {
		return nil, "", fmt.Errorf("configkeys.md: no table rows")
	}
	return keys, strings.TrimSpace(strings.Join(lines[i:], "\n")), nil
}

// splitRow splits "| a | b \| c | d |" into "a", "b | c", "d".
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// roffText turns one markdown line (code spans, literal text) into roff
// text: backslashes escaped, code spans in bold, hyphens of code spans
// as \- (so they paste as ASCII), a leading dot or quote made literal,
// other characters than ASCII as \[uXXXX].
func roffText(md string) string {
	md = strings.ReplaceAll(md, `\`, `\e`)
	out := codeSpan.ReplaceAllStringFunc(md, func(s string) string {
		return `\fB` + strings.ReplaceAll(s[1:len(s)-1], "-", `\-`) + `\fR`
	})
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	var b strings.Builder // non-ASCII as groff's \[uXXXX]: the page is ASCII
	for _, r := range out {
		if r > 0x7e {
			fmt.Fprintf(&b, `\[u%04X]`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// configManPage renders nfpass.yaml(5) from the config-keys source.
func configManPage(src, version string) (string, error) {
	keys, rest, err := parseConfigKeys(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH \"NFPASS.YAML\" \"5\" \"\" \"nfpass %s\" \"nfpass manual\"\n", version)
	b.WriteString(`.SH NAME
nfpass.yaml \- the nfpass policy file
.SH SYNOPSIS
.B /etc/nfpass/nfpass.yaml
.SH DESCRIPTION
The policy nfpass compiles into the one nftables table it owns: which VPN
and ALG traffic passes, NAT, a DMZ host, port forwards and the management
access no policy may cut. YAML (or TOML or JSON by extension, or UCI on
OpenWrt). Unknown keys and wrong types are errors; every problem is
reported at once with the file and key path, and nothing is applied.
.PP
Precedence, lowest first: built\-in defaults, the profile, the file,
NFPASS_* environment variables, flags (\fB\-\-table\fR, \fB\-\-profile\fR,
\fB\-\-mode\fR). Maps (passthrough, nat, interfaces) merge key by key;
lists (forwards, management, interface lists) in the file replace the
profile's. Without a file at the default path (and no \fB\-c\fR) nfpass
uses the embedded profile \fBhome\fR; \fBnfpass init\fR writes a file.
.SH KEYS
`)
	for _, k := range keys {
		fmt.Fprintf(&b, ".TP\n%s (%s)\n%s\n", roffText(k.Key), roffText(k.Type), roffText(k.Meaning))
	}
	if rest != "" {
		b.WriteString(".SH ENVIRONMENT\n")
		for _, l := range strings.Split(strings.TrimPrefix(rest, "Environment: "), "\n") {
			b.WriteString(roffText(l) + "\n")
		}
	}
	b.WriteString(`.SH FILES
.TP
.I /etc/nfpass/nfpass.yaml
the policy (a conffile in the Debian package)
.TP
.I /etc/default/nfpass
extra flags for the daemon (NFPASS_RUN_ARGS)
.TP
.I /usr/share/doc/nfpass/README.md
the full documentation, with this reference and annotated examples
.SH SEE ALSO
.BR nfpass (8),
.BR nfpass\-check (8),
.BR nfpass\-plan (8),
.BR nfpass\-apply (8),
.BR nfpass\-run (8),
.BR nfpass\-init (8)
`)
	return b.String(), nil
}
