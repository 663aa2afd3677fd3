/* Execs itself with an environment that has no LD_PRELOAD, for tests/tests/preload_chain.rs.
 *
 *   chain_exec report         print LD_PRELOAD, the preloaded libraries in load order, and
 *                             every SHIM_* variable
 *   chain_exec execve-path    execve(self, report) with only PATH in the environment
 *   chain_exec execle         execle(self, report) with an explicit envp without LD_PRELOAD
 *   chain_exec unset-execv    unsetenv("LD_PRELOAD"), then execv(self, report)
 *   chain_exec empty-execve   execve(self, report) with LD_PRELOAD set empty
 *   chain_exec own-list LIB   execve(self, report) with LD_PRELOAD=LIB only
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int print_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    int *count = data;
    const char *n = info->dlpi_name;
    const char *base = strrchr(n, '/');
    base = base ? base + 1 : n;
    if (strncmp(base, "libchain_", 9) == 0 || strcmp(base, "libringbuf_preload.so") == 0)
        printf("%s%s", (*count)++ ? "," : "", base);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "report";
    if (!strcmp(mode, "report")) {
        const char *p = getenv("LD_PRELOAD");
        printf("LD_PRELOAD=%s\nORDER=", p ? p : "(unset)");
        int count = 0;
        dl_iterate_phdr(print_object, &count);
        printf("\n");
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "SHIM_", 5) == 0) printf("%s\n", *e);
        return 0;
    }
    char *self = argv[0];
    char *child[] = {self, "report", NULL};
    if (!strcmp(mode, "execve-path")) {
        char *env[] = {"PATH=/usr/bin:/bin", NULL};
        execve(self, child, env);
    } else if (!strcmp(mode, "execle")) {
        char *env[] = {"FOO=1", NULL};
        execle(self, self, "report", (char *)NULL, env);
    } else if (!strcmp(mode, "unset-execv")) {
        unsetenv("LD_PRELOAD");
        execv(self, child);
    } else if (!strcmp(mode, "empty-execve")) {
        char *env[] = {"LD_PRELOAD=", NULL};
        execve(self, child, env);
    } else if (!strcmp(mode, "own-list") && argc > 2) {
        char pre[4200];
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", argv[2]);
        char *env[] = {pre, NULL};
        execve(self, child, env);
    } else {
        return 2;
    }
    perror("exec");
    return 127;
}
