/*
 * One program, many scenarios of ../shared/design/interception.md: `scenarios MODE ARGS...`.
 * Each mode does one thing the preload library must get right; the Rust tests run it traced
 * and check the decoded records. Output on stdout is checked too (the program must behave as
 * without the library).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

extern char **environ;

static int wait_child(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return st;
}

/* Run /bin/echo TAG through the named function. */
static int exec_by(const char *fn, const char *tag) {
    char *argv[] = {"echo", (char *)tag, NULL};
    if (!strcmp(fn, "posix_spawn") || !strcmp(fn, "posix_spawnp")) {
        pid_t pid;
        int r = !strcmp(fn, "posix_spawn") ? posix_spawn(&pid, "/bin/echo", NULL, NULL, argv, environ)
                                          : posix_spawnp(&pid, "echo", NULL, NULL, argv, environ);
        if (r) { printf("spawn failed %d\n", r); return 1; }
        wait_child(pid);
        return 0;
    }
    if (!strcmp(fn, "system")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "/bin/echo %s", tag);
        int st = system(cmd);
        printf("system status %d\n", WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(fn, "popen")) {
        char cmd[256], buf[256];
        snprintf(cmd, sizeof cmd, "/bin/echo %s", tag);
        FILE *p = popen(cmd, "r");
        if (!p) { perror("popen"); return 1; }
        while (fgets(buf, sizeof buf, p)) printf("popen read %s", buf);
        printf("pclose %d\n", pclose(p));
        return 0;
    }
    if (!strcmp(fn, "execve")) execve("/bin/echo", argv, environ);
    else if (!strcmp(fn, "execv")) execv("/bin/echo", argv);
    else if (!strcmp(fn, "execvp")) execvp("echo", argv);
    else if (!strcmp(fn, "execvpe")) execvpe("echo", argv, environ);
    else if (!strcmp(fn, "execl")) execl("/bin/echo", "echo", tag, (char *)NULL);
    else if (!strcmp(fn, "execlp")) execlp("echo", "echo", tag, (char *)NULL);
    else if (!strcmp(fn, "execle")) execle("/bin/echo", "echo", tag, (char *)NULL, environ);
    else if (!strcmp(fn, "fexecve")) {
        int fd = open("/bin/echo", O_RDONLY | O_CLOEXEC);
        fexecve(fd, argv, environ);
    } else if (!strcmp(fn, "execveat")) {
        int dfd = open("/bin", O_RDONLY | O_DIRECTORY);
        syscall(0); /* keep errno clean */
        execveat(dfd, "echo", argv, environ, 0);
    }
    printf("%s failed: errno %d\n", fn, errno);
    return 1;
}

static void *opener(void *arg) {
    volatile int *stop = arg;
    while (!*stop) close(open("/etc/hostname", O_RDONLY));
    return NULL;
}

