/* vo2spike C engine: the integer-only TCN + LIF network, one time step at a time.
 *
 * Arithmetic (the same as the NumPy reference engine, vo2spike.compress.int_engine):
 *   rq(x, M, n) = (x * M + 2^(n-1)) >> n  with a 64-bit product and an arithmetic shift,
 *   sat8(x)     = min(127, max(-127, x)),
 *   decay(U)    = (U * BETA_Q15 + 2^14) >> 15.
 * Weights are stored as a bitmap of the non-zero positions plus the packed non-zero int8
 * values, so pruned weights take one bit each. */
#include "vo2spike.h"

/* Right shifts of negative values must be arithmetic (GCC and Clang guarantee it). */
typedef char vo2_arithmetic_shift_check[((-8 >> 1) == -4) ? 1 : -1];

/* An int8 matrix. Sparse (mask != 0): bit b of word k of row r set <=> column 32 k + b is
 * non-zero, and only the non-zero values are stored, row after row, in column order.
 * Dense (mask == 0, chosen when the bitmap would not be smaller): rows x cols values. */
typedef struct {
    uint16_t rows;
    uint16_t cols;
    uint16_t words; /* 32-bit mask words per row */
    const uint32_t *mask;
    const int8_t *w;
} vo2_sparse_t;

/* A TCN block: causal conv (BatchNorm folded) + ReLU, plus a residual requantised to the
 * block's output scale (a 1x1 conv when res.rows > 0, else the identity). */
typedef struct {
    vo2_sparse_t conv; /* rows = VO2_CH, columns = VO2_K * cin, column k * cin + c */
    const int32_t *bias;
    const int32_t *mult;
    const uint8_t *shift;
    vo2_sparse_t res;
    const int32_t *res_bias;
    const int32_t *res_mult;
    const uint8_t *res_shift;
    uint16_t ring_off; /* this block's ring in vo2spike_state_t.ring */
    uint8_t cin;
    uint8_t dil;
    uint8_t ring_len; /* (VO2_K - 1) * dil + 1 time steps */
} vo2_block_t;

#include "vo2spike_model.h"

#if defined(__GNUC__)
#define VO2_CTZ(m) __builtin_ctz(m)
#else
static int vo2_ctz(uint32_t m)
{
    int n = 0;
    while (!(m & 1u)) {
        m >>= 1;
        n++;
    }
    return n;
}
#define VO2_CTZ(m) vo2_ctz(m)
#endif

/* Static buffers (sizes printed by `vo2spike export-c` and listed in vo2spike_model.h). */
static vo2spike_state_t g_window;      /* vo2spike_window()'s state */
static int32_t g_acc[VO2_ACC_MAX];     /* accumulators of the layer being computed */
static int32_t g_racc[VO2_CH];         /* residual accumulators */
static int8_t g_act[VO2_ACT_MAX];      /* the current layer's int8 input */
static int8_t g_taps[VO2_TAPS_MAX];    /* a block's causal taps, tap after tap */
#if VO2_SPIKING
static uint8_t g_spk[VO2_HID];         /* LIF1 spikes of this step */
#endif

static int32_t rq(int32_t x, int32_t mult, uint8_t shift)
{
    int64_t p = (int64_t)x * mult + ((int64_t)1 << (shift - 1));
    return (int32_t)(p >> shift);
}

static int8_t sat8(int32_t x)
{
    return (int8_t)(x > 127 ? 127 : (x < -127 ? -127 : x));
}

/* y[r] = sum of the non-zero w[r][c] * x[c] */
static void spmv(const vo2_sparse_t *L, const int8_t *x, int32_t *y)
{
    const uint32_t *mask = L->mask;
    const int8_t *w = L->w;
    uint16_t r, k;
    if (!mask) {
        for (r = 0; r < L->rows; r++) {
            int32_t acc = 0;
            for (k = 0; k < L->cols; k++)
                acc += (int32_t)w[k] * x[k];
            w += L->cols;
            y[r] = acc;
        }
        return;
    }
    for (r = 0; r < L->rows; r++) {
        int32_t acc = 0;
        for (k = 0; k < L->words; k++) {
            uint32_t m = *mask++;
            const int8_t *xk = x + 32 * k;
            while (m) {
                acc += (int32_t)(*w++) * xk[VO2_CTZ(m)];
                m &= m - 1u;
            }
        }
        y[r] = acc;
    }
}

static void state_reset(vo2spike_state_t *s)
{
    uint16_t i;
#if VO2_SPIKING
    for (i = 0; i < VO2_HID; i++)
        s->u1[i] = s->u2[i] = 0;
#endif
    for (i = 0; i < VO2_HID; i++)
        s->counts[i] = 0;
    for (i = 0; i < VO2_RING_BYTES; i++)
        s->ring[i] = 0;
    for (i = 0; i < VO2_NBLOCKS; i++)
        s->pos[i] = 0;
    s->spikes1 = s->spikes2 = 0;
    s->t = 0;
    s->active = 1;
}

