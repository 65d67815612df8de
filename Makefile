# Build and install the perchild MPM as a loadable module with apxs.
# Licensed under the Apache License, Version 2.0.
#
#   make                     build .libs/mod_mpm_perchild.so
#   make install             install the module and debian/mpm_perchild.{load,conf}
#   make install APACHE_CONFDIR=/tmp/etc-apache2 MODDIR=/tmp/modules
#                            install into scratch directories (tests)
#   make clean
#
# Makefile.in is the template for building inside an httpd source tree;
# this file is only for the apxs build.

APXS           ?= apxs
SRCS           := $(wildcard *.c)
HDRS           := $(wildcard *.h)
SO             := .libs/mod_mpm_perchild.so

MODDIR         ?= $(shell $(APXS) -q LIBEXECDIR)
APACHE_CONFDIR ?= /etc/apache2
CONFDIR        ?= $(APACHE_CONFDIR)/mods-available

CFLAGS_APXS    := -Wc,-Wall -Wc,-Wextra -Wc,-Wno-unused-parameter

.PHONY: all install clean

all: $(SO)

$(SO): $(SRCS) $(HDRS)
	$(APXS) -c $(CFLAGS_APXS) -o mod_mpm_perchild.la $(SRCS)

# The .load file names /usr/lib/apache2/modules; point it at MODDIR so an
# install into scratch directories loads the scratch copy.
install: $(SO)
	install -d $(DESTDIR)$(MODDIR) $(DESTDIR)$(CONFDIR)
	install -m 644 $(SO) $(DESTDIR)$(MODDIR)/mod_mpm_perchild.so
	sed 's|/usr/lib/apache2/modules/|$(MODDIR)/|' debian/mpm_perchild.load \
		> $(DESTDIR)$(CONFDIR)/mpm_perchild.load
	install -m 644 debian/mpm_perchild.conf $(DESTDIR)$(CONFDIR)/mpm_perchild.conf

clean:
	rm -rf .libs *.la *.lo *.slo *.o
