#!/bin/sh
# tidemark-entrypoint — the container image's entrypoint. It works out this
# node's identity from its environment, writes a server.properties, and execs
# bin/tidemark on it (so tidemark is PID 1 and gets SIGTERM directly).
#
# Where each setting comes from, first match wins:
#
# | setting                    | source                                                            |
# |----------------------------|-------------------------------------------------------------------|
# | node.id                    | TIDEMARK_NODE_ID; KAFKA_NODE_ID; else TIDEMARK_NODE_ID_BASE (0) + |
# |                            | the ordinal ending the hostname (StatefulSet pod "tidemark-2": 2) |
# | controller.quorum.voters   | KAFKA_CONTROLLER_QUORUM_VOTERS; else TIDEMARK_CLUSTER_SIZE nodes  |
# |                            | <TIDEMARK_NODE_ID_BASE+i>@<peer>-<i>[.<domain>]:<controller port>;|
# |                            | else this node alone                                              |
# | listeners and advertised   | KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS / the file; else     |
# | listeners                  | PLAINTEXT on TIDEMARK_CLIENT_PORT advertised as                   |
# |                            | TIDEMARK_ADVERTISED_HOST, CONTROLLER on TIDEMARK_CONTROLLER_PORT, |
# |                            | and EXTERNAL on TIDEMARK_EXTERNAL_PORT advertised as              |
# |                            | TIDEMARK_EXTERNAL_ADVERTISED when that is set                     |
# | log.dirs                   | TIDEMARK_DATA_DIR (default $TIDEMARK_HOME/data)                   |
# | tidemark.http.port         | TIDEMARK_HTTP_PORT (default 9644)                                 |
#
# The generated file is TIDEMARK_CONFIG_FILE's lines (if given) followed by
# the derived settings. A derived default is left out when the file already
# sets that key; a value given by a TIDEMARK_* variable is always written.
# tidemark itself then applies KAFKA_* variables over the file and
# --override key=value arguments over both, as documented in README.md.
#
# Kubernetes injects "service link" variables for every Service in the
# namespace; for a Service whose name starts with "kafka" they look like
# Kafka settings (KAFKA_PORT=tcp://..., KAFKA_SERVICE_HOST=...) and tidemark
# would refuse them as unknown keys, so they are dropped here.
#
# Usage: tidemark-entrypoint [--override k=v ...]   run the broker
#        tidemark-entrypoint format [--cluster-id ID] format storage and exit
#        tidemark-entrypoint print-config             print the generated file
#        tidemark-entrypoint COMMAND [ARGS]           run another command
set -eu

