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
 * Their input is packed once per step into int16 pairs, x[2j] = (x[4j], x[4j+2]) and
 * x[2j+1] = (x[4j+1], x[4j+3]), so that a block is two weight words, two input words and
 * four dual 16-bit multiply-accumulates (SMLAD on the Cortex-M4, plain C elsewhere: the
 * same integers). A layer's accumulators are computed first (rows_acc), then requantised
 * or integrated in a second loop. On a core with the DSP extension the inner loops are
 * hand-scheduled (GCC inline assembly: rows_acc, pack, requantisation, the LIF neurons,
 * LIF2's synapses); every other build runs their plain-C versions, which the tests hold
 * bit-exact against the NumPy engine, as they hold the emulated Cortex-M4 build. */
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
#if defined(__GNUC__) && defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 \
    && !defined(VO2_NO_DSP)
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
VO2_INLINE uint32_t sxtab16(uint32_t a, uint32_t v) /* a's int16 halves + bytes 0, 2 of v */
{
    return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)v);
}
VO2_INLINE uint32_t sxtab16_ror8(uint32_t a, uint32_t v) /* a's halves + bytes 1, 3 of v */
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
VO2_INLINE int8_t sat8(int32_t x) /* -128..127 */
{
    return (int8_t)__ssat(x, 8);
}
VO2_INLINE int32_t hi16(uint32_t v) /* the high half, as int16 (GCC: an arithmetic shift) */
{
    return (int32_t)v >> 16;
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
VO2_INLINE uint32_t sxtab16(uint32_t a, uint32_t v) /* two int16 adds, each wrapping */
{
    uint32_t b = sxtb16(v);
    return ((a + b) & 0xffffu) | (((a >> 16) + (b >> 16)) << 16);
}
VO2_INLINE uint32_t sxtab16_ror8(uint32_t a, uint32_t v)
{
    return sxtab16(a, v >> 8);
}
VO2_INLINE int8_t sat8(int32_t x) /* -128..127 */
{
    return (int8_t)(x > 127 ? 127 : (x < -128 ? -128 : x));
}
VO2_INLINE int32_t hi16(uint32_t v) /* the high half, as int16 */
{
    return s16(v >> 16);
}
#endif

/* @stage other */
/* A block-sparse int8 matrix: rows in pairs; each pair a list of blocks of 2 rows x 4
 * adjacent columns, in column order. */
typedef struct {
    uint16_t pairs;        /* rows / 2 */
    const uint8_t *col;    /* per row pair: its number of blocks n, then the column-block
                              index j (columns 4j..4j+3) of each of its n blocks */
    const uint32_t *w;     /* per row pair: its two int32 biases (LIF1: the whole multiples
                              of 2^frac of its neurons' biases, in accumulator units), then 2
                              words per block: row 2p's 4 weights, then row 2p+1's; byte i
                              of a word is column 4j+i */
} vo2_blocks_t;

/* An input channel's standardisation: sat8(((x - off) * mult + round) >> shift), round =
 * 2^(shift - 1). */
typedef struct {
    int32_t off;
    int32_t round;
    int16_t mult;
    uint8_t shift;
} vo2_input_t;

/* A LIF neuron's bias and threshold (membrane units; LIF1: the rest of its bias, below
 * 2^frac, the multiples being in its accumulator's start). */
typedef struct {
    int32_t bias;
    int32_t th;
} vo2_lif_t;

/* A TCN block: causal conv (BatchNorm folded) + ReLU, plus a residual (a 1x1 conv when
 * res.pairs > 0, else the identity), requantised together. */
typedef struct {
    vo2_blocks_t conv;     /* columns 4 * words * k + c (tap k sees t - (K-1-k) * dil) */
    const int16_t *mult;   /* per output channel */
    vo2_blocks_t res;
    const int32_t *res_mult;
    int32_t res_scale;     /* the identity residual's multiplier */
    uint16_t ring_off;     /* this block's ring in vo2spike_state_t.ring (words) */
    uint16_t ring_words;   /* its length: ring_len * words */
    uint16_t tap_words;    /* from one tap to the next: dil * words */
    uint8_t words;         /* words a time step: input channels / 4, rounded up */
    uint8_t ring_len;      /* (VO2_K - 1) * dil + 1 time steps */
    uint8_t shift;         /* n of the block's requantisation */
} vo2_block_t;

#include "vo2spike_model.h"


/* Static buffers (sizes printed by `vo2spike export-c` and listed in vo2spike_model.h). */
static vo2spike_state_t g_window;        /* vo2spike_window()'s state */
static uint32_t g_x[2 * VO2_X16_WORDS];  /* the packed input of the layer being computed */
static int32_t g_acc[VO2_ACC];           /* its accumulators (block 0: conv, then residual) */
static uint32_t g_h[VO2_H_WORDS];        /* int8 output of the last TCN block (twin: also
                                            of layer 1) */
#if VO2_SPIKING
/* LIF2's synaptic current of this step (|current| <= 64 x 127). Dense LIF2: int16 pairs,
 * g_c[2k] = (neuron 4k, 4k+2), g_c[2k+1] = (4k+1, 4k+3), as a weight word unpacks; sparse
 * LIF2 (bitmap): one int16 per neuron. */
#if VO2_LIF2_DENSE
static uint32_t g_c[VO2_HID / 2];
#else
static int16_t g_cur[VO2_HID];
#endif
#endif

#if defined(__GNUC__)
#define VO2_CTZ(m) __builtin_ctz(m)
#define VO2_NOINLINE __attribute__((noinline))
#define VO2_STR2(x) #x
#define VO2_STR(x) VO2_STR2(x) /* a macro's value as a string (asm immediates) */
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
#define VO2_NOINLINE
#endif

/* @stage = */
/* The leak's second term (k = 0: none; the condition is a compile-time constant). */
#define VO2_LEAK2(v, k) ((k) ? (v) >> (k) : 0)

VO2_INLINE int32_t relu(int32_t x)
{
    return x > 0 ? x : 0;
}

/* @stage +pack: int8 words -> int16 pairs (see the top of this file) */
VO2_INLINE void pack(const uint32_t *src, unsigned words, uint32_t *x)
{
    const uint32_t *end = src + words;
    if (words & 1u) {
        uint32_t v = *src++;
        x[0] = sxtb16(v);
        x[1] = sxtb16_ror8(v);
        x += 2;
    }
#if VO2_DSP /* two words a loop, 9 instructions */
    if (src != end) {
        uint32_t v0, v1, e0, e1;
        __asm__ volatile("1:\n\t"
                         "ldrd   %[v0], %[v1], [%[src]], #8\n\t"
                         "sxtb16 %[e0], %[v0]\n\t"
                         "sxtb16 %[v0], %[v0], ror #8\n\t"
                         "sxtb16 %[e1], %[v1]\n\t"
                         "sxtb16 %[v1], %[v1], ror #8\n\t"
                         "strd   %[e1], %[v1], [%[x], #8]\n\t"
                         "strd   %[e0], %[v0], [%[x]], #16\n\t"
                         "cmp    %[src], %[end]\n\t"
                         "bne    1b"
                         : [src] "+&r"(src), [x] "+&r"(x), [v0] "=&r"(v0), [v1] "=&r"(v1),
                           [e0] "=&r"(e0), [e1] "=&r"(e1)
                         : [end] "r"(end)
                         : "cc", "memory");
    }
#else
    while (src != end) {
        uint32_t v = *src++;
        x[0] = sxtb16(v);
        x[1] = sxtb16_ror8(v);
        x += 2;
    }
#endif
}

/* @stage +mac: acc[r] = row r's bias + its blocks times the packed input x, for every row
 * r of L (L->pairs > 0) */
#if VO2_DSP
/* A block: 12 instructions. */
#define VO2_BLOCK                                                                            \
    "ldrb   %[j], [%[col]], #1\n\t"                                                          \
    "add    %[j], %[x], %[j], lsl #3\n\t"                                                    \
    "ldrd   %[x02], %[x13], [%[j]]\n\t"                                                      \
    "ldrd   %[w0], %[w1], [%[w]], #8\n\t"                                                    \
    "sxtb16 %[j], %[w0]\n\t"                                                                 \
    "smlad  %[a0], %[j], %[x02], %[a0]\n\t"                                                  \
    "sxtb16 %[w0], %[w0], ror #8\n\t"                                                        \
    "smlad  %[a0], %[w0], %[x13], %[a0]\n\t"                                                 \
    "sxtb16 %[w0], %[w1]\n\t"                                                                \
    "smlad  %[a1], %[w0], %[x02], %[a1]\n\t"                                                 \
    "sxtb16 %[w1], %[w1], ror #8\n\t"                                                        \
    "smlad  %[a1], %[w1], %[x13], %[a1]\n\t"
#endif
static VO2_NOINLINE void rows_acc(const vo2_blocks_t *L, const uint32_t *x, int32_t *acc)
{
    const uint8_t *col = L->col;
    const uint32_t *w = L->w;
    int32_t *end = acc + 2 * L->pairs;
#if VO2_DSP
    /* A row pair: its count and biases, then its blocks two at a time (an odd count enters
     * at the second): 8-10 instructions a pair, 13 a block. */
    uint32_t n, j, x02, x13, w0, w1;
    int32_t a0, a1;
    __asm__ volatile("0:\n\t"
                     "ldrb   %[n], [%[col]], #1\n\t"
                     "ldrd   %[a0], %[a1], [%[w]], #8\n\t"
                     "lsls   %[j], %[n], #31\n\t" /* N: the count is odd */
                     "add    %[n], %[n], %[col]\n\t" /* the end of its list */
                     "bmi    3f\n\t"
                     "cmp    %[n], %[col]\n\t"
                     "beq    2f\n"
                     "1:\n\t" VO2_BLOCK
                     "3:\n\t" VO2_BLOCK
                     "cmp    %[col], %[n]\n\t"
                     "bne    1b\n"
                     "2:\n\t"
                     "strd   %[a0], %[a1], [%[acc]], #8\n\t"
                     "cmp    %[acc], %[end]\n\t"
                     "bne    0b"
                     : [col] "+&r"(col), [w] "+&r"(w), [acc] "+&r"(acc), [n] "=&r"(n),
                       [j] "=&r"(j), [x02] "=&r"(x02), [x13] "=&r"(x13), [w0] "=&r"(w0),
                       [w1] "=&r"(w1), [a0] "=&r"(a0), [a1] "=&r"(a1)
                     : [x] "r"(x), [end] "r"(end)
                     : "cc", "memory");
#else
    for (; acc != end; acc += 2) {
        unsigned n = *col++;
        int32_t a0 = (int32_t)w[0], a1 = (int32_t)w[1];
        for (w += 2; n; n--, w += 2) {
            const uint32_t *xj = x + 2 * *col++;
            a0 = smlad(sxtb16(w[0]), xj[0], a0);
            a0 = smlad(sxtb16_ror8(w[0]), xj[1], a0);
            a1 = smlad(sxtb16(w[1]), xj[0], a1);
            a1 = smlad(sxtb16_ror8(w[1]), xj[1], a1);
        }
        acc[0] = a0;
        acc[1] = a1;
    }
#endif
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

/* @stage requant: ReLU, then requantised with block 0's 1x1 residual conv (its
 * accumulators in g_acc[VO2_CH..]) */
static VO2_NOINLINE void requant_res(const vo2_block_t *B, int8_t *out)
{
    const int32_t *acc = g_acc, *end = g_acc + VO2_CH, *res_mult = B->res_mult;
    const int16_t *mult = B->mult;
    const int32_t round = 1 << (B->shift - 1);
    const unsigned shift = B->shift;
#if VO2_DSP /* 11 instructions a channel */
    const int32_t *res = g_acc + VO2_CH;
    int32_t a, r, m, mr;
    __asm__ volatile("1:\n\t"
                     "ldr    %[a], [%[acc]], #4\n\t"
                     "ldr    %[r], [%[res]], #4\n\t"
                     "ldr    %[mr], [%[rmult]], #4\n\t"
                     "ldrsh  %[m], [%[mult]], #2\n\t"
                     "bic    %[a], %[a], %[a], asr #31\n\t"
                     "mla    %[r], %[r], %[mr], %[round]\n\t"
                     "mla    %[a], %[a], %[m], %[r]\n\t"
                     "asr    %[a], %[a], %[shift]\n\t"
                     "ssat   %[a], #8, %[a]\n\t"
                     "strb   %[a], [%[out]], #1\n\t"
                     "cmp    %[acc], %[end]\n\t"
                     "bne    1b"
                     : [acc] "+&r"(acc), [res] "+&r"(res), [rmult] "+&r"(res_mult),
                       [mult] "+&r"(mult), [out] "+&r"(out), [a] "=&r"(a), [r] "=&r"(r),
                       [m] "=&r"(m), [mr] "=&r"(mr)
                     : [end] "r"(end), [round] "r"(round), [shift] "r"(shift)
                     : "cc", "memory");
#else
    for (; acc != end; acc++)
        *out++ = sat8((relu(acc[0]) * *mult++ + acc[VO2_CH] * *res_mult++ + round) >> shift);
#endif
}

/* @stage requant: ReLU, then requantised with the identity residual (the block's input
 * cur) */
static VO2_NOINLINE void requant_identity(const vo2_block_t *B, const int8_t *cur,
                                          int8_t *out)
{
    const int32_t *acc = g_acc, *end = g_acc + VO2_CH;
    const int16_t *mult = B->mult;
    const int32_t round = 1 << (B->shift - 1), scale = B->res_scale;
    const unsigned shift = B->shift;
#if VO2_DSP /* two channels a loop, 19 instructions */
    int32_t a0, a1, c, m;
    __asm__ volatile("1:\n\t"
                     "ldrd   %[a0], %[a1], [%[acc]], #8\n\t"
                     "ldrsb  %[c], [%[cur]], #1\n\t"
                     "ldrsh  %[m], [%[mult]], #2\n\t"
                     "bic    %[a0], %[a0], %[a0], asr #31\n\t"
                     "mla    %[c], %[c], %[scale], %[round]\n\t"
                     "mla    %[a0], %[a0], %[m], %[c]\n\t"
                     "asr    %[a0], %[a0], %[shift]\n\t"
                     "ssat   %[a0], #8, %[a0]\n\t"
                     "strb   %[a0], [%[out]], #1\n\t"
                     "ldrsb  %[c], [%[cur]], #1\n\t"
                     "ldrsh  %[m], [%[mult]], #2\n\t"
                     "bic    %[a1], %[a1], %[a1], asr #31\n\t"
                     "mla    %[c], %[c], %[scale], %[round]\n\t"
                     "mla    %[a1], %[a1], %[m], %[c]\n\t"
                     "asr    %[a1], %[a1], %[shift]\n\t"
                     "ssat   %[a1], #8, %[a1]\n\t"
                     "strb   %[a1], [%[out]], #1\n\t"
                     "cmp    %[acc], %[end]\n\t"
                     "bne    1b"
                     : [acc] "+&r"(acc), [cur] "+&r"(cur), [mult] "+&r"(mult), [out] "+&r"(out),
                       [a0] "=&r"(a0), [a1] "=&r"(a1), [c] "=&r"(c), [m] "=&r"(m)
                     : [end] "r"(end), [scale] "r"(scale), [round] "r"(round),
                       [shift] "r"(shift)
                     : "cc", "memory");
#else
    for (; acc != end; acc += 2, cur += 2, mult += 2, out += 2) { /* VO2_CH is even */
        int32_t r0 = cur[0] * scale + round, r1 = cur[1] * scale + round;
        out[0] = sat8((relu(acc[0]) * mult[0] + r0) >> shift);
        out[1] = sat8((relu(acc[1]) * mult[1] + r1) >> shift);
    }
#endif
}

/* @stage taps: block B's K causal taps of its ring, packed; tap 0 is the oldest, at the
 * next write position (as ring_len = (K - 1) * dil + 1), tap K-1 this step's input */
static VO2_NOINLINE void tcn_block(const vo2_block_t *B, const uint32_t *ring, unsigned next,
                                   int8_t *out)
{
    const unsigned words = B->words;
    const uint32_t *end = ring + B->ring_words, *tap = ring + next * words, *cur = tap;
    uint32_t *xk = g_x;
    unsigned k;
    for (k = 0; k < VO2_K; k++, xk += 2 * words) {
        pack(tap, words, xk);
        cur = tap; /* the last: this step's input */
        tap += B->tap_words;
        if (tap >= end)
            tap -= B->ring_words;
    }
    if (B->res.pairs) {
        /* @stage residual: block 0, a 1x1 conv of this step's input (tap K-1) */
        rows_acc(&B->res, g_x + 2 * (VO2_K - 1) * words, g_acc + VO2_CH);
        /* @stage conv: the conv's accumulators, then requantised */
        rows_acc(&B->conv, g_x, g_acc);
        requant_res(B, out);
    } else {
        /* @stage conv: the same with the identity residual (this step's input) */
        rows_acc(&B->conv, g_x, g_acc);
        requant_identity(B, (const int8_t *)cur, out);
    }
}

/* @stage input: one TCN step: the sample x, standardised, into block 0's ring (its padding
 * channels stay 0); the blocks; the last block's int8 output in g_h */
static void tcn_step(vo2spike_state_t *s, const int16_t *x)
{
    unsigned b, c;
    int8_t *in = (int8_t *)(s->ring + BLOCKS[0].ring_off + s->pos[0] * BLOCKS[0].words);
    const vo2_input_t *ch = INPUT;
    for (c = 0; c < VO2_NIN; c++, ch++)
        in[c] = sat8((((int32_t)x[c] - ch->off) * ch->mult + ch->round) >> ch->shift);
    /* @stage taps */
    for (b = 0; b < VO2_NBLOCKS; b++) {
        const vo2_block_t *B = &BLOCKS[b];
        unsigned next = s->pos[b] + 1u;
        if (next == B->ring_len)
            next = 0;
        s->pos[b] = (uint8_t)next;
        tcn_block(B, s->ring + B->ring_off, next,
                  b + 1 < VO2_NBLOCKS ? (int8_t *)(s->ring + BLOCKS[b + 1].ring_off
                                                   + s->pos[b + 1] * BLOCKS[b + 1].words)
                                      : (int8_t *)g_h);
    }
}

#if VO2_SPIKING
/* @stage lif2 synapses: LIF1 neuron o spiked: its LIF2 weight column into the current */
static VO2_NOINLINE void lif2_synapses(unsigned o)
{
#if VO2_LIF2_DENSE /* 4 weights a word, two int16 adds an instruction */
    const uint32_t *c = LIF2_W[o], *end = c + VO2_HID / 4;
    uint32_t *cur = g_c;
#if VO2_DSP && VO2_HID % 8 == 0 /* two words a loop, 11 instructions */
    uint32_t v0, v1, e0, d0, e1, d1;
    __asm__ volatile("1:\n\t"
                     "ldrd    %[v0], %[v1], [%[c]], #8\n\t"
                     "ldrd    %[e0], %[d0], [%[g]]\n\t"
                     "ldrd    %[e1], %[d1], [%[g], #8]\n\t"
                     "sxtab16 %[e0], %[e0], %[v0]\n\t"
                     "sxtab16 %[d0], %[d0], %[v0], ror #8\n\t"
                     "sxtab16 %[e1], %[e1], %[v1]\n\t"
                     "sxtab16 %[d1], %[d1], %[v1], ror #8\n\t"
                     "strd    %[e1], %[d1], [%[g], #8]\n\t"
                     "strd    %[e0], %[d0], [%[g]], #16\n\t"
                     "cmp     %[c], %[end]\n\t"
                     "bne     1b"
                     : [c] "+&r"(c), [g] "+&r"(cur), [v0] "=&r"(v0), [v1] "=&r"(v1),
                       [e0] "=&r"(e0), [d0] "=&r"(d0), [e1] "=&r"(e1), [d1] "=&r"(d1)
                     : [end] "r"(end)
                     : "cc", "memory");
#else
    do {
        uint32_t v = *c++;
        cur[0] = sxtab16(cur[0], v);
        cur[1] = sxtab16_ror8(cur[1], v);
        cur += 2;
    } while (c != end);
#endif
#else /* the non-zero weights, found by their bitmap */
    unsigned k;
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

/* @stage lif1 neurons: leak, integrate, fire (a spike adds its LIF2 column); returns
 * the spikes */
static VO2_NOINLINE int32_t lif1_neurons(int32_t *u)
{
    const int32_t *acc = g_acc;
    const vo2_lif_t *n = LIF1_N, *end = LIF1_N + VO2_HID;
    int32_t spikes = 0;
#if VO2_DSP /* 12 instructions a neuron; the loop stops at a spike, C handles it */
    while (n != end) {
        int32_t v, a, b, th, spiked;
        __asm__ volatile("1:\n\t"
                         "ldr    %[v], [%[u]]\n\t"
                         "ldr    %[a], [%[acc]], #4\n\t"
                         "ldrd   %[b], %[th], [%[n]], #8\n\t"
                         "add    %[b], %[b], %[a], lsl #" VO2_STR(VO2_LIF1_FRAC) "\n\t"
                         "add    %[b], %[b], %[v]\n\t"
                         "sub    %[b], %[b], %[v], asr #" VO2_STR(VO2_LIF1_LEAK) "\n\t"
#if VO2_LIF1_LEAK2
                         "sub    %[b], %[b], %[v], asr #" VO2_STR(VO2_LIF1_LEAK2) "\n\t"
#endif
                         "cmp    %[b], %[th]\n\t"
                         "bgt    2f\n\t"
                         "str    %[b], [%[u]], #4\n\t"
                         "cmp    %[n], %[end]\n\t"
                         "bne    1b\n\t"
                         "mov    %[spiked], #0\n\t"
                         "b      3f\n"
                         "2:\n\t"
                         "sub    %[b], %[b], %[th]\n\t"
                         "str    %[b], [%[u]], #4\n\t"
                         "mov    %[spiked], #1\n"
                         "3:"
                         : [u] "+&r"(u), [acc] "+&r"(acc), [n] "+&r"(n), [v] "=&r"(v),
                           [a] "=&r"(a), [b] "=&r"(b), [th] "=&r"(th),
                           [spiked] "=&r"(spiked)
                         : [end] "r"(end)
                         : "cc", "memory");
        if (spiked) {
            spikes++;
            lif2_synapses((unsigned)(n - LIF1_N) - 1);
        }
    }
#else
    for (; n != end; n++, u++) {
        int32_t v = *u, th = n->th;
        v = v - (v >> VO2_LIF1_LEAK) - VO2_LEAK2(v, VO2_LIF1_LEAK2)
            + *acc++ * (1 << VO2_LIF1_FRAC) + n->bias;
        if (v > th) {
            v -= th;
            spikes++;
            lif2_synapses((unsigned)(n - LIF1_N));
        }
        *u = v;
    }
#endif
    return spikes;
}

/* @stage lif2 neurons: leak, integrate, fire, count; returns the spike */
VO2_INLINE int32_t lif2_neuron(int32_t *u, int32_t cur, int16_t *count, const vo2_lif_t *n)
{
    int32_t v = *u;
    v = v - (v >> VO2_LIF2_LEAK) - VO2_LEAK2(v, VO2_LIF2_LEAK2) + cur * (1 << VO2_LIF2_FRAC)
        + n->bias;
    if (v > n->th) {
        *u = v - n->th;
        ++*count;
        return 1;
    }
    *u = v;
    return 0;
}

#if VO2_LIF2_LEAK2
#define VO2_LIF2_LEAK2_ASM "sub    %[b], %[b], %[v], asr #" VO2_STR(VO2_LIF2_LEAK2) "\n\t"
#else
#define VO2_LIF2_LEAK2_ASM ""
#endif
/* One LIF2 neuron: CUR puts its current in c; its count is the int16 at cnt + OFF. */
#define VO2_LIF2_NEURON(CUR, OFF)                                                            \
    "ldr    %[v], [%[u]]\n\t" CUR                                                             \
    "ldrd   %[b], %[th], [%[n]], #8\n\t"                                                     \
    "add    %[b], %[b], %[c], lsl #" VO2_STR(VO2_LIF2_FRAC) "\n\t"                            \
    "add    %[b], %[b], %[v]\n\t"                                                            \
    "sub    %[b], %[b], %[v], asr #" VO2_STR(VO2_LIF2_LEAK) "\n\t" VO2_LIF2_LEAK2_ASM         \
    "cmp    %[b], %[th]\n\t"                                                                 \
    "ble    4f\n\t"                                                                          \
    "sub    %[b], %[b], %[th]\n\t"                                                           \
    "ldrh   %[c], [%[cnt], #" OFF "]\n\t"                                                    \
    "add    %[c], %[c], #1\n\t"                                                              \
    "strh   %[c], [%[cnt], #" OFF "]\n\t"                                                    \
    "add    %[spikes], %[spikes], #1\n"                                                      \
    "4:\n\t"                                                                                 \
    "str    %[b], [%[u]], #4\n\t"

/* @stage lif2 neurons: every LIF2 neuron with this step's current (then cleared); returns
 * the spikes */
static VO2_NOINLINE int32_t lif2_neurons(int32_t *u, int16_t *count)
{
    const vo2_lif_t *n = LIF2_N;
    int32_t spikes = 0;
#if VO2_LIF2_DENSE && VO2_DSP /* 10 instructions a neuron, 15 when it spikes */
    const uint32_t *end = g_c + VO2_HID / 2;
    uint32_t *cur = g_c;
    int32_t e, d, v, c, b, th;
    __asm__ volatile("1:\n\t"
                     "ldrd   %[e], %[d], [%[cur]]\n\t"
                     "strd   %[zero], %[zero], [%[cur]], #8\n\t"
                     VO2_LIF2_NEURON("sxth   %[c], %[e]\n\t", "0")
                     VO2_LIF2_NEURON("sxth   %[c], %[d]\n\t", "2")
                     VO2_LIF2_NEURON("asr    %[c], %[e], #16\n\t", "4")
                     VO2_LIF2_NEURON("asr    %[c], %[d], #16\n\t", "6")
                     "add    %[cnt], %[cnt], #8\n\t"
                     "cmp    %[cur], %[end]\n\t"
                     "bne    1b"
                     : [u] "+&r"(u), [n] "+&r"(n), [cur] "+&r"(cur), [cnt] "+&r"(count),
                       [spikes] "+&r"(spikes), [e] "=&r"(e), [d] "=&r"(d), [v] "=&r"(v),
                       [c] "=&r"(c), [b] "=&r"(b), [th] "=&r"(th)
                     : [end] "r"(end), [zero] "r"(0)
                     : "cc", "memory");
#elif VO2_LIF2_DENSE
    unsigned o;
    for (o = 0; o < VO2_HID / 2; o += 2, n += 4, u += 4, count += 4) {
        uint32_t e = g_c[o], d = g_c[o + 1];
        g_c[o] = g_c[o + 1] = 0;
        spikes += lif2_neuron(u, s16(e), count, n);
        spikes += lif2_neuron(u + 1, s16(d), count + 1, n + 1);
        spikes += lif2_neuron(u + 2, hi16(e), count + 2, n + 2);
        spikes += lif2_neuron(u + 3, hi16(d), count + 3, n + 3);
    }
#else
    unsigned o;
    for (o = 0; o < VO2_HID; o++, n++, u++, count++) {
        spikes += lif2_neuron(u, g_cur[o], count, n);
        g_cur[o] = 0;
    }
#endif
    return spikes;
}

/* @stage lif1 */
static void step(vo2spike_state_t *s, const int16_t *x)
{
    tcn_step(s, x);
    pack(g_h, VO2_CH / 4, g_x);
    rows_acc(&LIF1, g_x, g_acc);
    s->spikes1 += lif1_neurons(s->u1);
    s->spikes2 += lif2_neurons(s->u2, s->counts);
    s->t++;
}
#else
/* @stage layers: one hidden layer of the twin, block-sparse, requantised (32-bit) */
VO2_INLINE void twin_layer(const vo2_blocks_t *L, const int16_t *mult, uint8_t shift,
                           int8_t *out, int16_t *sum)
{
    unsigned i;
    int32_t round = 1 << (shift - 1);
    rows_acc(L, g_x, g_acc);
    for (i = 0; i < VO2_HID; i++) {
        int8_t a = sat8((relu(g_acc[i]) * mult[i] + round) >> shift);
        if (out)
            out[i] = a;
        else
            sum[i] = (int16_t)(sum[i] + a);
    }
}

static void step(vo2spike_state_t *s, const int16_t *x)
{
    tcn_step(s, x);
    pack(g_h, VO2_CH / 4, g_x);
    twin_layer(&LAYER1, LAYER1_MULT, VO2_LAYER1_SHIFT, (int8_t *)g_h, 0);
    pack(g_h, VO2_HID / 4, g_x);
    twin_layer(&LAYER2, LAYER2_MULT, VO2_LAYER2_SHIFT, 0, s->counts);
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
