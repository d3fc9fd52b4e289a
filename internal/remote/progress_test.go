package remote

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressPlainAndTerminal(t *testing.T) {
	var plain bytes.Buffer
	p := newProgress(&plain)
	p.layer("aaa", "Pulling fs layer")
	p.bytes("aaa", "Downloading", 5, 10)
	p.layer("aaa", "Pull complete")
	if got, want := plain.String(), "aaa: Pulling fs layer\naaa: Pull complete\n"; got != want {
		t.Fatalf("plain output %q, want %q (no bars off a terminal)", got, want)
	}

	var term bytes.Buffer
	p = &progress{out: &term, tty: true, status: map[string]string{}}
	p.layer("aaa", "Pulling fs layer")
	p.layer("bbb", "Pulling fs layer")
	p.last = time.Time{}
	p.bytes("aaa", "Downloading", 5, 10)
	p.layer("aaa", "Pull complete")
	out := term.String()
	frames := strings.Split(out, "\x1b[2A")
	if len(frames) != 3 {
		t.Fatalf("want the two-line block redrawn in place twice, got %q", out)
	}
	if !strings.Contains(frames[1], "aaa: Downloading [=========================>                        ] 5B/10B") {
		t.Errorf("no bar in the download frame: %q", frames[1])
	}
	if last := frames[2]; last != "\x1b[2Kaaa: Pull complete\n\x1b[2Kbbb: Pulling fs layer\n" {
		t.Errorf("last frame %q", last)
	}
	if b := bar(10, 10); len(b) != 52 || strings.Contains(b, ">") {
		t.Errorf("full bar %q", b)
	}
}
