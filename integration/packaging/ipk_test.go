package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// untgz reads a gzipped tar into name -> contents and name -> mode
// (directories aside).
func untgz(t *testing.T, what string, r io.Reader) (map[string]string, map[string]fs.FileMode) {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	files, modes := map[string]string{}, map[string]fs.FileMode{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		files[name], modes[name] = string(b), h.FileInfo().Mode()
	}
	return files, modes
}

// TestIPK: `make ipk` builds an OpenWrt package (opkg's format: a gzipped
// tar of debian-binary, control.tar.gz and data.tar.gz) holding the
// binary, the procd init script and /etc/config/nfpass as a conffile,
// and depending on the kmods the catalog names.
func TestIPK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs nfpm: skipped with -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ipk := filepath.Join(tmp, "nfpass_"+testVersion+"_x86_64.ipk")
	run(t, root, "make", "--no-print-directory", "ipk", "IPK="+ipk, "IPK_STAGE="+filepath.Join(tmp, "stage"),
		"IPK_VERSION="+testVersion, "IPK_TARGET=linux/amd64", "IPK_ARCH=x86_64")
	f, err := os.Open(ipk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outer, _ := untgz(t, "ipk", f)

	if diff := cmp.Diff([]string{"/control.tar.gz", "/data.tar.gz", "/debian-binary"}, slices.Sorted(maps.Keys(outer))); diff != "" {
		t.Errorf("ipk members (-want +got):\n%s", diff)
	}
	if got := outer["/debian-binary"]; got != "2.0\n" {
		t.Errorf("debian-binary = %q", got)
	}

	data, modes := untgz(t, "data.tar.gz", strings.NewReader(outer["/data.tar.gz"]))
	wantModes := map[string]fs.FileMode{
		"/usr/sbin/nfpass":   0o755,
		"/etc/init.d/nfpass": 0o755,
		"/etc/config/nfpass": 0o600,
	}
	if diff := cmp.Diff(wantModes, modes); diff != "" {
		t.Errorf("data files and modes (-want +got):\n%s", diff)
	}
	if !bytes.HasPrefix([]byte(data["/usr/sbin/nfpass"]), []byte("\x7fELF")) {
		t.Errorf("/usr/sbin/nfpass is not an ELF binary")
	}
	for path, src := range map[string]string{
		"/etc/init.d/nfpass": "rules/service/nfpass.init",
		"/etc/config/nfpass": "rules/packaging/openwrt/nfpass.uci",
	} {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		if data[path] != string(b) {
			t.Errorf("%s is not %s", path, src)
		}
	}

	control, _ := untgz(t, "control.tar.gz", strings.NewReader(outer["/control.tar.gz"]))
	fields := map[string]string{}
	for _, line := range strings.Split(control["/control"], "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{
		"Package":      "nfpass",
		"Version":      testVersion,
		"Architecture": "x86_64",
		"Depends":      "kmod-nft-core, kmod-nft-nat, kmod-nf-nathelper, kmod-nf-nathelper-extra",
		"License":      "Apache-2.0",
		"Section":      "net",
	} {
		if fields[k] != want {
			t.Errorf("control %s = %q, want %q", k, fields[k], want)
		}
	}
	if got := strings.TrimSpace(control["/conffiles"]); got != "/etc/config/nfpass" {
		t.Errorf("conffiles = %q, want /etc/config/nfpass", got)
	}
	for _, s := range []string{"/postinst", "/prerm"} {
		if !strings.Contains(control[s], "IPKG_INSTROOT") {
			t.Errorf("%s does not skip image builds (IPKG_INSTROOT):\n%s", s, control[s])
		}
	}
}
