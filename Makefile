# ferry: build, test and install.
#
#   make deps       install missing Debian packages (scripts/install-deps)
#   make build      build the release binary .build/release/ferry
#   make test       build and run the test suite, with zfs-fuse running, then
#                   the system test
#   make deb        build .build/deb/ferry_VERSION_amd64.deb and check it with lintian
#   make system-test  boot a Debian 12 guest under qemu, install the .deb and
#                   plug USB sticks and a backup drive into it (Tests/system)
#   make demo       run `ferry demo`, with zfs-fuse running
#   make check-units  verify systemd/ferry@.service with systemd-analyze
#   make install    install binary, udev rule, unit and config example
#   make clean      remove build products (keeps fetched package checkouts)
#
# install honours PREFIX (default /usr) and DESTDIR. It installs FERRY_BIN,
# by default the release build, and never builds: build as a user, install
# as root.

PREFIX ?= /usr
DESTDIR ?=
SWIFT ?= swift
FERRY_BIN ?= .build/release/ferry
VERSION := $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB := .build/deb/ferry_$(VERSION)_amd64.deb

# The Swift toolchain is not a Debian package; it lives in /opt/swift here.
ifeq ($(shell command -v $(SWIFT) 2>/dev/null),)
export PATH := /opt/swift/usr/bin:$(PATH)
endif

SHELL := /bin/bash

.PHONY: all deps build test demo check-units install clean man deb system-test

all: build

deps:
	scripts/install-deps

# ferry runs once per plugged-in medium: a static Swift runtime spares it
# loading the Swift libraries each time.
build: deps
	$(SWIFT) build -c release --product ferry --static-swift-stdlib

# Tests are built first, without zfs-fuse; only the run needs the daemon.
# with-zfs-fuse exits with the status of `swift test`. The integration
# suites share one machine's loop devices, udev database and zfs-fuse, so
# they run one at a time. Formatting is checked first: it takes a second.
# The release binary is built before the tests (the package needs it
# anyway): the hostile-journal test measures its memory, the binary that ships.
test: deps
	$(SWIFT) format lint --strict -r Sources Tests
	$(MAKE) build
	$(SWIFT) build --build-tests
	FERRY_RELEASE_BINARY=$(CURDIR)/.build/release/ferry scripts/with-zfs-fuse $(SWIFT) test --skip-build --no-parallel
	$(MAKE) system-test

# ferry(8), from the command definitions: swift-argument-parser's
# generate-manual plugin. It builds every product first; the debug build,
# which the tests share, serves as well as any, and leaves the release
# directory to `make build`.
man: deps
	$(SWIFT) package plugin generate-manual --configuration debug --section 8 --authors "the ferry authors"
	install -D -m 0644 .build/plugins/GenerateManual/outputs/ferry/ferry.8 .build/deb-extra/ferry.8

# debian/rules binary, not dpkg-buildpackage: that one writes into the
# parent directory, which is not this tree's. lintian must say nothing.
deb: deps
	debian/rules clean
	debian/rules binary
	lintian --fail-on error,warning --tag-display-limit 0 $(DEB)
	@echo "deb: $(DEB) is lintian-clean"

# The guest image is cached in /var/cache/ferry-system-test, by date.
system-test: deb
	python3 Tests/system/system-test --deb $(DEB)

demo: build
	scripts/with-zfs-fuse .build/release/ferry demo

# systemd-analyze verify prints problems but exits 0 on some (unknown keys),
# so any output counts as failure. It also insists that ExecStart's binary
# exists, so a copy with /bin/true in its place is verified, as an instance.
check-units:
	@set -euo pipefail; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	sed 's|^ExecStart=/usr/bin/ferry |ExecStart=/bin/true |' systemd/ferry@.service > "$$tmp/ferry@.service"; \
	grep -q '^ExecStart=/bin/true handle /dev/%I$$' "$$tmp/ferry@.service"; \
	sed 's|^ExecStart=/usr/bin/ferry |ExecStart=/bin/true |' systemd/ferry-toss.service > "$$tmp/ferry-toss.service"; \
	out=$$(systemd-analyze verify "$$tmp/ferry@sdz1.service" "$$tmp/ferry-toss.service" 2>&1) || true; \
	if [ -n "$$out" ]; then echo "$$out" >&2; echo "check-units: systemd-analyze verify complained" >&2; exit 1; fi; \
	echo "check-units: systemd/ferry@.service and ferry-toss.service verify cleanly"

install:
	@test -x "$(FERRY_BIN)" || { echo "install: $(FERRY_BIN) is missing; run 'make build' first" >&2; exit 1; }
	install -D -m 0755 "$(FERRY_BIN)" "$(DESTDIR)$(PREFIX)/bin/ferry"
	install -D -m 0644 udev/90-ferry.rules "$(DESTDIR)/etc/udev/rules.d/90-ferry.rules"
	install -d -m 0755 "$(DESTDIR)/etc/systemd/system"
	for unit in ferry@.service ferry-toss.service; do \
	  sed 's|^ExecStart=/usr/bin/ferry |ExecStart=$(PREFIX)/bin/ferry |' "systemd/$$unit" > "$(DESTDIR)/etc/systemd/system/$$unit.tmp" && \
	  chmod 0644 "$(DESTDIR)/etc/systemd/system/$$unit.tmp" && \
	  mv -f "$(DESTDIR)/etc/systemd/system/$$unit.tmp" "$(DESTDIR)/etc/systemd/system/$$unit" || exit 1; \
	done
	install -D -m 0644 config/ferry.toml.example "$(DESTDIR)/etc/ferry/ferry.toml.example"
	@test -e "$(DESTDIR)/etc/ferry/ferry.toml" || echo "install: no /etc/ferry/ferry.toml yet; start from /etc/ferry/ferry.toml.example"
ifeq ($(DESTDIR),)
	@udevadm control --reload 2>/dev/null && echo "install: udev rules reloaded" \
	  || echo "install: udevd is not running; the rule takes effect when it starts"
	@if [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload && echo "install: systemd reloaded" \
	    || echo "install: systemctl daemon-reload failed; run it by hand"; \
	else \
	  echo "install: systemd is not running; skipped systemctl daemon-reload"; \
	fi
endif

# `swift package clean` keeps .build/checkouts, the fetched dependencies,
# so an offline machine can build again.
clean:
	$(SWIFT) package clean
