#!/bin/bash
# Runs httpd's own pytest suites (test/modules/core and test/modules/http1
# of the httpd 2.4.68 source tree, with its test/pyhttpd framework)
# against the installed Debian /usr/sbin/apache2, once with MPM=worker
# and once with MPM=perchild (and, with --dispatch, once more with
# perchild and a dispatch pool that accepts every listener), then prints
# a comparison.  Exits non-zero if a perchild run has a failing test that
# the worker run does not have.
#
#   sudo test/httpd-suite/run-httpd-suite.sh [--dispatch] [--no-build]
#        [--no-install] [--worker-cgid] [--user www-data]
#        [--suites "core http1"] [--mpms "worker perchild"]
#        [-- extra pytest args]
#
# Nothing is written to /etc/apache2 or /usr/lib/apache2/modules: the
# source tree, a scratch libexec dir (symlinks to Debian's modules plus a
# copy of the freshly built mod_mpm_perchild.so), wrappers for apxs and
# apachectl, the generated server roots and the results all live under
# $PCSUITE_WORK (default /tmp/perchild-pyhttpd).  Servers listen on
# 127.0.0.1, ports PCSUITE_PORT_BASE+1..+4 and +100 (default 42000).
# A dispatch run's https failures are expected (TLS is not passed on) and
# do not count.  See README.md beside this file.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

WORK=${PCSUITE_WORK:-/tmp/perchild-pyhttpd}
TARBALL=${PCSUITE_TARBALL:-/var/cache/perchild-httpd-src/apache2_2.4.68.orig.tar.gz}
PORT_BASE=${PCSUITE_PORT_BASE:-42000}
SUITES="core http1"
MPMS="worker perchild"
DISPATCH=no
BUILD=yes
INSTALL=yes
WORKER_CGID=no
RUN_USER=${PCSUITE_USER:-www-data}
SUITE_TIMEOUT=${PCSUITE_TIMEOUT:-600}
PYTEST_EXTRA=()

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dispatch) DISPATCH=yes ;;
        --no-build) BUILD=no ;;
        --no-install) INSTALL=no ;;
        --worker-cgid) WORKER_CGID=yes ;;
        --user) RUN_USER=$2; shift ;;
        --suites) SUITES=$2; shift ;;
        --mpms) MPMS=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        *) echo "run-httpd-suite.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [ "$(id -u)" != 0 ]; then
    echo "run-httpd-suite.sh: must run as root (perchild switches users)" >&2
    exit 2
fi

log() { echo "== $*"; }

# --- 1. what the suites need (Debian packages only) ----------------------
if [ "$INSTALL" = yes ]; then
    need=()
    for pkg in apache2 apache2-dev curl python3-pytest python3-cryptography \
               python3-openssl python3-multipart nghttp2-client build-essential; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

# The CGI scripts are '#!/usr/bin/env python3' and import 'multipart':
# make sure they, and pytest, get Debian's python3.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3

# --- 2. the module --------------------------------------------------------
so="$top/.libs/mod_mpm_perchild.so"
if [ "$BUILD" = yes ]; then
    log "building perchild: make -C $top"
    mkdir -p "$WORK"
    if ! make -C "$top" > "$WORK/build.log" 2>&1; then
        tail -n 30 "$WORK/build.log" >&2
        echo "run-httpd-suite.sh: build failed (log: $WORK/build.log)" >&2
        exit 1
    fi
fi
case " $MPMS " in
    *" perchild "*) [ -f "$so" ] || { echo "no $so (build first)" >&2; exit 1; } ;;
esac

# --- 3. httpd's test tree -------------------------------------------------
mkdir -p "$WORK"
SRC="$WORK/httpd-2.4.68"
if [ ! -f "$SRC/test/pyhttpd/env.py" ]; then
    log "unpacking $TARBALL into $WORK"
    tar --no-same-owner -xzf "$TARBALL" -C "$WORK"
fi
# pyhttpd runs 'make' in test/clients to build h2ws (http2 only); without
# configure there is no Makefile there, so give it an empty one.
if [ ! -f "$SRC/test/clients/Makefile" ]; then
    printf 'all:\n\t@true\n' > "$SRC/test/clients/Makefile"
fi

