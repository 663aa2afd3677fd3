/*
 * Calls given pointers the kernel refuses, as the test suites of libc, the kernel and language
 * runtimes make on purpose: `bad_pointers CALL`. Each mode makes one call and prints
 * "call=CALL ret=R errno=E"; run plain and traced (tests/tests/bad_pointers.rs), the output
 * and the way the process ends must be the same.
 *
 * Three kinds of bad pointer: (char *)1 (page 0, never mapped), a pointer into a PROT_NONE
 * page (mapped, so a mincore-style check would pass it), and a string that runs into such a
 * page before its NUL (readable at its start).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

extern char **environ;

#define BAD ((char *)1)

static char *none_page; /* PROT_NONE */
static char *unterminated; /* "abc" at the end of a readable page, PROT_NONE after it */

static void setup(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); exit(2); }
    memset(m, 'a', pg);
    if (mprotect(m + pg, pg, PROT_NONE)) { perror("mprotect"); exit(2); }
    none_page = m + pg;
    unterminated = m + pg - 3;
}

static void report(const char *call, long ret, int e) {
    printf("call=%s ret=%ld errno=%d\n", call, ret, e);
    fflush(stdout);
}

static int sock(int type) {
    int s = socket(AF_INET, type, 0);
    if (s < 0) { perror("socket"); exit(2); }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: bad_pointers CALL\n"); return 2; }
    setup();
    const char *c = argv[1];
    char *good_argv[] = {"true", NULL};
    char *bad_elem_argv[] = {"true", BAD, NULL};
    char *none_elem_argv[] = {"true", none_page, NULL};
    char *bad_elem_envp[] = {"A=1", BAD, NULL};
    char *unterminated_envp[] = {"A=1", unterminated, NULL};
    long r = -2;
    errno = 0;
#define IS(name) (!strcmp(c, name))
    if (IS("open")) r = open(BAD, O_RDONLY);
    else if (IS("open_none")) r = open(none_page, O_RDONLY);
    else if (IS("open_unterminated")) r = open(unterminated, O_RDONLY);
    else if (IS("open_creat")) r = open(BAD, O_CREAT | O_WRONLY, 0644);
    else if (IS("open_tmpfile_einval")) r = open(BAD, O_TMPFILE | O_RDONLY, 0600); /* EINVAL before the path is read */
    else if (IS("openat")) r = openat(AT_FDCWD, BAD, O_RDONLY);
    else if (IS("openat_badfd")) r = openat(-5, none_page, O_RDONLY);
    else if (IS("creat")) r = creat(BAD, 0644);
    else if (IS("fopen")) { FILE *f = fopen(BAD, "r"); r = f ? 1 : 0; }
    else if (IS("fopen_none")) { FILE *f = fopen(none_page, "w"); r = f ? 1 : 0; }
    else if (IS("fopen_badmode")) { FILE *f = fopen(BAD, "z"); r = f ? 1 : 0; } /* EINVAL before the open */
    else if (IS("unlink")) r = unlink(BAD);
    else if (IS("unlinkat_badflags")) r = unlinkat(AT_FDCWD, BAD, 0x7fff0000); /* EINVAL first */
    else if (IS("rmdir")) r = rmdir(none_page);
    else if (IS("mkdir")) r = mkdir(BAD, 0755);
    else if (IS("mkdirat")) r = mkdirat(AT_FDCWD, unterminated, 0755);
    else if (IS("rename_old")) r = rename(BAD, "rename-target");
    else if (IS("rename_new")) r = rename(argv[0], BAD);
    else if (IS("rename_new_none")) r = rename(argv[0], none_page);
    else if (IS("renameat2_badflags")) r = renameat2(AT_FDCWD, BAD, AT_FDCWD, BAD, 0x7fff0000);
    else if (IS("link_new")) r = link(argv[0], BAD);
    else if (IS("symlink_target")) r = symlink(BAD, "symlink-made");
    else if (IS("chdir")) r = chdir(BAD);
    else if (IS("chdir_unterminated")) r = chdir(unterminated);
    else if (IS("truncate")) r = truncate(BAD, 0);
    else if (IS("truncate_negative")) r = truncate(BAD, -1); /* EINVAL before the path is read */
    else if (IS("chmod")) r = chmod(BAD, 0644);
    else if (IS("fchmodat_badflags")) r = fchmodat(AT_FDCWD, BAD, 0644, 0x7fff0000); /* EINVAL before the path is read */
    else if (IS("lchmod_none")) r = lchmod(none_page, 0644);
    else if (IS("chown_none")) r = chown(none_page, (uid_t)-1, (gid_t)-1);
    else if (IS("fchownat_badfd")) r = fchownat(-5, unterminated, 0, 0, 0);
    else if (IS("utimensat_path")) r = utimensat(AT_FDCWD, BAD, NULL, 0);
    else if (IS("utimensat_times")) r = utimensat(AT_FDCWD, ".", (struct timespec *)none_page, 0);
    else if (IS("utimensat_omit_badpath")) {
        /* Both times UTIME_OMIT: the kernel succeeds without looking at the path. */
        struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        r = utimensat(AT_FDCWD, BAD, omit, 0);
    }
    else if (IS("futimens_times")) {
        int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
        r = futimens(fd, (struct timespec *)unterminated);
    }
    else if (IS("utimes_times")) r = utimes(".", (struct timeval *)BAD); /* glibc reads it first */
    else if (IS("setxattr_name")) r = setxattr(".", BAD, "v", 1, 0);
    else if (IS("setxattr_path")) r = setxattr(BAD, "user.a", "v", 1, 0);
    else if (IS("lremovexattr_unterminated")) r = lremovexattr(".", unterminated);
    else if (IS("opendir_unterminated")) { DIR *d = opendir(unterminated); r = d ? 1 : 0; }
    else if (IS("execve_path")) r = execve(BAD, good_argv, environ);
    else if (IS("execve_path_none")) r = execve(none_page, good_argv, environ);
    else if (IS("execve_path_unterminated")) r = execve(unterminated, good_argv, environ);
    else if (IS("execve_argv")) r = execve("/bin/true", (char **)BAD, environ);
    else if (IS("execve_argv_none")) r = execve("/bin/true", (char **)none_page, environ);
    else if (IS("execve_argv_elem")) r = execve("/bin/true", bad_elem_argv, environ);
    else if (IS("execve_argv_elem_none")) r = execve("/bin/true", none_elem_argv, environ);
    else if (IS("execve_envp")) r = execve("/bin/true", good_argv, (char **)BAD);
    else if (IS("execve_envp_elem")) r = execve("/bin/true", good_argv, bad_elem_envp);
    else if (IS("execve_envp_elem_unterminated")) r = execve("/bin/true", good_argv, unterminated_envp);
    else if (IS("execve_missing_bad_argv")) r = execve("/nonexistent/prog", (char **)BAD, environ); /* ENOENT first */
    else if (IS("execv_argv_elem")) r = execv("/bin/true", bad_elem_argv);
    else if (IS("execvp_argv")) r = execvp("true", (char **)BAD);
    else if (IS("execvp_argv_elem")) r = execvp("true", bad_elem_argv);
    else if (IS("execvp_slash_path_elem")) r = execvp("/bin/true", none_elem_argv);
    else if (IS("execvpe_envp_elem")) r = execvpe("true", good_argv, bad_elem_envp);
    else if (IS("execvp_environ_elem")) {
        static char *env[] = {"PATH=/usr/bin:/bin", BAD, NULL};
        environ = env;
        r = execvp("true", good_argv);
    }
    else if (IS("execl_elem")) r = execl("/bin/true", "true", BAD, (char *)NULL);
    else if (IS("execle_envp")) r = execle("/bin/true", "true", (char *)NULL, (char **)BAD);
    else if (IS("execveat_path")) r = execveat(AT_FDCWD, BAD, good_argv, environ, 0);
    else if (IS("fexecve_argv_elem")) {
        int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
        r = fexecve(fd, bad_elem_argv, environ);
    }
    else if (IS("posix_spawn_argv_elem") || IS("posix_spawn_path") || IS("posix_spawn_envp_elem") ||
             IS("posix_spawnp_argv_elem") || IS("posix_spawn_argv")) {
        pid_t pid = 0;
        const char *path = IS("posix_spawn_path") ? BAD : "/bin/true";
        char **av = IS("posix_spawn_argv") ? (char **)BAD : IS("posix_spawn_envp_elem") ? good_argv : bad_elem_argv;
        char **ev = IS("posix_spawn_envp_elem") ? bad_elem_envp : environ;
        r = IS("posix_spawnp_argv_elem") ? posix_spawnp(&pid, "true", NULL, NULL, av, ev)
                                         : posix_spawn(&pid, path, NULL, NULL, av, ev);
        if (r == 0) {
            int st;
            waitpid(pid, &st, 0);
        }
    }
    else if (IS("system")) r = system(BAD);
    else if (IS("popen")) { FILE *p = popen(none_page, "r"); r = p ? 1 : 0; if (p) pclose(p); }
    else if (IS("connect")) r = connect(sock(SOCK_STREAM), (struct sockaddr *)BAD, sizeof(struct sockaddr_in));
    else if (IS("connect_none")) r = connect(sock(SOCK_STREAM), (struct sockaddr *)none_page, sizeof(struct sockaddr_in));
    else if (IS("connect_badfd")) r = connect(-1, (struct sockaddr *)BAD, sizeof(struct sockaddr_in)); /* EBADF first */
    else if (IS("connect_toolong")) r = connect(sock(SOCK_STREAM), (struct sockaddr *)BAD, 4096); /* EINVAL first */
    else if (IS("bind")) r = bind(sock(SOCK_STREAM), (struct sockaddr *)BAD, sizeof(struct sockaddr_in));
    else if (IS("bind_notsock")) r = bind(0, (struct sockaddr *)BAD, sizeof(struct sockaddr_in)); /* ENOTSOCK first */
    else if (IS("sendto")) r = sendto(sock(SOCK_DGRAM), "x", 1, 0, (struct sockaddr *)BAD, sizeof(struct sockaddr_in));
    else if (IS("sendmsg")) r = sendmsg(sock(SOCK_DGRAM), (struct msghdr *)BAD, 0);
    else if (IS("sendmsg_badfd")) r = sendmsg(-1, (struct msghdr *)BAD, 0); /* EBADF first */
    else if (IS("devtty")) r = open("/dev/tty", O_RDWR | O_NOCTTY);
    else { fprintf(stderr, "unknown call %s\n", c); return 2; }
    report(c, r, errno);
    return 0;
}
