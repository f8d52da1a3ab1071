/*
 * sys.h — the storage engine's synchronous system calls, through a table.
 *
 * Everything storage/ does to the file system outside io_uring (opening
 * segments, reading headers during recovery, writing index and checkpoint
 * files, renaming, unlinking, listing directories) goes through the function
 * pointers of `tm_sys`, the way SQLite's os_unix.c does.  The default table
 * is libc; a test installs its own table with sys_set_ops() to inject EIO,
 * ENOSPC or short writes into any call and checks that the log reports the
 * error instead of crashing or corrupting data.
 *
 * The sys_* wrappers below return 0 / a byte count / a descriptor, or a
 * negative errno, never -1 with errno: the house convention.
 * Single-threaded: the table is swapped only while no log is in use by
 * another thread (tests only).
 */
#ifndef TM_STORAGE_SYS_H
#define TM_STORAGE_SYS_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct tm_sys_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*ftruncate)(int fd, off_t len);
	int (*fsync)(int fd);
	int (*fstat)(int fd, struct stat *st);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	DIR *(*opendir)(const char *path);
	struct dirent *(*readdir)(DIR *d);
	int (*closedir)(DIR *d);
};

/* The libc table, and the one in use (never NULL). */
extern const struct tm_sys_ops tm_sys_libc;
extern const struct tm_sys_ops *tm_sys;

/* Installs a table (NULL restores libc).  The caller keeps `ops` alive. */
void sys_set_ops(const struct tm_sys_ops *ops);

/* Returns a descriptor or -errno. */
int sys_open(const char *path, int flags, mode_t mode);
void sys_close(int fd);
/* Reads up to n bytes at off, retrying short reads; returns bytes read
 * (less than n only at end of file) or -errno. */
ssize_t sys_pread_full(int fd, void *buf, size_t n, int64_t off);
/* Writes all n bytes at off, retrying short writes; 0 or -errno
 * (-EIO when the kernel keeps writing nothing). */
int sys_pwrite_full(int fd, const void *buf, size_t n, int64_t off);
int sys_ftruncate(int fd, int64_t len);
int sys_fsync(int fd);
/* File size in bytes, or -errno. */
int64_t sys_file_size(int fd);
int sys_rename(const char *from, const char *to);
int sys_unlink(const char *path);
/* Creates the directory and its missing parents; 0 when it exists. */
int sys_mkdir_p(const char *path, mode_t mode);
/* Removes a directory and the regular files in it (one level). */
int sys_remove_dir(const char *path);
/* fsyncs a directory so a rename or create in it survives a crash. */
int sys_fsync_dir(const char *path);
/* Replaces dir/name with exactly `len` bytes: writes dir/name.tmp, fsyncs it
 * when `durable`, renames it over dir/name (and fsyncs dir when durable). */
int sys_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len,
			  int durable);
/* Reads a whole small file (at most limit bytes) into a malloc'd buffer the
 * caller frees.  -ENOENT when missing, -EFBIG when larger than limit. */
int sys_read_file(const char *path, size_t limit, uint8_t **buf_out, size_t *len_out);
/* Whether every page of [pos, pos + len) of fd is in the page cache (dirty
 * pages count), asked with cachestat(2) (Linux 6.5), which reads nothing:
 * 1 or 0, or -errno (-ENOSYS: a kernel that cannot tell).  A query, not
 * in the injectable table. */
int sys_range_cached(int fd, int64_t pos, size_t len);

#endif
