# tide's front door. CMake does the building; these targets are the
# commands the README promises.
#   make            build the library, tests, examples and benchmarks
#   make demo       build and run the three seed examples, with their times
#   make test       build and run the whole suite through CTest
#   make bench      run the benchmarks (PEERS=../shared/bench: beside the peers)
#   make install PREFIX=DIR
BUILD ?= build
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all configure demo test bench install clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

demo: all
	@for p in run gather as_completed; do \
	  echo "== examples/$$p"; \
	  s=$$(date +%s.%N); $(BUILD)/examples/$$p || exit 1; e=$$(date +%s.%N); \
	  awk -v s=$$s -v e=$$e 'BEGIN { printf "   (%.2f s)\n", e - s }'; \
	done

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: all
	bench/run.sh $(BUILD) $(PEERS)

install: configure
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