log() { echo "tidemark-entrypoint: $*" >&2; }
die() {
	log "$*"
	exit 2
}
is_uint() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ ${#1} -le 9 ]
}
need_uint() { # need_uint VAR VALUE
	is_uint "$2" || die "$1 must be a non-negative integer, got '$2'"
}
dec() { # dec NUMBER: without leading zeros, so $((...)) does not read it as octal
	echo "$1" | sed 's/^0*\([0-9]\)/\1/'
}
need_port() {
	need_uint "$1" "$2"
	[ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1 must be a port in [1, 65535], got '$2'"
}

TIDEMARK_BIN=${TIDEMARK_BIN:-/usr/local/bin/tidemark}
TIDEMARK_HOME=${TIDEMARK_HOME:-/var/lib/tidemark}
DATA_DIR=${TIDEMARK_DATA_DIR:-$TIDEMARK_HOME/data}
CONF=$TIDEMARK_HOME/server.properties
USER_CONF=${TIDEMARK_CONFIG_FILE:-}
CLIENT_PORT=${TIDEMARK_CLIENT_PORT:-9092}
CONTROLLER_PORT=${TIDEMARK_CONTROLLER_PORT:-9093}
EXTERNAL_PORT=${TIDEMARK_EXTERNAL_PORT:-9094}
HTTP_PORT=${TIDEMARK_HTTP_PORT:-9644}
NODE_ID_BASE=${TIDEMARK_NODE_ID_BASE:-0}

# ---- Kubernetes service links that look like KAFKA_* settings ---------------
for name in $(env | sed -n 's/^\(KAFKA[A-Z0-9_]*\)=.*/\1/p'); do
	if echo "$name" | grep -Eq '^KAFKA(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$'; then
		unset "$name"
		log "ignoring $name (a Kubernetes service link, not a setting; enableServiceLinks: false avoids it)"
	fi
done

# ---- what to run ------------------------------------------------------------
# Another command (a shell, a tool) runs as is, without a node identity.
if [ $# -gt 0 ] && [ "$1" = tidemark ]; then
	shift
fi
if [ $# -gt 0 ] && { [ "$1" = --version ] || [ "$1" = --help ] || [ "$1" = -h ]; }; then
	exec "$TIDEMARK_BIN" "$@"
elif [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	MODE=run
else
	case $1 in
	format | print-config)
		MODE=$1
		shift
		;;
	*) exec "$@" ;;
	esac
fi

# ---- identity ----------------------------------------------------------------
need_port TIDEMARK_CLIENT_PORT "$CLIENT_PORT"
need_port TIDEMARK_CONTROLLER_PORT "$CONTROLLER_PORT"
need_port TIDEMARK_EXTERNAL_PORT "$EXTERNAL_PORT"
need_port TIDEMARK_HTTP_PORT "$HTTP_PORT"
need_uint TIDEMARK_NODE_ID_BASE "$NODE_ID_BASE"
if [ -n "$USER_CONF" ] && [ ! -r "$USER_CONF" ]; then
	die "TIDEMARK_CONFIG_FILE=$USER_CONF cannot be read"
fi
NODE_ID_BASE=$(dec "$NODE_ID_BASE")
HOST=${HOSTNAME:-$(cat /proc/sys/kernel/hostname)}
ORDINAL=${HOST##*-}
if [ "$ORDINAL" = "$HOST" ] || ! is_uint "$ORDINAL"; then
	ORDINAL=""
else
	ORDINAL=$(dec "$ORDINAL")
fi
DOMAIN=${TIDEMARK_PEER_DOMAIN:-}

if [ -n "${TIDEMARK_NODE_ID:-}" ]; then
	need_uint TIDEMARK_NODE_ID "$TIDEMARK_NODE_ID"
	if [ -n "${KAFKA_NODE_ID:-}" ] && [ "$KAFKA_NODE_ID" != "$TIDEMARK_NODE_ID" ]; then
		die "TIDEMARK_NODE_ID=$TIDEMARK_NODE_ID and KAFKA_NODE_ID=$KAFKA_NODE_ID disagree; set one"
	fi
	NODE_ID=$TIDEMARK_NODE_ID
	NODE_ID_FROM="TIDEMARK_NODE_ID"
elif [ -n "${KAFKA_NODE_ID:-}" ]; then
	need_uint KAFKA_NODE_ID "$KAFKA_NODE_ID"
	NODE_ID=$KAFKA_NODE_ID
	NODE_ID_FROM="KAFKA_NODE_ID"
elif [ -n "$ORDINAL" ]; then
	NODE_ID=$((NODE_ID_BASE + ORDINAL))
	NODE_ID_FROM="hostname $HOST: ordinal $ORDINAL + TIDEMARK_NODE_ID_BASE $NODE_ID_BASE"
else
	NODE_ID=""
	NODE_ID_FROM=""
fi

ADVERTISED_HOST=${TIDEMARK_ADVERTISED_HOST:-$HOST${DOMAIN:+.$DOMAIN}}

# ---- the generated file ------------------------------------------------------
mkdir -p "$TIDEMARK_HOME" "$DATA_DIR" 2>/dev/null ||
	die "cannot create $TIDEMARK_HOME or $DATA_DIR (is the volume writable by uid $(id -u)?)"
tmp=$CONF.tmp.$$
trap 'rm -f "$tmp"' EXIT
{
	echo "# Generated by tidemark-entrypoint at start-up; edits are lost at the next start."
	if [ -n "$USER_CONF" ]; then
		echo "# ---- from $USER_CONF"
		cat "$USER_CONF"
		echo
	fi
	echo "# ---- derived from the environment"
} > "$tmp"

# file_sets KEY: does TIDEMARK_CONFIG_FILE set KEY?
file_sets() {
	[ -n "$USER_CONF" ] || return 1
	re=$(printf '%s' "$1" | sed 's/\./\\./g')
	grep -Eq "^[[:space:]]*${re}[[:space:]]*[=:]" "$USER_CONF"
}
# put KEY VALUE FROM explicit|default
put() {
	if [ "$4" = default ] && file_sets "$1"; then
		log "$1 from $USER_CONF"
		return 0
	fi
	echo "$1=$2" >> "$tmp"
	log "$1=$2 ($3)"
}

if [ -n "$NODE_ID" ]; then
	case $NODE_ID_FROM in
	TIDEMARK_NODE_ID) put node.id "$NODE_ID" "$NODE_ID_FROM" explicit ;;
	KAFKA_NODE_ID) log "node.id=$NODE_ID (KAFKA_NODE_ID, applied by tidemark)" ;;
	*) put node.id "$NODE_ID" "$NODE_ID_FROM" default ;;
	esac
elif ! file_sets node.id && ! file_sets broker.id; then
	die "cannot tell this node's id: set TIDEMARK_NODE_ID (or KAFKA_NODE_ID), or run it as a StatefulSet pod whose hostname ends in -<ordinal> (this one is '$HOST')"
fi

# Voters.
CLUSTER_SIZE=""
if [ -n "${KAFKA_CONTROLLER_QUORUM_VOTERS:-}" ]; then
	CLUSTER_SIZE=$(echo "$KAFKA_CONTROLLER_QUORUM_VOTERS" | tr ',' '\n' | grep -c '@' || true)
	log "controller.quorum.voters from KAFKA_CONTROLLER_QUORUM_VOTERS ($CLUSTER_SIZE voters, applied by tidemark)"
