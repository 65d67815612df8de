#!/bin/sh
# Installs what building and testing perchild needs on Debian 12.
# Idempotent; safe to run again.  Needs root (apt-get).
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="apache2 apache2-dev apache2-utils build-essential curl python3 \
python3-pytest python3-h2 nginx-light wrk libapache2-mpm-itk procps iproute2 openssl"
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
