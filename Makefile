# kitefn: `make run` starts every function in one process on the embedded store; `make test` runs all tests
# against real servers (kube-apiserver + etcd built from the Go module proxy, the Firestore emulator, a
# DynamoDB-protocol server, bbolt files).
GO        ?= go
BIN       ?= bin/kitefn
# Built Kubernetes binaries live outside the checkout, keyed by version, so every clone reuses them.
TOOLS_SH  := tests/harness/build-tools.sh
GOTEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all build run test unit lint tools bench clean

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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for store in bbolt firestore dynamodb; do $(MAKE) -s build STORE=$$store BIN=$$(mktemp -d)/kitefn || exit 1; done

test: lint tools
	KITEFN_TOOLS_DIR=$$($(TOOLS_SH) all) $(GO) test $(GOTEST_FLAGS) ./...

# unit runs only the tests that need no external server.
unit:
	$(GO) test -count=1 -short ./...

bench: tools
	KITEFN_TOOLS_DIR=$$($(TOOLS_SH) all) $(GO) run ./tests/bench

clean:
	rm -rf bin
