/* Loads shared objects at run time for tests/tests/loaded_objects.rs. Linked with -lm (a
 * library the loader maps before main) and -ldl.
 *
 *   objects dlopen LIB              dlopen LIB, call it, read a data file, return from main
 *   objects reload LIB              dlopen, dlclose, dlopen LIB again
 *   objects fork LIB LIB2           dlopen LIB, fork; the child dlopens LIB2 and _exits
 *   objects exec LIB                dlopen LIB, then exec /bin/true
 *   objects threads LIB             start a thread, dlopen LIB while it runs, exit()
 *   objects signal LIB              dlopen LIB, then _exit from a signal handler
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *load(const char *path) {
    void *h = dlopen(path, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    int (*f)(void) = (int (*)(void))dlsym(h, "plugin_value");
    printf("%s %d\n", path, f ? f() : -1);
    return h;
}

static void *sleeper(void *arg) {
    (void)arg;
    sleep(5);
    return NULL;
}

static void on_usr1(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1], *lib = argv[2];
    /* libm, so that it is needed at start. */
    volatile double x = 2.0;
    printf("sqrt %.0f\n", sqrt(x * 8.0));
    fflush(stdout);
    if (!strcmp(mode, "dlopen")) {
        load(lib);
        int fd = open("data.txt", O_RDONLY);
        if (fd >= 0) close(fd);
        return 0;
    }
    if (!strcmp(mode, "reload")) {
        dlclose(load(lib));
        load(lib);
        return 0;
    }
    if (!strcmp(mode, "fork") && argc > 3) {
        load(lib);
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            load(argv[3]);
            fflush(stdout);
            _exit(0);
        }
        int st;
        waitpid(p, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    }
    if (!strcmp(mode, "exec")) {
        load(lib);
        fflush(stdout);
        execl("/bin/true", "true", (char *)NULL);
        return 127;
    }
    if (!strcmp(mode, "threads")) {
        pthread_t t;
        pthread_create(&t, NULL, sleeper, NULL);
        load(lib);
        fflush(stdout);
        exit(0);
    }
    if (!strcmp(mode, "signal")) {
        load(lib);
        fflush(stdout);
        signal(SIGUSR1, on_usr1);
        raise(SIGUSR1);
        return 1;
    }
    return 2;
}
