// Package config turns a config file, the environment and command-line
// flags into a validated policy.Policy. It is nfpass's only viper user.
//
// # Sources and precedence
//
// From lowest to highest:
//
//  1. defaults: table nfpass, mode standalone, profile home;
//  2. the profile (rules/profiles/NAME.yaml, embedded) named by the file's
//     `profile:` key, NFPASS_PROFILE or the "profile" override;
//  3. the config file (Options.Path, default /etc/nfpass/nfpass.yaml);
//     YAML (.yaml, .yml), TOML (.toml) or JSON (.json) by extension;
//  4. NFPASS_* environment variables (Options.Environ);
//  5. Options.Overrides (command-line flags).
//
// Maps (interfaces, passthrough, nat) merge key by key; lists (forwards,
// management, interfaces.wan/lan/lan_networks) in a higher source replace
// the lower one's whole list. Only without a config file (nothing at the
// default path, and no path given explicitly) is the policy the profile
// alone (Loaded.Embedded); an empty file is an error.
//
// # Reading the file
//
// The file is read once, and Loaded.Bytes are the bytes parsed. It is
// opened non-blocking and must be a regular file (fstat of the opened
// file, so a symlink to a FIFO or a device is refused too). At most
// Options.MaxSize bytes are read (DefaultMaxSize, 1 MiB), and maps and
// lists may nest at most Options.MaxDepth deep (DefaultMaxDepth, 32),
// checked on the raw bytes before any parser runs. A YAML file holds one
// document. A file someone other than root can change loads with a
// warning (Loaded.Warnings).
//
// Keys are split on "::" inside viper, never on dots, and user-named things
// are list items with a `name:` key, so names such as eth0.10, pppoe-wan or
// br-lan are kept verbatim. Keys are case-insensitive (viper lowercases
// them).
//
// # Environment
//
// Empty variables are ignored. NFPASS_CONFIG is left to the command line
// (it names the file); any other unknown NFPASS_* variable is an error, so
// that a typo does not silently do nothing.
//
//	NFPASS_TABLE                    table
//	NFPASS_MODE                     mode (standalone | companion)
//	NFPASS_PROFILE                  profile
//	NFPASS_NAT_MASQUERADE           nat.masquerade (true/false, on/off, yes/no, enabled/disabled)
//	NFPASS_NAT_DMZ                  nat.dmz
//	NFPASS_NAT_MSS_CLAMP            nat.mss_clamp (as nat.masquerade)
//	NFPASS_LOGGING_BLOCKED          logging.blocked (as nat.masquerade)
//	NFPASS_LOGGING_RATE             logging.rate
//	NFPASS_NAT_REFLECTION           nat.reflection (as nat.masquerade; default on)
//	NFPASS_IPV6                     ipv6 (on | off | auto)
//	NFPASS_INTERFACES_WAN           interfaces.wan (comma- or space-separated)
//	NFPASS_INTERFACES_LAN           interfaces.lan (comma- or space-separated)
//	NFPASS_INTERFACES_LAN_NETWORKS  interfaces.lan_networks (comma- or space-separated)
//	NFPASS_INTERFACES_VPN           interfaces.vpn (comma- or space-separated)
//	NFPASS_INTERFACES_GUEST         interfaces.guest (comma- or space-separated)
//	NFPASS_PASSTHROUGH_<PROTOCOL>   passthrough.<protocol>, e.g. NFPASS_PASSTHROUGH_PPTP=on,
//	                                NFPASS_PASSTHROUGH_NETBIOS_NS=off (dash written as _)
//
// forwards and management (lists of named items) are set only in files.
//
// # Errors
//
// Decoding is strict: unknown keys at any depth and values of the wrong
// type are errors, found by one schema walker (derived from policy.Policy's
// tags) that names each key path and line; viper only merges. Then
// policy.ValidateWith runs on the merged policy. Every
// problem is reported at once (errors.Join of *Error), each naming its
// source and key path; see Error.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/nfpass/nfpass/pkg/catalog"
	"github.com/nfpass/nfpass/pkg/policy"
)

// DefaultPath is the config file used when Options.Path is empty (but see
// HostDefaultPath: OpenWrt's UCI file comes first there).
const DefaultPath = "/etc/nfpass/nfpass.yaml"

// UCIPath is nfpass's config file in OpenWrt's UCI (/etc/config/*).
const UCIPath = "/etc/config/nfpass"

// openWrtRelease marks an OpenWrt system.
const openWrtRelease = "/etc/openwrt_release"

