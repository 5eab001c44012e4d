package main

import (
	"fmt"

	"github.com/nfpass/nfpass/pkg/compile"
	"github.com/nfpass/nfpass/pkg/nft"
)

// ownerAuto is the --owner value that reads the kernel's tables.
const ownerAuto = "auto"

// detectOwner lists the tables of netns ("" = this one) and names the
// owning firewall (compile.DetectOwner). Touches the kernel (read only,
// root); without access the owner is unknown and the reason is returned.
func detectOwner(netns string) (compile.Owner, error) {
	c, err := nft.Open(nft.Options{NetNS: netns})
	if err != nil {
		return compile.OwnerUnknown, err
	}
	defer c.Close()
	tables, err := c.Tables()
	if err != nil {
		return compile.OwnerUnknown, err
	}
	names := make([]string, 0, len(tables))
	for _, t := range tables {
		names = append(names, t.Family+" "+t.Name)
	}
	return compile.DetectOwner(names), nil
}

// resolveOwner turns an --owner value into an owner: auto detects (see
// detectOwner), anything else must name one.
func resolveOwner(flag, netns string) (compile.Owner, error) {
	if flag == "" || flag == ownerAuto {
		o, _ := detectOwner(netns)
		return o, nil
	}
	o, ok := compile.ParseOwner(flag)
	if !ok {
		return "", fmt.Errorf("--owner: %q is not auto, fw4, firewalld or unknown", flag)
	}
	return o, nil
}
