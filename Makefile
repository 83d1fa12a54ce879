# grooved — the two commands of the README:
#   make run   install missing packages, build, serve on 127.0.0.1:8787 (data in ./data)
#   make test  install missing packages, build with ASan+UBSan, run every test
.PHONY: all deps build build-test run test bench clean format

JOBS ?= $(shell nproc)

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

build-test: deps
	@cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DGD_SANITIZE=ON >/dev/null
	@cmake --build build-test -j $(JOBS)

run: build
	./build/grooved --host 127.0.0.1 --port 8787 --data-dir ./data

test: build-test
	cd build-test && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2

clean:
	rm -rf build build-test

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c
