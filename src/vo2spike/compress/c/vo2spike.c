/* vo2spike C engine: the integer-only TCN + LIF network, one time step at a time.
 *
 * Arithmetic (the same as the NumPy reference engine, vo2spike.compress.int_engine):
 *   rq32(x, M, n) = (x * M + 2^(n-1)) >> n   in int32: the exporter chose M and n so that
 *                   it cannot overflow (vo2spike.compress.fixedpoint.multipliers32);
 *   TCN block     = sat8((max(acc, 0) * M + r * Mr + 2^(n-1)) >> n), the residual r inside
 *                   the block's one rounding;
 *   sat8(x)       = min(127, max(-128, x));
 *   leak(U)       = U - (U >> k1) - (U >> k2)   (k2 = 0: U - (U >> k1));
 *   heads         = (x * M + 2^(n-1)) >> n with a 64-bit product (once per window).
 *
 * The multiply-accumulate layers (TCN convs, block 0's residual, LIF1; the twin's hidden
 * layers) are block-sparse: blocks of 2 rows x 4 adjacent columns (vo2spike.compress.blocks).
 * Their input is packed once per step into int16 pairs, xe[j] = (x[4j], x[4j+2]) and
 * xo[j] = (x[4j+1], x[4j+3]), so that a block is two weight words, two input words and
 * four dual 16-bit multiply-accumulates (SMLAD on the Cortex-M4, plain C elsewhere: the
 * same integers). */
#include "vo2spike.h"

/* Right shifts of negative values must be arithmetic (GCC and Clang guarantee it). */
typedef char vo2_arithmetic_shift_check[((-8 >> 1) == -4) ? 1 : -1];

#if defined(__GNUC__)
#define VO2_INLINE static inline __attribute__((always_inline))
#else
#define VO2_INLINE static inline
#endif

/* ------------------------------------------------------------------ dual 16-bit MACs */
/* @stage = (profiles charge these helpers to their caller) */
VO2_INLINE int32_t s16(uint32_t v) /* the low half, as int16 */
{
    return (int32_t)((v & 0xffffu) ^ 0x8000u) - 0x8000;
}
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && !defined(VO2_NO_DSP)
#include <arm_acle.h>
#define VO2_DSP 1
VO2_INLINE uint32_t sxtb16(uint32_t v) /* bytes 0 and 2, sign-extended to int16 */
{
    return (uint32_t)__sxtb16((int8x4_t)v);
}
VO2_INLINE uint32_t sxtb16_ror8(uint32_t v) /* bytes 1 and 3 (ACLE has no rotated form) */
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
VO2_INLINE int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
VO2_INLINE uint32_t sadd16(uint32_t a, uint32_t b) /* two int16 adds (no overflow here) */
{
    return (uint32_t)__sadd16((int16x2_t)a, (int16x2_t)b);
}
VO2_INLINE int8_t sat8(int32_t x) /* -128..127 */
{
    return (int8_t)__ssat(x, 8);
}
#else
#define VO2_DSP 0
VO2_INLINE int32_t s8(uint32_t v)
{
    return (int32_t)((v & 0xffu) ^ 0x80u) - 0x80;
}
VO2_INLINE uint32_t sxtb16(uint32_t v)
{
    return ((uint32_t)s8(v) & 0xffffu) | ((uint32_t)s8(v >> 16) << 16);
}
VO2_INLINE uint32_t sxtb16_ror8(uint32_t v)
{
    return sxtb16(v >> 8);
}
VO2_INLINE int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return acc + s16(a) * s16(b) + s16(a >> 16) * s16(b >> 16);
}
VO2_INLINE uint32_t sadd16(uint32_t a, uint32_t b)
{
    return ((a + b) & 0xffffu) | (((a >> 16) + (b >> 16)) << 16);
}
VO2_INLINE int8_t sat8(int32_t x) /* -128..127 */
{
    return (int8_t)(x > 127 ? 127 : (x < -128 ? -128 : x));
}
#endif

/* @stage other */
/* A block-sparse int8 matrix: rows in pairs; each pair a list of blocks of 2 rows x 4
 * adjacent columns, in column order. */