// HostDefaultPath is the config file used when none is named: UCIPath on
// OpenWrt when it exists (the package installs it), DefaultPath otherwise.
// It stats two files.
func HostDefaultPath() string { return defaultPathFor(openWrtRelease, UCIPath) }

func defaultPathFor(release, uci string) string {
	if fi, err := os.Stat(release); err != nil || !fi.Mode().IsRegular() {
		return DefaultPath
	}
	if _, err := os.Lstat(uci); err == nil {
		return uci
	}
	return DefaultPath
}

// DefaultProfile is the profile used when nothing names one.
const DefaultProfile = "home"

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "NFPASS_"

// EnvConfig is the variable reserved for the command line (the config
// file's path); Load ignores it.
const EnvConfig = EnvPrefix + "CONFIG"

// keyDelim is viper's key delimiter: anything but a dot, so that no key is
// ever split on the dots of eth0.10.
const keyDelim = "::"

// Loaded is a configuration as Load read it.
type Loaded struct {
	// Policy is the merged, validated policy.
	Policy *policy.Policy
	// Path is the config file read; "" when there was none (Embedded).
	Path string
	// Bytes are exactly the bytes Load parsed from Path: what to record
	// beside the applied ruleset, so that the recorded config is the
	// applied one. Nil when there was no file.
	Bytes []byte
	// Embedded: no file exists at the default path and none was named,
	// so the policy is the profile alone (embedded in the binary), plus
	// environment and flags.
	Embedded bool
	// Warnings are problems that do not stop loading, each naming the
	// file: a config file or directory that someone other than root can
	// change. Commands that apply print them.
	Warnings []string
}

// Options says where Load reads from.
type Options struct {
	// Path is the config file; "" means HostDefaultPath().
	Path string
	// Explicit: the user named the file (-c), so a missing file is an
	// error. Otherwise a missing file means "the profile alone".
	Explicit bool
	// Environ is the environment (os.Environ()); only NFPASS_* entries are
	// read. Nil: no environment overrides.
	Environ []string
	// Overrides come from command-line flags and win over everything. Keys
	// are config key paths with dots ("table", "mode", "profile",
	// "nat.masquerade", "passthrough.pptp"); values as in a config file.
	Overrides map[string]any
	// Catalog is the protocol catalog and profiles; nil: catalog.Default().
	Catalog *catalog.Catalog
	// Data, when not nil, is the config file's content: Path is not read,
	// only named (format, messages). Used to compile a recorded generation
	// again from its recorded bytes.
	Data []byte
	// NoFile: there is no config file (the profile, environment and
	// overrides alone), whatever exists at Path.
	NoFile bool
	// MaxSize is the largest config file read, in bytes; 0 means
	// DefaultMaxSize. A larger file is an error, found while reading (a
	// file that grows, or a device, cannot make Load read more).
	MaxSize int64
	// MaxDepth is the deepest nesting of maps and lists accepted; 0 means
	// DefaultMaxDepth. It is checked before the file is parsed.
	MaxDepth int
	// RouterAddrs are the router's own addresses, which no forward or DMZ
	// may target (see policy.ValidateOptions). Load does not read them:
	// the caller does, in the namespace it applies to. Nil: not checked.
	RouterAddrs []netip.Addr
	// Facts are what the box says (interfaces with a global IPv6
	// address, for ipv6: auto), copied into the policy. Load does not
	// read them: the caller does. Zero: none known.
	Facts policy.Facts
}

// Precedence ranks of the sources.
const (
	rankProfile = iota + 1
	rankFile
	rankEnv
	rankFlags
)

// source is one layer of configuration.
type source struct {
	label string     // Error.File
	rank  int        // precedence: higher wins
	yaml  []byte     // the YAML text, for line numbers; nil otherwise
	doc   *yaml.Node // the parsed YAML document, when there is one
	lines map[string]int
	// where names the UCI section and option of a key path, for a UCI
	// file; nil otherwise.
	where map[string]string
}

// line returns the line of path or of its nearest ancestor, or 0. The
// line index is built on first use: only when there is a problem.
func (s *source) line(path string) int {
	if s.yaml == nil && s.doc == nil && s.lines == nil {
		return 0
	}
	if s.lines == nil {
		doc := s.doc
		if doc == nil {
			doc = &yaml.Node{}
			if err := yaml.Unmarshal(s.yaml, doc); err != nil {
				doc = nil
			}
		}
		s.lines = yamlLines(doc)
	}
	for p := path; p != ""; p = parent(p) {
		if l, ok := s.lines[p]; ok {
			return l
		}
	}
	return 0
}

