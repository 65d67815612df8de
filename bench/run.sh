#!/bin/bash
# The perchild benchmark: worker, event, mpm-itk and perchild on Debian's
# apache2, driven by wrk.  See bench/README.md and docs/performance.md.
#
#   sudo ./bench/run.sh            # full matrix (about 13 minutes)
#   sudo ./bench/run.sh --quick    # the same, shorter (about 3 minutes)
#   sudo ./bench/run.sh --json /tmp/results.json   # also keep raw numbers
#
# Extra arguments go to bench/bench.py (--rounds N, --duration S,
# --scenarios S1,S2, --skip matrix,memory,idle50,channel, --keep).
#
# Installs what it needs with apt-get (apache2, apache2-dev,
# build-essential, wrk, libapache2-mpm-itk), creates the system users it
# serves as if they are missing, builds the module (make) and the channel
# micro-benchmark, then runs bench/bench.py.  Touches neither /etc/apache2
# nor the system's apache2 service; every server runs on 127.0.0.1 from a
# temporary directory and is stopped by the pid in its own pid file.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (mpm-itk and perchild switch users): sudo $0 $*" >&2
    exit 2
fi

# -- packages ---------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
pkgs="apache2 apache2-dev build-essential wrk libapache2-mpm-itk python3 procps"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "run.sh: installing$missing"
    apt-get update -qq
    # Installing apache2 must not start (or restart) the system service.
    cleanup_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        cleanup_policy=yes
    fi
    rc=0
    apt-get install -y -qq --no-install-recommends $missing || rc=$?
    [ -n "$cleanup_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || exit "$rc"
fi

# -- users --------------------------------------------------------------------
# pcalice, pcbob, pccarol: the three users whose vhosts are measured;
# pcdispatch: the dispatch pool's user; pcu01..pcu50: the 50-user idle
# memory test.  Harmless system users: no home, no login shell.
users="pcalice pcbob pccarol pcdispatch"
for i in $(seq -w 1 50); do users="$users pcu$i"; done
for u in $users; do
    if ! id "$u" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home \
            --shell /usr/sbin/nologin "$u"
    fi
done

# -- build ----------------------------------------------------------------------
makelog=$(mktemp)
if ! make -C "$top" > "$makelog" 2>&1; then
    cat "$makelog" >&2
    rm -f "$makelog"
    echo "run.sh: make failed" >&2
    exit 1
fi
rm -f "$makelog"
so="$top/.libs/mod_mpm_perchild.so"
[ -f "$so" ] || { echo "run.sh: make produced no $so" >&2; exit 1; }
cc -O2 -Wall -Wextra -o "$top/bench/chanbench" "$top/bench/chanbench.c" \
    "$top/pc_channel.c"

# bench/instructions.sh wants only the set-up above.
[ -n "${PERCHILD_BENCH_SETUP_ONLY:-}" ] && exit 0

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
     "$(lscpu | sed -n 's/^Model name: *//p' | head -1); kernel $(uname -r)"
echo "apache2: $(/usr/sbin/apache2 -v | sed -n 's/^Server version: //p');" \
     "wrk $(dpkg-query -W -f='${Version}' wrk);" \
     "mpm-itk $(dpkg-query -W -f='${Version}' libapache2-mpm-itk);" \
     "perchild $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$top" diff --quiet -- '*.c' '*.h' 2>/dev/null || echo '+changes')"

exec /usr/bin/python3 "$top/bench/bench.py" --module "$so" \
    --chanbench "$top/bench/chanbench" "$@"