typedef struct {
    uint16_t pairs;        /* rows / 2 (0: no matrix) */
    const uint8_t *col;    /* per row pair: its number of blocks n, then the column-block
                              index j (columns 4j..4j+3) of each of its n blocks */
    const uint32_t *w;     /* 2 words per block: row 2p's 4 weights, then row 2p+1's;
                              byte i of a word is column 4j+i */
} vo2_blocks_t;

/* Per row pair of a requantised layer: int32 biases and int16 multipliers. */
typedef struct {
    int32_t bias[2];
    int16_t mult[2];
} vo2_rows_t;

/* Per row pair of a residual 1x1 conv: int32 biases and multipliers. */
typedef struct {
    int32_t bias[2];
    int32_t mult[2];
} vo2_res_rows_t;

/* Per neuron pair of a LIF layer: biases and thresholds (membrane units). */
typedef struct {
    int32_t bias[2];
    int32_t th[2];
} vo2_lif_t;

/* A TCN block: causal conv (BatchNorm folded) + ReLU, plus a residual (a 1x1 conv when
 * res.pairs > 0, else the identity), requantised together. */
typedef struct {
    vo2_blocks_t conv;     /* columns k * cin4 + c (tap k sees t - (K-1-k) * dil) */
    const vo2_rows_t *rows;
    vo2_blocks_t res;
    const vo2_res_rows_t *res_rows;
    int32_t res_scale;     /* the identity residual's multiplier */
    uint16_t ring_off;     /* this block's ring in vo2spike_state_t.ring (words) */
    uint8_t cin4;          /* input channels rounded up to a multiple of 4 */
    uint8_t dil;
    uint8_t ring_len;      /* (VO2_K - 1) * dil + 1 time steps */
    uint8_t shift;         /* n of the block's requantisation */
} vo2_block_t;

#include "vo2spike_model.h"


/* Static buffers (sizes printed by `vo2spike export-c` and listed in vo2spike_model.h). */
static vo2spike_state_t g_window;        /* vo2spike_window()'s state */
static uint32_t g_xe[VO2_X16_WORDS];     /* the packed input of the layer being computed: */
static uint32_t g_xo[VO2_X16_WORDS];     /* even and odd columns of each 4 */
static uint32_t g_h[VO2_H_WORDS];        /* int8 output of the last TCN block (twin: also
                                            of layer 1) */
static int32_t g_res[VO2_CH];            /* a TCN block's residual, requantisation-ready */
#if VO2_SPIKING
/* LIF2's synaptic current of this step (|current| <= 64 x 127). Dense LIF2: int16 pairs,
 * g_ce[k] = (neuron 4k, 4k+2), g_co[k] = (4k+1, 4k+3), as a packed weight word unpacks;
 * sparse LIF2 (bitmap): one int16 per neuron. */
#if VO2_LIF2_DENSE
static uint32_t g_ce[VO2_HID / 4];
static uint32_t g_co[VO2_HID / 4];
#else
static int16_t g_cur[VO2_HID];
#endif
#endif

#if defined(__GNUC__)
#define VO2_CTZ(m) __builtin_ctz(m)
#else
static unsigned vo2_ctz(uint32_t m)
{
    unsigned n = 0;
    while (!(m & 1u)) {
        m >>= 1;
        n++;
    }
    return n;
}
#define VO2_CTZ(m) vo2_ctz(m)
#endif

/* @stage = */
/* The leak's second term (k = 0: none; the condition is a compile-time constant). */
#define VO2_LEAK2(v, k) ((k) ? (v) >> (k) : 0)

VO2_INLINE int32_t relu(int32_t x)
{
    return x > 0 ? x : 0;
}

/* @stage +pack: int8 words -> int16 pairs (see the top of this file) */
VO2_INLINE void pack(const uint32_t *src, unsigned words, uint32_t *xe, uint32_t *xo)
{
    unsigned i;
    for (i = 0; i < words; i++) {
        uint32_t v = src[i];
        xe[i] = sxtb16(v);
        xo[i] = sxtb16_ror8(v);
    }
}

/* @stage +mac: acc[0], acc[1] += the next row pair's blocks (*col, *w: advanced past
 * them) times (xe, xo) */