// uciPlace names the UCI section and option of path or of its nearest
// ancestor, or "".
func (s *source) uciPlace(path string) string {
	for p := path; p != "" && s.where != nil; p = parent(p) {
		if w, ok := s.where[p]; ok {
			return w
		}
	}
	return ""
}

// parent strips the last segment of a key path: a.b[2].c -> a.b[2] -> a.b.
func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

// under reports whether path is p or inside it.
func under(path, p string) bool {
	return path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")
}

type problem struct {
	rank int
	err  *Error
}

// loader collects problems and remembers which source set each key.
type loader struct {
	problems []problem
	// decodeFailed holds the key paths decoding already complained about,
	// so that Validate's follow-on complaints about them are dropped.
	decodeFailed []string
	// origin maps a leaf key path (a scalar, a whole list, one passthrough
	// toggle) to the highest-precedence source that set it.
	origin map[string]*source
}

func (ld *loader) add(src *source, path, msg string, err error) {
	if w := src.uciPlace(path); w != "" {
		msg += " (UCI " + w + ")"
	}
	ld.problems = append(ld.problems, problem{src.rank, &Error{File: src.label, Line: src.line(path), Path: path, Msg: msg, Err: err}})
}

// decodeErr records a decoding problem at path.
func (ld *loader) decodeErr(src *source, path, msg string, err error) {
	ld.add(src, path, msg, err)
	if path != "" {
		ld.decodeFailed = append(ld.decodeFailed, path)
	}
}

func (ld *loader) mark(src *source, path string) {
	if prev, ok := ld.origin[path]; !ok || prev.rank <= src.rank {
		ld.origin[path] = src
	}
}

// originOf returns the source that set path (or the list or map holding it).
func (ld *loader) originOf(path string) *source {
	for p := path; p != ""; p = parent(p) {
		if s, ok := ld.origin[p]; ok {
			return s
		}
	}
	return nil
}

func (ld *loader) reported(path string) bool {
	return slices.ContainsFunc(ld.decodeFailed, func(p string) bool { return under(path, p) })
}