# --- 4. scratch libexec dir, apxs and apachectl wrappers ------------------
LIBEXEC="$WORK/modules"
rm -rf "$LIBEXEC"
mkdir -p "$LIBEXEC"
for m in /usr/lib/apache2/modules/*.so; do
    ln -s "$m" "$LIBEXEC/$(basename "$m")"
done
if [ -f "$so" ]; then
    # a copy, so that a rebuild during the run cannot change a loaded .so
    cp "$so" "$LIBEXEC/mod_mpm_perchild.so"
fi
dso_modules=$(cd "$LIBEXEC" && ls mod_*.so | sed 's/^mod_//; s/\.so$//' | tr '\n' ' ')

mkdir -p "$WORK/bin"
# pyhttpd takes its libexec dir from 'apxs -q LIBEXECDIR' (not from
# config.ini): answer that one query with the scratch dir.
cat > "$WORK/bin/apxs" <<EOF
#!/bin/sh
if [ "\$#" -eq 2 ] && [ "\$1" = "-q" ] && [ "\$2" = "LIBEXECDIR" ]; then
    echo "$LIBEXEC"
    exit 0
fi
exec /usr/bin/apxs "\$@"
EOF
# pyhttpd calls 'apachectl -d SERVER_DIR -f CONF -k start|stop|graceful'.
# Debian's apache2ctl does not take those, the binary does.  Its compiled
# default PidFile is /run/apache2.pid (the system service's), so always
# set one inside the server root.
# The suite expects to run as an unprivileged user whose uid the
# children keep.  As root, with no User directive, Debian's default User
# is '#-1': worker's children then silently stay root (mod_unixd's drop
# hook returns -1, which the RUN_ALL hook takes for DECLINED) while
# perchild's refuse to start.  So both MPMs get the same User/Group, and
# the files the CGI scripts must execute or write are opened up for it.
# PCSUITE_EXTRA_CONF is included after the config (the dispatch pool
# directives of the --dispatch run).
cat > "$WORK/bin/apachectl" <<'EOF'
#!/bin/sh
d=""; prev=""
for a in "$@"; do
    [ "$prev" = "-d" ] && d="$a"
    prev="$a"
done
if [ -n "$d" ] && [ -d "$d/htdocs" ]; then
    [ -d "$d/htdocs/cgi/files" ] && chmod 1777 "$d/htdocs/cgi/files"
    # pyhttpd makes the scripts executable for their owner (root) only
    find "$d/htdocs" -name '*.py' -exec chmod a+rx {} +
fi
# The suites' 'Listen PORT' binds every address: keep it on loopback.
if [ -n "$d" ] && [ -d "$d/conf" ]; then
    sed -i -E 's/^([[:space:]]*Listen[[:space:]]+)([0-9]+)([[:space:]]|$)/\1127.0.0.1:\2\3/' \
        "$d"/conf/*.conf
fi
# perchild refuses mod_cgid (PC0004: its daemon would run every CGI as
# User); the suites ask for cgid, so load mod_cgi in its place.
if [ "${PCSUITE_CGI:-cgi}" = cgi ] && [ -n "$d" ] && [ -f "$d/conf/modules.conf" ]; then
    sed -i 's|^LoadModule cgid_module *"\(.*\)/mod_cgid\.so"|LoadModule cgi_module   "\1/mod_cgi.so"|' \
        "$d/conf/modules.conf"
fi
set -- "$@" -c "PidFile logs/httpd.pid" \
    -c "User $PCSUITE_RUN_USER" -c "Group $PCSUITE_RUN_GROUP"
if [ -n "${PCSUITE_EXTRA_CONF:-}" ]; then
    set -- "$@" -c "Include $PCSUITE_EXTRA_CONF"
fi
exec /usr/sbin/apache2 "$@"
EOF
# pyhttpd's curl calls only have --connect-timeout: a server that
# accepts and never answers would hang the whole suite.
cat > "$WORK/bin/curl" <<'EOF'
#!/bin/sh
exec /usr/bin/curl --max-time "${PCSUITE_CURL_MAX_TIME:-30}" "$@"
EOF
chmod 755 "$WORK/bin/apxs" "$WORK/bin/apachectl" "$WORK/bin/curl"

RUN_GROUP=$(id -gn "$RUN_USER") || { echo "no user $RUN_USER" >&2; exit 2; }
export PCSUITE_RUN_USER=$RUN_USER PCSUITE_RUN_GROUP=$RUN_GROUP

DISPATCH_CONF="$WORK/dispatch.conf"
if [ "$DISPATCH" = yes ]; then
    if ! getent passwd pcdisp >/dev/null; then
        log "creating system user pcdisp"
        useradd --system --user-group --no-create-home \
            --shell /usr/sbin/nologin pcdisp
    fi
    cat > "$DISPATCH_CONF" <<'EOF'
<IfModule mpm_perchild_module>
    DispatchUserID pcdisp pcdisp
    PerchildDispatchAll On
</IfModule>
EOF
fi

write_config_ini() {   # $1: gen dir
    cat > "$SRC/test/pyhttpd/config.ini" <<EOF
# written by $0
[global]
curl_bin = $WORK/bin/curl
nghttp = nghttp
h2load = h2load

prefix = /usr
exec_prefix = /usr
bindir = /usr/bin
sbindir = /usr/sbin
libdir = /usr/lib
libexecdir = $LIBEXEC

apr_bindir = /usr/bin
apxs = $WORK/bin/apxs
apachectl = $WORK/bin/apachectl

[httpd]
version = $(/usr/bin/apxs -q HTTPD_VERSION)
name = apache2
dso_modules = $dso_modules
mpm_modules = mpm_event mpm_worker mpm_prefork mpm_perchild

[test]
gen_dir = $1
http_port = $((PORT_BASE + 2))
https_port = $((PORT_BASE + 1))
proxy_port = $((PORT_BASE + 3))
http_port2 = $((PORT_BASE + 4))
ws_port = $((PORT_BASE + 100))
http_tld = tests.httpd.apache.org
test_dir = $SRC/test/pyhttpd
test_src_dir = $SRC/test/pyhttpd
EOF
}

port_busy() {
    local p
    for p in $((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)) \
             $((PORT_BASE + 4)) $((PORT_BASE + 100)); do
        if ss -Hltn "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Stops a server a failed run may have left behind, by its own pid file.
stop_leftover() {   # $1: gen dir
    local pidf="$1/apache/logs/httpd.pid" pid i
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    log "stopping leftover httpd $pid"
    "$WORK/bin/apachectl" -d "$1/apache" -f "$1/apache/conf/stop.conf" -k stop || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -TERM "$pid" 2>/dev/null || true
}

RESULTS="$WORK/results"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

runs=()
for m in $MPMS; do runs+=("$m"); done
if [ "$DISPATCH" = yes ]; then runs+=("perchild-dispatch"); fi

for run in "${runs[@]}"; do
    case "$run" in
        perchild-dispatch) mpm=perchild; extra="$DISPATCH_CONF" ;;
        *) mpm=$run; extra="" ;;
    esac
    cgi=cgi
    if [ "$mpm" != perchild ] && [ "$WORKER_CGID" = yes ]; then cgi=cgid; fi
    for suite in $SUITES; do
        gen="$WORK/gen/$run-$suite"
        stop_leftover "$gen"
        if busy=$(port_busy); then
            echo "run-httpd-suite.sh: port $busy is in use; set PCSUITE_PORT_BASE" >&2
            exit 2
        fi
        rm -rf "$gen"
        mkdir -p "$gen"
        write_config_ini "$gen"
        log "$run: test/modules/$suite (MPM=$mpm, mod_$cgi, User $RUN_USER${extra:+, Include $extra})"
        start=$(date +%s)
        rc=0
        (cd "$SRC/test" && MPM=$mpm PCSUITE_EXTRA_CONF=$extra PCSUITE_CGI=$cgi \
            PYTHONPATH="$here:$SRC/test" \
            timeout --signal=INT --kill-after=30 "$SUITE_TIMEOUT" \
            $PY -m pytest -p no:cacheprovider -p pcsuite_plugin -v -rfEs \
                --junitxml="$RESULTS/$run-$suite.xml" \
                "${PYTEST_EXTRA[@]}" "modules/$suite") \
            > "$RESULTS/$run-$suite.log" 2>&1 || rc=$?
        stop_leftover "$gen"
        if [ -f "$gen/apache/logs/error_log" ]; then
            cp "$gen/apache/logs/error_log" "$RESULTS/$run-$suite.error_log"
        fi
        echo "   pytest exit $rc in $(( $(date +%s) - start ))s:" \
             "$(tail -n 1 "$RESULTS/$run-$suite.log")"
    done
done

log "comparison (logs, junit xml and error_logs in $RESULTS)"
$PY "$here/compare.py" --results "$RESULTS" --suites $SUITES --runs "${runs[@]}"
