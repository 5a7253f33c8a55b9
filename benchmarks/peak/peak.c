/* Prints this core's measured int16 multiply-add and f32 FMA peaks: the
 * yardstick benchmarks/kernels compares the GEMM kernels with.
 * Usage: kestrel-bench-peak [runs] (default 51; median reported). */
#include <stdio.h>
#include <stdlib.h>

#include "peak.h"

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 51;
  double i16 = kn_peak_int16_gmacs(runs), f32 = kn_peak_f32_gmacs(runs);
  printf("int16 multiply-add peak: %.1f GMAC/s (%s, median of %d)\n", i16,
         kn_peak_int16_insn(), runs);
  printf("f32 FMA peak:            %.1f GMAC/s (median of %d)\n", f32, runs);
  return 0;
}
