#!/bin/bash
# build-intree.sh -- build the perchild MPM inside a real httpd 2.4 source tree.
#
# What it does (idempotent; safe to run again and again):
#   1. makes sure the build dependencies are installed and that Debian's
#      apache2 source package is cached in $PERCHILD_HTTPD_CACHE
#      (default /var/cache/perchild-httpd-src); needs root only when
#      something is missing (CI on a fresh machine runs as root);
#   2. unpacks the upstream tarball (apache2_*.orig.tar.gz, no Debian
#      patches) into $PERCHILD_INTREE_DIR/<variant>/ (default
#      /tmp/perchild-intree), reusing an earlier unpack;
#   3. copies the MPM files from the repository root (*.c *.h config.m4
#      config3.m4 Makefile.in) to server/mpm/perchild/ of that tree;
#   4. ./buildconf + ./configure (only when the build files, the set of
#      source files or the configure arguments changed), make -j2;
#   5. recompiles the perchild objects on their own and fails on any
#      compiler warning they produce (CFLAGS -Wall -Wextra
#      -Wno-unused-parameter);
#   6. checks the result: static build -> `httpd -V` says perchild;
#      --shared-all -> mod_mpm_perchild.so exists, exports
#      mpm_perchild_module, and `httpd -V` with it loaded says perchild.
#
# Usage: build-intree.sh [--static] [--shared-all] [--modules=SET] [-j N]
#   --static      static build, --with-mpm=perchild (the default)
#   --shared-all  --enable-mpms-shared=all --with-mpm=perchild
#   both flags may be given; each variant gets its own tree
#   --modules=SET httpd module set built alongside (few|most|all|reallyall;
#                 default few, which keeps the build short)
#   -j N          make parallelism (default 2)
#
# Environment: PERCHILD_SRC (MPM source dir; default: the repository root),
#   PERCHILD_INTREE_DIR, PERCHILD_HTTPD_CACHE.
# Exit status: 0 when every requested variant built and passed its checks.

set -eu
set -o pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
SRC=${PERCHILD_SRC:-$(cd "$script_dir/../.." && pwd)}
SCRATCH=${PERCHILD_INTREE_DIR:-/tmp/perchild-intree}
CACHE=${PERCHILD_HTTPD_CACHE:-/var/cache/perchild-httpd-src}
JOBS=2
MODULES=few
variants=()

