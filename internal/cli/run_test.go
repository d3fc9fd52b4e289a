package cli

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/container"
)

func TestParseVolume(t *testing.T) {
	dir := t.TempDir()
	bind := filepath.Join(dir, "src")
	tests := []struct {
		in      string
		want    container.Mount
		wantErr bool
	}{
		{in: "/data", want: container.Mount{Type: "volume", Target: "/data"}},
		{in: "vol:/data", want: container.Mount{Type: "volume", Source: "vol", Target: "/data"}},
		{in: "vol:/data:ro", want: container.Mount{Type: "volume", Source: "vol", Target: "/data", ReadOnly: true}},
		{in: bind + ":/data:ro", want: container.Mount{Type: "bind", Source: bind, Target: "/data", ReadOnly: true}},
		{in: "/data:ro", want: container.Mount{Type: "volume", Target: "/data", ReadOnly: true}},
		{in: "vol:rel", wantErr: true},
		{in: "vol:/data:bogus", wantErr: true},
		{in: "a:b:c:d", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseVolume(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseVolume(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (got.Type != tt.want.Type || got.Source != tt.want.Source || got.Target != tt.want.Target || got.ReadOnly != tt.want.ReadOnly) {
			t.Errorf("parseVolume(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseMount(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		in      string
		want    container.Mount
		wantErr bool
	}{
		{in: "type=bind,source=" + dir + ",target=/x,readonly", want: container.Mount{Type: "bind", Source: dir, Target: "/x", ReadOnly: true}},
		{in: "type=volume,src=v,dst=/x", want: container.Mount{Type: "volume", Source: "v", Target: "/x"}},
		{in: "type=tmpfs,target=/t,tmpfs-size=1m", want: container.Mount{Type: "tmpfs", Target: "/t"}},
		{in: "type=bind,source=" + dir + "/missing,target=/x", wantErr: true},
		{in: "type=nfs,target=/x", wantErr: true},
		{in: "type=volume,source=v", wantErr: true},
		{in: "type=volume,target=/x,bogus=1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseMount(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseMount(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (got.Type != tt.want.Type || got.Source != tt.want.Source || got.Target != tt.want.Target || got.ReadOnly != tt.want.ReadOnly) {
			t.Errorf("parseMount(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