VO2_INLINE void dot_pair(const uint8_t **colp, const uint32_t **wp, const uint32_t *xe,
                         const uint32_t *xo, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1];
    const uint8_t *col = *colp;
    const uint32_t *w = *wp;
    const uint8_t *end = col + 1 + *col;
    for (col++; col != end; w += 2) {
        unsigned j = *col++;
        uint32_t x02 = xe[j], x13 = xo[j], w0 = w[0], w1 = w[1];
        a0 = smlad(sxtb16(w0), x02, a0);
        a0 = smlad(sxtb16_ror8(w0), x13, a0);
        a1 = smlad(sxtb16(w1), x02, a1);
        a1 = smlad(sxtb16_ror8(w1), x13, a1);
    }
    acc[0] = a0;
    acc[1] = a1;
    *colp = col;
    *wp = w;
}

/* @stage reset */
static void state_reset(vo2spike_state_t *s)
{
    uint16_t i;
#if VO2_SPIKING
    for (i = 0; i < VO2_HID; i++)
        s->u1[i] = s->u2[i] = 0;
#endif
    for (i = 0; i < VO2_RING_WORDS; i++)
        s->ring[i] = 0;
    for (i = 0; i < VO2_HID; i++)
        s->counts[i] = 0;
    for (i = 0; i < VO2_NBLOCKS; i++)
        s->pos[i] = 0;
    s->spikes1 = s->spikes2 = 0;
    s->t = 0;
    s->active = 1;
}

/* One TCN step: the sample x in, the last block's int8 output in g_h. */
static void tcn_step(vo2spike_state_t *s, const int16_t *x)
{
    unsigned b, c, k;
    /* @stage input: standardise into block 0's ring (its padding channels stay 0) */
    {
        int8_t *in = (int8_t *)(s->ring + BLOCKS[0].ring_off) + s->pos[0] * BLOCKS[0].cin4;
        for (c = 0; c < VO2_NIN; c++) {
            uint8_t n = IN_SHIFT[c];
            in[c] = sat8((((int32_t)x[c] - IN_OFF[c]) * IN_MULT[c] + (1 << (n - 1))) >> n);
        }
    }
    for (b = 0; b < VO2_NBLOCKS; b++) {
        /* @stage taps: the K causal taps of the ring, packed */
        const vo2_block_t *B = &BLOCKS[b];
        const uint32_t *ring = s->ring + B->ring_off;
        unsigned words = B->cin4 / 4, p = s->pos[b], g;
        const int8_t *cur = (const int8_t *)(ring + p * words); /* this step's input */
        const uint8_t *col = B->conv.col;
        const uint32_t *w = B->conv.w;
        const vo2_rows_t *rows = B->rows, *end = rows + B->conv.pairs;
        const int32_t round = 1 << (B->shift - 1);
        const unsigned shift = B->shift;
        int8_t *out;
        for (k = 0; k < VO2_K; k++) {
            int i = (int)p - (VO2_K - 1 - k) * B->dil;
            if (i < 0)
                i += B->ring_len;
            pack(ring + i * words, words, g_xe + k * words, g_xo + k * words);
        }
        s->pos[b] = (uint8_t)(p + 1 == B->ring_len ? 0 : p + 1);
        out = b + 1 < VO2_NBLOCKS
                  ? (int8_t *)(s->ring + BLOCKS[b + 1].ring_off)
                        + s->pos[b + 1] * BLOCKS[b + 1].cin4
                  : (int8_t *)g_h;
        if (B->res.pairs) {
            /* @stage residual: block 0, a 1x1 conv of this step's input (tap K-1) */
            const uint32_t *re = g_xe + (VO2_K - 1) * words, *ro = g_xo + (VO2_K - 1) * words;
            const uint8_t *rcol = B->res.col;
            const uint32_t *rw = B->res.w;
            const vo2_res_rows_t *rrows = B->res_rows;
            for (g = 0; g < 2 * B->res.pairs; g += 2, rrows++) {
                int32_t r[2];
                r[0] = rrows->bias[0];
                r[1] = rrows->bias[1];
                dot_pair(&rcol, &rw, re, ro, r);
                /* @stage requant */
                g_res[g] = r[0] * rrows->mult[0] + round;
                g_res[g + 1] = r[1] * rrows->mult[1] + round;
            }
            /* @stage conv: each row pair's blocks, then the requantisation with the residual */
            for (g = 0; rows != end; rows++, g += 2) {
                int32_t acc[2];
                acc[0] = rows->bias[0];
                acc[1] = rows->bias[1];
                dot_pair(&col, &w, g_xe, g_xo, acc);
                /* @stage requant */
                out[g] = sat8((relu(acc[0]) * rows->mult[0] + g_res[g]) >> shift);
                out[g + 1] = sat8((relu(acc[1]) * rows->mult[1] + g_res[g + 1]) >> shift);
            }
        } else {
            /* @stage conv: the same with the identity residual */
            const int32_t scale = B->res_scale;
            for (; rows != end; rows++, cur += 2, out += 2) {
                int32_t acc[2];
                acc[0] = rows->bias[0];
                acc[1] = rows->bias[1];
                dot_pair(&col, &w, g_xe, g_xo, acc);
                /* @stage requant */
                out[0] = sat8((relu(acc[0]) * rows->mult[0] + cur[0] * scale + round) >> shift);
                out[1] = sat8((relu(acc[1]) * rows->mult[1] + cur[1] * scale + round) >> shift);
            }
        }
    }
}