// Load reads the configuration as Options say, merges the sources, decodes
// strictly and validates. It reads the config file once, only if it is a
// regular file, at most Options.MaxSize bytes, and nested at most
// Options.MaxDepth deep; Loaded.Bytes are the bytes it parsed. An empty
// file (nothing but whitespace or comments, a null or empty document) is
// an error: only when no file exists at the default path, and none was
// named, is the policy the profile alone (Loaded.Embedded).
//
// On success it returns the result and nil. On failure the error joins one
// *Error per problem (see Errors) and the result is nil, except when every
// problem matches policy.ErrManagementCut: then the result is complete too,
// so that a forced apply can use it.
func Load(opts Options) (*Loaded, error) {
	cat := opts.Catalog
	if cat == nil {
		cat = catalog.Default()
	}
	path := opts.Path
	if path == "" {
		path = HostDefaultPath()
	}
	maxDepth := opts.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	ld := &loader{origin: map[string]*source{}}
	out := &Loaded{}

	// The file.
	fileSrc := &source{label: path, rank: rankFile}
	var fileTree map[string]any
	haveFile, fileBroken := false, false
	fileProblem := func(p *readProblem) {
		fileBroken = true
		ld.problems = append(ld.problems, problem{rankFile, &Error{File: path, Line: p.line, Msg: p.msg, Err: p.err}})
	}
	format, ok := formatOf(path)
	if !ok {
		fileBroken = true
		ld.add(fileSrc, "", unsupported(path), ErrUnsupportedFormat)
	} else {
		var fd *fileData
		var prob *readProblem
		switch {
		case opts.NoFile:
			prob = &readProblem{msg: "no config file", err: fs.ErrNotExist}
		case opts.Data != nil:
			fd = &fileData{data: opts.Data} // recorded bytes: no file to read
		default:
			fd, prob = readFile(path, opts.MaxSize)
		}
		switch {
		case prob == nil:
			haveFile = true
			out.Path, out.Bytes = path, fd.data
			if fd.info != nil {
				out.Warnings = ownership(path, fd.info)
			}
			if format == "" {
				// No known extension: UCI if the content says so.
				if len(bytes.TrimSpace(fd.data)) == 0 {
					fileProblem(emptyProblem("", opts.Explicit))
					break
				}
				if !looksUCI(fd.data) {
					fileProblem(&readProblem{msg: unsupported(path), err: ErrUnsupportedFormat})
					break
				}
				format = "uci"
			}
			if format == "uci" {
				if len(bytes.TrimSpace(fd.data)) == 0 {
					fileProblem(emptyProblem("", opts.Explicit))
					break
				}
				ut, prob := parseUCIFile(fd.data, opts.Explicit)
				if prob != nil {
					fileProblem(prob)
					break
				}
				fileSrc.lines, fileSrc.where = ut.lines, ut.where
				fileTree = ld.cleanTop(fileSrc, ut.tree)
				break
			}
			tree, doc, prob := parse(format, fd.data, maxDepth, opts.Explicit)
			if prob != nil {
				fileProblem(prob)
				break
			}
			fileSrc.doc = doc
			fileTree = ld.cleanTop(fileSrc, tree)
		case errors.Is(prob.err, fs.ErrNotExist) && !opts.Explicit:
			// No file: the profile alone.
			out.Embedded = true
		default:
			fileProblem(prob)
		}
	}

	// The environment and the command line.
	env := ld.envLayers(opts.Environ, cat)
	flagSrc := &source{label: "command line", rank: rankFlags}
	flagTree := ld.overrideLayer(flagSrc, opts.Overrides)

	// The profile: named by the highest source that names one.
	profName, nameSrc := DefaultProfile, (*source)(nil)
	if s, ok := fileTree["profile"].(string); ok {
		profName, nameSrc = s, fileSrc
	}
	for _, l := range env {
		if s, ok := l.tree["profile"].(string); ok {
			profName, nameSrc = s, l.src
		}
	}
	if s, ok := flagTree["profile"].(string); ok {
		profName, nameSrc = s, flagSrc
	}
	profSrc := &source{label: "profile " + profName, rank: rankProfile}
	if nameSrc == nil {
		nameSrc = profSrc
	}
	var profTree map[string]any
	profileOK := true
	if prof, err := cat.Profile(profName); err != nil {
		profileOK = false
		msg := fmt.Sprintf("%q is not a profile; known: %s", profName, strings.Join(cat.ProfileNames(), ", "))
		if s := suggest(profName, cat.ProfileNames()); s != "" {
			msg = fmt.Sprintf("%q is not a profile; did you mean %s? (known: %s)", profName, s, strings.Join(cat.ProfileNames(), ", "))
		}
		ld.decodeErr(nameSrc, "profile", msg, fmt.Errorf("%w: %w", ErrUnknownProfile, err))
	} else {
		tree, err := profileTree(prof.Doc)
		if err != nil {
			profileOK = false
			ld.add(profSrc, "", "cannot parse: "+oneLine(err.Error()), fmt.Errorf("%w: %w", ErrParse, err))
		} else {
			profSrc.yaml = prof.Doc
			delete(tree, "name")
			delete(tree, "description")
			if _, ok := tree["profile"]; ok {
				ld.decodeErr(profSrc, "profile", "a profile cannot name another profile", ErrUnknownKey)
				delete(tree, "profile")
			}
			profTree = ld.cleanTop(profSrc, tree)
		}
	}

	// Merge, lowest first, and decode.
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	v.SetDefault("table", policy.DefaultTable)
	v.SetDefault("mode", string(policy.Standalone))
	v.SetDefault("profile", DefaultProfile)
	v.SetDefault("nat"+keyDelim+"reflection", true)
	for _, t := range []map[string]any{profTree, fileTree} {
		if t != nil {
			_ = v.MergeConfigMap(t) // never fails
		}
	}
	for _, l := range env {
		_ = v.MergeConfigMap(l.tree)
	}
	setLeaves(v, "", flagTree)

	mainSrc := profSrc
	if haveFile {
		mainSrc = fileSrc
	}
	// The schema walker (cleanTop) has already refused unknown keys and
	// wrong types with their key paths and lines: it is the one strict
	// decoder. viper only merges the canonical trees, which fit the struct.
	var p policy.Policy
	if err := v.Unmarshal(&p); err != nil {
		// The trees are canonical by now; this is a bug, not bad input.
		ld.add(mainSrc, "", "internal error decoding the merged configuration: "+oneLine(err.Error()), err)
	}
	if haveFile {
		p.Source = path
	} else {
		p.Source = fmt.Sprintf("profile %s (no config file)", profName)
	}
	p.Facts = opts.Facts

	// Validate the merged policy, and name the source of each problem.
	partial := fileBroken || !profileOK
	if verr := p.ValidateWith(cat, policy.ValidateOptions{RouterAddrs: opts.RouterAddrs}); verr != nil {
		items := []error{verr}
		if j, ok := verr.(interface{ Unwrap() []error }); ok {
			items = j.Unwrap()
		}
		for _, e := range items {
			fpath, msg := "", e.Error()
			if fes := policy.FieldErrors(e); len(fes) > 0 {
				fpath, msg = fes[0].Path, fes[0].Msg
			}
			if ld.reported(fpath) {
				continue
			}
			src := ld.originOf(fpath)
			if src == nil {
				if partial {
					// A consequence of the unreadable file or the unknown
					// profile, already reported.
					continue
				}
				src = mainSrc
			}
			ld.add(src, fpath, msg, e)
		}
	}

	out.Policy = &p
	if len(ld.problems) == 0 {
		return out, nil
	}
	// By source, then (YAML) by line; otherwise in the order found.
	slices.SortStableFunc(ld.problems, func(a, b problem) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return a.err.Line - b.err.Line
	})
	errs := make([]error, len(ld.problems))
	allMgmt := true
	for i, pr := range ld.problems {
		errs[i] = pr.err
		allMgmt = allMgmt && errors.Is(pr.err, policy.ErrManagementCut)
	}
	if allMgmt {
		return out, errors.Join(errs...)
	}
	return nil, errors.Join(errs...)
}