elif [ -n "${TIDEMARK_CLUSTER_SIZE:-}" ]; then
	need_uint TIDEMARK_CLUSTER_SIZE "$TIDEMARK_CLUSTER_SIZE"
	CLUSTER_SIZE=$TIDEMARK_CLUSTER_SIZE
	[ "$CLUSTER_SIZE" -ge 1 ] && [ "$CLUSTER_SIZE" -le 64 ] ||
		die "TIDEMARK_CLUSTER_SIZE must be in [1, 64], got '$CLUSTER_SIZE'"
	PEER=${TIDEMARK_PEER_NAME:-}
	if [ -z "$PEER" ]; then
		[ -n "$ORDINAL" ] ||
			die "TIDEMARK_CLUSTER_SIZE needs the peers' names: set TIDEMARK_PEER_NAME, or run it as a StatefulSet pod whose hostname ends in -<ordinal> (this one is '$HOST')"
		PEER=${HOST%-*}
	fi
	voters=""
	i=0
	while [ "$i" -lt "$CLUSTER_SIZE" ]; do
		voters="$voters${voters:+,}$((NODE_ID_BASE + i))@$PEER-$i${DOMAIN:+.$DOMAIN}:$CONTROLLER_PORT"
		i=$((i + 1))
	done
	put controller.quorum.voters "$voters" "TIDEMARK_CLUSTER_SIZE=$CLUSTER_SIZE" explicit
elif file_sets controller.quorum.voters; then
	log "controller.quorum.voters from $USER_CONF"
elif [ -n "$NODE_ID" ]; then
	CLUSTER_SIZE=1
	put controller.quorum.voters "$NODE_ID@localhost:$CONTROLLER_PORT" "a single node: no TIDEMARK_CLUSTER_SIZE" default
fi

# Listeners: one group, derived only when neither the environment nor the
# file names any of them (a half-derived set would not fit together).
if [ -n "${KAFKA_LISTENERS:-}${KAFKA_ADVERTISED_LISTENERS:-}${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:-}" ]; then
	log "listeners from KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS (applied by tidemark)"
elif file_sets listeners || file_sets advertised.listeners || file_sets listener.security.protocol.map; then
	log "listeners from $USER_CONF"
else
	listeners="PLAINTEXT://:$CLIENT_PORT,CONTROLLER://:$CONTROLLER_PORT"
	advertised="PLAINTEXT://$ADVERTISED_HOST:$CLIENT_PORT"
	secmap="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
	if [ -n "${TIDEMARK_EXTERNAL_ADVERTISED:-}" ]; then
		case $TIDEMARK_EXTERNAL_ADVERTISED in
		*://*) die "TIDEMARK_EXTERNAL_ADVERTISED is host:port, without a listener name; got '$TIDEMARK_EXTERNAL_ADVERTISED'" ;;
		*:*) ;;
		*) die "TIDEMARK_EXTERNAL_ADVERTISED is host:port; got '$TIDEMARK_EXTERNAL_ADVERTISED'" ;;
		esac
		need_port "the port of TIDEMARK_EXTERNAL_ADVERTISED" "${TIDEMARK_EXTERNAL_ADVERTISED##*:}"
		listeners="$listeners,EXTERNAL://:$EXTERNAL_PORT"
		advertised="$advertised,EXTERNAL://$TIDEMARK_EXTERNAL_ADVERTISED"
		secmap="$secmap,EXTERNAL:PLAINTEXT"
	fi
	put listeners "$listeners" "TIDEMARK_*_PORT" explicit
	put advertised.listeners "$advertised" "TIDEMARK_ADVERTISED_HOST, TIDEMARK_EXTERNAL_ADVERTISED" explicit
	put listener.security.protocol.map "$secmap" "the listeners above" explicit
	put inter.broker.listener.name PLAINTEXT "the listeners above" default
	put controller.listener.names CONTROLLER "the listeners above" default
fi

if [ -n "${TIDEMARK_DATA_DIR:-}" ]; then
	put log.dirs "$DATA_DIR" TIDEMARK_DATA_DIR explicit
else
	put log.dirs "$DATA_DIR" "TIDEMARK_HOME/data" default
fi
if [ -n "${TIDEMARK_HTTP_PORT:-}" ]; then
	put tidemark.http.port "$HTTP_PORT" TIDEMARK_HTTP_PORT explicit
else
	put tidemark.http.port "$HTTP_PORT" "the image's default" default
fi
put process.roles broker,controller "every Tidemark node holds both roles" default
# A cluster's internal topics and new topics replicate to up to three nodes.
if [ -n "$CLUSTER_SIZE" ] && is_uint "$CLUSTER_SIZE" && [ "$CLUSTER_SIZE" -ge 1 ]; then
	rf=$CLUSTER_SIZE
	[ "$rf" -le 3 ] || rf=3
	put default.replication.factor "$rf" "cluster of $CLUSTER_SIZE" default
	put offsets.topic.replication.factor "$rf" "cluster of $CLUSTER_SIZE" default
fi
mv "$tmp" "$CONF"

# ---- run -----------------------------------------------------------------
case $MODE in
run)
	log "exec tidemark $CONF $*"
	exec "$TIDEMARK_BIN" "$CONF" "$@"
	;;
format) exec "$TIDEMARK_BIN" format "$CONF" "$@" ;;
print-config) cat "$CONF" ;;
esac
