package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem with one key of the configuration, located in the
// source that set it. Load returns every problem at once, joined with
// errors.Join; Errors flattens them back into a list (for `-o json`).
//
// Error() is "FILE: KEY.PATH: message", with " (line N)" appended when the
// line is known (YAML files and profiles):
//
//	/etc/nfpass/nfpass.yaml: forwards[2].to: "192.168.1.300" is not an IP address (line 14)
//	profile home: management: ...
//	environment NFPASS_NAT_DMZ: nat.dmz: "x" is not an IP address
//	command line: mode: "x" is not standalone or companion
type Error struct {
	// File names the source: the config file path, "profile NAME",
	// "environment NFPASS_VAR" or "command line".
	File string `json:"file"`
	// Line is the 1-based line in a YAML source, or 0 when unknown.
	Line int `json:"line,omitempty"`
	// Path is the key path as written in the config (`forwards[2].to`);
	// empty for problems with the whole file (unreadable, unparsable).
	Path string `json:"path,omitempty"`
	// Msg says what is wrong.
	Msg string `json:"message"`
	// Err is the underlying error: a policy.FieldError from Validate (which
	// may match policy.ErrManagementCut), one of this package's sentinels,
	// or an I/O or parse error. Reached through Unwrap.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Unwrap returns the underlying error, so errors.Is(err,
// policy.ErrManagementCut) and errors.As(err, **policy.FieldError) work
// through a Load error.
func (e *Error) Unwrap() error { return e.Err }

// Classes of problems found while decoding (before policy.Validate), for
// errors.Is. Problems found by policy.Validate unwrap to *policy.FieldError.
var (
	// ErrUnknownKey: a key the schema does not have (a typo).
	ErrUnknownKey = errors.New("unknown key")
	// ErrWrongType: a value of the wrong type (a list where a string is
	// expected, "maybe" for a boolean, ...).
	ErrWrongType = errors.New("wrong type")
	// ErrUnknownProfile: the profile named by `profile:`, NFPASS_PROFILE or
	// the command line does not exist.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrUnsupportedFormat: the file's extension is not .yaml, .yml, .toml
	// or .json.
	ErrUnsupportedFormat = errors.New("unsupported config file format")
	// ErrParse: the file is not valid YAML, TOML or JSON.
	ErrParse = errors.New("cannot parse config file")
	// ErrNotRegular: the config path is a FIFO, a device, a directory or a
	// socket (or a symlink to one, or a dangling symlink): nfpass reads
	// only regular files.
	ErrNotRegular = errors.New("config file is not a regular file")
	// ErrTooLarge: the file is larger than Options.MaxSize.
	ErrTooLarge = errors.New("config file too large")
	// ErrTooDeep: maps and lists nest deeper than Options.MaxDepth.
	ErrTooDeep = errors.New("config nested too deep")
	// ErrEmpty: the file holds no settings (empty, whitespace or comments
	// only, a null or empty document). An empty file never means "use the
	// embedded profile": only a missing one does.
	ErrEmpty = errors.New("config file is empty")
	// ErrSecondDocument: a YAML file holds more than one document (---).
	ErrSecondDocument = errors.New("config file has a second YAML document")
)

// Errors flattens an error returned by Load into its *Error values, in
// order. Errors that are not *Error (none, from Load) are skipped.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		switch v := e.(type) {
		case nil:
		case *Error:
			out = append(out, v)
		case interface{ Unwrap() []error }:
			for _, x := range v.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}
