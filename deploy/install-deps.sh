#!/bin/sh
# install-deps.sh build|test — installs what Tidemark needs on Debian, only
# what is missing, so a fresh clone needs nothing but this repository.
#   build: compiler, libevent, liburing, OpenSSL, pkg-config
#   test:  Check, clang (libFuzzer), kcat, librdkafka, iproute2 and iptables
#          (the network-cut fault tests), Debian's python3-kafka
#          and python3-confluent-kafka, a venv with PyPI's kafka-python,
#          confluent-kafka and pytest, and Kafka's Java tools from Maven Central.
# Caches live outside the repo under $TM_CACHE (default ~/.cache/tidemark).
set -eu
what=${1:-build}
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}

need_pkgs=""
want() { # want DEB-PACKAGE: queue it when dpkg does not have it installed
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || need_pkgs="$need_pkgs $1"
}

apt_install() {
	[ -n "$need_pkgs" ] || return 0
	echo "install-deps: apt-get install$need_pkgs"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need_pkgs >/dev/null
	need_pkgs=""
}

for p in gcc make pkg-config libevent-dev liburing-dev libssl-dev; do want $p; done
apt_install
[ "$what" = build ] && exit 0

for p in check clang kcat librdkafka-dev python3 python3-kafka python3-confluent-kafka \
	 python3-venv maven openjdk-17-jre-headless iproute2 iptables procps; do want $p; done
# Java and Maven may already be present outside dpkg (e.g. a JDK on PATH).
if command -v java >/dev/null 2>&1; then need_pkgs=$(echo "$need_pkgs" | sed 's/openjdk-17-jre-headless//'); fi
if command -v mvn >/dev/null 2>&1; then need_pkgs=$(echo "$need_pkgs" | sed 's/maven//'); fi
apt_install

mkdir -p "$TM_CACHE"
# Python clients from PyPI, in a venv of their own (Debian's python3-kafka is
# the old 2.0.2 and stays with /usr/bin/python3 for the old-client tests).
VENV="$TM_CACHE/venv"
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import kafka, confluent_kafka' 2>/dev/null; then
	PY=$(command -v python3)
	"$PY" -m venv "$VENV" 2>/dev/null || /usr/bin/python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
	"$VENV/bin/pip" install -q pytest kafka-python confluent-kafka
fi

# Kafka's CLI tools and broker jars from Maven Central.
JARS="$TM_CACHE/kafka-$KAFKA_VERSION/libs"
if [ ! -f "$JARS/.complete" ]; then
	mkdir -p "$JARS"
	tmp=$(mktemp -d)
	sed "s/@KAFKA_VERSION@/$KAFKA_VERSION/g" "$(dirname "$0")/kafka-tools-pom.xml" > "$tmp/pom.xml"
	(cd "$tmp" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$JARS") 
	rm -rf "$tmp"
	touch "$JARS/.complete"
fi
