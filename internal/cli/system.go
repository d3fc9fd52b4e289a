package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/store"
)

func newSystemCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage berth"}
	cmd.AddCommand(newDfCommand(a), newCheckCommand(a))
	return cmd
}

// dfRow is one line of `system df`.
type dfRow struct {
	Type        string
	TotalCount  string
	Active      string
	Size        string
	Reclaimable string
}

func newDfCommand(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "df",
		Short: "Show berth disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				u, err := e.Images.DiskUsage()
				if err != nil {
					return err
				}
				cs, err := e.List()
				if err != nil {
					return err
				}
				var running int
				var csize, creclaim int64
				for _, c := range cs {
					n, _ := e.WritableSize(c)
					csize += n
					if c.State.Running {
						running++
					} else {
						creclaim += n
					}
				}
				p, err := newRowPrinter(a.stdout, format,
					"table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
					map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"})
				if err != nil {
					return err
				}
				entries, csz, err := e.Images.CacheUsage()
				if err != nil {
					return err
				}
				pct := 0
				if u.ImagesSize > 0 {
					pct = int(u.Reclaimable * 100 / u.ImagesSize)
				}
				rows := []dfRow{
					{"Images", fmt.Sprint(u.Images), fmt.Sprint(u.ActiveImages), humanSize(u.ImagesSize), fmt.Sprintf("%s (%d%%)", humanSize(u.Reclaimable), pct)},
					{"Containers", fmt.Sprint(len(cs)), fmt.Sprint(running), humanSize(csize), humanSize(creclaim)},
					{"Local Volumes", "0", "0", "0B", "0B"},
					{"Build Cache", fmt.Sprint(entries), "0", humanSize(csz), humanSize(csz)},
				}
				for _, r := range rows {
					if err := p.print(r); err != nil {
						return err
					}
				}
				return p.flush()
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "format output: table, json, or a Go template")
	return cmd
}

func newCheckCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify every blob's digest and every reference in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				problems, err := st.Check()
				if err != nil {
					return err
				}
				for _, p := range problems {
					fmt.Fprintln(a.stdout, p)
				}
				if len(problems) > 0 {
					return &exitError{code: 1, msg: fmt.Sprintf("Error: %d problem(s) found", len(problems))}
				}
				fmt.Fprintln(a.stdout, "ok")
				return nil
			})
		},
	}
}