while [ $# -gt 0 ]; do
    case "$1" in
        --static) variants+=(static) ;;
        --shared-all) variants+=(shared) ;;
        --modules=*) MODULES=${1#--modules=} ;;
        -j) shift; JOBS=${1:?-j needs a number} ;;
        -j*) JOBS=${1#-j} ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-intree.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#variants[@]} -gt 0 ] || variants=(static)

# Packages needed to build httpd from its source tree with the system APR.
PACKAGES="build-essential autoconf automake libtool libtool-bin libapr1-dev
libaprutil1-dev libpcre2-dev libssl-dev zlib1g-dev libexpat1-dev dpkg-dev python3"
APR_CONFIG=/usr/bin/apr-1-config
APU_CONFIG=/usr/bin/apu-1-config
WARN_CFLAGS="-Wall -Wextra -Wno-unused-parameter"

t_start=$(date +%s)
say()  { printf '[build-intree %4ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
die()  { printf '[build-intree] FAIL: %s\n' "$*" >&2; exit 1; }
# run LOG CMD...: run a command with output to LOG; on failure show the tail.
run() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        echo "----- last 40 lines of $log -----" >&2
        tail -n 40 "$log" >&2
        echo "-----" >&2
        die "command failed: $* (full log: $log)"
    fi
}

# ---------------------------------------------------------------------------
# 1. dependencies and the cached source package
# ---------------------------------------------------------------------------
ensure_packages() {
    local missing=() p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null \
            || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "build dependencies: all installed"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root to install them"
    say "installing missing packages: ${missing[*]}"
    run "$SCRATCH/apt-update.log" apt-get update
    run "$SCRATCH/apt-install.log" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
    apt_updated=yes
}

ensure_source_cache() {
    if ls "$CACHE"/apache2_*.orig.tar.gz >/dev/null 2>&1; then
        say "httpd source cache: $(ls "$CACHE"/apache2_*.orig.tar.gz | tail -n 1)"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "no apache2 source in $CACHE and not root to fetch it"
    local srcs=/etc/apt/sources.list.d/debian-src.sources
    if [ ! -e "$srcs" ]; then
        # deb-src twin of the first (main archive) stanza of debian.sources;
        # deliberately not the security archive.
        say "adding $srcs (deb-src for bookworm bookworm-updates main)"
        local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        {
            echo "Types: deb-src"
            echo "URIs: http://deb.debian.org/debian"
            echo "Suites: bookworm bookworm-updates"
            echo "Components: main"
            [ -e "$keyring" ] && echo "Signed-By: $keyring"
        } >"$srcs"
        apt_updated=no
    fi
    if [ "${apt_updated:-no}" != yes ]; then
        say "apt-get update"
        run "$SCRATCH/apt-update.log" apt-get update
        apt_updated=yes
    fi
    mkdir -p "$CACHE"
    # let apt's unprivileged downloader write here (avoids a sandbox warning)
    chown _apt "$CACHE" 2>/dev/null || true
    say "apt-get source --download-only apache2 (into $CACHE)"
    run "$SCRATCH/apt-source.log" sh -c "cd '$CACHE' && apt-get source --download-only apache2"
    ls "$CACHE"/apache2_*.orig.tar.gz >/dev/null 2>&1 || die "apt-get source gave no orig tarball"
}

# ---------------------------------------------------------------------------
# 2./3. the httpd tree and the MPM files in it
# ---------------------------------------------------------------------------
# Sets $tree for a variant, unpacking the tarball if this is the first time.
prepare_tree() {
    local variant=$1 tarball topdir
    tarball=$(ls "$CACHE"/apache2_*.orig.tar.gz | sort -V | tail -n 1)
    # awk reads the whole listing: an early exit (head, grep -q) would hit
    # tar with SIGPIPE, which pipefail turns into a failure
    topdir=$(tar tzf "$tarball" | awk -F/ 'NR == 1 { print $1 }')
    [ -n "$topdir" ] || die "cannot read $tarball"
    tree="$SCRATCH/$variant/$topdir"
    if [ -f "$tree/.perchild-unpacked" ]; then
        say "[$variant] reusing httpd tree $tree"
    else
        say "[$variant] unpacking $(basename "$tarball") into $SCRATCH/$variant"
        rm -rf "$tree"
        mkdir -p "$SCRATCH/$variant"
        tar xzf "$tarball" -C "$SCRATCH/$variant"
        [ -f "$tree/buildconf" ] || die "unexpected tarball layout: no $tree/buildconf"
        touch "$tree/.perchild-unpacked"
    fi
}

sync_mpm_files() {
    local variant=$1 dest="$tree/server/mpm/perchild" f name copied=0
    mkdir -p "$dest"
    # drop sources that no longer exist in the repository
    for f in "$dest"/*.c "$dest"/*.h; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        [ -e "$SRC/$name" ] || { rm -f "$f"; say "[$variant] removed stale $name"; }
    done
    # copy changed files only, so make rebuilds just what changed
    for f in "$SRC"/*.c "$SRC"/*.h "$SRC/config.m4" "$SRC/config3.m4" "$SRC/Makefile.in"; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        if ! cmp -s "$f" "$dest/$name"; then
            cp "$f" "$dest/$name"
            copied=$((copied + 1))
        fi
    done
    say "[$variant] MPM files in $dest: $(cd "$dest" && ls *.c *.h 2>/dev/null | tr '\n' ' ')($copied updated)"
}

# ---------------------------------------------------------------------------
# 4.-6. configure, build, check
# ---------------------------------------------------------------------------
build_variant() {
    local variant=$1 logs prefix stamp want have t0 cfg_args
    prepare_tree "$variant"
    sync_mpm_files "$variant"
    logs="$SCRATCH/$variant/logs"
    prefix="$SCRATCH/$variant/install"
    mkdir -p "$logs"

    cfg_args=(--prefix="$prefix" --with-mpm=perchild
              --with-apr="$APR_CONFIG" --with-apr-util="$APU_CONFIG"
              --enable-mods-static="$MODULES")
    if [ "$variant" = shared ]; then
        cfg_args+=(--enable-mpms-shared=all)
    fi
    local cflags="-g -O2 $WARN_CFLAGS"

    # buildconf/configure again only when their inputs changed
    stamp="$tree/.perchild-configured"
    want=$( { cat "$SRC/config.m4" "$SRC/config3.m4" "$SRC/Makefile.in";
              (cd "$SRC" && ls *.c 2>/dev/null);
              echo "${cfg_args[*]} CFLAGS=$cflags"; } | sha256sum | cut -c1-16)
    have=$(cat "$stamp" 2>/dev/null || true)
    if [ "$want" = "$have" ] && [ -f "$tree/config.status" ] && [ -f "$tree/Makefile" ]; then
        say "[$variant] buildconf/configure up to date (stamp $want)"
    else
        rm -f "$stamp"
        t0=$(date +%s)
        say "[$variant] ./buildconf --with-apr=$APR_CONFIG"
        run "$logs/buildconf.log" sh -c "cd '$tree' && ./buildconf --with-apr='$APR_CONFIG'"
        grep -q 'perchild' "$tree/configure" || die "[$variant] buildconf did not pick up server/mpm/perchild/config*.m4"
        say "[$variant] ./configure ${cfg_args[*]} CFLAGS=\"$cflags\""
        run "$logs/configure.log" env -C "$tree" ./configure "${cfg_args[@]}" CFLAGS="$cflags"
        grep -E 'perchild' "$logs/configure.log" | sed 's/^/    configure: /'
        say "[$variant] buildconf+configure took $(( $(date +%s) - t0 ))s"
        echo "$want" >"$stamp"
    fi

    # the object list configure wrote must cover every .c in the repository
    local mk="$tree/server/mpm/perchild/modules.mk" c
    [ -f "$mk" ] || die "[$variant] configure wrote no $mk (is perchild enabled?)"
    for c in "$SRC"/*.c; do
        [ -e "$c" ] || die "no .c files in $SRC"
        c=$(basename "$c" .c)
        grep -Eq "(^|[ :])$c\.s?lo( |\$)" "$mk" || die "[$variant] $c.lo missing from $mk"
    done
    say "[$variant] modules.mk: $(head -n 1 "$mk")"

    t0=$(date +%s)
    say "[$variant] make -j$JOBS (log: $logs/make.log)"
    if ! make -C "$tree" -j"$JOBS" >"$logs/make.log" 2>&1; then
        # with -j the first error may be far from the tail: show the
        # diagnostics about perchild's files first, then the tail
        local names
        names=$(cd "$SRC" && ls *.c *.h 2>/dev/null | sed 's/\./\\./' | paste -sd'|')
        echo "----- diagnostics about the perchild files -----" >&2
        grep -E -A3 "^(\./)?($names):[0-9]+:([0-9]+:)? (fatal error|error|warning):" \
            "$logs/make.log" | grep -v '^--$' | head -n 80 >&2 || true
        echo "----- last 30 lines of $logs/make.log -----" >&2
        tail -n 30 "$logs/make.log" >&2
        echo "-----" >&2
        die "[$variant] make failed (full log: $logs/make.log)"
    fi
    say "[$variant] make took $(( $(date +%s) - t0 ))s"

    # Warning gate: recompile only the perchild objects and read what the
    # compiler said about them (a full-tree log would mix in httpd's own
    # -Wextra noise and, with -j, interleave it).
    local plog="$logs/perchild-compile.log" nwarn
    say "[$variant] recompiling server/mpm/perchild alone to check for warnings"
    run "$logs/perchild-clean.log" make -C "$tree/server/mpm/perchild" clean
    # modules.mk's first rule is the library: libperchild.la (static) or
    # mod_mpm_perchild.la (DSO, which a plain `make` in the directory skips)
    local lib
    lib=$(sed -n '1s/:.*//p' "$mk")
    run "$plog" make -C "$tree/server/mpm/perchild" "$lib"
    for c in "$SRC"/*.c; do
        c=$(basename "$c")
        grep -E -- "-c $c( |\$)" "$plog" >/dev/null \
            || die "[$variant] $c was not recompiled by 'make $lib' (see $plog)"
    done
    nwarn=$(grep -c 'warning:' "$plog" || true)
    if [ "$nwarn" -ne 0 ]; then
        echo "----- compiler warnings in server/mpm/perchild ($nwarn) -----" >&2
        grep -A3 "warning:" "$plog" >&2 || true
        echo "-----" >&2
        die "[$variant] $nwarn compiler warning(s) in the perchild sources (full log: $plog)"
    fi
    say "[$variant] perchild sources compile without warnings ($WARN_CFLAGS)"
    run "$logs/relink.log" make -C "$tree"

    # checks
    local vout="$logs/httpd-V.txt"
    if [ "$variant" = static ]; then
        [ -x "$tree/httpd" ] || die "[$variant] no httpd binary in $tree"
        "$tree/httpd" -V >"$vout" 2>&1 || { cat "$vout" >&2; die "[$variant] httpd -V failed"; }
    else
        local so="$tree/server/mpm/perchild/.libs/mod_mpm_perchild.so"
        [ -f "$so" ] || die "[$variant] $so was not built"
        nm -D --defined-only "$so" | grep -w mpm_perchild_module >/dev/null \
            || die "[$variant] $so does not export mpm_perchild_module"
        say "[$variant] built $so (exports mpm_perchild_module)"
        local o
        for o in event worker prefork; do
            if [ -f "$tree/server/mpm/$o/.libs/mod_mpm_$o.so" ]; then
                say "[$variant]   also built mod_mpm_$o.so"
            fi
        done
        # A DSO MPM makes -V read the configuration (to load the MPM), but
        # not run any hooks; a two-line config is enough.
        local conf="$SCRATCH/$variant/perchild-V.conf"
        printf 'ServerName localhost\nLoadModule mpm_perchild_module %s\n' "$so" >"$conf"
        "$tree/httpd" -d "$SCRATCH/$variant" -f "$conf" -V >"$vout" 2>&1 \
            || { cat "$vout" >&2; die "[$variant] httpd -V (with mod_mpm_perchild.so loaded) failed"; }
    fi
    sed 's/^/    /' "$vout"
    grep -Eq '^Server MPM: +perchild *$' "$vout" \
        || die "[$variant] httpd -V does not report 'Server MPM:     perchild'"
    say "[$variant] OK: httpd -V reports Server MPM: perchild"
}

mkdir -p "$SCRATCH"
# one run at a time per scratch dir (apt, shared trees); waits for another
exec 9>"$SCRATCH/.lock"
if ! flock -n 9; then
    say "waiting for another build-intree.sh run to finish ($SCRATCH/.lock)"
    flock 9
fi
say "MPM sources: $SRC; scratch: $SCRATCH; variants: ${variants[*]}; modules: $MODULES"
[ -f "$SRC/mpm_perchild.c" ] || die "no mpm_perchild.c in $SRC"
for f in config.m4 config3.m4 Makefile.in; do
    [ -f "$SRC/$f" ] || die "no $f in $SRC"
done
ensure_packages
ensure_source_cache
for v in "${variants[@]}"; do
    build_variant "$v"
done
say "all done: ${variants[*]} passed"
