/* Helper for tests/tests/span_links.rs: substrate-style span nesting and environment
 * pass-through. Values on the command line and in the output are percent-encoded (%XX) so that
 * any byte, including non-UTF-8 ones, can be given and shown.
 *
 *   getenv TAG NAME...            print "TAG PID NAME=<value>" or "TAG PID NAME!" (unset) per NAME
 *   shim SPAN SESSION CMD ARGS... like substrate's shim: run CMD with SHIM_PARENT_SPAN=SPAN (and
 *                                 SHIM_SESSION_ID=SESSION unless "-") in its environment, by
 *                                 fork + execvpe with an envp of its own; exit with its status
 *   shim-spawn SPAN SESSION CMD...  the same through posix_spawnp
 *   exec-env TOK... -- CMD ARGS   execve(CMD, ARGS, envp) with envp exactly the VAR=VAL tokens
 *   clearenv TOK... -- CMD ARGS   clearenv(), apply the tokens, execvp
 *   execvp TOK... -- CMD ARGS     apply the tokens to environ, execvp
 *   system TOK... -- COMMAND      apply the tokens to environ, system(COMMAND)
 *   popen TOK... -- COMMAND       apply the tokens to environ, popen(COMMAND), copy its output
 *
 * A token is VAR=VAL (set) or VAR! (unset).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void enc(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c > 0x20 && c < 0x7f && c != '%')
            putchar(c);
        else
            printf("%%%02x", c);
    }
}

static char *dec(const char *s) {
    char *o = malloc(strlen(s) + 1), *p = o;
    while (*s) {
        unsigned v;
        if (s[0] == '%' && s[1] && s[2] && sscanf(s + 1, "%2x", &v) == 1) {
            *p++ = (char)v;
            s += 3;
        } else {
            *p++ = *s++;
        }
    }
    *p = 0;
    return o;
}

/* Index of "--" in argv from `from`, or -1. */
static int dashes(int argc, char **argv, int from) {
    for (int i = from; i < argc; i++)
        if (!strcmp(argv[i], "--")) return i;
    return -1;
}

static void apply(char **tok, int n) {
    for (int i = 0; i < n; i++) {
        char *t = dec(tok[i]);
        size_t len = strlen(t);
        char *eq = strchr(t, '=');
        if (eq) {
            *eq = 0;
            setenv(t, eq + 1, 1);
        } else if (len && t[len - 1] == '!') {
            t[len - 1] = 0;
            unsetenv(t);
        }
    }
}

static int status_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

static int shim(int argc, char **argv, int spawn) {
    const char *span = argv[2], *session = argv[3];
    int set_session = strcmp(session, "-") != 0;
    size_t n = 0;
    while (environ[n]) n++;
    char **envp = calloc(n + 3, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(environ[i], "SHIM_PARENT_SPAN=", 17)) continue;
        if (set_session && !strncmp(environ[i], "SHIM_SESSION_ID=", 16)) continue;
        envp[k++] = environ[i];
    }
    char *s = dec(span);
    envp[k] = malloc(strlen(s) + 18);
    sprintf(envp[k++], "SHIM_PARENT_SPAN=%s", s);
    if (set_session) {
        char *v = dec(session);
        envp[k] = malloc(strlen(v) + 17);
        sprintf(envp[k++], "SHIM_SESSION_ID=%s", v);
    }
    envp[k] = NULL;
    (void)argc;
    pid_t pid;
    if (spawn) {
        int r = posix_spawnp(&pid, argv[4], NULL, NULL, argv + 4, envp);
        if (r) {
            fprintf(stderr, "posix_spawnp %s: %s\n", argv[4], strerror(r));
            return 127;
        }
    } else {
        pid = fork();
        if (pid == 0) {
            execvpe(argv[4], argv + 4, envp);
            fprintf(stderr, "execvpe %s: %s\n", argv[4], strerror(errno));
            _exit(127);
        }
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return 126;
    return status_code(st);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "getenv") && argc >= 3) {
        printf("%s %d", argv[2], (int)getpid());
        for (int i = 3; i < argc; i++) {
            const char *v = getenv(argv[i]);
            if (v) {
                printf(" %s=", argv[i]);
                enc(v);
            } else {
                printf(" %s!", argv[i]);
            }
        }
        printf("\n");
        return 0;
    }
    if ((!strcmp(m, "shim") || !strcmp(m, "shim-spawn")) && argc >= 5)
        return shim(argc, argv, !strcmp(m, "shim-spawn"));
    int d = dashes(argc, argv, 2);
    if (d < 0 || d + 1 >= argc) {
        fprintf(stderr, "usage: see spans.c\n");
        return 2;
    }
    char **tok = argv + 2, **cmd = argv + d + 1;
    int ntok = d - 2;
    if (!strcmp(m, "exec-env")) {
        char **envp = calloc(ntok + 1, sizeof *envp);
        for (int i = 0; i < ntok; i++) envp[i] = dec(tok[i]);
        execve(cmd[0], cmd, envp);
        fprintf(stderr, "execve %s: %s\n", cmd[0], strerror(errno));
        return 127;
    }
    if (!strcmp(m, "clearenv") || !strcmp(m, "execvp")) {
        if (!strcmp(m, "clearenv")) clearenv();
        apply(tok, ntok);
        if (!getenv("PATH")) setenv("PATH", "/usr/bin:/bin", 1);
        execvp(cmd[0], cmd);
        fprintf(stderr, "execvp %s: %s\n", cmd[0], strerror(errno));
        return 127;
    }
    apply(tok, ntok);
    if (!strcmp(m, "system")) return status_code(system(cmd[0]));
    if (!strcmp(m, "popen")) {
        FILE *f = popen(cmd[0], "r");
        if (!f) return 127;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
        return status_code(pclose(f));
    }
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
