package credhelper

import (
	"context"
	"errors"
	"sync"
)

// flights runs one helper at a time per key: questions that come while
// one runs wait for its answer, each within its own context.
type flights[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*flight[V]
}

type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// do returns fn's answer for key, running fn unless a run for key is
// under way, whose answer it then shares. fn keeps its answer where the
// next question finds it before do forgets the run. When the run ends
// because its caller's context ended, a waiter whose context goes on
// runs fn itself.
func (f *flights[K, V]) do(ctx context.Context, key K, fn func() (V, error)) (V, error) {
	for {
		f.mu.Lock()
		if c := f.m[key]; c != nil {
			f.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			if c.err != nil && gaveUp(c.err) && ctx.Err() == nil {
				continue
			}
			return c.v, c.err
		}
		c := &flight[V]{done: make(chan struct{})}
		if f.m == nil {
			f.m = map[K]*flight[V]{}
		}
		f.m[key] = c
		f.mu.Unlock()

		c.v, c.err = fn()
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(c.done)
		return c.v, c.err
	}
}

// gaveUp reports whether err ended a run because its caller's context
// ended (not because the run overran its own timeout).
func gaveUp(err error) bool {
	var timedOut errTimedOut
	return (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && !errors.As(err, &timedOut)
}
