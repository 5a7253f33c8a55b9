/* CRC-32C (Castagnoli polynomial, as in iSCSI/ext4) for the .kestrel
 * checksum. The SSE4.2 crc32 instruction does 8 bytes a cycle, which keeps
 * checking a multi-megabyte file well inside the load-time budget; other
 * CPUs use a slicing-by-8 table. Both give the same value. */
#include <pthread.h>
#include <string.h>

#include "format.h"

#define CRC32C_POLY 0x82F63B78u /* reflected */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t n) {
  pthread_once(&table_once, table_init);
  while (n && ((uintptr_t)p & 7)) {
    c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    n--;
  }
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    /* Little-endian word: byte 0 is the least significant. */
    uint32_t lo = c ^ (uint32_t)(v & 0xffffffffu), hi = (uint32_t)(v >> 32);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
              (uint32_t)p[3] << 24);
    hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
         (uint32_t)p[7] << 24;
#endif
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
        table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
        table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
        table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--)
    c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CRC_SSE42 1
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t c, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    c = __builtin_ia32_crc32qi(c, *p++);
    n--;
  }
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  c = (uint32_t)c64;
  while (n--)
    c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}
#endif

uint32_t kn_crc32c(uint32_t crc, const void *data, size_t size) {
  uint32_t c = ~crc;
  const uint8_t *p = data;
#ifdef HAVE_CRC_SSE42
  if (__builtin_cpu_supports("sse4.2"))
    return ~crc_sse42(c, p, size);
#endif
  return ~crc_soft(c, p, size);
}

uint32_t kn_format_checksum(const uint8_t *data, size_t size) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  uint32_t c = kn_crc32c(0, data, KN_KESTREL_CRC_OFFSET);
  c = kn_crc32c(c, zero, sizeof(zero));
  return kn_crc32c(c, data + KN_KESTREL_CRC_OFFSET + 4,
                   size - KN_KESTREL_CRC_OFFSET - 4);
}
