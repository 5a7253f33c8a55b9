/* Measured per-core arithmetic peaks (peak_loops.c), in GMAC/s. */
#ifndef KESTREL_BENCH_PEAK_H
#define KESTREL_BENCH_PEAK_H
double kn_peak_int16_gmacs(int runs);
double kn_peak_f32_gmacs(int runs);
const char *kn_peak_int16_insn(void);
#endif
