/*
 * test_broker_read.c — server_read_into: the rest of a frame goes into its
 * buffer, and the start of the next one (a pipelining client's next request)
 * into the input evbuffer in the same readv, never more than
 * SERVER_READ_AHEAD of it; the evbuffer is left frozen at its end as libevent
 * expects of a bufferevent's input.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "broker/broker.h"

static int sv[2];           /* sv[0]: the broker's end, non-blocking */
static struct evbuffer *in; /* as a bufferevent's input: end frozen */

static void setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	in = evbuffer_new();
	ck_assert_ptr_nonnull(in);
	ck_assert_int_eq(evbuffer_freeze(in, 0), 0);
}

static void teardown(void)
{
	evbuffer_free(in);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void send_all(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(sv[1], p, n);
		ck_assert_int_gt(w, 0);
		p += w;
		n -= (size_t)w;
	}
}

/* n patterned bytes into p, and from the client's end onto the socket. */
static void send_filled(uint8_t *p, size_t n, unsigned seed)
{
	fill(p, n, seed);
	send_all(p, n);
}

/* What is still unread on the broker's end of the socket. */
static size_t socket_left(void)
{
	uint8_t buf[65536];
	size_t total = 0;
	ssize_t n;
	while ((n = read(sv[0], buf, sizeof(buf))) > 0)
		total += (size_t)n;
	ck_assert(n == 0 || errno == EAGAIN || errno == EWOULDBLOCK);
	return total;
}

/* Bytes a bufferevent read earlier: added with the end thawed, as libevent does. */
static void buffered(const uint8_t *p, size_t n)
{
	ck_assert_int_eq(evbuffer_unfreeze(in, 0), 0);
	ck_assert_int_eq(evbuffer_add(in, p, n), 0);
	ck_assert_int_eq(evbuffer_freeze(in, 0), 0);
}

/* The end of `in` is frozen: libevent's own reads would add to it. */
static void assert_end_frozen(void)
{
	ck_assert_int_eq(evbuffer_add(in, "x", 1), -1);
}

START_TEST(test_rest_of_frame_and_next_request_in_one_read)
{
	/* 3 bytes of a 5,000-byte frame body are already in the evbuffer; the
	 * socket holds the other 4,997 and a whole 100-byte next request. */
	uint8_t frame[5000], next[100], dst[5000];
	fill(frame, sizeof(frame), 1);
	fill(next, sizeof(next), 99);
	buffered(frame, 3);
	send_all(frame + 3, sizeof(frame) - 3);
	send_all(next, sizeof(next));

	memset(dst, 0, sizeof(dst));
	ck_assert_uint_eq(server_read_into(in, sv[0], dst, sizeof(dst)), sizeof(dst));
	ck_assert_mem_eq(dst, frame, sizeof(frame));
	/* The next request waits in the evbuffer, read by the same call. */
	ck_assert_uint_eq(evbuffer_get_length(in), sizeof(next));
	ck_assert_mem_eq(evbuffer_pullup(in, -1), next, sizeof(next));
	ck_assert_uint_eq(socket_left(), 0);
	assert_end_frozen();
}
END_TEST

START_TEST(test_read_ahead_is_bounded)
{
	/* Behind the frame's last 1,000 bytes, three read-aheads' worth: one
	 * goes into the evbuffer, the rest stays in the socket for the loop's
	 * next turn (and the in-flight limit can still stop a client). */
	size_t more = 3 * SERVER_READ_AHEAD;
	uint8_t *data = malloc(1000 + more), dst[1000];
	ck_assert_ptr_nonnull(data);
	send_filled(data, 1000 + more, 5);

	ck_assert_uint_eq(server_read_into(in, sv[0], dst, sizeof(dst)), sizeof(dst));
	ck_assert_mem_eq(dst, data, sizeof(dst));
	ck_assert_uint_eq(evbuffer_get_length(in), SERVER_READ_AHEAD);
	ck_assert_mem_eq(evbuffer_pullup(in, -1), data + 1000, SERVER_READ_AHEAD);
	ck_assert_uint_eq(socket_left(), more - SERVER_READ_AHEAD);
	assert_end_frozen();
	free(data);
}
END_TEST

START_TEST(test_part_of_the_frame_when_the_socket_has_no_more)
{
	uint8_t data[700], dst[2000];
	send_filled(data, sizeof(data), 11);
	ck_assert_uint_eq(server_read_into(in, sv[0], dst, sizeof(dst)), sizeof(data));
	ck_assert_mem_eq(dst, data, sizeof(data));
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	/* Nothing more: the next call moves nothing and reserves nothing. */
	ck_assert_uint_eq(server_read_into(in, sv[0], dst + sizeof(data), sizeof(dst) - sizeof(data)), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	assert_end_frozen();
	/* Closed by the peer: still 0, the end of file is libevent's to see. */
	close(sv[1]);
	sv[1] = -1;
	ck_assert_uint_eq(server_read_into(in, sv[0], dst, sizeof(dst)), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
}
END_TEST

START_TEST(test_a_frame_already_buffered_does_not_touch_the_socket)
{
	uint8_t frame[300], after[50], dst[300];
	fill(frame, sizeof(frame), 3);
	fill(after, sizeof(after), 4);
	buffered(frame, sizeof(frame));
	buffered(after, 20);
	send_all(after + 20, 30);

	ck_assert_uint_eq(server_read_into(in, sv[0], dst, sizeof(dst)), sizeof(dst));
	ck_assert_mem_eq(dst, frame, sizeof(frame));
	ck_assert_uint_eq(evbuffer_get_length(in), 20);
	ck_assert_uint_eq(socket_left(), 30);
	assert_end_frozen();
}
END_TEST

START_TEST(test_without_an_evbuffer_reads_only_the_frame)
{
	/* A caller with no input evbuffer: the frame's bytes and no more. */
	uint8_t data[600], dst[400];
	send_filled(data, sizeof(data), 8);
	ck_assert_uint_eq(server_read_into(NULL, sv[0], dst, sizeof(dst)), sizeof(dst));
	ck_assert_mem_eq(dst, data, sizeof(dst));
	ck_assert_uint_eq(socket_left(), 200);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker_read");
	TCase *tc = tcase_create("read_into");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rest_of_frame_and_next_request_in_one_read);
	tcase_add_test(tc, test_read_ahead_is_bounded);
	tcase_add_test(tc, test_part_of_the_frame_when_the_socket_has_no_more);
	tcase_add_test(tc, test_a_frame_already_buffered_does_not_touch_the_socket);
	tcase_add_test(tc, test_without_an_evbuffer_reads_only_the_frame);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
