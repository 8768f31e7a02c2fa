/* QEMU test image: runs the compiled-in test windows through vo2spike_window() and prints
 * one line per window through semihosting:
 *   W <index> <vo2> <vo2max> <spikes1> <spikes2> <systick ticks>
 * then streams the same windows' samples (back to back) through vo2spike_stream_push():
 *   S <last sample index> <vo2> <vo2max> <spikes1> <spikes2>
 * SysTick runs at the CPU clock; under `qemu -icount shift=0` its ticks count instructions
 * (25 MHz SysTick against 1 instruction per ns: 1 tick = 40 instructions). */
#include <stdint.h>

#include "../vo2spike.h"
#include "semihost.h"
#include "test_windows.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static vo2spike_stream_t g_stream;
static char g_line[160];

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *put_int(char *p, int32_t v)
{
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0)
        *p++ = '-';
    do {
        tmp[n++] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void print_result(char tag, int32_t index, const vo2spike_result_t *r, int32_t ticks)
{
    char *p = g_line;
    *p++ = tag;
    *p++ = ' ';
    p = put_int(p, index);
    *p++ = ' ';
    p = put_int(p, r->vo2);
    *p++ = ' ';
    p = put_int(p, r->vo2max);
    *p++ = ' ';
    p = put_int(p, r->spikes1);
    *p++ = ' ';
    p = put_int(p, r->spikes2);
    if (ticks >= 0) {
        *p++ = ' ';
        p = put_int(p, ticks);
    }
    *p++ = '\n';
    *p = 0;
    sh_write0(g_line);
}

int main(void)
{
    vo2spike_result_t r;
    int32_t i, t;
    char *p = put_str(g_line, "FP ");
    p = put_str(p, vo2spike_fingerprint());
    p = put_str(p, "\nSIZES ");
    p = put_int(p, (int32_t)sizeof(vo2spike_state_t));
    *p++ = ' ';
    p = put_int(p, (int32_t)sizeof(vo2spike_stream_t));
    p = put_str(p, "\n");
    *p = 0;
    sh_write0(g_line);
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, CPU clock, no interrupt */
    for (i = 0; i < VO2_N_TEST; i++) {
        uint32_t t0 = SYST_CVR, t1;
        vo2spike_window(TEST_X[i], &r);
        t1 = SYST_CVR;
        print_result('W', i, &r, (int32_t)((t0 - t1) & 0x00FFFFFFu));
    }
    vo2spike_stream_init(&g_stream);
    for (i = 0; i < VO2_N_STREAM; i++)
        for (t = (i == 0 ? 0 : VO2_T - VO2_STRIDE); t < VO2_T; t++)
            if (vo2spike_stream_push(&g_stream, TEST_X[i] + t * VO2_NIN, &r))
                print_result('S', (int32_t)g_stream.n - 1, &r, -1);
    sh_write0("END\n");
    return 0;
}
