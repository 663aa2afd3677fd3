/*
 * `wallclock N [US]`: N traced calls, each between two readings of the clocks, for
 * tests/tests/wallclock.rs. For i in 0..N it reads CLOCK_REALTIME and CLOCK_MONOTONIC, calls
 * open("/nonexistent/wallclock/<i>") (a hooked call; it fails, and is recorded all the same),
 * reads both clocks again and prints
 *
 *     open <i> <realtime before> <realtime after> <monotonic before> <monotonic after>
 *
 * in ns, then sleeps US microseconds (default 0). The first line, `main <realtime>
 * <monotonic>`, is printed at the start of main (after the library's constructor recorded
 * process_start); the last, `end <realtime> <monotonic>`, just before main returns.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: wallclock N [US]\n");
        return 2;
    }
    long n = atol(argv[1]);
    long us = argc > 2 ? atol(argv[2]) : 0;
    printf("main %lld %lld\n", ns(CLOCK_REALTIME), ns(CLOCK_MONOTONIC));
    char path[64];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/nonexistent/wallclock/%ld", i);
        long long rb = ns(CLOCK_REALTIME), mb = ns(CLOCK_MONOTONIC);
        int fd = open(path, O_RDONLY);
        long long ma = ns(CLOCK_MONOTONIC), ra = ns(CLOCK_REALTIME);
        if (fd >= 0) close(fd);
        printf("open %ld %lld %lld %lld %lld\n", i, rb, ra, mb, ma);
        if (us) usleep((useconds_t)us);
    }
    printf("end %lld %lld\n", ns(CLOCK_REALTIME), ns(CLOCK_MONOTONIC));
    return 0;
}
