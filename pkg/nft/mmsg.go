package nft

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is the kernel's struct mmsghdr (golang.org/x/sys has no such
// type). Go lays it out as C does on every architecture: the msghdr, then
// the length, padded to the msghdr's alignment.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgSlot is the buffer of one message: a lookup answer (one element) or
// an ACK (without the request: NETLINK_CAP_ACK) takes a few hundred bytes.
const mmsgSlot = 2048

// mmsgs receives up to len(buf)/mmsgSlot netlink messages with one
// recvmmsg call. A lookup request is answered with one skb per element,
// which recvfrom would take one syscall each to read.
type mmsgs struct {
	buf  []byte
	iovs []unix.Iovec
	hdrs []mmsghdr
}

func newMmsgs(buf []byte) *mmsgs {
	n := len(buf) / mmsgSlot
	m := &mmsgs{buf: buf, iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}
	for i := range n {
		m.iovs[i].Base = &buf[i*mmsgSlot]
		m.iovs[i].SetLen(mmsgSlot)
		m.hdrs[i].hdr.Iov = &m.iovs[i]
		m.hdrs[i].hdr.SetIovlen(1)
	}
	return m
}

// recv is one non-blocking recvmmsg on fd; it returns how many messages
// arrived.
func (m *mmsgs) recv(fd uintptr) (int, error) {
	for i := range m.hdrs {
		m.hdrs[i].n, m.hdrs[i].hdr.Flags = 0, 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// message returns the i-th message of the last recv.
func (m *mmsgs) message(i int) ([]byte, error) {
	h := &m.hdrs[i]
	if h.hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, errors.New("netlink message larger than a receive slot")
	}
	return m.buf[i*mmsgSlot : i*mmsgSlot+int(h.n)], nil
}
