/* Run-time choice of the kernel ISA: one x86-64 binary takes the AVX2 path
 * where the CPU has AVX2+FMA (with the AVX-VNNI int8 GEMM where the CPU has
 * that too), aarch64 takes NEON; KESTREL_ISA=ref|avx2|avxvnni|neon forces a
 * path (tests and comparisons; avx2 = without VNNI). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "kernels_isa.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static const kn_kernels ref_table = {
    .isa = KN_ISA_REF,
    .qs8_gemm = kestrel_qs8_gemm__ref,
    .qs8_dwconv = kestrel_qs8_dwconv__ref,
    .f32_gemm = kestrel_f32_gemm__ref,
    .f32_dwconv = kestrel_f32_dwconv__ref,
    .x8_lut = kestrel_x8_lut__ref,
    .name = "ref",
    .qs8_conv_smallc = kestrel_qs8_conv_smallc__ref,
};

#ifdef KESTREL_HAVE_AVX2
static const kn_kernels avx2_table = {
    .isa = KN_ISA_AVX2,
    .qs8_gemm = kestrel_qs8_gemm__avx2,
    .qs8_dwconv = kestrel_qs8_dwconv__avx2,
    .f32_gemm = kestrel_f32_gemm_6x16__avx2,
    .f32_dwconv = kestrel_f32_dwconv__avx2,
    .x8_lut = kestrel_x8_lut__avx2,
    .name = "avx2",
    .qs8_conv_smallc = kestrel_qs8_conv_smallc__avx2,
};
#endif

#ifdef KESTREL_HAVE_AVXVNNI
/* The AVX2 path with the int8 GEMM on vpdpbusd, for CPUs with AVX-VNNI. */
static const kn_kernels avxvnni_table = {
    .isa = KN_ISA_AVX2,
    .qs8_gemm = kestrel_qs8_gemm_4x8__avxvnni,
    .qs8_dwconv = kestrel_qs8_dwconv__avx2,
    .f32_gemm = kestrel_f32_gemm_6x16__avx2,
    .f32_dwconv = kestrel_f32_dwconv__avx2,
    .x8_lut = kestrel_x8_lut__avx2,
    .name = "avx2+avxvnni",
    .qs8_conv_smallc = kestrel_qs8_conv_smallc__avxvnni,
};
#endif

#ifdef KESTREL_HAVE_NEON
static const kn_kernels neon_table = {
    .isa = KN_ISA_NEON,
    .qs8_gemm = kestrel_qs8_gemm_2x8__neon,
    .qs8_dwconv = kestrel_qs8_dwconv__neon,
    .f32_gemm = kestrel_f32_gemm_4x16__neon,
    .f32_dwconv = kestrel_f32_dwconv__neon,
    .x8_lut = kestrel_x8_lut__neon,
    .name = "neon",
    /* No NEON direct kernel yet: NULL keeps the im2col + NEON GEMM path,
     * faster than the portable loop would be. */
    .qs8_conv_smallc = NULL,
};
#endif

const char *kn_isa_name(kn_isa isa) {
  switch (isa) {
  case KN_ISA_REF:
    return "ref";
  case KN_ISA_AVX2:
    return "avx2";
  case KN_ISA_NEON:
    return "neon";
  }
  return "unknown";
}

static int cpu_has(kn_isa isa) {
  switch (isa) {
  case KN_ISA_REF:
    return 1;
  case KN_ISA_AVX2:
#if defined(KESTREL_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
  case KN_ISA_NEON:
#if defined(KESTREL_HAVE_NEON) && defined(__aarch64__)
#if defined(__linux__) && defined(HWCAP_ASIMD)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
    return 1; /* Advanced SIMD is part of the aarch64 base ISA */
#endif
#else
    return 0;
#endif
  }
  return 0;
}

bool kn_cpu_has_avxvnni(void) {
#if defined(KESTREL_HAVE_AVXVNNI) && defined(__x86_64__)
  if (!cpu_has(KN_ISA_AVX2))
    return false;
  /* CPUID.(EAX=7, ECX=1):EAX bit 4; the YMM state is the OS's already
   * (AVX2 was usable). */
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
    return false;
  return (a >> 4) & 1;
#else
  return false;
#endif
}

const kn_kernels *kn_kernels_for(kn_isa isa) {
  if (!cpu_has(isa))
    return NULL;
  switch (isa) {
  case KN_ISA_REF:
    return &ref_table;
#ifdef KESTREL_HAVE_AVX2
  case KN_ISA_AVX2:
    return &avx2_table;
#endif
#ifdef KESTREL_HAVE_NEON
  case KN_ISA_NEON:
    return &neon_table;
#endif
  default:
    return NULL;
  }
}

static kn_isa detected_isa = KN_ISA_REF;
static const kn_kernels *detected_table; /* NULL: kn_kernels_for(isa) */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

/* The AVX-VNNI variant of the AVX2 table, when this CPU and build have it. */
static const kn_kernels *vnni_table(void) {
#ifdef KESTREL_HAVE_AVXVNNI
  if (kn_cpu_has_avxvnni())
    return &avxvnni_table;
#endif
  return NULL;
}

static void detect(void) {
  kn_isa best = KN_ISA_REF;
  const kn_kernels *table = NULL;
  if (kn_kernels_for(KN_ISA_AVX2)) {
    best = KN_ISA_AVX2;
    table = vnni_table();
  } else if (kn_kernels_for(KN_ISA_NEON)) {
    best = KN_ISA_NEON;
  }
  const char *env = getenv("KESTREL_ISA");
  if (env && *env) {
    kn_isa want;
    table = NULL;
    if (!strcmp(env, "ref"))
      want = KN_ISA_REF;
    else if (!strcmp(env, "avx2"))
      want = KN_ISA_AVX2;
    else if (!strcmp(env, "avxvnni")) {
      want = KN_ISA_AVX2;
      table = vnni_table();
      if (!table)
        want = (kn_isa)-1; /* not available: ref below */
    } else if (!strcmp(env, "neon"))
      want = KN_ISA_NEON;
    else {
      fprintf(stderr, "kestrel: KESTREL_ISA=%s is not ref, avx2, avxvnni or "
                      "neon; using %s\n", env, kn_isa_name(best));
      want = best;
      table = best == KN_ISA_AVX2 ? vnni_table() : NULL;
    }
    if (!kn_kernels_for(want)) {
      fprintf(stderr, "kestrel: KESTREL_ISA=%s is not available on this "
                      "CPU or build; using ref\n", env);
      want = KN_ISA_REF;
      table = NULL;
    }
    best = want;
  }
  detected_isa = best;
  detected_table = table;
}

kn_isa kn_isa_detect(void) {
  pthread_once(&detect_once, detect);
  return detected_isa;
}

const kn_kernels *kn_kernels_get(void) {
  kn_isa isa = kn_isa_detect();
  if (detected_table)
    return detected_table;
  const kn_kernels *k = kn_kernels_for(isa);
  return k ? k : &ref_table;
}
