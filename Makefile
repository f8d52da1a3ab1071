# Tidemark — one non-recursive GNU make.
#
#   make            build bin/tidemark (installs missing Debian -dev packages)
#   make run        build, then start a single-node cluster on localhost:9092, data in ./data
#   make test       unit + simulation + end-to-end tests (installs what they need)
#   make asan       unit and simulation suites under AddressSanitizer + UBSan
#   make fuzz       a short libFuzzer run of the request decoder
#   make bench      Tidemark beside Apache Kafka (QUICK=1: a few seconds, Tidemark only)
#   make codegen    regenerate protocol/ from ../shared/kafka-protocol (needs shared/)
#   make test-deploy  container image + three-node compose cluster checked with kcat (podman)
#
# Sources are found by wildcard per module, so adding a file needs no edit here.

.DEFAULT_GOAL := all

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
CFLAGS_WARN := -std=c11 -Wall -Wextra -Wshadow -Wundef -Werror -Wno-unused-parameter
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS = $(CFLAGS_WARN) $(CFLAGS) -D_GNU_SOURCE -I. -MMD -MP $(EXTRA_CFLAGS)

PKGS    := libevent libevent_openssl liburing openssl
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

COMMON_SRC   := $(wildcard common/*.c)
PROTOCOL_SRC := $(wildcard protocol/*.c)
STORAGE_SRC  := $(wildcard storage/*.c)
RAFT_SRC     := $(wildcard raft/*.c)
BROKER_SRC   := $(filter-out broker/main.c,$(wildcard broker/*.c))
LIB_SRC      := $(COMMON_SRC) $(PROTOCOL_SRC) $(STORAGE_SRC) $(RAFT_SRC) $(BROKER_SRC)
LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
SIM_SRC   := $(wildcard tests/sim/sim_*.c)
TEST_HELPER_SRC := $(wildcard tests/unit/helpers/*.c)
TEST_HELPER_OBJ := $(TEST_HELPER_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SIM_BIN   := $(SIM_SRC:tests/sim/%.c=$(BUILD)/tests/%)
# Named in an explicit rule so make does not treat the helper objects as
# intermediates (deleted after a build, then not rebuilt when missing).
$(TEST_HELPER_OBJ):

.PHONY: all run test unit sim e2e asan fuzz bench codegen deps test-deps clean purity test-deploy

all: deps bin/tidemark

# ---- dependencies (Debian) -------------------------------------------------
deps:
	@sh deploy/install-deps.sh build

test-deps: deps
	@sh deploy/install-deps.sh test

# ---- build -----------------------------------------------------------------
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libtidemark.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/tidemark: $(BUILD)/broker/main.o $(BUILD)/libtidemark.a
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

# The same broker linked inside $(BUILD): a build with other flags
# (bench/run.sh's -O3 one) has a binary of its own instead of sharing
# bin/tidemark, which the default build would relink behind its back.
$(BUILD)/tidemark: $(BUILD)/broker/main.o $(BUILD)/libtidemark.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtidemark.a $(TEST_HELPER_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(BUILD)/libtidemark.a $(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/sim_%: tests/sim/sim_%.c $(BUILD)/libtidemark.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtidemark.a $(CHECK_LIBS) $(LIBS)

# ---- run -------------------------------------------------------------------
run: all
	./bin/tidemark

# ---- tests -----------------------------------------------------------------
# The storage suites run twice: as the broker runs them (small writes
# performed by io_flush while the ring is idle), then with every operation
# through the kernel's ring (TIDEMARK_IO=uring).
STORAGE_UNIT_BIN := $(filter $(BUILD)/tests/test_storage%,$(UNIT_BIN))
unit: test-deps $(UNIT_BIN)
	@sh tests/run-suite.sh $(UNIT_BIN)
	@echo "storage suites, every operation through io_uring (TIDEMARK_IO=uring):"
	@TIDEMARK_IO=uring sh tests/run-suite.sh $(filter-out %_io_sync %_crc32c,$(STORAGE_UNIT_BIN))

sim: test-deps $(SIM_BIN)
	@sh tests/run-suite.sh $(SIM_BIN)

e2e: test-deps bin/tidemark
	@sh tests/e2e/run.sh

asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	  EXTRA_CFLAGS="-DTM_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" unit sim

purity:
	@sh tests/check-purity.sh

# test-deps first: the unit and simulation suites link Check, fuzz needs clang.
test: test-deps all purity unit sim asan e2e fuzz bench-quick

fuzz: test-deps
	@sh tests/fuzz/run.sh

test-deploy:
	@sh tests/deploy/run.sh

bench: all
	@sh bench/run.sh

bench-quick: all
	@QUICK=1 sh bench/run.sh

codegen:
	python3 protocol/gen/kafka_gen.py ../shared/kafka-protocol protocol

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(BUILD)/broker/main.d
