/* Host harness of the vo2spike C engine.
 *
 *   vo2spike_harness [--expect FINGERPRINT] [--stream] IN OUT   ("-": stdin / stdout)
 *   vo2spike_harness --fingerprint | --sizes
 *
 * Windows (default): IN holds int16 little-endian windows, each VO2_T samples of VO2_NIN
 * channels, time-major; OUT gets 4 int32 little-endian per window: VO2, VO2max (mL/min),
 * LIF1 spikes, LIF2 spikes. --stream: IN holds consecutive samples of one recording; OUT gets
 * 5 int32 per estimate: index of the window's last sample, then the same 4 values.
 * --expect refuses (exit 3) to run if the engine was generated from another model. */
#include <stdio.h>
#include <string.h>

#include "vo2spike.h"

#define SAMPLE_BYTES (2 * VO2_NIN)

static unsigned char g_buf[VO2_T * SAMPLE_BYTES];
static int16_t g_x[VO2_T * VO2_NIN];
static vo2spike_stream_t g_stream;

static void decode(const unsigned char *p, int16_t *x, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        uint16_t u = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
        x[i] = (int16_t)(u >= 0x8000u ? (int32_t)u - 0x10000 : (int32_t)u);
    }
}

static int put32(FILE *f, int32_t v)
{
    uint32_t u = (uint32_t)v;
    unsigned char b[4];
    b[0] = (unsigned char)(u & 0xffu);
    b[1] = (unsigned char)((u >> 8) & 0xffu);
    b[2] = (unsigned char)((u >> 16) & 0xffu);
    b[3] = (unsigned char)((u >> 24) & 0xffu);
    return fwrite(b, 1, 4, f) == 4;
}

static int put_result(FILE *f, const vo2spike_result_t *r)
{
    return put32(f, r->vo2) && put32(f, r->vo2max) && put32(f, r->spikes1) &&
           put32(f, r->spikes2);
}

static int usage(void)
{
    fprintf(stderr, "usage: vo2spike_harness [--expect FINGERPRINT] [--stream] IN OUT\n"
                    "       vo2spike_harness --fingerprint | --sizes\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *expect = NULL, *in_path = NULL, *out_path = NULL;
    int stream = 0, i, ok = 1;
    size_t n;
    FILE *in, *out;
    vo2spike_result_t r;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fingerprint") == 0) {
            printf("%s\n", vo2spike_fingerprint());
            return 0;
        } else if (strcmp(argv[i], "--sizes") == 0) {
            printf("state %lu\nstream %lu\n", (unsigned long)sizeof(vo2spike_state_t),
                   (unsigned long)sizeof(vo2spike_stream_t));
            return 0;
        } else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
            expect = argv[++i];
        } else if (strcmp(argv[i], "--stream") == 0) {
            stream = 1;
        } else if (!in_path) {
            in_path = argv[i];
        } else if (!out_path) {
            out_path = argv[i];
        } else {
            return usage();
        }
    }
    if (!in_path || !out_path)
        return usage();
    if (expect && strcmp(expect, vo2spike_fingerprint()) != 0) {
        fprintf(stderr, "vo2spike_harness: this C engine was generated from the model with "
                        "SHA256 %s, not %s: export it again from that model\n",
                vo2spike_fingerprint(), expect);
        return 3;
    }
    in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "rb");
    if (!in) {
        fprintf(stderr, "vo2spike_harness: cannot open %s\n", in_path);
        return 2;
    }
    out = strcmp(out_path, "-") == 0 ? stdout : fopen(out_path, "wb");
    if (!out) {
        fprintf(stderr, "vo2spike_harness: cannot write %s\n", out_path);
        return 2;
    }
    if (stream) {
        vo2spike_stream_init(&g_stream);
        while (ok && (n = fread(g_buf, 1, SAMPLE_BYTES, in)) == SAMPLE_BYTES) {
            decode(g_buf, g_x, VO2_NIN);
            if (vo2spike_stream_push(&g_stream, g_x, &r))
                ok = put32(out, (int32_t)(g_stream.n - 1)) && put_result(out, &r);
        }
    } else {
        while (ok && (n = fread(g_buf, 1, sizeof g_buf, in)) == sizeof g_buf) {
            decode(g_buf, g_x, VO2_T * VO2_NIN);
            vo2spike_window(g_x, &r);
            ok = put_result(out, &r);
        }
    }
    if (ok && n != 0) {
        fprintf(stderr, "vo2spike_harness: %s ends with a partial %s\n", in_path,
                stream ? "sample" : "window");
        return 2;
    }
    if (!ok || fflush(out) != 0 || (out != stdout && fclose(out) != 0)) {
        fprintf(stderr, "vo2spike_harness: cannot write %s\n", out_path);
        return 2;
    }
    return 0;
}
