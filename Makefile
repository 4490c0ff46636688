# Thin wrappers around scripts/ (the README's commands call the scripts directly, so a fresh
# machine needs no make).
.PHONY: deps build test demo bench
deps: ; scripts/install-deps
build: ; scripts/build
test: ; scripts/test
demo: ; scripts/demo
bench: build ; cd build && ctest -L bench --output-on-failure
