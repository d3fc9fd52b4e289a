package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/internal/registry"
)

func newRegistryCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Run an image registry"}
	cmd.AddCommand(newRegistryServeCommand(a), newRegistryGCCommand(a))
	return cmd
}

// registryFlags are the flags serve and gc share.
type registryFlags struct {
	config, root, addr string
	logLevel, logFmt   string
}

func (f *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", "", "YAML configuration file")
	cmd.Flags().StringVar(&f.root, "root", "", "data directory (default: <berth root>/registry)")
}

// load reads the config file and applies the flags over it.
func (f *registryFlags) load(a *app) (registry.Config, error) {
	var cfg registry.Config
	if f.config != "" {
		raw, err := os.ReadFile(f.config)
		if err != nil {
			return cfg, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("%s: %w", f.config, err)
		}
	}
	if f.root != "" {
		cfg.Root = f.root
	}
	if cfg.Root == "" {
		cfg.Root = filepath.Join(a.root, "registry")
	}
	if f.addr != "" {
		cfg.Addr = f.addr
	}
	if cfg.Addr == "" {
		cfg.Addr = registry.DefaultAddr
	}
	if f.logLevel != "" {
		cfg.Log.Level = f.logLevel
	}
	if f.logFmt != "" {
		cfg.Log.Format = f.logFmt
	}
	return cfg, nil
}

func newLogger(w io.Writer, c registry.LogConfig) (*slog.Logger, error) {
	var level slog.Level
	if c.Level != "" {
		if err := level.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: %w", c.Level, err)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", c.Format)
}

// adminSocket is where a serving registry takes on-demand GC requests;
// only root can reach it.
func adminSocket(root string) string { return filepath.Join(root, "admin.sock") }

func newRegistryServeCommand(a *app) *cobra.Command {
	var f registryFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the OCI distribution API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(a)
			if err != nil {
				return err
			}
			log, err := newLogger(a.stderr, cfg.Log)
			if err != nil {
				return err
			}
			if err := checkExposure(cfg); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			reg, err := registry.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer reg.Close()
			return serveRegistry(ctx, cfg, reg, log)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&f.addr, "addr", "", "listen address (default "+registry.DefaultAddr+")")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error")
	cmd.Flags().StringVar(&f.logFmt, "log-format", "", "text or json")
	return cmd
}

// checkExposure refuses to serve without auth beyond the loopback interface.
func checkExposure(cfg registry.Config) error {
	if cfg.Auth.Mode != "" && cfg.Auth.Mode != "none" {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--addr %s: a registry without auth serves only the loopback interface; configure auth.mode htpasswd or token", cfg.Addr)
}

func serveRegistry(ctx context.Context, cfg registry.Config, reg *registry.Registry, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           reg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	admin, err := serveAdmin(cfg.Root, reg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer admin.Close()
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS.Cert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("registry listening", "addr", ln.Addr().String(), "root", cfg.Root, "tls", cfg.TLS.Cert != "")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("registry shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// serveAdmin answers POST /gc on the admin socket.
func serveAdmin(root string, reg *registry.Registry, log *slog.Logger) (io.Closer, error) {
	path := adminSocket(root)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, req *http.Request) {
		st, err := reg.GC(req.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("gc on demand", "blobs", st.Blobs, "uploads", st.Uploads)
		fmt.Fprintln(w, gcSummary(st))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func gcSummary(st registry.GCStats) string {
	return fmt.Sprintf("deleted %d blobs, %d orphaned blobs, %d stale uploads, %d upload chunks in %s",
		st.Blobs, st.Orphans, st.Uploads, st.Chunks, st.Duration.Round(time.Millisecond))
}

func newRegistryGCCommand(a *app) *cobra.Command {
	var f registryFlags
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect unreferenced blobs and stale uploads now (through the running server, if any)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(a)
			if err != nil {
				return err
			}
			if out, err := gcThroughServer(cmd.Context(), cfg.Root); err == nil {
				fmt.Fprint(a.stdout, out)
				return nil
			} else if !errors.Is(err, errNoServer) {
				return err
			}
			log, err := newLogger(a.stderr, cfg.Log)
			if err != nil {
				return err
			}
			reg, err := registry.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer reg.Close()
			st, err := reg.GC(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, gcSummary(st))
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

var errNoServer = errors.New("no registry serves this root")

func gcThroughServer(ctx context.Context, root string) (string, error) {
	path := adminSocket(root)
	conn, err := net.Dial("unix", path)
	if err != nil {
		return "", errNoServer
	}
	conn.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://registry/gc", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("registry gc: %s", bytes.TrimSpace(body))
	}
	return string(body), nil
}
