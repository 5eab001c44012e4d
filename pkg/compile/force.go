package compile

import (
	"errors"

	"github.com/nfpass/nfpass/pkg/policy"
)

// CompileForced is Compile for `nfpass apply --force`: a policy whose only
// validation problems match policy.ErrManagementCut (it would cut the
// admin's access to the router) is compiled anyway, and those problems are
// returned as warnings. Any other problem is still an error.
func CompileForced(p *policy.Policy, cat Catalog) (plan *Plan, overridden []error, err error) {
	if verr := p.Validate(cat); verr != nil {
		errs := []error{verr}
		if j, ok := verr.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			if !errors.Is(e, policy.ErrManagementCut) {
				return nil, nil, verr
			}
		}
		overridden = errs
	}
	return build(p, cat), overridden, nil
}
