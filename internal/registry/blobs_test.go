package registry

import "testing"

func TestParseByteRange(t *testing.T) {
	tests := []struct {
		in         string
		size       int64
		start, end int64
		ok         bool
	}{
		{"bytes=0-9", 100, 0, 9, true},
		{"bytes=10-", 100, 10, 99, true},
		{"bytes=90-200", 100, 90, 99, true},
		{"bytes=-10", 100, 90, 99, true},
		{"bytes=-200", 100, 0, 99, true},
		{"bytes=99-99", 100, 99, 99, true},
		{"bytes=100-", 100, 0, 0, false},
		{"bytes=5-4", 100, 0, 0, false},
		{"bytes=0-1,3-4", 100, 0, 0, false},
		{"bytes=-0", 100, 0, 0, false},
		{"bytes=-5", 0, 0, 0, false},
		{"items=0-1", 100, 0, 0, false},
		{"bytes=a-b", 100, 0, 0, false},
		{"bytes=-1-2", 100, 0, 0, false},
	}
	for _, tt := range tests {
		start, end, ok := parseByteRange(tt.in, tt.size)
		if ok != tt.ok || (ok && (start != tt.start || end != tt.end)) {
			t.Errorf("parseByteRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.in, tt.size, start, end, ok, tt.start, tt.end, tt.ok)
		}
	}
}
