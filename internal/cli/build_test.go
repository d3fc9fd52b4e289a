package cli

import (
	"testing"

	"github.com/berth-dev/berth/internal/build"
)

func TestParseCacheRef(t *testing.T) {
	tests := []struct {
		in, key string
		want    string // the store's String(), "" for an error
		local   bool
	}{
		{"type=local,dest=/c", "dest", "/c", true},
		{"type=local,src=/c,mode=max", "src", "/c", true},
		{"dest=/c", "dest", "/c", true},
		{"type=local,src=/c", "dest", "", false},
		{"type=registry,ref=127.0.0.1:5000/cache:1", "dest", "127.0.0.1:5000/cache:1", false},
		{"127.0.0.1:5000/cache:1", "src", "127.0.0.1:5000/cache:1", false},
		{"type=registry", "src", "", false},
		{"type=gha,scope=x", "src", "", false},
		{"type=local,dest=/c,bogus=1", "dest", "", false},
	}
	for _, tt := range tests {
		got, err := parseCacheRef(tt.in, tt.key, true)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parseCacheRef(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseCacheRef(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("parseCacheRef(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
		if _, isDir := got.(build.DirCache); isDir != tt.local {
			t.Errorf("parseCacheRef(%q) is a %T", tt.in, got)
		}
	}
}
