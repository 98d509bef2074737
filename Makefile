# make run   - install what is missing, build, serve the demo on 127.0.0.1:8000
# make test  - install what is missing, run every test (Go, PHP, integration)
# make build - bin/aggregator
# make bench - benchmarks (docs/performance.md; ONLY=ceiling,php,... for some)
# make run-example - the example translator calling a fake supplier with
#                    real latency through \Aggregator\fetch(), 4 workers
#                    running 64 jobs each

GO       ?= go
BIN      := bin/aggregator
APT      := DEBIAN_FRONTEND=noninteractive apt-get
# Packages the tests need: PHP to run, phpunit for the PHP tests, nginx and
# chromium for the deploy and page tests, composer to validate composer.json.
TEST_PKGS := php-cli phpunit nginx chromium composer curl

.PHONY: run-example build run test deps test-deps bench vet php-test deploy-test dist clean

# VERSION names the build in its startup log line and the dist tarball.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/aggregator

# deps installs php-cli when it is missing (Debian/Ubuntu; root or sudo).
deps:
	@command -v php >/dev/null 2>&1 || ./.ci/install php-cli

test-deps:
	@./.ci/install $(TEST_PKGS)

run: deps build
	$(BIN)

# run-example: cmd/demo-supplier answers in 0..1 s like a real parts API;
# script/example/ calls it with \Aggregator\fetch(), so a job waiting for it
# holds no PHP process. Stopping make stops both.
run-example: deps build
	$(GO) build -o bin/demo-supplier ./cmd/demo-supplier
	bin/demo-supplier -latency 1s & supplier=$$!; trap 'kill $$supplier 2>/dev/null' EXIT INT TERM; \
	EXAMPLE_SUPPLIER_URL=http://127.0.0.1:8090 $(BIN) -Daggregator.worker.handlers=script/example/handlers.php \
		-Daggregator.pool.executor=4 -Daggregator.pool.concurrency=64

vet:
	$(GO) vet ./...

# php-test: the PHP tests (phpunit.xml.dist); installs phpunit when it is missing, like deps.
# It builds bin/aggregator first: translator tests (Aggregator\Testing) run it.
php-test: deps build
	@command -v phpunit >/dev/null 2>&1 || ./.ci/install phpunit
	phpunit

deploy-test:
	bash deploy/test/aggregatorctl_test.sh

# test: the packages with goroutines of their own run under the race
# detector; integration runs the real binary (built without it).
test: test-deps vet php-test deploy-test
	$(GO) test -count=1 -race -timeout 10m . ./pool/... ./server/ ./fetch/ ./cmd/... ./internal/...
	$(GO) test -count=1 -timeout 14m ./integration/

# bench: cmd/aggbench, every part (~10 minutes): the replay ceiling, the PHP
# side (the pool's Go benchmarks, bench/rrpeer), suppliers with real latency,
# 10,000 calls in flight, throughput, the fair queue, memory. Results: docs/performance.md.
# ONLY=ceiling,php picks parts.
bench: deps build
	$(GO) run ./cmd/aggbench $(if $(ONLY),-only $(ONLY))

# dist: a release tarball for `deploy/aggregatorctl deploy`.
dist: build
	mkdir -p dist
	tar -czf dist/aggregator-$(VERSION).tar.gz --transform 's,^,aggregator-$(VERSION)/,' \
		bin/aggregator worker.php composer.json src script deploy README.md docs
	@echo dist/aggregator-$(VERSION).tar.gz

clean:
	rm -rf bin logs dist
