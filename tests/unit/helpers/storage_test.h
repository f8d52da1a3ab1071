/*
 * storage_test.h — helpers for the storage unit tests: a builder of record
 * batches v2 (valid CRC-32C, uncompressed records with values) and a driver
 * that pumps the io_uring ring until a callback has fired.
 */
#ifndef TM_TESTS_STORAGE_TEST_H
#define TM_TESTS_STORAGE_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

struct tm_io;

struct sth_batch_spec {
	int nrecords;         /* >= 1 */
	int64_t base_ts;      /* record i gets base_ts + i */
	int64_t producer_id;  /* -1: not idempotent */
	int16_t producer_epoch;
	int32_t base_seq;     /* -1 without producer */
	size_t value_bytes;   /* each record's value size */
	uint8_t fill;         /* value byte */
};

/* A default spec: n records, no producer, 16-byte values. */
struct sth_batch_spec sth_spec(int nrecords, int64_t base_ts);
/* Appends one batch (baseOffset 0) to w. */
void sth_build_batch(struct tm_wbuf *w, const struct sth_batch_spec *s);

/* Pumps the ring until *flag becomes true; false after ~10 s. */
bool sth_run_until(struct tm_io *io, const bool *flag);
/* Pumps until nothing is in flight. */
void sth_drain(struct tm_io *io);
/* mkdtemp under /tmp into buf (>= 64 bytes). */
void sth_tmpdir(char *buf, size_t cap);
/* rm -r of a test directory tree (two levels). */
void sth_rmtree(const char *dir);

#endif