// unsupported is the message for a file whose format nfpass cannot tell.
func unsupported(path string) string {
	return fmt.Sprintf("unsupported file format %q; use .yaml, .yml, .toml, .json or .uci (UCI: /etc/config/nfpass, or a file starting with config)", filepath.Ext(path))
}

// formatOf maps a file's path to a viper config type, or "uci". A path
// without extension outside /etc/config gives "" and true: the content
// decides (UCI or unsupported).
func formatOf(path string) (string, bool) {
	if IsUCIPath(path) {
		return "uci", true
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case "":
		return "", true
	case ".yaml", ".yml":
		return "yaml", true
	case ".toml":
		return "toml", true
	case ".json":
		return "json", true
	}
	return "", false
}

// profiles caches decoded profile documents (they are immutable), keyed
// by their text.
var profiles sync.Map // string -> map[string]any

// profileTree decodes a profile document, from the cache when it can; the
// caller gets its own copy (merging mutates trees).
func profileTree(doc []byte) (map[string]any, error) {
	if t, ok := profiles.Load(string(doc)); ok {
		return deepCopy(t).(map[string]any), nil
	}
	t, err := readTree("yaml", doc)
	if err != nil {
		return nil, err
	}
	profiles.Store(string(doc), deepCopy(t))
	return t, nil
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = deepCopy(val)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, val := range x {
			l[i] = deepCopy(val)
		}
		return l
	}
	return v
}

// setLeaves puts a cleaned tree into viper's override layer, one leaf (a
// scalar, a list, a toggle) at a time, so that maps still merge key by key.
func setLeaves(v *viper.Viper, prefix string, tree map[string]any) {
	for _, k := range sortedKeys(tree) {
		key := k
		if prefix != "" {
			key = prefix + keyDelim + k
		}
		if m, ok := tree[k].(map[string]any); ok {
			setLeaves(v, key, m)
			continue
		}
		v.Set(key, tree[k])
	}
}

// parseProblem words a decoder's error for people and finds its line
// where the decoder says (TOML, JSON; YAML says it in the message).
func parseProblem(data []byte, err error) (string, int) {
	msg := oneLine(err.Error())
	msg = strings.TrimPrefix(msg, "While parsing config: ")
	if strings.Contains(msg, "cannot unmarshal") && strings.Contains(msg, "into map[string]interface") {
		msg = "the top level must be a map of keys (table:, interfaces:, passthrough:, ...): " + msg
	}
	var terr *toml.DecodeError
	if errors.As(err, &terr) {
		row, _ := terr.Position()
		return msg, row
	}
	var jerr *json.SyntaxError
	if errors.As(err, &jerr) && jerr.Offset <= int64(len(data)) {
		return msg, 1 + bytes.Count(data[:jerr.Offset], []byte("\n"))
	}
	var jtype *json.UnmarshalTypeError
	if errors.As(err, &jtype) && jtype.Offset <= int64(len(data)) {
		return msg, 1 + bytes.Count(data[:jtype.Offset], []byte("\n"))
	}
	return msg, 0
}

// oneLine folds a multi-line message (yaml's "unmarshal errors:\n  line
// 3: ...") into one line.
func oneLine(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, " ")
}
