# ptrs: build, demo, tests, benchmarks. Cargo stays the source of truth for
# the Rust build; this file only sequences it with the C side.

CARGO ?= cargo
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=

LIB := target/release/libptrs.so
STATICLIB := target/release/libptrs.a

.PHONY: all lib demo header check-header test unit-test c-tests programs \
        bench bench-callgrind clean

# The main job: build the library and run the bundled demo under it.
all: lib demo

# build.rs regenerates the header from src/abi/api.rs and fails the build
# if include/ptrs.h differs from it (run `make header` to update it).
lib:
	$(CARGO) build --release

header:
	PTRS_UPDATE_HEADER=1 $(CARGO) build --release

check-header: lib
	git diff --exit-code include/ptrs.h

demo: lib
	scripts/ptrs-run --stats

# Every test suite; the last line is the combined "N passed, N failed".
test: lib
	scripts/run-tests.sh

unit-test:
	$(CARGO) test --release --no-default-features

c-tests: lib
	bash c-tests/run.sh

programs: lib
	bash scripts/test-programs.sh

bench: lib
	bash scripts/bench.sh

bench-callgrind: lib
	bash scripts/bench-callgrind.sh

clean:
	$(CARGO) clean
	rm -rf build
