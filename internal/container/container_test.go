package container

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image"
)

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string // nil: compare length only with wantLen
		wantLen    int
		wantErr    bool
	}{
		{name: "default", want: DefaultCaps},
		{name: "drop one", drop: []string{"net_raw"}, wantLen: 13},
		{name: "drop all", drop: []string{"ALL"}, want: nil, wantLen: 0},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"CAP_CHOWN"}, want: []string{"CAP_CHOWN"}},
		{name: "add sys_admin", add: []string{"sys_admin"}, wantLen: 15},
		{name: "add twice", add: []string{"chown"}, wantLen: 14},
		{name: "add all", add: []string{"ALL"}, wantLen: len(hostCaps())},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"CAP_SYS_ADMIN"}, wantLen: len(hostCaps()) - 1},
		{name: "privileged", privileged: true, wantLen: len(hostCaps())},
		{name: "unknown", add: []string{"CAP_FLY"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Capabilities(tt.add, tt.drop, tt.privileged)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if tt.want != nil && !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if tt.want == nil && len(got) != tt.wantLen {
				t.Fatalf("got %d capabilities %v, want %d", len(got), got, tt.wantLen)
			}
		})
	}
}

func TestApplyImageConfig(t *testing.T) {
	img := image.Config{
		Entrypoint: []string{"/entry"}, Cmd: []string{"default"},
		Env: []string{"PATH=/img", "A=1"}, WorkingDir: "/w", User: "nobody",
		StopSignal: "SIGQUIT", Labels: map[string]string{"a": "img", "b": "img"},
	}
	tests := []struct {
		name     string
		cfg      Config
		wantPath string
		wantArgs []string
		wantEnv  []string
		wantErr  bool
	}{
		{name: "image defaults", wantPath: "/entry", wantArgs: []string{"default"}, wantEnv: []string{"PATH=/img", "A=1"}},
		{name: "args replace cmd", cfg: Config{Cmd: []string{"x", "y"}}, wantPath: "/entry", wantArgs: []string{"x", "y"}, wantEnv: []string{"PATH=/img", "A=1"}},
		{name: "entrypoint drops image cmd", cfg: Config{Entrypoint: []string{"/bin/sh"}}, wantPath: "/bin/sh", wantEnv: []string{"PATH=/img", "A=1"}},
		{name: "empty entrypoint clears it", cfg: Config{Entrypoint: []string{""}}, wantPath: "default", wantEnv: []string{"PATH=/img", "A=1"}},
		{name: "env overrides in place", cfg: Config{Env: []string{"A=2", "B=3"}}, wantPath: "/entry", wantArgs: []string{"default"}, wantEnv: []string{"PATH=/img", "A=2", "B=3"}},
		{name: "relative workdir", cfg: Config{WorkingDir: "rel"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Container{Config: tt.cfg}
			err := applyImageConfig(c, img)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if c.Path != tt.wantPath || !slices.Equal(c.Args, tt.wantArgs) {
				t.Errorf("argv = %q %q, want %q %q", c.Path, c.Args, tt.wantPath, tt.wantArgs)
			}
			if !slices.Equal(c.Config.Env, tt.wantEnv) {
				t.Errorf("env = %q, want %q", c.Config.Env, tt.wantEnv)
			}
			if c.Config.User != "nobody" || c.Config.StopSignal != "SIGQUIT" {
				t.Errorf("user %q stop signal %q not taken from the image", c.Config.User, c.Config.StopSignal)
			}
		})
	}
	c := &Container{}
	if err := applyImageConfig(c, image.Config{}); err == nil {
		t.Error("an image without entrypoint or cmd and no command must fail")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		msg  string
		code int
	}{
		{`runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH`, 127},
		{`runc run failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory`, 127},
		{`runc run failed: unable to start container process: exec: "/etc/passwd": permission denied`, 126},
		{`runc run failed: unable to start container process: exec: "/etc": is a directory`, 126},
		{`runc run failed: error mounting "x" to rootfs at "/y": no such file or directory`, 125},
	}
	for _, tt := range tests {
		if got := classify(tt.msg).Code; got != tt.code {
			t.Errorf("classify(%q) = %d, want %d", tt.msg, got, tt.code)
		}
	}
}

func TestSignalName(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"TERM", "TERM", false}, {"SIGKILL", "KILL", false}, {"sigusr1", "USR1", false},
		{"9", "9", false}, {"0", "", true}, {"65", "", true}, {"NOPE", "", true},
	}
	for _, tt := range tests {
		got, err := signalName(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("signalName(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLineSplitter(t *testing.T) {
	dir := t.TempDir()
	l, err := openLog(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var attached bytes.Buffer
	s := &lineSplitter{log: l, stream: "stderr", out: &attached}
	for _, chunk := range []string{"one\ntw", "o\n", strings.Repeat("x", maxLogLine+5), "\nlast"} {
		s.Write([]byte(chunk))
	}
	s.flush()
	l.Close()
	if want := "one\ntwo\n" + strings.Repeat("x", maxLogLine+5) + "\nlast"; attached.String() != want {
		t.Errorf("attached stream got %d bytes, want the raw %d", attached.Len(), len(want))
	}
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e logEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.Stream != "stderr" || e.Time.IsZero() {
			t.Errorf("entry %+v: wrong stream or no time", e)
		}
		got = append(got, e.Log)
	}
	want := []string{"one\n", "two\n", strings.Repeat("x", maxLogLine), "xxxxx\n", "last"}
	if !slices.Equal(got, want) {
		t.Errorf("log entries = %q, want %q", got, want)
	}
}

func TestMakeWorkdir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/fd", filepath.Join(root, "fds")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		wd      string
		wantErr bool
		anyErr  bool   // refusing and resolving inside the root are both safe
		made    string // path that must exist inside root afterwards
	}{
		{wd: "/app/src", made: "app/src"},
		{wd: "/proc/self/fd/7", wantErr: true},
		{wd: "/sys/kernel", wantErr: true},
		{wd: "/fds/7", wantErr: true},
		{wd: "/escape/x", anyErr: true},
	}
	for _, tt := range tests {
		err := makeWorkdir(root, tt.wd)
		if !tt.anyErr && (err != nil) != tt.wantErr {
			t.Errorf("makeWorkdir(%q) = %v, want error %v", tt.wd, err, tt.wantErr)
		}
		if tt.made != "" {
			if st, err := os.Stat(filepath.Join(root, tt.made)); err != nil || !st.IsDir() {
				t.Errorf("makeWorkdir(%q) did not create it inside the root: %v", tt.wd, err)
			}
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a workdir through a symlink created %v outside the root", entries)
	}
}
