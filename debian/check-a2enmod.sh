#!/bin/sh
# Checks that Debian's a2enmod/a2dismod handle debian/mpm_perchild.load
# correctly, in a scratch copy of /etc/apache2.  Never writes to
# /etc/apache2, /usr/lib/apache2/modules or /var/lib/apache2.
#
# Usage: debian/check-a2enmod.sh [path/to/mod_mpm_perchild.so]
#
# Without a built module (default: .libs/mod_mpm_perchild.so next to this
# script's parent directory) only the a2enmod/a2dismod checks run; with it,
# apache2ctl configtest and the cgi/cgid checks run as well.
# Exits non-zero if any check fails.  Set KEEP_SCRATCH=1 to keep the
# scratch directory.
#
# Licensed under the Apache License, Version 2.0.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
so=${1:-$top/.libs/mod_mpm_perchild.so}
pass=0
fail=0

ok()  { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
skip() { echo "skip - $*"; }

# check DESCRIPTION COMMAND...: the command must succeed
check() {
    d=$1; shift
    if "$@" >"$S/out" 2>&1; then ok "$d"; else bad "$d"; sed 's/^/    /' "$S/out"; fi
}
# refuse DESCRIPTION COMMAND...: the command must fail
refuse() {
    d=$1; shift
    if "$@" >"$S/out" 2>&1; then bad "$d"; sed 's/^/    /' "$S/out"; else ok "$d"; fi
}

# Enabled MPM .load links, sorted, on one line.
mpms() {
    (cd "$APACHE_CONFDIR/mods-enabled" && ls mpm_*.load 2>/dev/null) \
        | sed 's/\.load$//' | sort | tr '\n' ' ' | sed 's/ $//'
}
mpms_are() { [ "$(mpms)" = "$1" ]; }
link_is() { [ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]; }

SCRATCH=$(mktemp -d /tmp/perchild-a2enmod.XXXXXX) || exit 1
S=$SCRATCH
if [ "${KEEP_SCRATCH:-0}" = 1 ]; then
    echo "scratch: $S"
else
    trap 'rm -rf "$SCRATCH"' EXIT
fi

# --- scratch copy of /etc/apache2 ------------------------------------------
cp -a /etc/apache2 "$S/apache2"
mkdir -p "$S/run" "$S/lock" "$S/log" "$S/state" "$S/modules"
# Keep apache2ctl's run/lock/log directories and a2enmod's state markers
# inside the scratch directory.
cat >>"$S/apache2/envvars" <<EOF
export APACHE_RUN_DIR=$S/run
export APACHE_LOCK_DIR=$S/lock
export APACHE_LOG_DIR=$S/log
export APACHE_PID_FILE=$S/run/apache2.pid
EOF
export APACHE_CONFDIR="$S/apache2"
export APACHE_STATE_DIRECTORY="$S/state"
unset APACHE_ENVVARS APACHE_MODS_AVAILABLE APACHE_MODS_ENABLED
case "$APACHE_CONFDIR" in /etc/*) echo "refusing to run on $APACHE_CONFDIR"; exit 1;; esac

# Install with the Makefile's own install target, into the scratch dirs.
have_so=0
if [ -f "$top/.libs/mod_mpm_perchild.so" ] && [ "$so" = "$top/.libs/mod_mpm_perchild.so" ]; then
    check "make install into a scratch APACHE_CONFDIR" \
        make -s -C "$top" install MODDIR="$S/modules" \
            APACHE_CONFDIR="$APACHE_CONFDIR"
    [ -f "$S/modules/mod_mpm_perchild.so" ] && have_so=1
else
    # A module built elsewhere: install its files the way 'make install'
    # does.
    sed "s|/usr/lib/apache2/modules/|$S/modules/|" \
        "$top/debian/mpm_perchild.load" \
        >"$APACHE_CONFDIR/mods-available/mpm_perchild.load"
    cp "$top/debian/mpm_perchild.conf" "$APACHE_CONFDIR/mods-available/"
    if [ -f "$so" ]; then
        cp "$so" "$S/modules/mod_mpm_perchild.so" && have_so=1
    fi
fi

# Start from Debian's default: mpm_event only, neither cgi nor cgid.
en=$APACHE_CONFDIR/mods-enabled
rm -f "$en"/mpm_*.load "$en"/mpm_*.conf "$en"/cgi.load "$en"/cgid.load "$en"/cgid.conf
a2enmod -q mpm_event >/dev/null

# --- the .load file ---------------------------------------------------------
check "mpm_perchild.load declares its conflicts" \
    grep -qx '# Conflicts: mpm_event mpm_prefork mpm_worker' "$top/debian/mpm_perchild.load"

# --- a2enmod / a2dismod -----------------------------------------------------
refuse "a2enmod mpm_perchild refused while mpm_event is enabled" a2enmod mpm_perchild
if grep -q "Module mpm_event is enabled - cannot proceed due to conflicts" "$S/out"; then
    ok "a2enmod names mpm_event as the conflict"
else
    bad "a2enmod names mpm_event as the conflict"; sed 's/^/    /' "$S/out"
fi
check "nothing was enabled by the refused a2enmod" mpms_are "mpm_event"

check "a2dismod mpm_event && a2enmod mpm_perchild" \
    sh -c 'a2dismod mpm_event && a2enmod mpm_perchild'
check "only mpm_perchild is enabled" mpms_are "mpm_perchild"
check "mods-enabled/mpm_perchild.load -> ../mods-available/mpm_perchild.load" \
    link_is "$en/mpm_perchild.load" ../mods-available/mpm_perchild.load
check "mods-enabled/mpm_perchild.conf -> ../mods-available/mpm_perchild.conf" \
    link_is "$en/mpm_perchild.conf" ../mods-available/mpm_perchild.conf
check "a2enmod mpm_perchild again: already enabled" a2enmod mpm_perchild

for m in mpm_worker mpm_prefork; do
    check "setup: a2dismod mpm_perchild && a2enmod $m" \
        sh -c "a2dismod -q mpm_perchild && a2enmod -q $m"
    refuse "a2enmod mpm_perchild refused while $m is enabled" a2enmod mpm_perchild
    check "back to mpm_perchild: a2dismod $m && a2enmod mpm_perchild" \
        sh -c "a2dismod -q $m && a2enmod -q mpm_perchild"
done

# README's loop: disables whichever MPM is on, whether mpm_itk is
# installed or not (a2dismod of a module that does not exist fails).
check "setup: mpm_event on again" \
    sh -c "a2dismod -q mpm_perchild && a2enmod -q mpm_event"
check "README's loop, then a2enmod mpm_perchild" sh -ec "
    for m in mpm_itk mpm_event mpm_worker mpm_prefork; do
        [ ! -e $en/\$m.load ] || a2dismod -q \$m; done
    a2enmod -q mpm_perchild"
check "only mpm_perchild is enabled after the loop" mpms_are "mpm_perchild"

# Debian's own .load files do not list mpm_perchild, so a2enmod of a stock
# MPM does not notice perchild (see docs/directives.md, "Enabling the
# module").  Record the behaviour, then undo it.
a2enmod -q mpm_worker >"$S/out" 2>&1
if mpms_are "mpm_perchild mpm_worker"; then
    echo "note - a2enmod mpm_worker succeeds while mpm_perchild is enabled (two MPMs)"
else
    echo "note - a2enmod mpm_worker with mpm_perchild enabled left: $(mpms)"
fi
rm -f "$en/mpm_worker.load" "$en/mpm_worker.conf"

# mpm-itk (a module on top of prefork) -> perchild, as in docs/mpm-itk-migration.md
if [ -f "$APACHE_CONFDIR/mods-available/mpm_itk.load" ]; then
    check "setup: mpm_prefork + mpm_itk" \
        sh -c 'a2dismod -q mpm_perchild && a2enmod -q mpm_prefork mpm_itk'
    refuse "a2enmod mpm_perchild refused while mpm_itk/mpm_prefork are enabled" a2enmod mpm_perchild
    check "a2dismod mpm_itk mpm_prefork && a2enmod mpm_perchild" \
        sh -c 'a2dismod mpm_itk mpm_prefork && a2enmod mpm_perchild'
    check "only mpm_perchild is enabled after leaving mpm-itk" mpms_are "mpm_perchild"
    # README's command, whichever stock MPM is on (here mpm-itk, as
    # installing libapache2-mpm-itk leaves it).
    check "setup: mpm_prefork + mpm_itk again" \
        sh -c 'a2dismod -q mpm_perchild && a2enmod -q mpm_prefork mpm_itk'
    check "README's loop with mpm-itk on, then a2enmod mpm_perchild" sh -ec "
        for m in mpm_itk mpm_event mpm_worker mpm_prefork; do
            [ ! -e $en/\$m.load ] || a2dismod -q \$m; done
        a2enmod -q mpm_perchild"
    check "only mpm_perchild is enabled after README's command" mpms_are "mpm_perchild"
else
    skip "mpm-itk switch: mpm_itk.load not installed"
fi

# --- with the built module --------------------------------------------------
if [ $have_so = 1 ]; then
    check "apache2ctl configtest with mpm_perchild" apache2ctl configtest
    check "apache2ctl -V reports the perchild MPM" \
        sh -c 'apache2ctl -V | grep -qi "Server MPM: *perchild"'
    # a2enmod cgi asks apache2ctl -V whether the MPM is threaded.
    a2enmod cgi >"$S/out" 2>&1
    if [ -L "$en/cgid.load" ] && [ ! -e "$en/cgi.load" ]; then
        ok "a2enmod cgi selects cgid under perchild (threaded)"
    else
        bad "a2enmod cgi selects cgid under perchild (threaded)"; sed 's/^/    /' "$S/out"
    fi
    [ -L "$en/cgid.load" ] || a2enmod -q cgid >/dev/null 2>&1
    refuse "apache2ctl configtest refuses mod_cgid" apache2ctl configtest
    check "a2dismod cgid; ln -s ../mods-available/cgi.load" \
        sh -c "a2dismod -q cgid && ln -s ../mods-available/cgi.load '$en/cgi.load'"
    check "apache2ctl configtest with mod_cgi" apache2ctl configtest
else
    skip "configtest and cgi/cgid checks: no module at $so"
fi

echo "check-a2enmod: $pass passed, $fail failed"
[ $fail = 0 ]
