#!/usr/bin/env bash
# The Debian packages the test suite drives for real: a browser for the dashboard and video pages,
# speech synthesis for callers and replies, recorded read speech, Redis, the compose client that
# checks docker-compose.yml, and the proxies and JavaScript runtime of the provider conformance tests. As root with apt they are installed; otherwise this names what is missing
# and fails, so `make test` never passes quietly with whole groups of tests skipped.
# TONELINE_ALLOW_SKIPS=1 lets the suite run anyway (those tests then skip, each saying why).
set -uo pipefail

have() {
  case "$1" in
    redis-server) command -v redis-server >/dev/null 2>&1 ||
                    (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null ;;
    docker-compose) (docker compose version >/dev/null 2>&1) || command -v docker-compose >/dev/null 2>&1 ;;
    pocketsphinx-testdata) [ -d /usr/share/pocketsphinx/test/data ] ;;
    nginx|haproxy) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    postgresql) compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# nginx and haproxy: the proxies the provider conformance tests put in front of Rasa (HAProxy also in front of
# the scale-out test's replicas); nodejs: Vonage's payload_hash recipe run in JavaScript, as it is written;
# postgresql: the scale-out test's throwaway tracker database (initdb/pg_ctl; redis-server brings redis-cli
# for its Redis Cluster).
packages=(redis-server chromium espeak-ng flite pocketsphinx-testdata docker-compose nginx haproxy nodejs postgresql)
missing=()
for package in "${packages[@]}"; do have "$package" || missing+=("$package"); done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "toneline: installing ${missing[*]}" >&2
  apt-get update -qq >&2 || true
  for package in "${missing[@]}"; do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null 2>&1 ||
      echo "toneline: could not install $package" >&2
  done
  still=()
  for package in "${missing[@]}"; do have "$package" || still+=("$package"); done
  missing=("${still[@]+"${still[@]}"}")
  [ ${#missing[@]} -eq 0 ] && exit 0
fi

if [ "${TONELINE_ALLOW_SKIPS:-0}" = 1 ]; then
  echo "toneline: missing ${missing[*]}; the tests that need them will skip (TONELINE_ALLOW_SKIPS=1)" >&2
  exit 0
fi
echo "toneline: the test suite needs these Debian packages: ${missing[*]}" >&2
echo "  install them:  sudo apt-get install ${missing[*]}" >&2
echo "  or run anyway, skipping the tests that need them:  TONELINE_ALLOW_SKIPS=1 make test" >&2
exit 4
