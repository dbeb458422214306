# twokey — make test runs what CI runs; make demo shows the whole flow.
GO       ?= go
BIN      := bin/twokey
PKGS     := ./...
FUZZTIME ?= 60s

.PHONY: all build test test-long demo demo-ha fmt vet fuzz bench clean web-deps

all: build

build:
	$(GO) build -o $(BIN) ./cmd/twokey

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The whole suite: format check, vet, and every test under the race
# detector (fuzz seed corpora included).
test: fmt vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# The long form of the crash and load tests.
test-long: fmt vet
	TWOKEY_LONG=1 $(GO) test -race -count=1 -timeout 60m $(PKGS)

# The whole story on the embedded defaults, in a temp dir.
demo: build
	./scripts/demo.sh

demo-ha: build
	./scripts/demo-ha.sh

# Run every fuzz target for FUZZTIME each.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# Performance against this machine's ceiling, measured in the same run:
# twokey bench (a real server, a loopback upstream, 1x and 10x load; the
# table goes to bin/bench.md, a CPU profile per phase to bin/bench-profiles)
# and the Go benchmarks of the hot paths. See BENCHMARKS.md. The run is
# bounded (twokey bench --timeout, 3m by default); BENCHFLAGS passes more
# flags, e.g. make bench BENCHFLAGS='--scales 1'.
# A bench that hits its --timeout still writes the tiers it finished; the Go
# benchmarks run either way, and make fails at the end if either did.
bench: build
	@status=0; ./bin/twokey bench --out bin/bench.md --profile-dir bin/bench-profiles $(BENCHFLAGS) || status=$$?; \
	$(GO) test -run '^$$' -bench . -benchtime 300ms ./conversation ./gate ./store ./templates ./engine ./reqlog > bin/bench-go.txt || { cat bin/bench-go.txt; exit 1; }; \
	cat bin/bench-go.txt; exit $$status

# Rebuild the browser app's vendored crypto (web/app/vendor) from the npm
# versions pinned in web/deps; needs node and npm (CI uses the committed
# output). See web/deps/README.md.
web-deps:
	./scripts/web-deps.sh

clean:
	rm -rf bin
