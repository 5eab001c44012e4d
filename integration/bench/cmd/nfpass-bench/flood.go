package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// flood sends minimal UDP datagrams to dst:port for d through a raw socket,
// 64 per sendmmsg, each from a random source address in 10.1.0.0/16 and a
// random source port, so that (almost) every packet is a new conntrack
// entry and runs the router's nat chains. It returns how many were sent.
func flood(dst string, port uint16, d time.Duration) (uint64, error) {
	a, err := netip.ParseAddr(dst)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("flood: bad IPv4 destination %q", dst)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return 0, fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	const batch, size = 64, 20 + 8 + 18
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
	pkts := make([]byte, batch*size)
	iovs := make([]unix.Iovec, batch)
	type mmsghdr struct {
		hdr unix.Msghdr
		len uint32
		_   [4]byte
	}
	msgs := make([]mmsghdr, batch)
	for i := range batch {
		p := pkts[i*size : (i+1)*size]
		p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(p[2:], size)
		copy(p[16:20], sa.Addr[:])
		binary.BigEndian.PutUint16(p[22:], port)
		binary.BigEndian.PutUint16(p[24:], size-20)
		iovs[i].Base = &p[0]
		iovs[i].SetLen(size)
		msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&sa))
		msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	x := uint64(time.Now().UnixNano()) | 1
	var sent uint64
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(end) {
			break
		}
		for j := range batch {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			p := pkts[j*size:]
			p[12], p[13], p[14], p[15] = 10, 1, byte(x), byte(x>>8)
			binary.BigEndian.PutUint16(p[20:], uint16(x>>16)|1024)
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		if errno != 0 && errno != unix.ENOBUFS && errno != unix.EAGAIN {
			return sent, fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += uint64(n)
	}
	return sent, nil
}
