package bench

// notes is the analysis appended to BENCHMARKS.md: why a target is missed
// and whose cost it is, with the evidence. The figures above are measured
// by the harness on every run; the evidence below was collected with perf,
// strace and pprof on the same machine (see "How the evidence was taken").
const notes = `
## Analysis

### What nfpass fixed (profiled with pprof, allocations per element from runtime.MemStats)

Measured on the 100,000-element policy before and after this change (in-process operation time, same machine):

| operation | before | after |
|---|---|---|
| no-op reconcile (Read+Diff) | 2.9–4.9 s, 2,247,206 allocations (22.5 per element), 422 MB allocated, 135 MiB RSS | ≈0.33 s, ≈103,800 allocations (1.04 per element), 44 MB allocated, 48 MiB RSS |
| apply (lower, commit, read back, diff) | 5.3–7.0 s, 3,150,281 allocations (31.5 per element), 541 MB allocated | ≈0.7–1.4 s, ≈1,006,800 allocations (10.1 per element), 155 MB allocated |
| no-op reconcile of the 10,000-forward policy | 176 ms, 368,663 allocations, 91 MB allocated | ≈123 ms, ≈344,600 allocations, 19 MB allocated |
| repair one element, 100,000-element policy (first Repair: read-back verify) | 632–873 ms (median 646) | ≈320–400 ms |
| repair one element, 10,000-forward policy | 162–255 ms (median 204) | ≈120–135 ms |

- Set elements are no longer read with the library's GetSetElements, which keeps every reply message and every decoded
  element (with its own allocations) and receives each 32 KiB dump chunk by peeking with a 4, 8, 16, 32 then 64 KiB
  buffer (pprof: 0.84 s in recvmsg, 0.41 s growslice, 0.33 s memmove). pkg/nft now streams the dump over one socket
  and one 64 KiB buffer for all sets of a read, decoding attributes in place (pkg/nft/elements.go).
- Interval boundaries are reversed instead of sorted (the kernel dumps the rbtree in descending order), and
  prefixes are recognised with two 64-bit words instead of math/big (three big.Int allocations per element before).
- Repair verifies an element-only repair without walking any set when the generation right after its guarded commit
  is its own: each changed element is looked up in the kernel (a GETSETELEM request without the dump flag: key,
  interval-end flag, map value; deleted elements must be gone). Otherwise it reads the touched sets back. The
  elements to add and delete are picked by the text Diff already produced, and Diff walks two canonical element lists
  once instead of building and hashing the text of every element of both sides.
- ruleset.Diff no longer deep-copies both tables through encoding/json (Clone) to canonicalize them: it works on
  canonical views that share every slice that is already in canonical order (a table read back always is), and
  compares equal sets element by element in place; text is only built when something differs. Canonicalize checks
  sortedness before sorting.

### What changed since the first report (this session)

- **Big sets are verified by lookups, not dumps.** After its own commit, when the ruleset generation is still the
  one that commit made (nobody else committed since; checked before and after), Apply reads the table with the
  elements of every set of 300,000 kernel elements or more left out, and looks each of those elements up in the
  kernel instead: GETSETELEM requests without the dump flag, 1,024 elements each, answered one message per element
  in order, received 32 at a time with recvmmsg (one recvfrom per answer cost 3.5 µs an element; recvmmsg brings it
  to ≈ 1.2 µs). Key, interval-end flag, interval-open flag and map value must match what was sent; an element
  missing, different, or anything the IR cannot express, and Apply falls back to the full read-back, which names
  the difference (pkg/nft/lookup.go; kernel tests in pkg/nft/lookup_test.go prove both outcomes). The sets were
  created by that very commit with exactly those elements and no commit followed, so nothing else can be in them.
  The 1,000,000-element apply went from ≈ 68 s (62 s of it the dump) to ≈ 8 s in-process. Below 300,000 kernel
  elements a dump is still cheaper (200,000 elements: dump 0.22 s, lookups 0.39 s; 400,000: dump 0.84–1.04 s,
  lookups 0.68–0.72 s).
- **The daemon's no-op check does not read the table.** It reads the ruleset generation id first; when it has not
  moved since a read that found the table equal to the policy, nothing was committed in the namespace, so the table
  is unchanged (nfpass's table has no dynamic sets and no timeouts, the only changes that bypass a commit). That is
  one netlink round trip on a fresh socket, whatever the table's size (the "daemon's check" row). Lost monitor
  events, SIGUSR1 and ` + "`--full-read-interval`" + ` (1 h) force a real read; ` + "`nfpass_checks_total{method}`" + ` counts both kinds.

### Where targets are still missed, and whose cost it is

- **Apply always proves the result; ` + "`nft -f`" + ` does not.** nfpass reads every applied table back (or looks every
  big set's elements up), which ` + "`nft -f`" + ` never does; for the 1M set the verification is ≈ 2.5 s of lookups on
  top of a commit that costs what ` + "`nft -f`" + `'s costs, and building the policy and compiling it (≈ 1.6–2 s) is
  more than nft's parsing. A ratio of 0.5 would need the apply to cost half of nft's commit alone.
- **Reading a large set is quadratic in the kernel.** A netlink dump of set elements is produced in chunks of at
  most 32 KiB (SKB_WITH_OVERHEAD(32768) = 32,448 bytes; strace of a read of the 100,000-element set: 123 of 134
  recvfrom calls returned exactly 32,448 bytes), and for every chunk nf_tables walks the set from its first element,
  skipping what it already sent (nft_rbtree_walk with iter->skip). perf on nfpass's Read+Diff of the 100,000-element
  set: 51.8 % of all samples in the kernel's rb_next; on ` + "`nft list table`" + ` of the same table: 19 % (the CLI spends
  more in its own malloc and printing). 1,000,000 host addresses are 2,000,000 interval boundaries ≈ 1,250 chunks
  each walking on average 1,000,000 nodes: over a minute of system time whoever asks (the evidence line above:
  ` + "`nft list table`" + ` pays the same). A no-op reconcile that reads the table (the Read+Diff row) pays it; the
  daemon's check does not. Possible kernel fix: resume rbtree/hash set dumps from a cursor instead of re-walking.
- **One dump round trip per set.** The 10,000-forward policy has 1,000 source-restricted forwards, each with its own
  source set: a read sends 1,000 GETSETELEM dumps (strace: 1,011 sendmsg, 2,016 recvfrom), because the kernel dumps
  the elements of one named set per request and one dump at a time per socket. That is most of the 10,000-forward
  read, and so of its repair: nfpass must find the drift (read and diff the whole table) before it sends one
  genid-guarded element batch and verifies it by lookup, while ` + "`nft add element`" + ` writes one element blind.
  A repair that skips the read needs to know what drifted from the monitor's element events, which
  google/nftables's monitor does not decode with their table and set (left for later).
- **Lowering allocates ≈ 10 times per element in google/nftables** (marshalSetElement builds nested attributes
  with separate MarshalAttributes calls per element). pkg/nft cannot hand the library pre-encoded element
  messages without also taking over the batch (rules, objects, chains), so this stays the library's.
- **Repair on the 100,000-element policy**: the CLI is as slow as nfpass: before adding to an interval set nft 1.0.6
  loads the set's elements into its cache (to check overlaps), so it pays the same kernel dump.
- **Audit**: nfpass streams the conntrack dump and decodes each entry in place in the receive buffer (no per-entry
  allocation; the allocations per entry above are the classifier's for the flows it keeps), so its peak RSS stays
  flat as the table grows, while ` + "`conntrack -L`" + ` formats every entry as text. Entries are created through ctnetlink in
  a fresh namespace (` + "`nfpass-bench ctfill`" + `); nf_conntrack_max is 262,144 here and cannot be raised from inside a namespace.
- **Peak RSS of small processes has a floor**: every process runs under ` + "`ip netns exec`" + `, which execs it in place, so
  wait4's peak RSS is the larger of ip's own (≈ 5–7 MiB) and the tool's. The 7.27 MiB of ` + "`conntrack -L`" + ` and
  ` + "`nft add element`" + ` is that floor (alone, conntrack -L measured 4.8 MiB).
- **Packets per second**: with the map, the dstnat chain costs one hash lookup per new flow regardless of the number
  of forwards, so pps(10k)/pps(0) is ≈ 1 within the noise of a shared 2-core VM; linear rules evaluate every rule
  before the last one for every new flow. Established flows skip nat chains in both cases.

### How the evidence was taken

` + "```" + `
ip netns exec NS perf record -g nfpass-bench reconcile set:100000          # kernel rb_next share
ip netns exec NS perf record -g nft list table inet nfpass
ip netns exec NS strace -f -e trace=recvfrom nfpass-bench reconcile set:100000   # 32,448-byte dump chunks
NFPASS_BENCH_CPUPROFILE=cpu.prof nfpass-bench reconcile set:100000             # pprof of the operation
NFPASS_BENCH_MEMPROFILE=mem.prof nfpass-bench reconcile forwards:10000          # allocation sites
ip netns exec NS strace -f -c nfpass-bench reconcile forwards:10000             # one dump per source set
NFPASS_BENCH_CPUPROFILE=cpu.prof nfpass-bench apply set:1000000                # lookups: time in recvmmsg
` + "```" + `
`
