package peers

import "sync"

// seenLog is what a server has received, safe to append to from its serve
// goroutine while a test reads it.
type seenLog[T any] struct {
	mu    sync.Mutex
	items []T
}

func (l *seenLog[T]) add(v T) {
	l.mu.Lock()
	l.items = append(l.items, v)
	l.mu.Unlock()
}

// all returns a copy of everything seen so far.
func (l *seenLog[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}
