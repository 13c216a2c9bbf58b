/* Switches callgrind's instrumentation on and off around the measured requests (inproc.py callgrind).
 * Built by the harness: gcc -shared -fPIC -O2 -o out/callgrind_ctl.so callgrind_ctl.c
 * Outside valgrind the client requests are no-ops. */
#include <valgrind/callgrind.h>

void bench_start(void) {
    CALLGRIND_ZERO_STATS;
    CALLGRIND_START_INSTRUMENTATION;
}

void bench_stop(void) {
    CALLGRIND_STOP_INSTRUMENTATION;
    CALLGRIND_DUMP_STATS_AT("bench");
}
