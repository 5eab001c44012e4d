package nft

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestElemSeen: within one dump an element repeated (same key, key end
// and flags) is found; elements that differ only in key end or in the
// interval-end flag (an interval's end and the next one's start) are not
// repeats; a new dump starts afresh.
func TestElemSeen(t *testing.T) {
	a := rawElem{key: []byte{10, 0, 0, 1, 0, 80}}
	tests := []struct {
		name  string
		elems []rawElem
		want  []bool // again() for each
	}{
		{"distinct", []rawElem{a, {key: []byte{10, 0, 0, 2, 0, 80}}}, []bool{false, false}},
		{"repeat", []rawElem{a, {key: []byte{10, 0, 0, 2, 0, 80}}, a}, []bool{false, false, true}},
		{"interval end vs start", []rawElem{
			{key: []byte{10, 0, 0, 0}, flags: unix.NFT_SET_ELEM_INTERVAL_END},
			{key: []byte{10, 0, 0, 0}},
		}, []bool{false, false}},
		{"key end differs", []rawElem{
			{key: []byte{10, 0, 0, 1}, keyEnd: []byte{10, 0, 0, 9}},
			{key: []byte{10, 0, 0, 1}, keyEnd: []byte{10, 0, 0, 8}},
		}, []bool{false, false}},
		{"key and key end not mixed up", []rawElem{
			{key: []byte{1, 2}, keyEnd: []byte{3}},
			{key: []byte{1}, keyEnd: []byte{2, 3}},
		}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newElemSeen()
			for i, e := range tt.elems {
				if got := s.again(e); got != tt.want[i] {
					t.Errorf("element %d (%x): again = %v, want %v", i, e.key, got, tt.want[i])
				}
			}
		})
	}
	t.Run("new dump", func(t *testing.T) {
		s := newElemSeen()
		s.again(a)
		if newElemSeen().again(a) {
			t.Error("a new dump remembers the last one's elements")
		}
	})
}
