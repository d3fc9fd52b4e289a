package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is where a line without a newline is cut into a partial log
// entry, as Docker's json-file driver does.
const maxLogLine = 16 << 10

// logEntry is one line of Docker's json-file log format.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// jsonLog appends entries to a container's log file.
type jsonLog struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

func openLog(p string) (*jsonLog, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &jsonLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *jsonLog) add(stream string, line []byte) {
	b, err := json.Marshal(logEntry{Log: string(line), Stream: stream, Time: time.Now().UTC()})
	if err != nil {
		return
	}
	l.mu.Lock()
	l.w.Write(append(b, '\n'))
	l.w.Flush()
	l.mu.Unlock()
}

func (l *jsonLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
	return l.f.Close()
}

// lineSplitter cuts a stream into log entries and passes the raw bytes on
// to an attached writer.
type lineSplitter struct {
	log    *jsonLog
	stream string
	out    io.Writer
	buf    []byte
}

func (s *lineSplitter) Write(p []byte) (int, error) {
	if s.out != nil {
		// An attached client that went away must not stop the container.
		if _, err := s.out.Write(p); err != nil {
			s.out = nil
		}
	}
	if s.log == nil {
		return len(p), nil
	}
	s.buf = append(s.buf, p...)
	for {
		i := indexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.log.add(s.stream, s.buf[:i+1])
		s.buf = s.buf[i+1:]
	}
	for len(s.buf) >= maxLogLine {
		s.log.add(s.stream, s.buf[:maxLogLine])
		s.buf = s.buf[maxLogLine:]
	}
	if len(s.buf) == 0 {
		s.buf = nil
	}
	return len(p), nil
}

// flush logs a trailing partial line.
func (s *lineSplitter) flush() {
	if s.log != nil && len(s.buf) > 0 {
		s.log.add(s.stream, s.buf)
	}
	s.buf = nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// LogOptions are `logs` flags.
type LogOptions struct {
	Follow     bool
	Tail       int // -1 for all
	Timestamps bool
	Since      time.Time
}

// ReadLogs writes a container's log to stdout and stderr by stream. With
// Follow it keeps reading until the container stops.
func (e *Engine) ReadLogs(c *Container, opts LogOptions, stdout, stderr io.Writer) error {
	f, err := os.Open(c.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		if !opts.Follow {
			return nil
		}
		f, err = os.OpenFile(c.LogPath, os.O_RDONLY|os.O_CREATE, 0o640)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	emit := func(line []byte) error {
		var ent logEntry
		if err := json.Unmarshal(line, &ent); err != nil {
			return nil // a torn last line of a crashed writer
		}
		if !opts.Since.IsZero() && ent.Time.Before(opts.Since) {
			return nil
		}
		w := stdout
		if ent.Stream == "stderr" {
			w = stderr
		}
		if opts.Timestamps {
			if _, err := fmt.Fprintf(w, "%s ", ent.Time.Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, ent.Log)
		return err
	}
	if opts.Tail >= 0 {
		var ring [][]byte
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				ring = append(ring, line)
				if len(ring) > opts.Tail {
					ring = ring[1:]
				}
			}
			if err != nil {
				break
			}
		}
		for _, l := range ring {
			if err := emit(l); err != nil {
				return err
			}
		}
	}
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if err := emit(partial); err != nil {
				return err
			}
			partial = nil
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !opts.Follow {
			return nil
		}
		if !e.monitorAlive(c.ID) {
			// One more pass: the monitor may have written its last lines
			// after our read.
			rest, _ := io.ReadAll(r)
			partial = append(partial, rest...)
			for len(partial) > 0 {
				i := indexByte(partial, '\n')
				if i < 0 {
					break
				}
				if err := emit(partial[:i+1]); err != nil {
					return err
				}
				partial = partial[i+1:]
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
