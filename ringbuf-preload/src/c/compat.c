/*
 * Old-glibc compatibility: hidden definitions, inside this library only, of the libc symbols
 * that Rust's standard library and the static unwinder (libgcc_eh) reference under symbol
 * versions newer than older LTS distributions have (glibc 2.33-2.35: fstat64, stat64,
 * pthread_key_*, pthread_once, _dl_find_object). Linked whole, they satisfy those references
 * at link time, so the library needs no symbol version newer than glibc 2.18.
 *
 * None of them is on a path the library takes in a traced program: it has no thread-local
 * destructors, never unwinds (panic = abort), and reads files only with raw system calls. They
 * are correct anyway: the stat functions are the system calls, the key functions forward to
 * glibc's (found without a versioned reference), pthread_once runs its function once, and
 * _dl_find_object reports "not found", which makes the unwinder use dl_iterate_phdr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN int fstat64(int fd, void *st) { return (int)syscall(SYS_newfstatat, fd, "", st, AT_EMPTY_PATH); }

HIDDEN int stat64(const char *path, void *st) { return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, 0); }

/* The real functions, found by the library's own symbol lookup (src/symbols.rs), wherever this
 * glibc has them (libc.so.6 from 2.34, libpthread.so.0 before). */
extern void *substrate_next_symbol(const char *name);

#define FORWARD(ret, name, params, args, fallback)                              \
    HIDDEN ret name params {                                                    \
        static ret(*real) params;                                               \
        if (!real) real = (ret(*) params)substrate_next_symbol(#name);          \
        return real ? real args : (fallback);                                   \
    }

FORWARD(int, pthread_key_create, (unsigned *key, void (*destructor)(void *)), (key, destructor), EAGAIN)
FORWARD(int, pthread_key_delete, (unsigned key), (key), EINVAL)
FORWARD(int, pthread_setspecific, (unsigned key, const void *value), (key, value), EINVAL)

HIDDEN int __pthread_key_create(unsigned *key, void (*destructor)(void *)) { return pthread_key_create(key, destructor); }

/* 0: not run; 1: running; 2: done (the same states glibc uses, so either implementation may
 * see the other's flag). */
HIDDEN int pthread_once(int *once, void (*fn)(void)) {
    int expected = 0;
    if (__atomic_compare_exchange_n(once, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        fn();
        __atomic_store_n(once, 2, __ATOMIC_RELEASE);
        return 0;
    }
    while (__atomic_load_n(once, __ATOMIC_ACQUIRE) != 2) {
    }
    return 0;
}

HIDDEN int _dl_find_object(void *pc, void *result) {
    (void)pc;
    (void)result;
    return -1;
}

/* Referenced weakly (glibc 2.30 and 2.28), but a version reference is required even for weak
 * symbols: defined here so the library loads on glibc 2.17 onwards. */
HIDDEN pid_t gettid(void) { return (pid_t)syscall(SYS_gettid); }

HIDDEN int statx(int dirfd, const char *path, int flags, unsigned mask, void *buf) {
    return (int)syscall(SYS_statx, dirfd, path, flags, mask, buf);
}
