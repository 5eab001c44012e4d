package bench

// notes is the analysis appended to BENCHMARKS.md: why a target is missed
// and whose cost it is, with the evidence.
const notes = ""
