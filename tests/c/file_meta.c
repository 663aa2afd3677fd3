/*
 * Every function that changes a file's size, mode, owner, times or extended attributes, as
 * `file_meta DIR`: in DIR, each call once (path, descriptor and `*at` forms), then calls that
 * fail (ENOENT, EBADF, EINVAL, EEXIST, ENODATA) and calls given pointers the kernel refuses or
 * never reads. Each prints "LABEL RET ERRNO" (errno 0 on success), so a run traced must print
 * what a run plain does; tests/tests/file_meta.rs checks the trace line of each call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#define BAD ((char *)1)

#define CALL(label, expr)                                                    \
    do {                                                                     \
        errno = 0;                                                           \
        long r_ = (long)(expr);                                              \
        printf("%s %ld %d\n", label, r_, r_ < 0 ? errno : 0);                \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: file_meta DIR\n");
        return 2;
    }
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + pg, pg, PROT_NONE)) { perror("mmap"); return 2; }
    memset(m, 'a', pg);
    char *none_page = m + pg;       /* PROT_NONE */
    char *unterminated = m + pg - 3; /* "aaa" running into it */

    int fd = open("f", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int dfd = open(".", O_RDONLY | O_DIRECTORY);
    if (fd < 0 || dfd < 0 || symlink("f", "l") != 0) { perror("setup"); return 2; }
    printf("fd %d dfd %d\n", fd, dfd);
    uid_t uid = getuid();
    gid_t gid = getgid();

    /* Size: the whole 64-bit length. */
    CALL("truncate", truncate("f", 5LL << 30));
    CALL("truncate64", truncate64("f", (3LL << 32) + 7));
    CALL("ftruncate", ftruncate(fd, 1));
    CALL("ftruncate64", ftruncate64(fd, 0));
    /* Mode. */
    CALL("chmod", chmod("f", 0755));
    CALL("fchmod", fchmod(fd, 0640));
    CALL("fchmodat", fchmodat(dfd, "f", 0600, 0));
    CALL("fchmodat_nofollow", fchmodat(AT_FDCWD, "f", 0604, AT_SYMLINK_NOFOLLOW));
    CALL("lchmod", lchmod("f", 0644));
    /* Owner: -1 leaves one unchanged. */
    CALL("chown", chown("f", (uid_t)-1, gid));
    CALL("fchown", fchown(fd, uid, (gid_t)-1));
    CALL("lchown", lchown("l", (uid_t)-1, (gid_t)-1));
    CALL("fchownat", fchownat(dfd, "f", uid, gid, AT_SYMLINK_NOFOLLOW));
    CALL("fchownat_empty", fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH));
    /* Times. */
    struct timespec ts1[2] = {{1000000000, 5}, {0, UTIME_OMIT}};
    CALL("utimensat", utimensat(AT_FDCWD, "f", ts1, 0));
    CALL("utimensat_null", utimensat(dfd, "f", NULL, AT_SYMLINK_NOFOLLOW));
    struct timespec ts2[2] = {{0, UTIME_NOW}, {2000000000, 999999999}};
    CALL("futimens", futimens(fd, ts2));
    struct timeval tv[2] = {{1, 2}, {3, 4}};
    CALL("utimes", utimes("f", tv));
    struct utimbuf ub = {5, 6};
    CALL("utime", utime("f", &ub));
    CALL("futimes", futimes(fd, NULL));
    CALL("lutimes", lutimes("l", tv));
    CALL("futimesat", futimesat(dfd, "f", tv));
    CALL("futimesat_null", futimesat(fd, NULL, tv));
    /* Extended attributes (the value is never recorded). */
    CALL("setxattr", setxattr("f", "user.a", "hello", 5, 0));
    CALL("lsetxattr", lsetxattr("f", "user.b", "", 0, XATTR_CREATE));
    CALL("fsetxattr", fsetxattr(fd, "user.c", "xy", 2, XATTR_CREATE));
    CALL("setxattr_exists", setxattr("f", "user.a", "x", 1, XATTR_CREATE));
    CALL("removexattr", removexattr("f", "user.a"));
    CALL("lremovexattr", lremovexattr("f", "user.b"));
    CALL("fremovexattr", fremovexattr(fd, "user.c"));
    CALL("removexattr_missing", removexattr("f", "user.a"));
    /* Failures. */
    CALL("truncate_enoent", truncate("missing/x", 1));
    CALL("truncate_einval", truncate("f", -1));
    CALL("ftruncate_ebadf", ftruncate(-1, 1));
    CALL("chmod_enoent", chmod("missing", 0644));
    CALL("fchmod_ebadf", fchmod(-1, 0644));
    CALL("fchmodat_einval", fchmodat(AT_FDCWD, "f", 0644, 0x7fff0000));
    CALL("fchownat_ebadf", fchownat(-1, "rel", 0, 0, 0));
    CALL("fchown_ebadf", fchown(12345, 0, 0));
    CALL("utimensat_enoent", utimensat(AT_FDCWD, "missing", NULL, 0));
    struct timespec bad_ns[2] = {{7, 1000000000}, {8, 0}};
    CALL("utimensat_einval", utimensat(AT_FDCWD, "f", bad_ns, 0));
    CALL("futimens_ebadf", futimens(-1, ts2));
    CALL("setxattr_enoent", setxattr("missing", "user.a", "v", 1, 0));
    CALL("fsetxattr_ebadf", fsetxattr(-1, "user.a", "v", 1, 0));
    CALL("fremovexattr_ebadf", fremovexattr(-1, "user.a"));
    /* Pointers the kernel refuses (EFAULT: nothing is read), or never reads. */
    CALL("chmod_badpath", chmod(BAD, 0644));
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    CALL("utimensat_omit_nonepath", utimensat(AT_FDCWD, none_page, omit, 0));
    CALL("utimensat_badtimes", utimensat(AT_FDCWD, "f", (struct timespec *)BAD, 0));
    CALL("futimens_badtimes", futimens(-1, (struct timespec *)none_page));
    CALL("setxattr_badname", setxattr("f", BAD, "v", 1, 0));
    CALL("fsetxattr_ebadf_nonename", fsetxattr(-1, none_page, "v", 1, 0));
    CALL("removexattr_unterminated", removexattr("f", unterminated));

    struct stat st;
    if (stat("f", &st) != 0) { perror("stat"); return 2; }
    printf("size %lld mode %o atime %lld.%09ld mtime %lld.%09ld\n", (long long)st.st_size,
           (unsigned)(st.st_mode & 07777), (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    return 0;
}
