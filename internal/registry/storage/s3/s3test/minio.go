// Package s3test starts a real MinIO server for tests of the S3 driver and
// of the registry on top of it.
package s3test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/registry/storage/s3"
)

// StartMinIO runs a MinIO server for the test: $BERTH_MINIO, else the one
// hack/install-deps.sh builds. It returns a Config for it, minus the bucket.
func StartMinIO(t testing.TB) s3.Config {
	bin := os.Getenv("BERTH_MINIO")
	if bin == "" {
		bin = "/usr/local/lib/berth/minio"
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no MinIO server (%v): install one with `hack/install-deps.sh minio`, or point $BERTH_MINIO at one", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := s3.Config{
		Endpoint:  freeAddr(t),
		AccessKey: "berth-test",
		SecretKey: "berth-test-secret",
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "minio.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "server",
		"--address", cfg.Endpoint, "--console-address", freeAddr(t),
		"--certs-dir", filepath.Join(dir, "certs"), filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+cfg.AccessKey, "MINIO_ROOT_PASSWORD="+cfg.SecretKey, "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Dies with the test binary, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Not /minio/health/live: that answers 200 before the server takes S3
	// requests ("Server not initialized yet").
	ready := "http://" + cfg.Endpoint + "/minio/health/cluster"
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cfg
			}
		}
		select {
		case <-exited:
		case <-time.After(100 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
		}
		out, _ := os.ReadFile(logPath)
		t.Fatalf("MinIO at %s did not come up (%v):\n%s", cfg.Endpoint, cmd.ProcessState, out)
	}
}

// freeAddr is a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
