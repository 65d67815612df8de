#!/bin/bash
# Instructions per request, worker against perchild, counted by callgrind
# (bench/instructions.py; docs/performance.md, "Where the time goes").
#
#   sudo ./bench/instructions.sh                 # about 2 minutes
#   sudo ./bench/instructions.sh --requests 1000 --keep
#
# Installs valgrind and what bench/run.sh installs, creates the same
# users, builds the module, then runs bench/instructions.py.  Like
# run.sh, it touches neither /etc/apache2 nor the system's service.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
if [ "$(id -u)" != 0 ]; then
    echo "instructions.sh: must run as root: sudo $0 $*" >&2
    exit 2
fi
if ! command -v valgrind >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends valgrind
fi
# Packages, users and the build: the benchmark's own set-up, without
# running the benchmark.
PERCHILD_BENCH_SETUP_ONLY=1 "$top/bench/run.sh"
exec /usr/bin/python3 "$top/bench/instructions.py" \
    --module "$top/.libs/mod_mpm_perchild.so" "$@"
