package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the name of the generated token signing key under the
// registry root.
const KeyFile = "token-key.pem"

// loadKey reads the P-256 signing key from path, or, when path is empty,
// from KeyFile under root, generating and keeping one there (mode 0600)
// if there is none yet.
func loadKey(path, root string) (*ecdsa.PrivateKey, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: token key: %w", err)
		}
		return parseKey(path, data)
	}
	path = filepath.Join(root, KeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		return parseKey(path, data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: generate token key: %w", err)
	}
	if err := writeKey(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

// writeKey puts data at path whole or not at all, readable by the owner
// only.
func writeKey(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: token key: %w", err)
	}
	f, err := os.CreateTemp(dir, KeyFile+".tmp*") // created with mode 0600
	if err != nil {
		return fmt.Errorf("auth: token key: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("auth: token key: %w", err)
	}
	return nil
}

// parseKey decodes a PEM "EC PRIVATE KEY" (SEC 1) or "PRIVATE KEY"
// (PKCS #8) block holding a P-256 key, skipping the "EC PARAMETERS" block
// openssl ecparam -genkey writes before it. name is the file's path, for
// messages.
func parseKey(name string, data []byte) (*ecdsa.PrivateKey, error) {
	block, rest := pem.Decode(data)
	for block != nil && block.Type == "EC PARAMETERS" {
		block, rest = pem.Decode(rest)
	}
	if block == nil {
		return nil, fmt.Errorf("auth: token key %s: no PEM private key block", name)
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: token key %s: %w", name, err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: token key %s: %w", name, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth: token key %s: a %T, want an ECDSA P-256 key", name, k)
		}
		key = ec
	default:
		return nil, fmt.Errorf("auth: token key %s: PEM block %q, want \"EC PRIVATE KEY\" or \"PRIVATE KEY\"", name, block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: token key %s: curve %s, want P-256 (ES256)", name, key.Curve.Params().Name)
	}
	return key, nil
}

// keyID names pub the way libtrust did: the first 240 bits of the SHA-256
// of its DER encoding, in base32, in groups of four separated by colons.
func keyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("auth: token key: %w", err)
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	groups := make([]string, 0, len(s)/4)
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}
