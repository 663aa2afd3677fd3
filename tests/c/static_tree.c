/* A process tree built by a static program (linked with -static by the tests).
 *
 *   static_tree            open a file, fork+exec a dynamic child (/bin/echo), fork+exec
 *                          itself as a static leaf (exit 7), fork a child that _exits 3,
 *                          kill a forked child with SIGTERM, exit 5
 *   static_tree leaf       print and exit 7
 *   static_tree slow N     N times: fork+exec /bin/true and wait, sleep 100 ms; exit 9
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int run(char *const argv[]) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "leaf") == 0) {
        printf("leaf\n");
        return 7;
    }
    if (argc > 2 && strcmp(argv[1], "slow") == 0) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            char *t[] = {"/bin/true", NULL};
            if (run(t) != 0)
                return 1;
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        printf("slow done\n");
        return 9;
    }
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0)
        close(fd);
    char *echo[] = {"/bin/echo", "dynamic", "child", NULL};
    printf("echo: %d\n", run(echo));
    char *leaf[] = {argv[0], "leaf", NULL};
    printf("leaf: %d\n", run(leaf));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0)
        _exit(3);
    int st;
    waitpid(c, &st, 0);
    printf("fork: %d\n", WEXITSTATUS(st));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    kill(c, SIGTERM);
    waitpid(c, &st, 0);
    printf("killed: %d\n", WTERMSIG(st));
    return 5;
}
