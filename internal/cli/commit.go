package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/container/fscopy"
)

func changeCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newCommitCommand(a), newDiffCommand(a), newCpCommand(a), newExportCommand(a)}
}

func newCommitCommand(a *app) *cobra.Command {
	var opts container.CommitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				opts.Name = args[1]
			}
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				img, err := e.Commit(cmd.Context(), c, opts)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, img.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&opts.Author, "author", "a", "", `author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "commit message")
	cmd.Flags().StringArrayVarP(&opts.Changes, "change", "c", nil, "apply Dockerfile instruction to the created image")
	cmd.Flags().BoolVarP(&opts.Pause, "pause", "p", true, "pause container during commit")
	cmd.Flags().StringArrayVar(&opts.Exclude, "exclude", nil, "leave paths matching this .dockerignore-style pattern out of the new layer")
	return cmd
}

func newDiffCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				changes, err := e.Diff(c)
				if err != nil {
					return err
				}
				for _, ch := range changes {
					fmt.Fprintf(a.stdout, "%s %s\n", ch.Kind, ch.Path)
				}
				return nil
			})
		},
	}
}

func newExportCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" && isTerminal(a.stdout) {
				return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				write := func(w io.Writer) error {
					return e.WithRootfs(c, func(rootfs string) error { return fscopy.Export(w, rootfs) })
				}
				if output == "" {
					return write(a.stdout)
				}
				return writeFileAtomic(output, write)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file, instead of STDOUT")
	return cmd
}

// splitCpArg splits "CONTAINER:PATH"; a local path has no container part
// (a path starting with "/" or "." is always local, as in Docker).
func splitCpArg(arg string) (ctr, p string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

func newCpCommand(a *app) *cobra.Command {
	var follow, archive, quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, src := splitCpArg(args[0])
			dstCtr, dst := splitCpArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				return errors.New("must specify at least one container source")
			}
			return a.withEngine(func(e *container.Engine) error {
				ref := srcCtr + dstCtr
				c, err := e.Get(ref)
				if err != nil {
					return err
				}
				err = e.WithRootfs(c, func(rootfs string) error {
					if srcCtr != "" {
						return fscopy.CopyFrom(rootfs, src, dst, a.stdout, follow)
					}
					in, _ := a.stdin.(io.Reader)
					return fscopy.CopyTo(rootfs, dst, src, in, follow)
				})
				if errors.Is(err, os.ErrNotExist) && srcCtr != "" {
					return fmt.Errorf("Could not find the file %s in container %s", src, ref)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "always follow symbol link in SRC_PATH")
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "archive mode (copy all uid/gid information)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress progress output during copy")
	return cmd
}
