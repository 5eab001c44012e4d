package audit

import (
	"path"
	"strings"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/policy"
)

// CheckIDFW4Includes is the fw4 include check's ID.
const CheckIDFW4Includes = "fw4-includes"

// FW4IncludesDir is where fw4 reads its automatic includes.
const FW4IncludesDir = "/usr/share/nftables.d"

// fw4SnippetChain is the snippet's DNAT chain inside fw4's table once fw4
// has loaded the table-post include.
const fw4SnippetChain = "nfpass_" + compile.ChainDstNAT

// FW4IncludeState is one include file nfpass's plan would write
// (compile.Plan.FW4Includes) and what is on disk.
type FW4IncludeState struct {
	// Path is relative to Dir (table-post/10-nfpass.nft).
	Path string
	// Want is what `nfpass plan --companion-includes` would write; Got is
	// the file's text.
	Want, Got string
	// Missing: no such file. Err: it could not be read (not a regular
	// file, too large, permissions).
	Missing bool
	Err     string
}

// FW4IncludesInput is what the fw4 include check judges: the directory
// read and each file.
type FW4IncludesInput struct {
	Dir   string
	Files []FW4IncludeState
}

// CheckFW4Includes: in companion mode beside fw4 (table inet fw4) with
// something to include (forwards), warn when an include file under
// /usr/share/nftables.d is missing, unreadable or differs from what the
// plan would write (stale), and when the files are current but fw4's live
// table lacks the snippet's DNAT chain (fw4 not reloaded since). Nothing
// when fw4 does not own the box, the ruleset could not be read, or the
// plan includes nothing. Pure.
func CheckFW4Includes(in DoctorInput) []Check {
	if in.Mode != policy.Companion || in.TablesErr != "" || len(in.FW4Includes.Files) == 0 {
		return nil
	}
	var fw4 *RulesetTable
	for i, t := range in.Tables {
		if t.Family == "inet" && t.Name == "fw4" {
			fw4 = &in.Tables[i]
		}
	}
	if fw4 == nil {
		return nil
	}
	dir := in.FW4Includes.Dir
	if dir == "" {
		dir = FW4IncludesDir
	}
	fix := "run `nfpass plan --companion-includes " + dir + "` then `fw4 reload`"
	c := Check{ID: CheckIDFW4Includes, Name: "fw4 includes"}
	var missing, stale, unreadable []string
	wantsChain := false
	for _, f := range in.FW4Includes.Files {
		p := path.Join(dir, f.Path)
		switch {
		case f.Missing:
			missing = append(missing, p)
		case f.Err != "":
			unreadable = append(unreadable, p+" ("+f.Err+")")
		case f.Got != f.Want:
			stale = append(stale, p)
		}
		if strings.Contains(f.Want, "chain "+fw4SnippetChain+" {") {
			wantsChain = true
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing: "+strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		problems = append(problems, "stale (differs from what the plan writes): "+strings.Join(stale, ", "))
	}
	if len(unreadable) > 0 {
		problems = append(problems, "unreadable: "+strings.Join(unreadable, ", "))
	}
	switch {
	case len(missing) == len(in.FW4Includes.Files):
		c.Result, c.Fix = CheckWarn, fix
		c.Detail = "nfpass's forwards are not in fw4's includes: " + strings.Join(problems, "; ")
	case len(problems) > 0:
		c.Result, c.Fix = CheckWarn, fix
		c.Detail = "nfpass's forwards in fw4's includes are out of date: " + strings.Join(problems, "; ")
	case wantsChain && !hasChain(fw4, fw4SnippetChain):
		c.Result, c.Fix = CheckWarn, "run `fw4 reload`"
		c.Detail = "the include files in " + dir + " are current, but fw4's table (inet fw4) has no chain " + fw4SnippetChain + ": fw4 has not loaded them since they were written"
	default:
		c.Result = CheckOK
		c.Detail = "the include files in " + dir + " match the plan and fw4 has loaded them"
	}
	return []Check{c}
}

func hasChain(t *RulesetTable, name string) bool {
	for _, ch := range t.Chains {
		if ch.Name == name {
			return true
		}
	}
	return false
}
