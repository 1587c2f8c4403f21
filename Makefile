# tide's front door. CMake does the building; these targets are the
# commands the README promises.
#   make            build the library, tests, examples and benchmarks
#   make demo       build and run the three seed examples, with their times
#   make test       build and run the whole suite through CTest
#   make bench      run the benchmarks (PEERS=../shared/bench: beside the peers)
#   make install PREFIX=DIR   build what is installed, and install it
#   make clean
#
# CMAKE_FLAGS="-D..." configures $(BUILD) with exactly those flags. Given,
# and different from the flags the directory was configured with (kept
# in $(BUILD)/make-cmake-flags), the directory is configured afresh: its
# CMake cache goes, so nothing from earlier flags stays behind (objects
# are rebuilt only where their flags changed). Not given, the directory
# keeps what it has. CC is read when a directory is configured afresh.
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FLAGS_STAMP = $(BUILD)/make-cmake-flags

# $(call quote,TEXT): TEXT as one single-quoted shell word.
quote = '$(subst ','\'',$(1))'
CONFIGURE = cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	$(CMAKE_FLAGS) && printf '%s\n' $(call quote,$(CMAKE_FLAGS)) >$(FLAGS_STAMP)

.PHONY: all configure demo test bench install clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
ifeq ($(origin CMAKE_FLAGS),undefined)
	@test -f $(BUILD)/CMakeCache.txt || { $(CONFIGURE); }
else
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then \
	  $(CONFIGURE); \
	elif [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" != $(call quote,$(CMAKE_FLAGS)) ]; then \
	  echo "make: new CMAKE_FLAGS: configuring $(BUILD) afresh"; \
	  rm -rf $(BUILD)/CMakeCache.txt $(BUILD)/CMakeFiles/[0-9]*; \
	  $(CONFIGURE); \
	fi
endif

demo: all
	@for p in run gather as_completed; do \
	  echo "== examples/$$p"; \
	  s=$$(date +%s.%N); $(BUILD)/examples/$$p || exit 1; e=$$(date +%s.%N); \
	  awk -v s=$$s -v e=$$e 'BEGIN { printf "   (%.2f s)\n", e - s }'; \
	done

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# PEERS is the peers' directory (shared/bench), handed to run.sh as its
# second argument; run.sh's own list of peer names is PEER_NAMES.
bench: all
	bench/run.sh $(BUILD) $(PEERS)

# Only what is installed is built (the libraries and the man pages: the
# tide_lib target), not the tests, examples or benchmarks.
install: configure
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) --target tide_lib -j $(JOBS)
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
