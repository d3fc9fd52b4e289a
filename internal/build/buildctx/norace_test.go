//go:build !race

package buildctx

const raceEnabled = false
