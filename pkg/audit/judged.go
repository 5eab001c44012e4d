package audit

import (
	"fmt"
	"strings"
	"time"
)

// Kinds of policy an audit, watch or doctor judges against.
const (
	// JudgedGeneration: the last generation applied in the state directory.
	JudgedGeneration = "generation"
	// JudgedFile: a config file named with -c.
	JudgedFile = "file"
	// JudgedConfig: no generation is recorded, so the config as it is now
	// (the default file, or the embedded profile).
	JudgedConfig = "config"
)

// Judged names the policy findings were judged against, for the output.
type Judged struct {
	Kind string `json:"kind"`
	// Generation is the generation's ID (Kind generation).
	Generation int `json:"generation,omitempty"`
	// Source is the config file, or "profile home (no config file)".
	Source string `json:"source"`
	// Applied is when the generation was applied.
	Applied time.Time `json:"applied,omitzero"`
	// Note says why the audit fell back to the config, or what to keep in
	// mind about the judged policy.
	Note string `json:"note,omitempty"`
}

// String renders "generation 7 (/etc/nfpass/office.yaml, applied
// 2026-11-29 19:02)", "file /etc/nfpass/office.yaml" or "the config
// (profile home (no config file))".
func (j Judged) String() string {
	switch j.Kind {
	case JudgedGeneration:
		return fmt.Sprintf("generation %d (%s, applied %s)", j.Generation, j.Source, j.Applied.Local().Format("2006-01-02 15:04"))
	case JudgedFile:
		return "file " + j.Source
	}
	return "the config (" + j.Source + ")"
}

// Lines renders "judged against ..." and the note, if any, for text output.
func (j *Judged) Lines() string {
	if j == nil {
		return ""
	}
	var b strings.Builder
	// One line, however long the path: scripts and people grep for it.
	b.WriteString("judged against " + j.String() + "\n")
	if j.Note != "" {
		wrap(&b, "note: ", j.Note, 80)
	}
	return b.String()
}
