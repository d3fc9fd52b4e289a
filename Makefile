# berth — see README.md. Every target runs as root on a Debian 12 machine.
SHELL := /bin/bash
GO ?= go
TEST_TIMEOUT ?= 40m
FUZZTIME ?= 30s

.PHONY: all build test vet demo bench fuzz deps clean

all: build

build:
	$(GO) build -o bin/berth ./cmd/berth

deps:
	bash hack/install-deps.sh

vet:
	$(GO) vet ./...

# Unit tests and the integration tests under test/ (which build berth
# themselves and use Docker, Podman and skopeo). -count=1: the integration
# tests depend on code outside their package, so cached results would lie.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: deps build
	bash hack/demo.sh

bench: build
	@set -e; found=0; \
	for f in bench/*.sh; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "==> $$f"; bash "$$f"; \
	done; \
	[ $$found = 1 ] || echo "bench: no bench/*.sh scripts"

# Runs every Fuzz* target for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash hack/fuzz.sh

clean:
	rm -rf bin
