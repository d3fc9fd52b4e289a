package filesystem

import "sync"

// groupSync makes writes durable with as few flushes as possible: a caller
// waits for a sync that started after its write, and one sync serves every
// caller waiting when it starts (group commit).
type groupSync struct {
	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncs begun
	done    uint64 // the latest sync finished
	running bool
	err     error // of the latest sync
}

func newGroupSync() *groupSync {
	g := &groupSync{}
	g.cond.L = &g.mu
	return g
}

// wait returns once a call of sync that began after wait was called has
// finished, with its error.
func (g *groupSync) wait(sync func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	need := g.started + 1 // a running sync began before our write
	for g.done < need {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		mine := g.started
		g.mu.Unlock()
		err := sync()
		g.mu.Lock()
		g.running, g.done, g.err = false, mine, err
		g.cond.Broadcast()
	}
	return g.err
}
