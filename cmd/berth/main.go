// Command berth is a daemonless container engine speaking Docker's verbs.
package main

import (
	"os"

	"github.com/berth-dev/berth/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:]))
}
