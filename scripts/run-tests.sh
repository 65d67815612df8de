#!/bin/bash
# Runs the perchild test suite against Debian's /usr/sbin/apache2:
# installs what it needs, builds the module, runs pytest as root.
#
#   sudo ./scripts/run-tests.sh                 # everything, slow tests last
#   sudo ./scripts/run-tests.sh -x -k graceful  # extra args go to pytest
#   sudo ./scripts/run-tests.sh test/test_config.py
#
# Without a test path or -m among the arguments it runs pytest twice: the
# fast suite, then the tests marked slow (the in-tree httpd build).  Exits
# with the first failing pytest status.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "run-tests.sh: must run as root (the MPM switches users): sudo $0" >&2
    exit 2
fi

./scripts/install-deps.sh

so="$top/.libs/mod_mpm_perchild.so"
if [ -f Makefile ]; then
    make
else
    apxs -c -Wc,-Wall -Wc,-Wextra -o mod_mpm_perchild.la ./*.c
fi
[ -f "$so" ] || { echo "run-tests.sh: build produced no $so" >&2; exit 1; }
# The suite uses this build instead of building again.
export PERCHILD_SO="$so"
export PYTHONDONTWRITEBYTECODE=1

pytest() {
    /usr/bin/python3 -m pytest -p no:cacheprovider -v -rfEs "$@"
}

selected=no
for a in "$@"; do
    case "$a" in
        -m|-m*|*::*) selected=yes ;;
        -*) ;;
        *) [ -e "${a%%::*}" ] && selected=yes ;;
    esac
done

if [ "$selected" = yes ]; then
    rc=0
    pytest "$@" || rc=$?
    exit "$rc"
fi

# Both runs write JUnit XML, so that one closing line can count them all.
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
rc=0
pytest -m "not slow" --junitxml="$reports/fast.xml" "$@" test/ || rc=$?
slow=0
pytest -m slow --junitxml="$reports/slow.xml" "$@" test/ || slow=$?
# 5: no test is marked slow (yet).
[ "$slow" = 5 ] && slow=0

/usr/bin/python3 - "$reports"/*.xml <<'PY'
import sys
import xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += tests - bad - skip
        failed += bad
        skipped += skip
print("total: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY
[ "$rc" != 0 ] && exit "$rc"
exit "$slow"
