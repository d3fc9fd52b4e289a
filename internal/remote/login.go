package remote

import (
	"context"
	"fmt"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubAuthKey is the key Docker keeps Docker Hub credentials under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

func registryKey(server string, opts Options) (name.Registry, string, error) {
	if server == "" || server == "docker.io" || server == "index.docker.io" || server == dockerHubAuthKey {
		reg, err := name.NewRegistry("index.docker.io")
		return reg, dockerHubAuthKey, err
	}
	var nopts []name.Option
	if !opts.TLSVerify {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(server, nopts...)
	return reg, server, err
}

// Login checks the credentials against the registry (the /v2/ ping and, if
// it asks for one, a token) and saves them in Docker's config file, or in
// the credential helper that file names.
func Login(ctx context.Context, server, user, password string, opts Options) error {
	reg, key, err := registryKey(server, opts)
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	scope := reg.Repo("berth-login-check").Scope(transport.PullScope)
	rt, err := transport.NewWithContext(ctx, reg, auth, baseTransport(opts.forHost(reg.RegistryStr())), []string{scope})
	if err != nil {
		return fmt.Errorf("login to %s: %w", key, err)
	}
	// A registry with basic auth only sees the credentials on a request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", key, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s: registry answered %s", key, resp.Status)
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return err
	}
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return fmt.Errorf("saving credentials for %s: %w", key, err)
	}
	return cf.Save()
}

// Logout removes saved credentials for server; it reports whether there
// were any.
func Logout(server string) (bool, error) {
	_, key, err := registryKey(server, Options{TLSVerify: true})
	if err != nil {
		return false, err
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return false, err
	}
	store := cf.GetCredentialsStore(key)
	if ac, err := store.Get(key); err != nil || (ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.Auth == "") {
		if _, ok := cf.AuthConfigs[key]; !ok {
			return false, nil
		}
	}
	if err := store.Erase(key); err != nil {
		return false, err
	}
	return true, cf.Save()
}
