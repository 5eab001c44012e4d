package helpers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/ruleset"
)

// ErrLockout matches a *LockoutError: applying would cut the admin off.
var ErrLockout = errors.New("would cut the admin off")

// LockoutError refuses a plan: the findings at error level say why.
type LockoutError struct {
	Findings []compile.Finding
}

func (e *LockoutError) Error() string {
	var msgs []string
	for _, f := range e.Findings {
		if f.Level == compile.LevelError {
			msgs = append(msgs, f.String())
		}
	}
	return "refusing to apply, it would cut the admin off: " + strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, ErrLockout) true.
func (e *LockoutError) Is(target error) bool { return target == ErrLockout }

// Preflight is the lockout check run before every standalone apply: it
// reads the interfaces (and, for the ssh session, the route back to the
// client) in the target network namespace and decides with
// compile.CheckAccess. It touches the kernel read-only (rtnetlink); inside
// another namespace it needs root.
type Preflight struct {
	// NetNS is the target namespace ("" the caller's; a name or a path).
	NetNS string
	// SSHConnection is the value of SSH_CONNECTION ("" when not in an
	// ssh session).
	SSHConnection string
	// Force turns refusals into warnings ("--force: ...").
	Force bool
}

// Box reads what the decision needs: every interface of the namespace with
// its addresses and the session's ingress interface. A malformed
// SSH_CONNECTION is an error (fail closed: nfpass cannot tell what it
// would cut).
func (p Preflight) Box() (compile.Box, error) {
	ifs, err := Interfaces(p.NetNS, nil)
	if err != nil {
		return compile.Box{}, fmt.Errorf("read interfaces: %w", err)
	}
	var box compile.Box
	for _, i := range ifs {
		if !i.Missing {
			box.Interfaces = append(box.Interfaces, compile.BoxInterface{Name: i.Name, Addrs: i.Addrs})
		}
	}
	ssh, err := compile.ParseSSHConnection(p.SSHConnection)
	if err != nil {
		return box, err
	}
	if ssh != nil {
		// The input chain matches the interface packets arrive on: the
		// route back to the client (symmetric routing), not necessarily
		// the interface holding the server address.
		// A link-local client is the exception: every link has a
		// fe80::/64 route, so the lookup would name whichever comes first.
		// Its link is the zone SSH_CONNECTION gives, or else the interface
		// holding the server's (link-local) address.
		if client := ssh.Client.Addr(); client.IsLinkLocalUnicast() {
			ssh.Ingress = linkLocalIngress(box, ssh)
		} else if name, err := RouteTo(p.NetNS, client.WithZone("")); err == nil {
			ssh.Ingress = name
		}
		box.SSH = ssh
	}
	return box, nil
}

// linkLocalIngress names the link of a session between link-local
// addresses: the client's or the server's zone, else the one interface of
// box that holds the server address ("" when none or several do: then the
// session is not to this box's one link, and the check cannot place it).
func linkLocalIngress(box compile.Box, ssh *compile.SSHConn) string {
	for _, z := range []string{ssh.Client.Addr().Zone(), ssh.Server.Addr().Zone()} {
		if z != "" {
			return z
		}
	}
	server := ssh.Server.Addr().WithZone("")
	holder := ""
	for _, i := range box.Interfaces {
		for _, a := range i.Addrs {
			if a.Addr() == server {
				if holder != "" && holder != i.Name {
					return ""
				}
				holder = i.Name
			}
		}
	}
	return holder
}

// Check implements the reconciler's preflight (see compile.Decide): live
// is the table in the kernel (nil when absent), known names a recorded
// generation of this table with the same access ("" none; called only when
// something would be refused). Warnings are returned; a refusal is a
// *LockoutError.
func (p Preflight) Check(_ context.Context, plan *compile.Plan, live *ruleset.Table, known func() string) ([]string, error) {
	access, err := compile.AccessOf(plan)
	if err != nil {
		return nil, fmt.Errorf("lockout preflight: %w; recompile it (nfpass apply) instead of reusing it", err)
	}
	var liveAccess *compile.Access
	if live != nil {
		// A live table nfpass cannot read the access of counts as a
		// working one: nothing is softened.
		liveAccess, err = compile.AccessFromTable(live)
		if err != nil {
			liveAccess = &compile.Access{}
		}
	}
	box, err := p.Box()
	if err != nil {
		return nil, fmt.Errorf("lockout preflight: %w", err)
	}
	warnings, refuse := compile.Decide(access, liveAccess, known, box, p.Force)
	if len(refuse) > 0 {
		return warnings, &LockoutError{Findings: refuse}
	}
	return warnings, nil
}
