# kitefn: `make run` starts every function in one process on the embedded store; `make test` runs all tests
# against real servers (kube-apiserver + etcd built from the Go module proxy, the Firestore emulator, a
# DynamoDB-protocol server, bbolt files).
GO        ?= go
BIN       ?= bin/kitefn
# Built Kubernetes binaries live outside the checkout, keyed by version, so every clone reuses them.
TOOLS_SH  := tests/harness/build-tools.sh
# -race needs cgo and a C compiler. -p 4: most test packages spend their time waiting on the servers they start
# (kube-apiserver, emulators), so four at a time keep 2 cores busy.
GOTEST_FLAGS ?= -race -count=1 -timeout 20m -p 4

.PHONY: all build run test test-prereqs unit lint tools bench clean page browser

all: build

# STORE=bbolt|firestore|dynamodb builds an image for one store: the other cloud SDK is left out, which saves
# several milliseconds of package init at every cold start. The default links every store.
STORE     ?= all
TAGS_all       :=
TAGS_bbolt     := kitefn_no_firestore,kitefn_no_dynamodb
TAGS_firestore := kitefn_no_dynamodb
TAGS_dynamodb  := kitefn_no_firestore

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -tags='$(TAGS_$(STORE))' -o $(BIN) .

run: build
	FUNCTION_TARGET=$${FUNCTION_TARGET:-all} ./$(BIN)

# tools builds etcd, kube-apiserver and kwok once (10-25 min on 2 cores) and reuses them after.
tools:
	@$(TOOLS_SH) all >/dev/null

# page rebuilds the browser terminal's bundle (functions/terminal/web/dist, committed, embedded in the binary):
# npm ci installs the lock file's xterm.js, fit addon and esbuild, build.mjs bundles them and writes
# dist/SOURCES.sha256, which a Go test in `make test` checks against the sources (no npm needed there).
page:
	cd functions/terminal/web && npm ci --no-audit --no-fund && node build.mjs

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for store in bbolt firestore dynamodb; do $(MAKE) -s build STORE=$$store BIN=$$(mktemp -d)/kitefn || exit 1; done

test: test-prereqs browser lint tools
	CGO_ENABLED=1 KITEFN_TOOLS_DIR=$$($(TOOLS_SH) all) $(GO) test $(GOTEST_FLAGS) ./...

# test-prereqs stops `make test` at once, naming what is missing, rather than minutes later with a test's error.
test-prereqs:
	@cc=$$($(GO) env CC 2>/dev/null); missing=; \
	  for c in $(GO) $${cc:-gcc} java curl jq bash ip; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	  [ -z "$$missing" ] || { echo "make test: missing:$$missing (a C compiler for -race; Java 17 for the Firestore" \
	    "emulator; curl, jq, bash for the README examples; iproute2's ip for the discovery tests)" >&2; exit 1; }; \
	  java=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1); \
	  [ "$${java:-0}" -ge 17 ] || { echo "make test: the Firestore emulator needs Java 17 or later, found: $$(java -version 2>&1 | head -n1)" >&2; exit 1; }; \
	  cap=$$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status 2>/dev/null); \
	  [ "$$(id -u)" = 0 ] || [ $$(( (0x$${cap:-0} >> 12) & 1 )) = 1 ] || { echo "make test: the discovery tests create" \
	    "network namespaces: run as root or with CAP_NET_ADMIN" >&2; exit 1; }

# browser gives tests/browser its headless Chromium (Debian's chromium; the test drives it over the DevTools
# protocol from Go, so neither node nor npm is needed): installed with apt-get when missing and this is root
# (CI on a new machine), else named as missing. KITEFN_CHROMIUM points at another build.
browser:
	@if [ -z "$$KITEFN_CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Debian's chromium for tests/browser" >&2; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null || \
	      { echo "make test: apt-get install chromium failed" >&2; exit 1; }; \
	  else \
	    echo "make test: missing chromium (headless, for tests/browser): apt-get install -y chromium, or set KITEFN_CHROMIUM" >&2; \
	    exit 1; \
	  fi; \
	fi

# unit runs only the tests that need no external server.
unit:
	$(GO) test -count=1 -short ./...

bench: tools
	KITEFN_TOOLS_DIR=$$($(TOOLS_SH) all) $(GO) run ./tests/bench

clean:
	rm -rf bin

# image builds and pushes the container image for one store with ko (github.com/google/ko, run from the Go
# module proxy at a pinned version; no Docker needed): a static binary (CGO_ENABLED=0, the STORE tags above)
# on distroless/static, as non-root. KO_DOCKER_REPO is where it goes (ko.local = the local Docker daemon). It
# prints the image reference by digest, for the overlay (the README, "Deploy to Knative"):
#   ref=$(make -s image STORE=firestore KO_DOCKER_REPO=…)
#   (cd deploy/overlays/firestore && kustomize edit set image kitefn=$ref)
# The Dockerfile builds the same image with Docker: docker build --build-arg STORE=firestore .
KO_VERSION      ?= v0.19.1
KO              ?= $(GO) run github.com/google/ko@$(KO_VERSION)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
KO_FLAGS        ?=

.PHONY: image
image:
	@test -n "$(KO_DOCKER_REPO)" || { echo "make image: set KO_DOCKER_REPO, e.g. ghcr.io/you/kitefn (or ko.local)" >&2; exit 2; }
	@KO_CONFIG_PATH=deploy/ko.yaml KO_DOCKER_REPO='$(KO_DOCKER_REPO)' KITEFN_BUILD_TAGS='$(TAGS_$(STORE))' \
	  $(KO) build --bare --tags='$(STORE)' --platform='$(IMAGE_PLATFORMS)' $(KO_FLAGS) .
