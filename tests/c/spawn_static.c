/* A dynamic (traced) program that starts a static one: posix_spawn of `STATIC leaf` (exit 7),
 * then an exec of a copy of it that is not executable (EACCES: the exec fails and the program
 * goes on, traced as before), then opens a file and exits 0.
 *
 *   spawn_static STATIC NOEXEC_COPY
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    pid_t pid;
    char *leaf[] = {argv[1], "leaf", NULL};
    fflush(stdout);
    int r = posix_spawn(&pid, argv[1], NULL, NULL, leaf, environ);
    if (r != 0) {
        printf("spawn: %s\n", strerror(r));
        return 1;
    }
    int st;
    waitpid(pid, &st, 0);
    printf("spawned: %d\n", WEXITSTATUS(st));
    char *bad[] = {argv[2], "leaf", NULL};
    execv(argv[2], bad);
    printf("exec: %s\n", strerror(errno));
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0)
        close(fd);
    return 0;
}
