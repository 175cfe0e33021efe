#!/usr/bin/env bash
# Install the system packages the tests use, when missing (root only; apt-get update once),
# and start the shared services this machine kind provides (PostgreSQL, Mosquitto) if stopped.
set -euo pipefail
PKGS=(chromium haproxy snmp snmpd nftables openssh-client openssh-server tinyproxy cups wrk nginx-light conntrack
      mosquitto mosquitto-clients iproute2 postgresql-client fonts-liberation
      simplesamlphp php-cli php8.2-cgi php-xml php-mbstring libnss3-tools)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing packages ${missing[*]} and not root; install them first" >&2; exit 1
  fi
  echo "system-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
