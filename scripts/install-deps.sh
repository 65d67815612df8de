#!/bin/sh
# Installs what building and testing perchild needs on Debian 12.
# Idempotent; safe to run again.  Needs root (apt-get).
#
#   install-deps.sh          # build + test suite (what run-tests.sh needs)
#   install-deps.sh --demo   # build + demo only (what demo.sh needs)
#
# The test suite also needs nginx-light (a reverse proxy in front of
# perchild) and libapache2-mpm-itk (compared with perchild).  Debian's
# postinst of libapache2-mpm-itk enables mpm_itk and mpm_prefork in
# /etc/apache2 in place of mpm_event; the demo does not install it.
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="apache2 apache2-dev build-essential curl python3 procps"
if [ "${1:-}" != "--demo" ]; then
    pkgs="$pkgs apache2-utils python3-pytest python3-h2 nginx-light wrk \
libapache2-mpm-itk iproute2 openssl"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    # The stock apache2 service must not run: tests start their own httpd.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends $missing
fi
