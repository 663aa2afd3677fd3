/* A library of a preload chain (tests/tests/preload_chain.rs), built once per name with
 * -DNAME='"..."' -DMARKS='"/path/of/marks"' and, for one of them, -DMUST_BE_FIRST.
 *
 * Its constructor appends "NAME PID" to MARKS. With MUST_BE_FIRST it behaves like a sanitizer
 * runtime that refuses to lose its place: unless it is the first entry of LD_PRELOAD and the
 * first object the loader mapped after the program, it says so on stderr and the process
 * exits with status 97 before main. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MUST_BE_FIRST
static int first_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    const char *n = info->dlpi_name;
    if (n[0] == '\0' || strncmp(n, "linux-", 6) == 0) return 0; /* the program, the vDSO */
    *(const char **)data = n;
    return 1;
}

static int is_me(const char *path) {
    const char *base = strrchr(path, '/');
    return strcmp(base ? base + 1 : path, "lib" NAME ".so") == 0;
}
#endif

__attribute__((constructor)) static void init(void) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", NAME, (int)getpid());
    int fd = open(MARKS, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, line, n) != n) _exit(98);
        close(fd);
    }
#ifdef MUST_BE_FIRST
    const char *pre = getenv("LD_PRELOAD");
    char first[4096] = "";
    if (pre) {
        size_t skip = strspn(pre, " :");
        size_t len = strcspn(pre + skip, " :");
        if (len < sizeof first) memcpy(first, pre + skip, len), first[len] = '\0';
    }
    const char *loaded = "";
    dl_iterate_phdr(first_object, &loaded);
    if (!is_me(first) || !is_me(loaded)) {
        fprintf(stderr, "%s: not first (LD_PRELOAD=%s, first object %s)\n", NAME,
                pre ? pre : "(unset)", loaded);
        _exit(97);
    }
#endif
}
