package build

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints BuildKit's plain progress format: "#N name", the step's
// output lines as "#N 0.123 line", then "#N DONE 0.4s", "#N CACHED" or
// "#N ERROR: msg". Steps of parallel stages interleave line by line.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	n     int
	start time.Time
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, start: time.Now()}
}

// stepProgress is one numbered step.
type stepProgress struct {
	p       *progress
	n       int
	started time.Time
	partial []byte
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	fmt.Fprintf(p.w, format, args...)
	p.mu.Unlock()
}

// step starts a numbered step.
func (p *progress) step(name string) *stepProgress {
	p.mu.Lock()
	p.n++
	s := &stepProgress{p: p, n: p.n, started: time.Now()}
	fmt.Fprintf(p.w, "#%d %s\n", s.n, name)
	p.mu.Unlock()
	return s
}

// internal starts a step of the builder itself.
func (p *progress) internal(name string) *stepProgress { return p.step("[internal] " + name) }

// Write prints the step's output, a line at a time.
func (s *stepProgress) Write(b []byte) (int, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	data := append(s.partial, b...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(s.p.w, "#%d %.3f %s\n", s.n, time.Since(s.started).Seconds(), data[:i])
		data = data[i+1:]
	}
	s.partial = append(s.partial[:0], data...)
	return len(b), nil
}

func (s *stepProgress) flush() {
	if len(s.partial) > 0 {
		s.Write([]byte("\n"))
	}
}

// done ends the step successfully.
func (s *stepProgress) done() {
	s.flush()
	s.p.printf("#%d DONE %.1fs\n", s.n, time.Since(s.started).Seconds())
}

// cached ends a step served by the cache.
func (s *stepProgress) cached() { s.p.printf("#%d CACHED\n", s.n) }

// fail ends the step with an error.
func (s *stepProgress) fail(err error) {
	s.flush()
	s.p.printf("#%d ERROR: %v\n", s.n, err)
}
