/* vo2spike C engine: integer-only VO2 / VO2max estimation (C99, no malloc, no floating
 * point, static buffers). Inputs are int16 in 0.1 units of each channel (0.1 km/h, 0.1 bpm,
 * 0.1 breaths/min, 0.1 L/min, 0.1 year, 0.1 kg, 0.1 cm, sex 0 or 10), one sample per
 * second; outputs are int32 mL/min. */
#ifndef VO2SPIKE_H
#define VO2SPIKE_H

#include <stdint.h>

#include "vo2spike_config.h"

/* One estimate: window VO2 and test VO2max (mL/min), and the spikes of each LIF layer in
 * the window (0 for the ANN twin). */
typedef struct {
    int32_t vo2;
    int32_t vo2max;
    int32_t spikes1;
    int32_t spikes2;
} vo2spike_result_t;

/* The state of one window computed step by step (largest members first: no padding). */
typedef struct {
#if VO2_SPIKING
    int32_t u1[VO2_HID]; /* LIF1 membrane potentials (per-neuron fixed-point units) */
    int32_t u2[VO2_HID]; /* LIF2 membrane potentials */
#endif
    int32_t spikes1, spikes2;
    uint32_t ring[VO2_RING_WORDS]; /* each TCN block's recent int8 inputs (causal, dilated),
                                      4 per word, input channels padded to a multiple of 4 */
    int16_t counts[VO2_HID]; /* LIF2 spike counts, or the twin's layer-2 activation sums */
    uint16_t t;              /* steps done */
    uint8_t pos[VO2_NBLOCKS];  /* ring write positions */
    uint8_t active;
} vo2spike_state_t;

/* Streaming: VO2_NSLOT windows in flight, one starting every VO2_STRIDE samples. */
typedef struct {
    vo2spike_state_t slot[VO2_NSLOT];
    uint32_t n; /* samples pushed */
} vo2spike_stream_t;

/* SHA256 of the int8 model this engine was generated from (hex). */
const char *vo2spike_fingerprint(void);

/* One window: x holds VO2_T samples of VO2_NIN channels, time-major (x[t * VO2_NIN + c]). */
void vo2spike_window(const int16_t *x, vo2spike_result_t *r);

void vo2spike_stream_init(vo2spike_stream_t *s);

/* Push one sample (VO2_NIN channels). Returns 1 and fills r when a window has ended: after
 * the first VO2_T samples, then every VO2_STRIDE samples; r equals vo2spike_window() on the
 * last VO2_T samples, bit for bit. Returns 0 otherwise. */
int vo2spike_stream_push(vo2spike_stream_t *s, const int16_t *sample, vo2spike_result_t *r);

#endif
