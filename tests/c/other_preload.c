/* Another LD_PRELOAD library that also hooks execve: it must keep its place and keep working. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
int execve(const char *p, char *const a[], char *const e[]) {
    int (*real)(const char *, char *const[], char *const[]) = dlsym(RTLD_NEXT, "execve");
    return real(p, a, e);
}
