package remote

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRegistriesCandidates(t *testing.T) {
	regs := Registries{
		Search: []string{"registry.local:5000", "docker.io"},
		Registries: []RegistryConf{
			{Location: "docker.io", Mirrors: []RegistryConf{{Location: "mirror.local:5001", Insecure: true}}},
			{Location: "registry.local:5000", Insecure: true},
		},
	}
	tests := []struct {
		ref  string
		want []Candidate
	}{
		{"busybox", []Candidate{
			{"registry.local:5000/busybox:latest", "registry.local:5000/busybox:latest"},
			{"docker.io/library/busybox:latest", "mirror.local:5001/library/busybox:latest"},
			{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
		}},
		{"other.example/x/y:1", []Candidate{{"other.example/x/y:1", "other.example/x/y:1"}}},
		{"localhost/app", []Candidate{{"localhost/app:latest", "localhost/app:latest"}}},
		{"docker.io/library/alpine:3", []Candidate{
			{"docker.io/library/alpine:3", "mirror.local:5001/library/alpine:3"},
			{"docker.io/library/alpine:3", "docker.io/library/alpine:3"},
		}},
	}
	for _, tt := range tests {
		if got := regs.Candidates(tt.ref); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Candidates(%q) = %v, want %v", tt.ref, got, tt.want)
		}
	}
	for host, want := range map[string]bool{"registry.local:5000": true, "mirror.local:5001": true, "docker.io": false, "index.docker.io": false, "x": false} {
		if got := regs.Insecure(host); got != want {
			t.Errorf("Insecure(%q) = %v", host, got)
		}
	}
	if got := (Registries{}).Candidates("busybox"); len(got) != 1 || got[0].Name != "docker.io/library/busybox:latest" {
		t.Errorf("no configuration: %v, want docker.io only", got)
	}
}

func TestLoadRegistries(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body, wantErr string
		check               func(Registries) bool
	}{
		{"missing file", "", "", func(r Registries) bool { return reflect.DeepEqual(r.Search, []string{"docker.io"}) }},
		{"full", `unqualified-search-registries = ["a.local"]
[[registry]]
location = "a.local"
insecure = true
[[registry.mirror]]
location = "m.local"
`, "", func(r Registries) bool {
			return r.Search[0] == "a.local" && r.Insecure("a.local") && r.Registries[0].Mirrors[0].Location == "m.local"
		}},
		{"typo", "unqualified-search-registry = []\n", "unknown setting", nil},
		{"not toml", "[[registry", "registries.conf", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"), "registries.conf")
			if tt.body != "" {
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(tt.body), 0o644)
			}
			t.Setenv("BERTH_REGISTRIES_CONF", p)
			r, err := LoadRegistries()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(r) {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
}