#if VO2_SPIKING
/* @stage lif2 synapses: LIF1 neuron o spiked: its LIF2 weight column into the current */
VO2_INLINE void lif2_synapses(unsigned o)
{
    unsigned k;
#if VO2_LIF2_DENSE /* 4 weights a word, two int16 adds an instruction */
    const uint32_t *c = LIF2_W[o];
    for (k = 0; k < VO2_HID / 4; k++) {
        uint32_t v = c[k];
        g_ce[k] = sadd16(g_ce[k], sxtb16(v));
        g_co[k] = sadd16(g_co[k], sxtb16_ror8(v));
    }
#else /* the non-zero weights, found by their bitmap */
    const int8_t *c = LIF2_W + LIF2_COL[o];
    for (k = 0; k < VO2_LIF2_WORDS; k++) {
        uint32_t m = LIF2_MASK[o * VO2_LIF2_WORDS + k];
        int16_t *cur = g_cur + 32 * k;
        while (m) {
            cur[VO2_CTZ(m)] += *c++;
            m &= m - 1u;
        }
    }
#endif
}

/* @stage lif2 neurons: leak, integrate, fire; returns the spike */
VO2_INLINE int32_t lif2_neuron(int32_t *u, int32_t cur, int16_t *count, int32_t bias,
                               int32_t th)
{
    int32_t v = *u;
    v = v - (v >> VO2_LIF2_LEAK) - VO2_LEAK2(v, VO2_LIF2_LEAK2) + cur * (1 << VO2_LIF2_FRAC)
        + bias;
    if (v > th) {
        *u = v - th;
        ++*count;
        return 1;
    }
    *u = v;
    return 0;
}

/* @stage lif1 neurons: leak, integrate, fire; returns the spike */
VO2_INLINE int32_t lif1_neuron(int32_t *u, int32_t acc, int32_t bias, int32_t th)
{
    int32_t v = *u;
    v = v - (v >> VO2_LIF1_LEAK) - VO2_LEAK2(v, VO2_LIF1_LEAK2) + acc * (1 << VO2_LIF1_FRAC)
        + bias;
    if (v > th) {
        *u = v - th;
        return 1;
    }
    *u = v;
    return 0;
}

