package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/imagearchive"
	"github.com/berth-dev/berth/internal/store"
)

// imageCommands are the top-level image verbs (docker images, docker rmi…).
func imageCommands(a *app) []*cobra.Command {
	images := newImagesCommand(a)
	images.Use = "images [OPTIONS] [REPOSITORY[:TAG]]"
	return []*cobra.Command{
		images, newHistoryCommand(a), newTagCommand(a), newRmiCommand(a),
		newSaveCommand(a), newLoadCommand(a), newImportCommand(a),
	}
}

// newImageCommand is the `image` group (docker image ls, podman image mount…).
func newImageCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images"}
	ls := newImagesCommand(a)
	ls.Use, ls.Aliases = "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list"}
	rm := newRmiCommand(a)
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"remove"}
	cmd.AddCommand(ls, rm, newInspectCommand(a), newHistoryCommand(a), newTagCommand(a),
		newSaveCommand(a), newLoadCommand(a), newImportCommand(a), newPruneCommand(a),
		newMountCommand(a), newUnmountCommand(a))
	return cmd
}

// withStore opens the store around fn.
func (a *app) withStore(fn func(*store.Store) error) error {
	st, err := a.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// imageRow is one line of `images`, with Docker's template fields.
type imageRow struct {
	Containers   string
	CreatedAt    string
	CreatedSince string
	Digest       string
	ID           string
	Repository   string
	SharedSize   string
	Size         string
	Tag          string
	UniqueSize   string
	VirtualSize  string
}

func newImagesCommand(a *app) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Short: "List images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				imgs, err := st.List()
				if err != nil {
					return err
				}
				var filterRepo, filterTag string
				if len(args) == 1 {
					filterRepo, filterTag = image.SplitName(args[0])
					if !strings.Contains(args[0], ":") {
						filterTag = ""
					}
				}
				def := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
				if digests {
					def = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
				}
				if quiet {
					format = "{{.ID}}"
				}
				p, err := newRowPrinter(a.stdout, format, def, map[string]string{
					"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
					"CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST", "Containers": "CONTAINERS",
					"SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
				})
				if err != nil {
					return err
				}
				seen := map[string]bool{}
				for _, img := range imgs {
					for _, row := range imageRows(img, noTrunc) {
						if filterRepo != "" && (row.Repository != filterRepo || (filterTag != "" && row.Tag != filterTag)) {
							continue
						}
						if quiet {
							if seen[row.ID] {
								continue
							}
							seen[row.ID] = true
						}
						if err := p.print(row); err != nil {
							return err
						}
					}
				}
				return p.flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "show all images (intermediate images too)")
	f.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&digests, "digests", false, "show digests")
	f.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	f.StringVar(&format, "format", "", "format output: table, json, or a Go template")
	return cmd
}

