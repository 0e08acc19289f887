# syscontainer: build, install, test.
#
#   make                 build release binaries
#   make install         install into $(DESTDIR)$(PREFIX) and systemd's directories
#   make check           the whole test suite (tests/run.sh)
#   make demo            the end-to-end example (demo.sh)

PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
PKG_CONFIG ?= pkg-config
SYSTEMD_GENERATOR_DIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemgeneratordir systemd 2>/dev/null || echo /usr/lib/systemd/system-generators)
SYSTEMD_UNIT_DIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null || echo /usr/lib/systemd/system)
TMPFILES_DIR ?= $(shell $(PKG_CONFIG) --variable=tmpfilesdir systemd 2>/dev/null || echo /usr/lib/tmpfiles.d)
CARGO ?= cargo
CARGO_FLAGS ?= --release --locked
TARGET_DIR ?= $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo target)
REL := $(TARGET_DIR)/release

export SYSCONTAINER_EXEC_HELPER := $(LIBEXECDIR)/syscontainer-exec
export SYSCONTAINER_CLI := $(BINDIR)/syscontainer

.PHONY: all build install check demo clean man

all: build

# The generator and the exec helper are built on their own so that cargo's
# feature unification does not link them with libostree and TLS.
build:
	$(CARGO) build $(CARGO_FLAGS) -p syscontainer-generator -p syscontainer-exec
	$(CARGO) build $(CARGO_FLAGS) -p syscontainer-cli

man: build
	mkdir -p $(TARGET_DIR)/man
	$(REL)/syscontainer generate-man $(TARGET_DIR)/man
	cp packaging/man/*.[0-9] $(TARGET_DIR)/man/

install: man
	install -D -m 0755 $(REL)/syscontainer $(DESTDIR)$(BINDIR)/syscontainer
	install -D -m 0755 $(REL)/syscontainer-exec $(DESTDIR)$(LIBEXECDIR)/syscontainer-exec
	install -D -m 0755 $(REL)/syscontainer-generator $(DESTDIR)$(SYSTEMD_GENERATOR_DIR)/syscontainer-generator
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 0644 units/*.target units/*.service units/*.timer units/*.path $(DESTDIR)$(SYSTEMD_UNIT_DIR)/
	# Enabled by default: a deleted record removes its container.
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)/paths.target.wants $(DESTDIR)$(SYSTEMD_UNIT_DIR)/multi-user.target.wants
	ln -sf ../syscontainer-reconcile.path $(DESTDIR)$(SYSTEMD_UNIT_DIR)/paths.target.wants/syscontainer-reconcile.path
	ln -sf ../syscontainer-reconcile.service $(DESTDIR)$(SYSTEMD_UNIT_DIR)/multi-user.target.wants/syscontainer-reconcile.service
	install -D -m 0644 units/syscontainer.conf $(DESTDIR)$(TMPFILES_DIR)/syscontainer.conf
	for f in $(TARGET_DIR)/man/*.[0-9]; do \
	  [ -e "$$f" ] || continue; s=$${f##*.}; \
	  install -D -m 0644 "$$f" $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$f); \
	done

check:
	tests/run.sh

demo:
	./demo.sh

clean:
	$(CARGO) clean
