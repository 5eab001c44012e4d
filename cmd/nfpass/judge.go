package main

import (
	"fmt"
	"strings"

	"github.com/nfpass/nfpass/pkg/audit"
	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/config"
	"github.com/nfpass/nfpass/pkg/policy"
	"github.com/nfpass/nfpass/pkg/reconcile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// judged is the policy audit, watch and doctor judge against.
type judged struct {
	policy *policy.Policy
	cat    *catalog.Catalog
	// plan is the generation's recorded plan (what was applied), or the
	// policy compiled now (a file, the config).
	plan  *compile.Plan
	view  audit.Policy
	about audit.Judged
}

// judgedPolicy resolves what to judge against: with -c, that file; else
// the last generation applied in stateDir (its recorded config, checked
// against its recorded table); else, saying so, the config as every other
// command reads it. Environment and --table/--profile/--mode apply to a
// file or the config, never to a generation. It reads files only.
func (g *globals) judgedPolicy(stateDir string) (*judged, error) {
	if g.configPath != "" {
		return g.judgeConfig(audit.JudgedFile, "")
	}
	gens, err := reconcile.Store{Dir: stateDir}.List()
	var note string
	switch {
	case err != nil:
		note = fmt.Sprintf("cannot read the state directory %s (%v), so no applied generation is known; judged against the config instead", stateDir, err)
	case len(gens) == 0:
		note = fmt.Sprintf("no generation is recorded in %s (nothing applied yet, or another --state-dir), so judged against the config instead", stateDir)
	default:
		j, err := judgeGeneration(gens[0], catalog.Default())
		if err == nil {
			return j, nil
		}
		note = fmt.Sprintf("generation %d cannot be read (%v); judged against the config instead", gens[0].ID, err)
	}
	return g.judgeConfig(audit.JudgedConfig, note)
}

func (g *globals) judgeConfig(kind, note string) (*judged, error) {
	p, cat, err := g.loadPolicy()
	if err != nil {
		return nil, asExit(2, g.reportConfigError(err))
	}
	plan, err := compile.Compile(p, cat)
	if err != nil {
		return nil, asExit(2, g.reportConfigError(err))
	}
	return &judged{policy: p, cat: cat, plan: plan, view: audit.PolicyOf(p),
		about: audit.Judged{Kind: kind, Source: p.Source, Note: note}}, nil
}

// judgeGeneration rebuilds a generation's policy from its recorded config
// and inputs (environment and flag overrides, as recorded) and checks that it compiles to
// the table the generation applied; when it does not, it says so in the
// note (applied with overrides, or by another version) and still judges
// against the recorded config, which is what the admin wrote.
func judgeGeneration(gen reconcile.Generation, cat *catalog.Catalog) (*judged, error) {
	plan, err := gen.Plan()
	if err != nil {
		return nil, err
	}
	data, err := gen.Config()
	if err != nil {
		return nil, fmt.Errorf("recorded config: %w", err)
	}
	opts := config.Options{Path: gen.Source, Explicit: true, Data: data, Catalog: cat}
	if gen.Inputs != nil {
		// As it was applied: the same environment and flag overrides.
		opts.Environ = gen.Inputs.Env
		opts.Facts = gen.Inputs.Facts
		if gen.Inputs.ConfigPath != "" {
			opts.Path = gen.Inputs.ConfigPath
		}
		for key, v := range gen.Inputs.Overrides {
			if opts.Overrides == nil {
				opts.Overrides = map[string]any{}
			}
			opts.Overrides[key] = v
		}
	}
	if len(data) == 0 {
		// Applied without a file: the profile alone.
		opts.Explicit, opts.NoFile, opts.Path = false, true, ""
		if gen.Inputs == nil { // recorded before inputs were: the source names it
			prof, ok := strings.CutPrefix(gen.Source, "profile ")
			prof, _, _ = strings.Cut(prof, " ")
			if !ok || prof == "" {
				return nil, fmt.Errorf("no recorded config and no profile in its source %q", gen.Source)
			}
			opts.Overrides = map[string]any{"profile": prof}
		}
	}
	l, err := config.Load(opts)
	if err != nil {
		return nil, fmt.Errorf("recorded config no longer loads: %s", strings.Join(problemList(err), "; "))
	}
	p := l.Policy
	p.Source = gen.Source
	about := audit.Judged{Kind: audit.JudgedGeneration, Generation: gen.ID, Source: gen.Source, Applied: gen.Time}
	if now, err := compile.Compile(p, cat); err != nil || len(ruleset.Diff(plan.Table, now.Table)) > 0 {
		about.Note = fmt.Sprintf("generation %d's recorded config does not compile to the table it applied (environment or flag overrides at apply time, or another nfpass version): the switches judged are the recorded config's", gen.ID)
	}
	view := audit.PolicyOf(p)
	view.Applied = gen.Time
	return &judged{policy: p, cat: cat, plan: plan, view: view, about: about}, nil
}
