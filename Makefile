# ptrs: build, demo, tests, benchmarks. Cargo stays the source of truth for
# the Rust build; this file only sequences it with the C side.

CARGO ?= cargo
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=

LIB := target/release/libptrs.so
STATICLIB := target/release/libptrs.a

.PHONY: all lib demo header check-header test unit-test c-tests c-tests-build programs \
        bench bench-callgrind check-glibc fuzz memcheck clean install uninstall

# The main job: build the library and run the bundled demo under it.
all: lib demo

# build.rs regenerates the header from src/abi/api.rs and fails the build
# if include/ptrs.h differs from it (run `make header` to update it).
#
# The shared library is then built a second time as a cdylib alone (its own
# target directory): built together with the rlib, rustc must assume every
# `pub` item may be used from outside, and reaches the engine's statics and
# functions through the GOT (two more instructions on each malloc+free
# pair, measured with callgrind); alone, it reaches them directly. The
# result replaces target/release/libptrs.so by an atomic rename.
lib:
	$(CARGO) build --release
	CARGO_TARGET_DIR=target/cdylib $(CARGO) rustc --release --lib --crate-type cdylib
	cp target/cdylib/release/libptrs.so target/release/.libptrs.so.new
	mv -f target/release/.libptrs.so.new target/release/libptrs.so
	ln -sf libptrs.so target/release/libptrs.so.0

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

# Builds the C tests (both link modes) without running them.
c-tests-build: lib
	bash c-tests/run.sh --build-only

programs: lib
	bash scripts/test-programs.sh

bench: lib
	bash scripts/bench.sh

# glibc 2.36's own malloc tests, built against the system glibc and run
# with ptrs preloaded.
check-glibc: lib
	bash scripts/check-glibc.sh

# Randomized differential test (FUZZ_SECONDS, default 90).
fuzz: lib
	bash scripts/fuzz.sh

# The C tests under valgrind's memcheck (builds them first, runs them only
# under valgrind).
memcheck: c-tests-build
	bash scripts/memcheck.sh

bench-callgrind: lib
	bash scripts/bench-callgrind.sh

clean:
	$(CARGO) clean
	rm -rf build

# ---- install / uninstall -------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging-dir]
# Installs what `make lib` built (it does not build: run `make` first, as a
# user, then `sudo make install`):
#   $(PREFIX)/lib/libptrs.so.$(VERSION) (soname libptrs.so.0) and the links
#   libptrs.so.0 and libptrs.so, $(PREFIX)/lib/libptrs.a,
#   $(PREFIX)/include/ptrs.h, $(PREFIX)/lib/pkgconfig/ptrs.pc (from
#   ptrs.pc.in) and $(PREFIX)/bin/ptrs-run.
# `make uninstall` with the same PREFIX and DESTDIR removes exactly these.
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
INSTALL ?= install
INST_LIBDIR = $(DESTDIR)$(PREFIX)/lib
INST_INCDIR = $(DESTDIR)$(PREFIX)/include
INST_BINDIR = $(DESTDIR)$(PREFIX)/bin
INST_PCDIR = $(DESTDIR)$(PREFIX)/lib/pkgconfig

install:
	@for f in $(LIB) $(STATICLIB); do \
	  [ -f "$$f" ] || { echo "make install: $$f is missing: run 'make lib' first" >&2; exit 1; }; \
	done
	$(INSTALL) -D -m 755 $(LIB) $(INST_LIBDIR)/libptrs.so.$(VERSION)
	ln -sf libptrs.so.$(VERSION) $(INST_LIBDIR)/libptrs.so.$(SOMAJOR)
	ln -sf libptrs.so.$(SOMAJOR) $(INST_LIBDIR)/libptrs.so
	$(INSTALL) -D -m 644 $(STATICLIB) $(INST_LIBDIR)/libptrs.a
	$(INSTALL) -D -m 644 include/ptrs.h $(INST_INCDIR)/ptrs.h
	$(INSTALL) -d -m 755 $(INST_PCDIR)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  ptrs.pc.in > $(INST_PCDIR)/ptrs.pc
	chmod 644 $(INST_PCDIR)/ptrs.pc
	$(INSTALL) -D -m 755 scripts/ptrs-run $(INST_BINDIR)/ptrs-run

uninstall:
	rm -f $(INST_LIBDIR)/libptrs.so.$(VERSION) \
	  $(INST_LIBDIR)/libptrs.so.$(SOMAJOR) $(INST_LIBDIR)/libptrs.so \
	  $(INST_LIBDIR)/libptrs.a $(INST_INCDIR)/ptrs.h \
	  $(INST_PCDIR)/ptrs.pc $(INST_BINDIR)/ptrs-run
