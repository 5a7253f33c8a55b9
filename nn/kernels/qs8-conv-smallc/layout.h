/* Scratch layout shared by the qs8 small-C direct conv kernels (see
 * kernels.h): what kn_qs8_conv_smallc_scratch_size() sizes and the SIMD
 * kernels fill. Internal to nn/kernels/qs8-conv-smallc/. */
#ifndef KESTREL_QS8_CONV_SMALLC_LAYOUT_H
#define KESTREL_QS8_CONV_SMALLC_LAYOUT_H

#include <stdint.h>

#include "kernels.h"

/* Elements read past a run's end by the widest slot (4 bytes for VNNI):
 * they meet zero weights but must exist. */
#define SMALLC_SLACK 4

/* Pieces of one call's scratch, each 64-byte aligned:
 *   bias    int32[NB*8]   per-channel start value of the accumulators
 *   scale   float[NB*8]   requant scales, 0 past N
 *   weights KH * G groups of NB blocks of 32 bytes: for each block the 8
 *           channels' `slot` weights of this group (int16 pairs on AVX2,
 *           int8 quads on VNNI), zero past the run or past N
 *   rows    KH + 1 widened input rows (the last: all padding), each
 *           row_elems elements starting at pixel -pad_left. */
typedef struct smallc_layout {
  size_t nb;        /* blocks of 8 channels */
  size_t run;       /* KW * C: elements of one kernel row */
  size_t groups;    /* slot groups per kernel row: ceil(run / slot) */
  size_t width_px;  /* pixels a row buffer covers from -pad_left */
  size_t row_elems; /* elements per row buffer incl. slack, mult. of 32 */
  int32_t *bias;
  float *scale;
  uint8_t *weights;
  uint8_t *rows; /* row r at rows + r * row_elems * elem_size */
} smallc_layout;

static inline size_t smallc_align64(size_t v) { return (v + 63) & ~(size_t)63; }

/* Fills every size of *l for a slot of `slot` elements of `elem_size` bytes
 * and, when scratch is not NULL, the pointers; returns the bytes needed. The
 * AVX2 layout (slot 2, int16) is the largest, so scratch sized with it fits
 * every kernel. */
static inline size_t smallc_layout_make(const kn_conv_geometry *g, size_t n,
                                        size_t slot, size_t elem_size,
                                        void *scratch, smallc_layout *l) {
  l->nb = (n + 7) / 8;
  l->run = g->kernel_w * g->in_c;
  l->groups = (l->run + slot - 1) / slot;
  l->width_px = (g->out_w - 1) * g->stride_w + g->kernel_w;
  l->row_elems = (l->width_px * g->in_c + SMALLC_SLACK + 31) & ~(size_t)31;
  size_t bias_b = smallc_align64(l->nb * 8 * sizeof(int32_t));
  size_t scale_b = smallc_align64(l->nb * 8 * sizeof(float));
  size_t w_b = smallc_align64(g->kernel_h * l->groups * l->nb * 32);
  size_t rows_b = (g->kernel_h + 1) * l->row_elems * elem_size;
  l->bias = NULL;
  l->scale = NULL;
  l->weights = l->rows = NULL;
  if (scratch) {
    uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    l->bias = (int32_t *)p;
    l->scale = (float *)(p + bias_b);
    l->weights = p + bias_b + scale_b;
    l->rows = p + bias_b + scale_b + w_b;
  }
  return 64 + bias_b + scale_b + w_b + rows_b;
}

/* Where the packed GEMM layout (qs8-gemm/pack.c) keeps weight (channel j of
 * a block, reduction index k): channel j sits in row 2j (j < 4) or
 * 2(j - 4) + 1 of each 64-byte group. */
static inline int8_t smallc_packed_weight(const uint8_t *block, size_t j,
                                          size_t k) {
  size_t row = j < 4 ? 2 * j : 2 * (j - 4) + 1;
  return (int8_t)
      block[KN_QS8_GEMM_NR * sizeof(int32_t) + (k / KN_QS8_GEMM_KR) * 64 +
            row * KN_QS8_GEMM_KR + k % KN_QS8_GEMM_KR];
}

#endif
