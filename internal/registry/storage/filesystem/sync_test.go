package filesystem

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSync checks that every waiter is covered by a sync that began
// after it arrived, and that concurrent waiters share syncs.
func TestGroupSync(t *testing.T) {
	g := newGroupSync()
	var (
		syncs   atomic.Int64
		started atomic.Int64 // the start time (ns) of the latest sync
	)
	do := func() error {
		syncs.Add(1)
		started.Store(time.Now().UnixNano())
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				arrived := time.Now().UnixNano()
				if err := g.wait(do); err != nil {
					t.Error(err)
				}
				if last := started.Load(); last < arrived {
					t.Errorf("waiter returned with no sync begun after it arrived")
				}
			}
		}()
	}
	wg.Wait()
	if n := syncs.Load(); n >= 640 || n == 0 {
		t.Errorf("%d syncs for 640 waits, want them shared", n)
	}
}