static void tcn_step(vo2spike_state_t *s, const int16_t *x)
{
    uint16_t b, c, k, o;
    for (c = 0; c < VO2_NIN; c++)
        g_act[c] = sat8(rq((int32_t)x[c] - IN_OFF[c], IN_MULT[c], IN_SHIFT[c]));
    for (b = 0; b < VO2_NBLOCKS; b++) {
        const vo2_block_t *B = &BLOCKS[b];
        int8_t *ring = s->ring + B->ring_off;
        int p = s->pos[b];
        for (c = 0; c < B->cin; c++)
            ring[p * B->cin + c] = g_act[c];
        for (k = 0; k < VO2_K; k++) { /* tap k sees t - (K-1-k) * dil */
            int i = p - (VO2_K - 1 - k) * B->dil;
            const int8_t *src;
            if (i < 0)
                i += B->ring_len;
            src = ring + i * B->cin;
            for (c = 0; c < B->cin; c++)
                g_taps[k * B->cin + c] = src[c];
        }
        s->pos[b] = (uint8_t)(p + 1 == B->ring_len ? 0 : p + 1);
        spmv(&B->conv, g_taps, g_acc);
        if (B->res.rows)
            spmv(&B->res, g_act, g_racc);
        for (o = 0; o < VO2_CH; o++) {
            int32_t a = g_acc[o] + B->bias[o];
            int32_t y = rq(a > 0 ? a : 0, B->mult[o], B->shift[o]);
            int32_t r = B->res.rows ? rq(g_racc[o] + B->res_bias[o], B->res_mult[o],
                                         B->res_shift[o])
                                    : rq(g_act[o], B->res_mult[o], B->res_shift[o]);
            g_acc[o] = sat8(y + r);
        }
        for (o = 0; o < VO2_CH; o++)
            g_act[o] = (int8_t)g_acc[o];
    }
}

#if VO2_SPIKING
static int32_t decay(int32_t u)
{
    return (int32_t)(((int64_t)u * VO2_BETA_Q15 + (1 << 14)) >> 15);
}

static void step(vo2spike_state_t *s, const int16_t *x)
{
    uint16_t i, j, k;
    tcn_step(s, x);
    spmv(&LIF1, g_act, g_acc);
    for (j = 0; j < VO2_HID; j++) {
        int32_t u = decay(s->u1[j]) + g_acc[j] * (1 << VO2_LIF1_FRAC) + LIF1_BIAS[j];
        uint8_t spike = u > LIF1_TH[j];
        if (spike)
            u -= LIF1_TH[j];
        s->u1[j] = u;
        g_spk[j] = spike;
        s->spikes1 += spike;
        g_acc[j] = 0;
    }
    /* LIF2's synaptic current: the weight columns of the inputs that spiked, added. */
    for (i = 0; i < VO2_HID; i++) {
        const int8_t *w = LIF2_W + LIF2_COL[i];
        if (!g_spk[i])
            continue;
#if VO2_LIF2_DENSE
        for (k = 0; k < VO2_HID; k++)
            g_acc[k] += w[k];
#else
        for (k = 0; k < VO2_LIF2_WORDS; k++) {
            uint32_t m = LIF2_MASK[i * VO2_LIF2_WORDS + k];
            while (m) {
                g_acc[32 * k + VO2_CTZ(m)] += *w++;
                m &= m - 1u;
            }
        }
#endif
    }
    for (j = 0; j < VO2_HID; j++) {
        int32_t u = decay(s->u2[j]) + g_acc[j] * (1 << VO2_LIF2_FRAC) + LIF2_BIAS[j];
        uint8_t spike = u > LIF2_TH[j];
        if (spike)
            u -= LIF2_TH[j];
        s->u2[j] = u;
        s->counts[j] = (int16_t)(s->counts[j] + spike);
        s->spikes2 += spike;
    }
    s->t++;
}
#else
static void step(vo2spike_state_t *s, const int16_t *x)
{
    uint16_t j;
    tcn_step(s, x);
    spmv(&LAYER1, g_act, g_acc);
    for (j = 0; j < VO2_HID; j++) {
        int32_t a = g_acc[j] + LAYER1_BIAS[j];
        g_act[j] = sat8(rq(a > 0 ? a : 0, LAYER1_MULT[j], LAYER1_SHIFT[j]));
    }
    spmv(&LAYER2, g_act, g_acc);
    for (j = 0; j < VO2_HID; j++) {
        int32_t a = g_acc[j] + LAYER2_BIAS[j];
        s->counts[j] = (int16_t)(s->counts[j] + sat8(rq(a > 0 ? a : 0, LAYER2_MULT[j],
                                                        LAYER2_SHIFT[j])));
    }
    s->t++;
}
#endif

static void readout(const vo2spike_state_t *s, vo2spike_result_t *r)
{
    int32_t out[2];
    uint16_t h, j;
    for (h = 0; h < 2; h++) {
        int32_t acc = HEAD_BIAS[h];
        for (j = 0; j < VO2_HID; j++)
            acc += (int32_t)HEAD_W[h][j] * s->counts[j];
        out[h] = rq(acc, HEAD_MULT[h], HEAD_SHIFT[h]);
    }
    r->vo2 = out[0];
    r->vo2max = out[1];
    r->spikes1 = s->spikes1;
    r->spikes2 = s->spikes2;
}

const char *vo2spike_fingerprint(void)
{
    return VO2_FINGERPRINT;
}

void vo2spike_window(const int16_t *x, vo2spike_result_t *r)
{
    uint16_t t;
    state_reset(&g_window);
    for (t = 0; t < VO2_T; t++)
        step(&g_window, x + t * VO2_NIN);
    readout(&g_window, r);
}

void vo2spike_stream_init(vo2spike_stream_t *s)
{
    uint16_t i;
    for (i = 0; i < VO2_NSLOT; i++)
        s->slot[i].active = 0;
    s->n = 0;
}

int vo2spike_stream_push(vo2spike_stream_t *s, const int16_t *sample, vo2spike_result_t *r)
{
    uint16_t i;
    int ready = 0;
    if (s->n % VO2_STRIDE == 0)
        state_reset(&s->slot[(s->n / VO2_STRIDE) % VO2_NSLOT]);
    for (i = 0; i < VO2_NSLOT; i++) {
        vo2spike_state_t *w = &s->slot[i];
        if (!w->active)
            continue;
        step(w, sample);
        if (w->t == VO2_T) {
            readout(w, r);
            w->active = 0;
            ready = 1;
        }
    }
    s->n++;
    return ready;
}
