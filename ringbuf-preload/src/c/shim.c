/*
 * Variadic entry points of the preload library. Stable Rust cannot define C variadic
 * functions, so these read their arguments here and hand a plain argument vector to the Rust
 * hooks (substrate_*), which record the call and perform it through the real function.
 *
 * These functions are hidden: the exported names (execl, open, ...) are Rust naked functions
 * (src/variadic.rs) that jump here with every register and the stack untouched, because a
 * Rust cdylib exports only the symbols Rust defines.
 *
 * Nothing here allocates: execl* collect their arguments into a stack array sized by a first
 * pass over the va_list, so any number of arguments works.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#define HIDDEN __attribute__((visibility("hidden")))

/* Rust side (ringbuf-preload/src/hooks). */
extern int substrate_execl_hook(int op, const char *path, char *const argv[], char *const envp[]);
extern int substrate_open_hook(int sym, int dirfd, const char *path, int flags, unsigned mode);
extern int substrate_clone_hook(int (*fn)(void *), void *stack, int flags, void *arg, pid_t *ptid,
                                void *tls, pid_t *ctid);

/* Kept in step with format::records::proc_op and ringbuf-preload/src/hooks/file.rs. */
enum { OP_EXECL = 5, OP_EXECLP = 6, OP_EXECLE = 7 };
enum { SYM_OPEN = 1, SYM_OPEN64 = 2, SYM_OPENAT = 3, SYM_OPENAT64 = 4 };

/* The mode argument exists only with O_CREAT or O_TMPFILE; reading it otherwise is undefined. */
#define NEEDS_MODE(flags) (((flags) & O_CREAT) || (((flags) & O_TMPFILE) == O_TMPFILE))

/* Count the arguments after `first` up to the NULL terminator (the terminator excluded). */
#define COUNT_ARGS(first, n)                                   \
    do {                                                       \
        va_list ap_;                                           \
        (n) = 0;                                               \
        if ((first) != NULL) {                                 \
            (n) = 1;                                           \
            va_start(ap_, first);                              \
            while (va_arg(ap_, const char *) != NULL) (n)++;   \
            va_end(ap_);                                       \
        }                                                      \
    } while (0)

/*
 * Collect `arg` and the variadic arguments after it into the stack array `argv` (NULL
 * terminated). The copy loop reads the remaining arguments and the NULL terminator (`arg` itself
 * is the terminator when it is NULL), so for execle the next va_arg is envp.
 */
#define COLLECT_ARGV(arg, ap, argv, n)                                         \
    size_t n;                                                                  \
    COUNT_ARGS(arg, n);                                                        \
    const char *argv[n + 1];                                                   \
    va_list ap;                                                                \
    va_start(ap, arg);                                                         \
    argv[0] = arg;                                                             \
    for (size_t i_ = 1; i_ <= n; i_++) argv[i_] = va_arg(ap, const char *);    \
    argv[n] = NULL

HIDDEN int substrate_c_execl(const char *path, const char *arg, ...) {
    COLLECT_ARGV(arg, ap, argv, n);
    va_end(ap);
    return substrate_execl_hook(OP_EXECL, path, (char *const *)argv, NULL);
}

HIDDEN int substrate_c_execlp(const char *file, const char *arg, ...) {
    COLLECT_ARGV(arg, ap, argv, n);
    va_end(ap);
    return substrate_execl_hook(OP_EXECLP, file, (char *const *)argv, NULL);
}

HIDDEN int substrate_c_execle(const char *path, const char *arg, ...) {
    COLLECT_ARGV(arg, ap, argv, n);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return substrate_execl_hook(OP_EXECLE, path, (char *const *)argv, envp);
}

#define OPEN_MODE(flags, mode)              \
    do {                                    \
        (mode) = 0;                         \
        if (NEEDS_MODE(flags)) {            \
            va_list ap_;                    \
            va_start(ap_, flags);           \
            (mode) = va_arg(ap_, unsigned); \
            va_end(ap_);                    \
        }                                   \
    } while (0)

HIDDEN int substrate_c_open(const char *path, int flags, ...) {
    unsigned mode;
    OPEN_MODE(flags, mode);
    return substrate_open_hook(SYM_OPEN, AT_FDCWD, path, flags, mode);
}

HIDDEN int substrate_c_open64(const char *path, int flags, ...) {
    unsigned mode;
    OPEN_MODE(flags, mode);
    return substrate_open_hook(SYM_OPEN64, AT_FDCWD, path, flags, mode);
}

HIDDEN int substrate_c_openat(int dirfd, const char *path, int flags, ...) {
    unsigned mode;
    OPEN_MODE(flags, mode);
    return substrate_open_hook(SYM_OPENAT, dirfd, path, flags, mode);
}

HIDDEN int substrate_c_openat64(int dirfd, const char *path, int flags, ...) {
    unsigned mode;
    OPEN_MODE(flags, mode);
    return substrate_open_hook(SYM_OPENAT64, dirfd, path, flags, mode);
}

/*
 * clone(fn, stack, flags, arg, [ptid, tls, ctid]): the optional arguments are read
 * unconditionally, as glibc's own clone does; unused ones are never looked at by the kernel.
 */
HIDDEN int substrate_c_clone(int (*fn)(void *), void *stack, int flags, void *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    pid_t *ptid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *ctid = va_arg(ap, pid_t *);
    va_end(ap);
    return substrate_clone_hook(fn, stack, flags, arg, ptid, tls, ctid);
}
