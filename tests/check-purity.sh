#!/bin/sh
# check-purity.sh — raft/, protocol/ and the broker's pure state machines
# (the metadata image and its snapshots, the group state machine, ISR tracking, election rules) never call the OS, so they
# can be driven deterministically.  Fails when one of their files includes a system
# header that does I/O or their objects reference an I/O symbol.
set -eu
bad=0
for f in raft/*.c raft/*.h protocol/*.c protocol/*.h broker/metadata.[ch] broker/md_snapshot.[ch] broker/group_sm.[ch] broker/isr.[ch] broker/elect.[ch] broker/placement.[ch]; do
	[ -e "$f" ] || continue
	if grep -nE '#include <(unistd|fcntl|sys/socket|sys/stat|liburing|event2/[a-z_]+|openssl/[a-z_]+|time|pthread)\.h>' "$f"; then
		echo "purity: $f includes an OS header"
		bad=1
	fi
done
for o in build/raft/*.o build/protocol/*.o build/broker/metadata.o build/broker/md_snapshot.o build/broker/group_sm.o build/broker/isr.o build/broker/elect.o build/broker/placement.o; do
	[ -e "$o" ] || continue
	if nm -u "$o" | grep -wE 'open|read|write|pread|pwrite|close|socket|send|recv|clock_gettime|gettimeofday|time|rand|random|getrandom|fsync|mmap'; then
		echo "purity: $o references an OS call"
		bad=1
	fi
done
[ "$bad" -eq 0 ] && echo "purity: raft/, protocol/ and the pure broker state machines call no OS functions"
exit $bad