/* @stage lif1 */
static void step(vo2spike_state_t *s, const int16_t *x)
{
    unsigned o;
    const uint8_t *col = LIF1.col;
    const uint32_t *w = LIF1.w;
    const vo2_lif_t *n1 = LIF1_N, *n2 = LIF2_N;
    int32_t spikes1 = 0, spikes2 = 0;
    tcn_step(s, x);
    pack(g_h, VO2_CH / 4, g_xe, g_xo);
    for (o = 0; o < VO2_HID; o += 2, n1++) {
        int32_t acc[2] = {0, 0};
        dot_pair(&col, &w, g_xe, g_xo, acc);
        if (lif1_neuron(&s->u1[o], acc[0], n1->bias[0], n1->th[0])) {
            spikes1++;
            lif2_synapses(o);
        }
        if (lif1_neuron(&s->u1[o + 1], acc[1], n1->bias[1], n1->th[1])) {
            spikes1++;
            lif2_synapses(o + 1);
        }
    }
    /* @stage lif2 neurons */
#if VO2_LIF2_DENSE
    for (o = 0; o < VO2_HID; o += 4, n2 += 2) {
        uint32_t e = g_ce[o / 4], d = g_co[o / 4];
        int32_t *u = s->u2 + o;
        int16_t *count = s->counts + o;
        g_ce[o / 4] = g_co[o / 4] = 0;
        spikes2 += lif2_neuron(u, s16(e), count, n2[0].bias[0], n2[0].th[0]);
        spikes2 += lif2_neuron(u + 1, s16(d), count + 1, n2[0].bias[1], n2[0].th[1]);
        spikes2 += lif2_neuron(u + 2, s16(e >> 16), count + 2, n2[1].bias[0],
                               n2[1].th[0]);
        spikes2 += lif2_neuron(u + 3, s16(d >> 16), count + 3, n2[1].bias[1],
                               n2[1].th[1]);
    }
#else
    for (o = 0; o < VO2_HID; o += 2, n2++) {
        spikes2 += lif2_neuron(&s->u2[o], g_cur[o], &s->counts[o], n2->bias[0], n2->th[0]);
        spikes2 += lif2_neuron(&s->u2[o + 1], g_cur[o + 1], &s->counts[o + 1], n2->bias[1],
                               n2->th[1]);
        g_cur[o] = g_cur[o + 1] = 0;
    }
#endif
    s->spikes1 += spikes1;
    s->spikes2 += spikes2;
    s->t++;
}
#else
/* @stage layers: one hidden layer of the twin, block-sparse, requantised (32-bit) */
VO2_INLINE void twin_layer(const vo2_blocks_t *L, const vo2_rows_t *rows, uint8_t shift,
                           int8_t *out, int16_t *sum)
{
    unsigned g, i;
    const uint8_t *col = L->col;
    const uint32_t *w = L->w;
    int32_t round = 1 << (shift - 1);
    for (g = 0; g < VO2_HID / 2; g++, rows++) {
        int32_t acc[2];
        acc[0] = rows->bias[0];
        acc[1] = rows->bias[1];
        dot_pair(&col, &w, g_xe, g_xo, acc);
        for (i = 0; i < 2; i++) {
            int8_t a = sat8((relu(acc[i]) * rows->mult[i] + round) >> shift);
            if (out)
                out[2 * g + i] = a;
            else
                sum[2 * g + i] = (int16_t)(sum[2 * g + i] + a);
        }
    }
}

static void step(vo2spike_state_t *s, const int16_t *x)
{
    tcn_step(s, x);
    pack(g_h, VO2_CH / 4, g_xe, g_xo);
    twin_layer(&LAYER1, LAYER1_ROWS, VO2_LAYER1_SHIFT, (int8_t *)g_h, 0);
    pack(g_h, VO2_HID / 4, g_xe, g_xo);
    twin_layer(&LAYER2, LAYER2_ROWS, VO2_LAYER2_SHIFT, 0, s->counts);
    s->t++;
}
#endif

/* @stage readout: both heads, once per window (64-bit requantisation) */
static void readout(const vo2spike_state_t *s, vo2spike_result_t *r)
{
    int32_t out[2];
    uint16_t h, j;
    for (h = 0; h < 2; h++) {
        int32_t acc = HEAD_BIAS[h];
        int64_t p;
        for (j = 0; j < VO2_HID; j++)
            acc += (int32_t)HEAD_W[h][j] * s->counts[j];
        p = (int64_t)acc * HEAD_MULT[h] + ((int64_t)1 << (HEAD_SHIFT[h] - 1));
        out[h] = (int32_t)(p >> HEAD_SHIFT[h]);
    }
    r->vo2 = out[0];
    r->vo2max = out[1];
    r->spikes1 = s->spikes1;
    r->spikes2 = s->spikes2;
}

/* @stage other */
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
