package policy

import (
	"errors"
	"fmt"
)

// FieldError is one problem with one key of the policy. Path is the key path
// as written in the config file: `forwards[2].to`.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Path, e.Msg) }

// ErrManagementCut marks a problem that would cut the admin's access to the
// router. `nfpass apply --force` may override only this class.
var ErrManagementCut = errors.New("would cut management access")

// fieldErr builds a FieldError.
func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// managementErr builds a FieldError that also matches ErrManagementCut.
func managementErr(path, format string, args ...any) error {
	return &mgmtError{FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}}
}

type mgmtError struct{ FieldError }

func (e *mgmtError) Error() string      { return e.FieldError.Error() }
func (e *mgmtError) Unwrap() error      { return ErrManagementCut }
func (e *mgmtError) Field() *FieldError { return &e.FieldError }

// FieldErrors flattens an error tree into its FieldErrors, in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		switch v := e.(type) {
		case nil:
		case *FieldError:
			out = append(out, v)
		case *mgmtError:
			out = append(out, &v.FieldError)
		case interface{ Unwrap() []error }:
			for _, x := range v.Unwrap() {
				walk(x)
			}
		default:
			if u := errors.Unwrap(e); u != nil {
				walk(u)
			}
		}
	}
	walk(err)
	return out
}