struct forker { int n; };
static void *forker_main(void *arg) {
    struct forker *f = arg;
    for (int i = 0; i < f->n; i++) {
        pid_t pid = fork();
        if (pid == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
        if (pid > 0) wait_child(pid);
    }
    return NULL;
}

static long numbered_per = 0;
static void *numbered_thread(void *arg) {
    long t = (long)arg;
    char path[64];
    extern long numbered_count;
    for (long i = 0; i < numbered_count; i++) {
        snprintf(path, sizeof path, "/nonexistent/t%ld/%ld", t, i);
        open(path, O_RDONLY);
    }
    return NULL;
}
long numbered_count = 0;

static void on_alarm(int sig) {
    (void)sig;
    int e = errno;
    close(open("/etc/hostname", O_RDONLY));
    errno = e;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: scenarios MODE ...\n"); return 2; }
    const char *m = argv[1];
    if (!strcmp(m, "exec") && argc == 4) return exec_by(argv[2], argv[3]);
    if (!strcmp(m, "execl-0")) { const char *no_args = NULL; execl("/bin/echo", no_args, (char *)NULL); return 1; }
    if (!strcmp(m, "execl-1")) { execl("/bin/echo", "echo", (char *)NULL); return 1; }
    if (!strcmp(m, "execl-30")) {
        execl("/bin/echo", "echo", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12",
              "a13", "a14", "a15", "a16", "a17", "a18", "a19", "a20", "a21", "a22", "a23", "a24", "a25",
              "a26", "a27", "a28", "a29", (char *)NULL);
        return 1;
    }
    if (!strcmp(m, "execlp-30")) {
        execlp("echo", "echo", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12",
               "a13", "a14", "a15", "a16", "a17", "a18", "a19", "a20", "a21", "a22", "a23", "a24", "a25",
               "a26", "a27", "a28", "a29", (char *)NULL);
        return 1;
    }
    if (!strcmp(m, "execle-env")) {
        char *env[] = {"FOO=bar", "PATH=/usr/bin:/bin", NULL};
        execle("/usr/bin/env", "env", (char *)NULL, env);
        return 1;
    }
    if (!strcmp(m, "execvp") && argc >= 3) { execvp(argv[2], argv + 2); printf("execvp errno %d\n", errno); return 1; }
    if (!strcmp(m, "exec-fail") && argc == 3) {
        char *a[] = {"x", NULL};
        errno = 0;
        int r = execve(argv[2], a, environ);
        printf("execve %d errno %d\n", r, errno);
        return 0;
    }
    if (!strcmp(m, "clearenv")) {
        clearenv();
        char *a[] = {"sh", "-c", "/bin/echo TAG", NULL};
        setenv("PATH", "/usr/bin:/bin", 1);
        execvp("sh", a);
        return 1;
    }
    if (!strcmp(m, "unset-system")) { unsetenv("LD_PRELOAD"); return WEXITSTATUS(system("/bin/echo TAG")); }
    if (!strcmp(m, "unset-popen")) {
        unsetenv("LD_PRELOAD");
        char buf[64];
        FILE *p = popen("/bin/echo TAG", "r");
        while (p && fgets(buf, sizeof buf, p)) fputs(buf, stdout);
        return p ? WEXITSTATUS(pclose(p)) : 1;
    }
    if (!strcmp(m, "custom-envp")) {
        char *a[] = {"sh", "-c", "/bin/echo TAG; echo LD_PRELOAD=$LD_PRELOAD", NULL};
        char *env[] = {"PATH=/usr/bin:/bin", NULL};
        execve("/bin/sh", a, env);
        return 1;
    }
    if (!strcmp(m, "threads-fork") && argc == 4) {
        int nt = atoi(argv[2]), n = atoi(argv[3]);
        volatile int stop = 0;
        pthread_t op, th[128];
        struct forker f = {n};
        pthread_create(&op, NULL, opener, (void *)&stop);
        for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, forker_main, &f);
        for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
        stop = 1;
        pthread_join(op, NULL);
        printf("done\n");
        return 0;
    }
    if (!strcmp(m, "signal-open")) {
        signal(SIGALRM, on_alarm);
        struct itimerval it = {{0, 1000}, {0, 1000}};
        setitimer(ITIMER_REAL, &it, NULL);
        for (int i = 0; i < 20000; i++) close(open("/etc/passwd", O_RDONLY));
        it.it_value.tv_usec = 0; it.it_interval.tv_usec = 0;
        setitimer(ITIMER_REAL, &it, NULL);
        printf("done\n");
        return 0;
    }
    if (!strcmp(m, "vfork-exec") || !strcmp(m, "vfork-exit")) {
        volatile int sentinel = 42;
        pid_t pid = vfork();
        if (pid == 0) {
            if (!strcmp(m, "vfork-exec")) execl("/bin/echo", "echo", "TAG", (char *)NULL);
            _exit(7);
        }
        int st = wait_child(pid);
        printf("status %d sentinel %d\n", WEXITSTATUS(st), sentinel);
        return 0;
    }
    if (!strcmp(m, "clone3")) {
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.exit_signal = SIGCHLD;
        long pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid == 0) { execl("/bin/echo", "echo", "TAG", (char *)NULL); _exit(127); }
        if (pid < 0) { printf("clone3 unsupported %d\n", errno); return 0; }
        wait_child((pid_t)pid);
        printf("child %ld\n", pid);
        return 0;
    }
    if (!strcmp(m, "files") && argc == 3) {
        const char *d = argv[2];
        int fd = open(d, O_TMPFILE | O_RDWR, 0600);
        printf("tmpfile %d\n", fd >= 0);
        close(fd);
        if (chdir(d) != 0) return 1;
        FILE *f = fopen("x", "w");
        fclose(f);
        errno = 0;
        fd = open("/nonexistent/y", O_RDONLY);
        printf("open missing %d errno %d\n", fd, errno);
        mkdir("sub", 0750);
        int dfd = open("sub", O_RDONLY | O_DIRECTORY);
        fd = openat(dfd, "rel", O_WRONLY | O_CREAT, 0640);
        close(fd);
        errno = 0;
        fd = openat(-5, "x", O_RDONLY);
        printf("openat -5 %d errno %d\n", fd, errno);
        rename("x", "x2");
        link("x2", "x3");
        symlink("x2", "x4");
        truncate("x2", 5);
        unlink("x3");
        unlink("x4");
        unlinkat(dfd, "rel", 0);
        rmdir("sub");
        creat("c", 0600);
        char tmpl[] = "tmpXXXXXX";
        close(mkstemp(tmpl));
        printf("mkstemp %s\n", tmpl);
        fclose(tmpfile());
        closedir(opendir("."));
        struct dirent **names;
        int n = scandir(".", &names, NULL, alphasort);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        printf("scandir %d\n", n);
        return 0;
    }
    if (!strcmp(m, "fortify")) {
        volatile int fl = O_RDONLY;
        int fd = open("/etc/hostname", fl);
        printf("fd %d\n", fd >= 0);
        return 0;
    }
    if (!strcmp(m, "errno")) {
        printf("errno at main %d\n", errno);
        errno = 1234;
        int fd = open("/etc/hostname", O_RDONLY);
        printf("after open %d\n", errno);
        close(fd);
        open("/nonexistent", O_RDONLY);
        printf("after failed open %d\n", errno);
        errno = 77;
        pid_t p = fork();
        if (p == 0) _exit(errno == 77 ? 0 : 1);
        int st = wait_child(p);
        printf("after fork %d child %d\n", errno, WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(m, "closefrom")) {
        syscall(SYS_close_range, 3, ~0U, 0);
        close(open("/etc/hostname", O_RDONLY));
        printf("done\n");
        return 0;
    }
    if (!strcmp(m, "opens") && argc == 3) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) close(open("/etc/hostname", O_RDONLY));
        return 0;
    }
    if (!strcmp(m, "numbered-opens") && argc == 4) {
        long n = atol(argv[2]), us = atol(argv[3]);
        char path[64];
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "/nonexistent/numbered/%ld", i);
            open(path, O_RDONLY);
            if (us) usleep((useconds_t)us);
        }
        return 0;
    }
    if (!strcmp(m, "threaded-numbered") && argc == 4) {
        int nt = atoi(argv[2]);
        numbered_count = atol(argv[3]);
        (void)numbered_per;
        pthread_t th[64];
        for (long t = 0; t < nt && t < 64; t++) pthread_create(&th[t], NULL, numbered_thread, (void *)t);
        for (long t = 0; t < nt && t < 64; t++) pthread_join(th[t], NULL);
        return 0;
    }
    if (!strcmp(m, "nothing")) return 0;
    if (!strcmp(m, "exit-code") && argc == 3) exit(atoi(argv[2]));
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
