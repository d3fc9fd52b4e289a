//go:build linux

package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 to dir as
// ca.crt (skopeo's --cert-dir name for a CA), and its key elsewhere (a key
// in a --cert-dir is taken for a client key).
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth registry test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(t.TempDir(), "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRegistryServerTLS serves with a certificate and key: clients that
// trust the certificate push and pull, plain HTTP is refused.
func TestRegistryServerTLS(t *testing.T) {
	needSkopeo(t)
	certDir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, certDir)
	srv := startBerthRegistry(t, "", fmt.Sprintf("tls:\n  cert: %s\n  key: %s\n", certFile, keyFile))

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + srv.host + "/v2/")
	if err != nil {
		t.Fatalf("GET https://%s/v2/: %v", srv.host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET https://%s/v2/: %s (TLS %v)", srv.host, resp.Status, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + srv.host + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS port: %s, want 400", resp.Status)
		}
	}

	img := newRSMarked(t)
	env := rsEnv(t)
	ref := "docker://" + srv.host + "/tls/marked:1"
	// Verification on: skopeo trusts the server only through certDir.
	rsOut(t, env, "skopeo", "copy", "-q", "--dest-cert-dir", certDir, "docker-archive:"+img.archive, ref)
	out := rsOut(t, env, "skopeo", "inspect", "--cert-dir", certDir, "--raw", ref)
	if !strings.Contains(out, img.id) {
		t.Fatalf("manifest pulled over TLS does not name config %s:\n%s", img.id, out)
	}
	r, err := execute(strings.NewReader(""), env, "skopeo", "inspect", "--raw", ref)
	if err != nil {
		t.Fatal(err)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("skopeo without --cert-dir: exit %d, want a certificate error:\n%s", r.code, r)
	}
}
