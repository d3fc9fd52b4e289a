package container

import (
	"crypto/rand"
	"math/big"
)

// Words for generated container names ("adjective_noun"), berth's own
// lists in the spirit of Docker's names.
var (
	nameAdjectives = []string{
		"amber", "bold", "brave", "breezy", "bright", "calm", "clever", "cosy",
		"crisp", "daring", "deep", "eager", "fair", "fleet", "gentle", "glad",
		"golden", "hardy", "honest", "jolly", "keen", "kind", "lively", "lucid",
		"merry", "mellow", "nimble", "noble", "patient", "plucky", "proud", "quick",
		"quiet", "rapid", "serene", "sharp", "silent", "steady", "stoic", "sunny",
		"swift", "tidy", "trusty", "vivid", "warm", "wise", "witty", "zesty",
	}
	nameNouns = []string{
		"anchor", "barge", "beacon", "bollard", "buoy", "cabin", "canal", "cargo",
		"compass", "coracle", "current", "cutter", "dinghy", "dock", "ferry", "galley",
		"harbour", "hawser", "helm", "jetty", "keel", "kelp", "lagoon", "lantern",
		"lighthouse", "mast", "mooring", "narrowboat", "oar", "pier", "pilot", "quay",
		"rudder", "sail", "schooner", "shoal", "skiff", "slipway", "sloop", "spinnaker",
		"starboard", "tide", "tiller", "trawler", "tugboat", "wake", "wharf", "yawl",
	}
)

func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		panic(err)
	}
	return words[n.Int64()]
}

// randomName returns a generated container name such as "swift_ferry".
func randomName() string { return pick(nameAdjectives) + "_" + pick(nameNouns) }
