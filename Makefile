# make run   - install what is missing, build, serve the demo on 127.0.0.1:8000
# make test  - install what is missing, run every test (Go, PHP, integration)
# make build - bin/aggregator
# make bench - benchmarks (see README; ONLY=ceiling,php,... for some)

GO       ?= go
BIN      := bin/aggregator
APT      := DEBIAN_FRONTEND=noninteractive apt-get
# Packages the tests need: PHP to run, phpunit for the PHP tests, nginx and
# chromium for the deploy and page tests, composer to validate composer.json.
TEST_PKGS := php-cli phpunit nginx chromium composer curl

.PHONY: build run test deps test-deps bench vet php-test deploy-test dist clean

build:
	$(GO) build -o $(BIN) ./cmd/aggregator

# deps installs php-cli when it is missing (Debian/Ubuntu; root or sudo).
deps:
	@command -v php >/dev/null 2>&1 || ./.ci/install php-cli

test-deps:
	@./.ci/install $(TEST_PKGS)

run: deps build
	$(BIN)

vet:
	$(GO) vet ./...

# php-test: the PHP tests (phpunit.xml.dist); installs phpunit when it is missing, like deps.
php-test: deps
	@command -v phpunit >/dev/null 2>&1 || ./.ci/install phpunit
	phpunit

deploy-test:
	bash deploy/test/aggregatorctl_test.sh

test: test-deps vet php-test deploy-test
	$(GO) test -count=1 -timeout 14m ./...

# bench: cmd/aggbench, every part (~8 minutes): the replay ceiling, the PHP
# side (the pool's Go benchmarks, bench/rrpeer), suppliers with real latency,
# 10,000 calls in flight, throughput, the fair queue, memory. Results: README.
# ONLY=ceiling,php picks parts.
bench: deps build
	$(GO) run ./cmd/aggbench $(if $(ONLY),-only $(ONLY))

# dist: a release tarball for `deploy/aggregatorctl deploy`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
dist: build
	mkdir -p dist
	tar -czf dist/aggregator-$(VERSION).tar.gz --transform 's,^,aggregator-$(VERSION)/,' \
		bin/aggregator worker.php composer.json src script deploy README.md
	@echo dist/aggregator-$(VERSION).tar.gz

clean:
	rm -rf bin logs dist
