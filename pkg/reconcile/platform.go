package reconcile

import "os"

// On OpenWrt /var is a tmpfs: a history kept in /var/lib/nfpass would be
// gone after a reboot. There the state directory defaults to a path on
// flash, and fewer generations are kept to spare it (a generation is
// written only when the table, the config or the box's inputs change).
const (
	OpenWrtStateDir = "/etc/nfpass/state"
	OpenWrtKeep     = 3
	// OpenWrtRelease is the file whose presence marks an OpenWrt system.
	OpenWrtRelease = "/etc/openwrt_release"
)

// PlatformDefaults returns the default state directory and number of
// generations kept for a system: OpenWrt's when release exists (a
// regular file), DefaultStateDir and DefaultKeep otherwise. It reads the
// file system (a stat), nothing else.
func PlatformDefaults(release string) (stateDir string, keep int) {
	if fi, err := os.Stat(release); err == nil && fi.Mode().IsRegular() {
		return OpenWrtStateDir, OpenWrtKeep
	}
	return DefaultStateDir, DefaultKeep
}

// HostStateDir and HostKeep are this system's defaults for the
// --state-dir and --keep flags (PlatformDefaults of OpenWrtRelease).
var HostStateDir, HostKeep = PlatformDefaults(OpenWrtRelease)
