# grooved — the two commands of the README:
#   make run   install missing packages, build, serve on 127.0.0.1:8787 (data in ./data)
#   make test  install missing packages, build with ASan+UBSan, run every test
#   make install [PREFIX=/usr/local] [DESTDIR=]   a Release build, installed
#   make uninstall [PREFIX=/usr/local] [DESTDIR=] removes what install installs
.PHONY: all deps deps-test build build-test build-tsan build-plain run test powerloss bench fuzz \
	clean format build-install install uninstall

JOBS ?= $(shell nproc)

all: build

deps:
	@./scripts/install-deps.sh run

deps-test:
	@./scripts/install-deps.sh test

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGD_BUILD_TESTS=OFF >/dev/null
	@cmake --build build -j $(JOBS)

build-test: deps-test
	@cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DGD_SANITIZE=ON >/dev/null
	@cmake --build build-test -j $(JOBS)

# install/uninstall: CMake's install rules (CMakeLists.txt) from a Release
# build without the tests, configured for PREFIX. INSTALL_BUILD lets a test
# install from a build directory of its own.
PREFIX ?= /usr/local
INSTALL_BUILD ?= build

build-install: deps
	@cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=Release -DGD_BUILD_TESTS=OFF \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(INSTALL_BUILD) -j $(JOBS)

install: build-install
	DESTDIR="$(DESTDIR)" cmake --install $(INSTALL_BUILD)

uninstall: build-install
	DESTDIR="$(DESTDIR)" scripts/uninstall.sh $(INSTALL_BUILD)

run: build
	./build/grooved --host 127.0.0.1 --port 8787 --data-dir ./data

build-tsan: deps-test
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DGD_TSAN=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target grooved

# The server without sanitizers, optimised as in production: it must build
# warning-free at -O2, and the tests that run grooved under valgrind use it.
build-plain: deps
	@cmake -S . -B build-plain -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGD_BUILD_TESTS=OFF >/dev/null
	@cmake --build build-plain -j $(JOBS) --target grooved

# Every test under ASan+UBSan, then the tests that drive the storage thread
# and the web root's worker thread hardest once more against the
# ThreadSanitizer build.
test: build-test build-tsan build-plain
	cd build-test && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2
	cd build-test && TSAN_OPTIONS=halt_on_error=1 \
	  GROOVED_BIN_OVERRIDE=$(CURDIR)/build-tsan/grooved ctest --output-on-failure -j 2 \
	  -R 'e2e_test_(collab|crash|storage_failure|hibernation|eviction|static|data_safety)$$' 

# Power cuts on lossyfs (tests/powerloss, docs/DURABILITY.md): CYCLES of them,
# every kind in turn; needs /dev/fuse (root). `make test` runs 24.
CYCLES ?= 100
powerloss: build-test
	GROOVED_BIN=$(CURDIR)/build-test/grooved LOSSYFS_BIN=$(CURDIR)/build-test/lossyfs \
	  PYTHONPATH=$(CURDIR)/tests/e2e:$(CURDIR)/tests/powerloss \
	  /usr/bin/python3 tests/powerloss/powerloss.py --cycles $(CYCLES) $(POWERLOSS_ARGS)

bench: build
	bench/run-all.sh 10

# Fuzz with libFuzzer (clang): the untrusted-input parsers (fuzz_messages:
# WebSocket messages, REST bodies, the op log readers, and the round trip of
# every accepted state through a checkpoint) and recovery over damaged data
# directories (fuzz_recovery). New interesting inputs land in
# tests/fuzz/corpus and tests/fuzz/corpus-recovery. FUZZ_SECONDS bounds each.
FUZZ_SECONDS ?= 60
FUZZ_CORE = src/faults.c src/log.c src/jsonw.c src/model.c src/op.c src/identity.c src/hash.c \
  src/idset.c src/oplog.c
fuzz:
	@./scripts/install-deps.sh test clang libclang-rt-14-dev
	@mkdir -p build-fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_messages.c \
	  $(FUZZ_CORE) $$(pkg-config --cflags --libs jansson) -lm -o build-fuzz/fuzz_messages
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_recovery.c \
	  src/store.c src/store_local.c src/store_pg.c src/kv.c src/kv_sqlite.c src/kv_redis.c \
	  src/dbcheck.c $(FUZZ_CORE) $$(pkg-config --cflags --libs jansson sqlite3 hiredis libpq) \
	  -lm -lpthread \
	  -o build-fuzz/fuzz_recovery
	build-fuzz/fuzz_messages -max_total_time=$(FUZZ_SECONDS) -max_len=4096 tests/fuzz/corpus
	build-fuzz/fuzz_recovery -max_total_time=$(FUZZ_SECONDS) -max_len=1024 \
	  tests/fuzz/corpus-recovery
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	  tests/fuzz/fuzz_net.c src/reqhead.c src/wsframe.c src/ratelimit.c src/jsonw.c \
	  $$(pkg-config --cflags --libs jansson) -lm -o build-fuzz/fuzz_net
	build-fuzz/fuzz_net -max_total_time=$(FUZZ_SECONDS) -max_len=4096 tests/fuzz/corpus-net

clean:
	rm -rf build build-test build-tsan build-plain build-fuzz

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c