// imageRows is one row per name of an image, or a <none> row.
func imageRows(img store.Image, noTrunc bool) []imageRow {
	created := img.Stored
	if img.Config.Created != nil {
		created = *img.Config.Created
	}
	id := image.ShortID(img.ID)
	if noTrunc {
		id = img.ID.String()
	}
	base := imageRow{
		Containers: "N/A", CreatedAt: created.Format("2006-01-02 15:04:05 -0700 MST"), CreatedSince: since(created),
		Digest: "<none>", ID: id, SharedSize: "N/A", UniqueSize: "N/A",
		Size: humanSize(img.Size), VirtualSize: humanSize(img.Size),
	}
	var rows []imageRow
	for _, n := range img.Names {
		r := base
		r.Repository, r.Tag = image.SplitName(n)
		for _, rd := range img.RepoDigests {
			if repo, d, ok := strings.Cut(rd, "@"); ok && image.FamiliarName(repo) == r.Repository {
				r.Digest = d
			}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		r := base
		r.Repository, r.Tag = "<none>", "<none>"
		rows = append(rows, r)
	}
	return rows
}

// inspectImage is the JSON Docker's `image inspect` prints.
type inspectImage struct {
	ID              string            `json:"Id"`
	RepoTags        []string          `json:"RepoTags"`
	RepoDigests     []string          `json:"RepoDigests"`
	Parent          string            `json:"Parent"`
	Comment         string            `json:"Comment"`
	Created         string            `json:"Created"`
	Container       string            `json:"Container"`
	ContainerConfig inspectConfig     `json:"ContainerConfig"`
	DockerVersion   string            `json:"DockerVersion"`
	Author          string            `json:"Author"`
	Config          inspectConfig     `json:"Config"`
	Architecture    string            `json:"Architecture"`
	Variant         string            `json:"Variant,omitempty"`
	Os              string            `json:"Os"`
	Size            int64             `json:"Size"`
	VirtualSize     int64             `json:"VirtualSize"`
	GraphDriver     graphDriver       `json:"GraphDriver"`
	RootFS          inspectRootFS     `json:"RootFS"`
	Metadata        map[string]string `json:"Metadata"`
}

type graphDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

type inspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// inspectConfig is Docker's container config shape.
type inspectConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Healthcheck  *image.HealthConfig `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

func toInspectConfig(c image.Config) inspectConfig {
	return inspectConfig{
		Hostname: c.Hostname, Domainname: c.Domainname, User: c.User, ExposedPorts: c.ExposedPorts,
		Env: c.Env, Cmd: c.Cmd, Healthcheck: c.Healthcheck, ArgsEscaped: c.ArgsEscaped, Volumes: c.Volumes,
		WorkingDir: c.WorkingDir, Entrypoint: c.Entrypoint, OnBuild: c.OnBuild, Labels: c.Labels,
		StopSignal: c.StopSignal, Shell: c.Shell,
	}
}

func toInspect(st *store.Store, img store.Image) inspectImage {
	out := inspectImage{
		ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{},
		Parent: img.Config.Parent, Comment: img.Config.Comment, Container: img.Config.Container,
		DockerVersion: img.Config.DockerVersion, Author: img.Config.Author,
		Config: toInspectConfig(img.Config.Config), Architecture: img.Config.Architecture,
		Variant: img.Config.Variant, Os: img.Config.OS, Size: img.Size, VirtualSize: img.Size,
		GraphDriver: graphDriver{Name: "overlay", Data: map[string]string{}},
		RootFS:      inspectRootFS{Type: "layers", Layers: []string{}},
		Metadata:    map[string]string{"LastTagTime": img.LastTagTime.Format(time.RFC3339Nano)},
	}
	if img.Config.Created != nil {
		out.Created = img.Config.Created.Format(time.RFC3339Nano)
	}
	for _, n := range img.Names {
		out.RepoTags = append(out.RepoTags, image.FamiliarName(n))
	}
	for _, rd := range img.RepoDigests {
		out.RepoDigests = append(out.RepoDigests, image.FamiliarName(rd))
	}
	for _, d := range img.Config.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	if dirs, err := st.LayerDirs(img); err == nil && len(dirs) > 0 {
		out.GraphDriver.Data["UpperDir"] = dirs[0]
		if len(dirs) > 1 {
			out.GraphDriver.Data["LowerDir"] = strings.Join(dirs[1:], ":")
		}
	}
	return out
}

func newInspectCommand(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				var out []inspectImage
				var failed []string
				for _, ref := range args {
					img, err := st.Get(ref)
					if err != nil {
						failed = append(failed, err.Error())
						continue
					}
					out = append(out, toInspect(st, img))
				}
				return printInspected(a.stdout, out, format, failed)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format output with a Go template")
	return cmd
}

// printInspected prints what inspect found, then fails with what it did
// not find, each on its line after "Error: ".
func printInspected[T any](w io.Writer, items []T, format string, failed []string) error {
	if err := printInspect(w, items, format); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &exitError{code: 1, msg: "Error: " + strings.Join(failed, "\nError: ")}
	}
	return nil
}

func printInspect[T any](w io.Writer, items []T, format string) error {
	if format == "" || format == "json" {
		if items == nil {
			items = []T{}
		}
		b, err := json.MarshalIndent(items, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	t, err := parseTemplate(format + "\n")
	if err != nil {
		return err
	}
	for _, it := range items {
		// Templates see the JSON form, so field names are Docker's.
		var generic any
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		if err := t.Execute(w, generic); err != nil {
			return err
		}
	}
	return nil
}

// historyRow is one line of `history`.
type historyRow struct {
	ID           string
	CreatedSince string
	CreatedAt    string
	CreatedBy    string
	Size         string
	Comment      string
}

func newHistoryCommand(a *app) *cobra.Command {
	var human, noTrunc, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				img, err := st.Get(args[0])
				if err != nil {
					return err
				}
				sizes, err := st.LayerSizes(img)
				if err != nil {
					return err
				}
				if quiet {
					format = "{{.ID}}"
				}
				p, err := newRowPrinter(a.stdout, format,
					"table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
					map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
						"CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"})
				if err != nil {
					return err
				}
				hist := img.Config.History
				layer := len(sizes) - 1
				for i := len(hist) - 1; i >= 0; i-- {
					h := hist[i]
					var size int64
					if !h.EmptyLayer && layer >= 0 {
						size = sizes[layer]
						layer--
					}
					row := historyRow{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
					if i == len(hist)-1 {
						row.ID = image.ShortID(img.ID)
						if noTrunc {
							row.ID = img.ID.String()
						}
					}
					if h.Created != nil {
						row.CreatedAt = h.Created.Format(time.RFC3339)
						row.CreatedSince = row.CreatedAt
						if human {
							row.CreatedSince = since(*h.Created)
						}
					}
					row.Size = fmt.Sprint(size)
					if human {
						row.Size = humanSize(size)
					}
					if !noTrunc && len([]rune(row.CreatedBy)) > 45 {
						row.CreatedBy = string([]rune(row.CreatedBy)[:44]) + "…"
					}
					if err := p.print(row); err != nil {
						return err
					}
				}
				return p.flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&human, "human", "H", true, "print sizes and dates in human readable format")
	f.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	f.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	f.StringVar(&format, "format", "", "format output with a Go template")
	return cmd
}

func newTagCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error { return st.Tag(args[0], args[1]) })
		},
	}
}

func printEvents(w io.Writer, events []store.Event, lower bool) {
	for _, e := range events {
		untagged, deleted := "Untagged: ", "Deleted: "
		if lower {
			untagged, deleted = "untagged: ", "deleted: "
		}
		if e.Untagged != "" {
			fmt.Fprintln(w, untagged+e.Untagged)
		} else {
			fmt.Fprintln(w, deleted+e.Deleted.String())
		}
	}
}

func newRmiCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				var failed []string
				for _, ref := range args {
					events, err := st.Remove(ref, force)
					if err != nil {
						failed = append(failed, err.Error())
						continue
					}
					printEvents(a.stdout, events, false)
				}
				if _, err := st.GC(false); err != nil {
					failed = append(failed, err.Error())
				}
				if len(failed) > 0 {
					return &exitError{code: 1, msg: "Error: " + strings.Join(failed, "\nError: ")}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "force removal of the image")
	return cmd
}

func newPruneCommand(a *app) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				warning := "WARNING! This will remove all dangling images."
				if all {
					warning = "WARNING! This will remove all images without at least one container associated to them."
				}
				fmt.Fprint(a.stdout, warning+"\nAre you sure you want to continue? [y/N] ")
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
					return nil
				}
			}
			return a.withStore(func(st *store.Store) error {
				events, err := st.Prune(all)
				if err != nil {
					return err
				}
				res, err := st.GC(true)
				if err != nil {
					return err
				}
				if len(events) > 0 {
					fmt.Fprintln(a.stdout, "Deleted Images:")
					printEvents(a.stdout, events, true)
					fmt.Fprintln(a.stdout)
				}
				fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(res.Reclaimed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

func newSaveCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" && isTerminal(a.stdout) {
				return fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			return a.withStore(func(st *store.Store) error {
				if output == "" {
					return imagearchive.Save(st, args, a.stdout)
				}
				return writeFileAtomic(output, func(w io.Writer) error { return imagearchive.Save(st, args, w) })
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file, instead of STDOUT")
	return cmd
}

// writeFileAtomic writes path through an unnamed temporary file in the
// same directory (O_TMPFILE) that is linked in only when complete, so a
// failed or killed write leaves neither a half-written file nor litter.
func writeFileAtomic(path string, fn func(io.Writer) error) error {
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := os.NewFile(uintptr(fd), path)
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fn(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	// Link under a unique name, then rename over path: the visible file is
	// always complete.
	staging := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	os.Remove(staging)
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", tmp.Fd()), unix.AT_FDCWD, staging, unix.AT_SYMLINK_FOLLOW); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := os.Rename(staging, path); err != nil {
		os.Remove(staging)
		return err
	}
	return nil
}

func newLoadCommand(a *app) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = a.stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			} else if isTerminal(a.stdin) {
				return fmt.Errorf("requested load from stdin, but stdin is empty")
			}
			return a.withStore(func(st *store.Store) error {
				loaded, err := imagearchive.Load(cmd.Context(), st, r)
				for _, l := range loaded {
					if len(l.Names) == 0 {
						fmt.Fprintf(a.stdout, "Loaded image ID: %s\n", l.ID)
					}
					for _, n := range l.Names {
						fmt.Fprintf(a.stdout, "Loaded image: %s\n", image.FamiliarName(n))
					}
				}
				if err == nil && len(loaded) == 0 {
					err = fmt.Errorf("archive holds no image")
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress the load output")
	return cmd
}

func newImportCommand(a *app) *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return err
				}
				if !image.MatchPlatform(image.Platform(), p) {
					return fmt.Errorf("--platform %s: only the host's platform (%s) is supported", platform, image.FormatPlatform(image.Platform()))
				}
			}
			opts := imagearchive.ImportOptions{Changes: changes, Message: message, Source: "-"}
			if len(args) == 2 {
				opts.Name = args[1]
			}
			var r io.Reader = a.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			return a.withStore(func(st *store.Store) error {
				img, err := imagearchive.Import(cmd.Context(), st, r, opts)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, img.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&message, "message", "m", "", "set commit message for imported image")
	cmd.Flags().StringVar(&platform, "platform", "", "set platform (only the host's is supported)")
	return cmd
}

func newMountCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "mount IMAGE",
		Short: "Mount an image's root filesystem read-only and print its path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				p, err := st.Mount(args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, p)
				return nil
			})
		},
	}
}

func newUnmountCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "unmount IMAGE [IMAGE...]",
		Aliases: []string{"umount"},
		Short:   "Unmount images mounted with `image mount`",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				for _, ref := range args {
					if err := st.Unmount(ref); err != nil {
						return err
					}
					fmt.Fprintln(a.stdout, ref)
				}
				return nil
			})
		},
	}
}
