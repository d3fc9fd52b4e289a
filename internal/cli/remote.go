package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/remote"
	"github.com/berth-dev/berth/internal/store"
)

// remoteCommands are the registry verbs: pull, push, login, logout, manifest.
func remoteCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newPullCommand(a), newPushCommand(a), newLoginCommand(a), newLogoutCommand(a), newManifestCommand(a)}
}

// remoteOptions reads the registries configuration (insecure registries,
// mirrors, short-name search list) for a registry command.
func remoteOptions(tlsVerify bool) (remote.Options, error) {
	regs, err := remote.LoadRegistries()
	return remote.Options{TLSVerify: tlsVerify, Registries: regs}, err
}

func newPullCommand(a *app) *cobra.Command {
	var quiet, tlsVerify, allTags bool
	var platform string
	jobs := 3
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plat := image.Platform()
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return err
				}
				plat = p
			}
			ropts, err := remoteOptions(tlsVerify)
			if err != nil {
				return err
			}
			if jobs < 1 {
				return fmt.Errorf("--max-concurrent-downloads must be at least 1")
			}
			opts := remote.PullOptions{Options: ropts, Platform: plat, Jobs: jobs}
			if !quiet {
				opts.Out = a.stdout
			}
			refs := []string{args[0]}
			if allTags {
				tags, err := remote.Tags(cmd.Context(), args[0], opts.Options)
				if err != nil {
					return err
				}
				refs = refs[:0]
				for _, t := range tags {
					refs = append(refs, args[0]+":"+t)
				}
			}
			return a.withStore(func(st *store.Store) error {
				for _, ref := range refs {
					if err := a.pullOne(cmd.Context(), st, ref, opts, quiet); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&allTags, "all-tags", "a", false, "download all tagged images in the repository")
	cmd.Flags().IntVar(&jobs, "max-concurrent-downloads", jobs, "layers to download and unpack at once")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress verbose output")
	cmd.Flags().StringVar(&platform, "platform", "", "pull for this platform (os/arch[/variant])")
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (localhost and 127.0.0.0/8 always allow HTTP)")
	return cmd
}

func (a *app) pullOne(ctx context.Context, st *store.Store, ref string, opts remote.PullOptions, quiet bool) error {
	res, err := remote.Pull(ctx, st, ref, opts)
	if err != nil {
		return err
	}
	familiar := image.FamiliarName(res.Name)
	if !quiet {
		fmt.Fprintf(a.stdout, "Digest: %s\n", res.Digest)
		if res.UpToDate {
			fmt.Fprintf(a.stdout, "Status: Image is up to date for %s\n", familiar)
		} else {
			fmt.Fprintf(a.stdout, "Status: Downloaded newer image for %s\n", familiar)
		}
	}
	fmt.Fprintln(a.stdout, res.Name)
	return nil
}

func newPushCommand(a *app) *cobra.Command {
	var quiet, tlsVerify bool
	var compression string
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ropts, err := remoteOptions(tlsVerify)
			if err != nil {
				return err
			}
			opts := remote.PushOptions{Options: ropts, Compression: compression}
			if !quiet {
				opts.Out = a.stdout
			}
			return a.withStore(func(st *store.Store) error {
				res, err := remote.Push(cmd.Context(), st, args[0], opts)
				if err != nil {
					return err
				}
				if quiet {
					fmt.Fprintln(a.stdout, res.Name)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress verbose output")
	cmd.Flags().StringVar(&compression, "compression-format", "gzip", "compression for layers stored uncompressed: gzip or zstd")
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (localhost and 127.0.0.0/8 always allow HTTP)")
	return cmd
}

func newLoginCommand(a *app) *cobra.Command {
	var user, password string
	var passwordStdin, tlsVerify bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if passwordStdin {
				if password != "" {
					return fmt.Errorf("--password and --password-stdin are mutually exclusive")
				}
				b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" {
				fmt.Fprint(a.stdout, "Username: ")
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				user = strings.TrimSpace(line)
			}
			if user == "" || password == "" {
				return fmt.Errorf("username and password are required (use -u and --password-stdin)")
			}
			ropts, err := remoteOptions(tlsVerify)
			if err != nil {
				return err
			}
			if err := remote.Login(cmd.Context(), server, user, password, ropts); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "take the password from stdin")
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (localhost and 127.0.0.0/8 always allow HTTP)")
	return cmd
}

func newLogoutCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			removed, err := remote.Logout(server)
			if err != nil {
				return err
			}
			if !removed {
				fmt.Fprintf(a.stdout, "Not logged in to %s\n", server)
				return nil
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", server)
			return nil
		},
	}
}

func newManifestCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Inspect manifests in registries"}
	var tlsVerify bool
	inspect := &cobra.Command{
		Use:   "inspect NAME[:TAG|@DIGEST]",
		Short: "Display an image's manifest or manifest list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ropts, err := remoteOptions(tlsVerify)
			if err != nil {
				return err
			}
			raw, err := remote.ManifestInspect(cmd.Context(), args[0], ropts)
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			out, err := json.MarshalIndent(v, "", "\t")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", out)
			return err
		},
	}
	inspect.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (localhost and 127.0.0.0/8 always allow HTTP)")
	cmd.AddCommand(inspect)
	return cmd
}
