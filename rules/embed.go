// Package rules embeds nfpass's data: the protocol catalog (protocols/*.yaml),
// the profiles (profiles/*.yaml) and the annotated examples (examples/*.yaml).
// Adding a protocol or a profile is a data change; no Go code changes.
package rules

import "embed"

// FS holds every catalog, profile and example file, read at build time.
//
//go:embed protocols/*.yaml profiles/*.yaml examples/*.yaml
var FS embed.FS
