/*
 * tm_log.h — one line per event: "2026-11-25T09:30:00.123Z INFO storage: text".
 * Error lines should say what a person can do about them.
 */
#ifndef TM_LOG_H
#define TM_LOG_H

enum tm_log_level { TM_LOG_DEBUG, TM_LOG_INFO, TM_LOG_WARN, TM_LOG_ERROR };

extern enum tm_log_level tm_log_min_level;

void tm_log(enum tm_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define tm_debug(mod, ...) tm_log(TM_LOG_DEBUG, mod, __VA_ARGS__)
#define tm_info(mod, ...) tm_log(TM_LOG_INFO, mod, __VA_ARGS__)
#define tm_warn(mod, ...) tm_log(TM_LOG_WARN, mod, __VA_ARGS__)
#define tm_error(mod, ...) tm_log(TM_LOG_ERROR, mod, __VA_ARGS__)

#endif
