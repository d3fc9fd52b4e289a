// Package cli is berth's command line: cobra commands with Docker's verbs,
// flags and output. It parses flags, calls into the engine packages and
// prints; it holds no business logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/store"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// app holds what every command shares.
type app struct {
	root   string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// defaultRoot is /var/lib/berth for root and $XDG_DATA_HOME/berth otherwise.
func defaultRoot() string {
	if v := os.Getenv("BERTH_ROOT"); v != "" {
		return v
	}
	if os.Geteuid() == 0 {
		return "/var/lib/berth"
	}
	if v := os.Getenv("XDG_DATA_HOME"); v != "" {
		return filepath.Join(v, "berth")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "berth")
}

// openStore opens the state directory chosen by --root.
func (a *app) openStore() (*store.Store, error) {
	return store.Open(a.root)
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "A daemonless container engine with Docker's verbs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.root, "root", defaultRoot(), "state directory (env BERTH_ROOT)")
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.AddCommand(imageCommands(a)...)
	root.AddCommand(remoteCommands(a)...)
	root.AddCommand(containerCommands(a)...)
	root.AddCommand(changeCommands(a)...)
	root.AddCommand(buildCommands(a)...)

	root.AddCommand(newAnyInspectCommand(a))
	root.AddCommand(newImageCommand(a), newSystemCommand(a), newContainerCommand(a), newRegistryCommand(a))
	return root
}

// Execute runs the command line and returns the process exit status.
func Execute(args []string) int {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCommand(a)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(a.stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(a.stderr, "Error:", err)
	return 1
}

// isTerminal reports whether w is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
