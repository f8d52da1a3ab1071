/*
 * sys.c — the libc table behind storage/sys.h and the -errno wrappers that
 * every storage file uses.  Short reads and writes are retried here so the
 * callers see all-or-error.
 */
#include "storage/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int libc_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

const struct tm_sys_ops tm_sys_libc = {
	.open = libc_open,
	.close = close,
	.pread = pread,
	.pwrite = pwrite,
	.ftruncate = ftruncate,
	.fsync = fsync,
	.fstat = fstat,
	.rename = rename,
	.unlink = unlink,
	.mkdir = mkdir,
	.rmdir = rmdir,
	.opendir = opendir,
	.readdir = readdir,
	.closedir = closedir,
};

const struct tm_sys_ops *tm_sys = &tm_sys_libc;

void sys_set_ops(const struct tm_sys_ops *ops)
{
	tm_sys = ops ? ops : &tm_sys_libc;
}

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

int sys_open(const char *path, int flags, mode_t mode)
{
	int fd = tm_sys->open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? neg_errno() : fd;
}

void sys_close(int fd)
{
	if (fd >= 0)
		(void)tm_sys->close(fd);
}

ssize_t sys_pread_full(int fd, void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = tm_sys->pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + (int64_t)done));
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return neg_errno();
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int sys_pwrite_full(int fd, const void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	int zero_writes = 0;
	while (done < n) {
		ssize_t r = tm_sys->pwrite(fd, (const uint8_t *)buf + done, n - done,
					   (off_t)(off + (int64_t)done));
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return neg_errno();
		}
		if (r == 0 && ++zero_writes > 3)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

int sys_ftruncate(int fd, int64_t len)
{
	return tm_sys->ftruncate(fd, (off_t)len) < 0 ? neg_errno() : 0;
}

int sys_fsync(int fd)
{
	return tm_sys->fsync(fd) < 0 ? neg_errno() : 0;
}

int64_t sys_file_size(int fd)
{
	struct stat st;
	if (tm_sys->fstat(fd, &st) < 0)
		return neg_errno();
	return (int64_t)st.st_size;
}

int sys_rename(const char *from, const char *to)
{
	return tm_sys->rename(from, to) < 0 ? neg_errno() : 0;
}

int sys_unlink(const char *path)
{
	return tm_sys->unlink(path) < 0 ? neg_errno() : 0;
}

int sys_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char saved = tmp[i];
		tmp[i] = '\0';
		if (tm_sys->mkdir(tmp, mode) < 0 && errno != EEXIST)
			return neg_errno();
		tmp[i] = saved;
	}
	return 0;
}

int sys_remove_dir(const char *path)
{
	DIR *d = tm_sys->opendir(path);
	if (!d)
		return neg_errno();
	int err = 0;
	struct dirent *e;
	char p[PATH_MAX];
	while ((e = tm_sys->readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p)) {
			err = -ENAMETOOLONG;
			continue;
		}
		if (tm_sys->unlink(p) < 0 && errno != ENOENT)
			err = neg_errno();
	}
	tm_sys->closedir(d);
	if (tm_sys->rmdir(path) < 0 && errno != ENOENT && err == 0)
		err = neg_errno();
	return err;
}

int sys_fsync_dir(const char *path)
{
	int fd = sys_open(path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	int err = sys_fsync(fd);
	sys_close(fd);
	return err;
}

int sys_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len,
			  int durable)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	int fd = sys_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	int err = sys_pwrite_full(fd, buf, len, 0);
	if (!err && durable)
		err = sys_fsync(fd);
	sys_close(fd);
	if (!err)
		err = sys_rename(tmp, dst);
	if (err) {
		(void)tm_sys->unlink(tmp);
		return err;
	}
	if (durable)
		err = sys_fsync_dir(dir);
	return err;
}

int sys_read_file(const char *path, size_t limit, uint8_t **buf_out, size_t *len_out)
{
	int fd = sys_open(path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	int64_t size = sys_file_size(fd);
	if (size < 0) {
		sys_close(fd);
		return (int)size;
	}
	if ((uint64_t)size > limit) {
		sys_close(fd);
		return -EFBIG;
	}
	uint8_t *buf = malloc((size_t)size + 1);
	if (!buf) {
		sys_close(fd);
		return -ENOMEM;
	}
	ssize_t r = sys_pread_full(fd, buf, (size_t)size, 0);
	sys_close(fd);
	if (r < 0) {
		free(buf);
		return (int)r;
	}
	buf[r] = 0;
	*buf_out = buf;
	*len_out = (size_t)r;
	return 0;
}

/* cachestat(2): the same number on every architecture with the unified
 * syscall table; the structures as in <linux/mman.h> of Linux 6.5. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct sys_cachestat_range {
	uint64_t off, len;
};

struct sys_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

int sys_range_cached(int fd, int64_t pos, size_t len)
{
	if (pos < 0 || len == 0)
		return -EINVAL;
	/* Kernels before 6.5 (and seccomp filters that do not know it) refuse
	 * the call for good: ask once, then answer at once. */
	static bool unsupported;
	if (unsupported)
		return -ENOSYS;
	struct sys_cachestat_range r = { (uint64_t)pos, len };
	struct sys_cachestat cs;
	if (syscall(__NR_cachestat, fd, &r, &cs, 0) != 0) {
		int err = errno;
		if (err == ENOSYS || err == EPERM) {
			unsupported = true;
			return -ENOSYS;
		}
		return -err;
	}
	static long page;
	if (!page)
		page = sysconf(_SC_PAGESIZE);
	uint64_t pages = (uint64_t)((pos + (int64_t)len - 1) / page - pos / page + 1);
	return cs.nr_cache >= pages;
}
