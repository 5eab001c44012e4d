// Package integration holds nfpass's kernel tests: the passthrough matrix
// of LAB.md run with real packets through a Linux router in network
// namespaces (integration/lab builds the topology, integration/peers speaks
// the protocols). The tests need root and fail, not skip, without it.
package integration
