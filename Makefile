# fleetgate build. `make deps` installs what it needs on Debian 12; `make`
# builds; `make test` runs every test; `make V=1` shows full commands.

BUILD      ?= build
PREFIX     ?= /usr/local
CC         ?= gcc
CLANG      ?= clang
BPFTOOL    ?= bpftool
V          ?= 0

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

DEB_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libmnl-dev \
	libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev libpcre2-dev pkg-config libclang-rt-14-dev \
	iproute2 ethtool ipvsadm netsniff-ng python3 procps psmisc openssl help2man nftables iputils-ping curl nginx haproxy wrk prometheus \
	bird2 python3-websockets

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	   -Wno-missing-field-initializers -D_GNU_SOURCE \
	   -Iinclude -Iagent -I$(BUILD)
LDLIBS  += -lbpf -lelf -lz -lmnl -ljansson -lyaml -lcurl -lssl -lcrypto -lpcre2-8 -lm -lpthread

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Imaps \
	-Iinclude -Ibpf -I$(BUILD)

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
BPF_SKELS  := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
BPF_HDRS   := $(wildcard bpf/lib/*.h) $(wildcard include/*.h) $(wildcard maps/*.h)

AGENT_MAINS := agent/fleetgate-agent.c agent/fleetgatectl.c
LIB_SRCS   := $(filter-out $(AGENT_MAINS),$(wildcard agent/*.c))
LIB_OBJS   := $(patsubst agent/%.c,$(BUILD)/agent/%.o,$(LIB_SRCS))
AGENT_HDRS := $(wildcard agent/*.h) $(wildcard include/*.h)
TEST_SRCS  := $(wildcard selftests/*.c)
BENCH_SRCS := $(wildcard selftests/bench/*.c)
BENCH_BINS := $(patsubst selftests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
TEST_OBJS  := $(patsubst selftests/%.c,$(BUILD)/selftests/%.o,$(TEST_SRCS))

# libFuzzer targets (clang, ASan, UBSan), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst selftests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard selftests/fuzz/*.c))
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iinclude -Iagent -I$(BUILD)
FUZZ_LIB_SRCS := agent/http.c agent/manifest.c agent/routes.c agent/route_opts.c agent/fg_regex.c \
	agent/log.c agent/tls_config.c agent/tls.c agent/compact.c

BINS := $(BUILD)/fleetgate-agent $(BUILD)/fleetgatectl $(BUILD)/test_progs $(BENCH_BINS)

.PHONY: all deps test bench clean install demo fuzz man
# Keep the BPF object and skeleton: they are inputs of several targets.
.SECONDARY:
VERSION    ?= 0.1.0
all: $(BINS)

# The bench peers (nginx, haproxy) are packages with services: they must
# not start (and take port 80) while installed, so a policy-rc.d denies
# service starts for the duration of the install when none is in place.
deps:
	apt-get update
	@if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d; \
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PACKAGES); \
	else \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PACKAGES); \
	fi
	@# Debian's kubectl (kubernetes-client); unpacked under $(BUILD) where
	@# another package owns /usr/bin/kubectl (see the script).
	selftests/kube/install-kubectl.sh $(BUILD)

$(BUILD)/vmlinux.h:
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(BUILD)
	$(Q)if [ -r /sys/kernel/btf/vmlinux ]; then \
		$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@; \
	else cp include/vmlinux/vmlinux.h $@; fi

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(BUILD)/agent/%.o: agent/%.c $(AGENT_HDRS) $(BPF_SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libfleetgate.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/fleetgate-agent: $(BUILD)/agent/fleetgate-agent.o $(BUILD)/libfleetgate.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/fleetgatectl: $(BUILD)/agent/fleetgatectl.o $(BUILD)/libfleetgate.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/selftests/%.o: selftests/%.c selftests/*.h $(AGENT_HDRS) $(BPF_SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Iselftests -c $< -o $@

$(BUILD)/test_progs: $(TEST_OBJS) $(BUILD)/libfleetgate.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/%: selftests/bench/%.c $(BUILD)/libfleetgate.a $(BUILD)/selftests/pktbuild.o selftests/*.h $(AGENT_HDRS)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Iselftests $< $(BUILD)/selftests/pktbuild.o $(BUILD)/libfleetgate.a $(LDLIBS) -o $@

test: all $(FUZZ_TARGETS)
	$(BUILD)/test_progs $(TESTARGS)

# The seed's five examples, live (README's first run). ARGS=--keep leaves it
# running; ARGS=--teardown removes what --keep left.
demo: all
	demo/run.sh $(ARGS)

bench: all $(BENCH_BINS)
	BUILD=$(BUILD) selftests/bench.sh
	BUILD=$(BUILD) selftests/bench_l7.sh
	BUILD=$(BUILD) selftests/bench_tls.sh
	BUILD=$(BUILD) selftests/bench_cp.sh

$(BUILD)/fuzz/%: selftests/fuzz/%.c $(FUZZ_LIB_SRCS) $(AGENT_HDRS)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(FUZZ_LIB_SRCS) -ljansson -lyaml -lbpf -lpcre2-8 -lssl -lcrypto -o $@

fuzz: $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); mkdir -p $(BUILD)/fuzz/corpus-$$name; \
		echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
			-artifact_prefix=$(BUILD)/fuzz/$$name- \
			$(BUILD)/fuzz/corpus-$$name selftests/fuzz/seeds-$$name \
			>$(BUILD)/fuzz/$$name.log 2>&1 || { tail -50 $(BUILD)/fuzz/$$name.log; exit 1; }; \
		tail -1 $(BUILD)/fuzz/$$name.log; \
	done

clean:
	rm -rf $(BUILD)

# Man pages are generated from the programs' own --help text, so the two
# never disagree.
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/fleetgate
SYSTEMDDIR  ?= $(PREFIX)/lib/systemd/system

$(BUILD)/man/fleetgate-agent.8: $(BUILD)/fleetgate-agent
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)help2man --no-info --version-string=$(VERSION) --section=8 \
		--name="fleetgate's agent: XDP data plane, control plane, HTTP proxy" \
		--output=$@ $<

$(BUILD)/man/fleetgatectl.8: $(BUILD)/fleetgatectl
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)help2man --no-info --no-discard-stderr --version-string=$(VERSION) --section=8 \
		--name="inspect a running fleetgate gateway" --output=$@ $<

man: $(BUILD)/man/fleetgate-agent.8 $(BUILD)/man/fleetgatectl.8

install: all man
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(BUILD)/fleetgate-agent $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(BUILD)/fleetgatectl $(DESTDIR)$(PREFIX)/sbin/
	install -m 0644 $(BUILD)/man/fleetgate-agent.8 $(BUILD)/man/fleetgatectl.8 \
		$(DESTDIR)$(MANDIR)/man8/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
		dist/fleetgate-agent.service.in > $(DESTDIR)$(SYSTEMDDIR)/fleetgate-agent.service
	test -e $(DESTDIR)/etc/default/fleetgate || \
		install -D -m 0644 dist/fleetgate.default $(DESTDIR)/etc/default/fleetgate

# ---- vm-test: the test suite in qemu VMs on other kernels ------------------
# `make deps-vm` installs qemu and busybox-static and fetches Debian's 6.1 LTS
# kernel into $(BUILD)/vm/ (apt-get download, not installed on the host);
# `make vm-test` runs $(BUILD)/test_progs per kernel (vm-test/README.md).
# VMTEST_ARGS, VMTEST_KERNELS, VMTEST_TIMEOUT, ... come from the environment
# or the command line: vm-test/vmtest.sh documents them.
VMTEST_DEB_PACKAGES := qemu-system-x86 busybox-static

.PHONY: deps-vm vm-test
deps-vm:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(VMTEST_DEB_PACKAGES)
	vm-test/fetch-kernel.sh $(BUILD)/vm

vm-test: all $(FUZZ_TARGETS)
	BUILD=$(BUILD) vm-test/vmtest.sh
