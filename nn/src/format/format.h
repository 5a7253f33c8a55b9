/* The compiled model file (.kestrel): reader, writer and checksum.
 * Internal to libkestrel-nn; the public side is kestrel/compile.h.
 *
 * Layout (all integers little-endian; offsets are from the file start):
 *
 *   header (128 bytes)
 *     0   magic "KESTREL" 0x1a
 *     8   u32 version (KN_KESTREL_VERSION)
 *     12  u32 CRC-32C of the whole file, computed with this field zero
 *     16  u64 file size
 *     24  u32 header size (128), u32 section count
 *     32  u8[32] sha256 of the source model file
 *     64  u32 source format (kestrel_model_format), u32 flags (0)
 *     72  u64 section table offset
 *     80  reserved, zero
 *   section table: per section u32 id, u32 reserved, u64 offset, u64 size
 *   sections (8-byte aligned; constant blobs 64-byte aligned so that a
 *   mapped file can be used in place by SIMD kernels):
 *     META     counts, opset, arena plan (bytes and lower bound)
 *     STRINGS  names, NUL-terminated, referenced by (offset, length)
 *     TENSORS  128-byte records: name, dtype, shape, kind, flags, data
 *              (absolute offset, size), quantization (PAYLOAD offset),
 *              planned arena offset
 *     NODES    40-byte records: op, name, op name, inputs/outputs (a run
 *              of INDICES), attributes (a run of ATTRS)
 *     ATTRS    40-byte records: name, type, count, int, float, payload
 *     INDICES  i32: node inputs and outputs, then graph inputs, outputs
 *     PAYLOAD  attribute int/float lists, quantization scales/zero points
 *     DATA     constant tensor bytes
 *     SIDECAR  the model's sidecar text, verbatim (may be empty)
 * Unknown section ids are an error in this version; new data gets a new
 * version number (and older readers refuse it with a clear message).
 */
#ifndef KESTREL_FORMAT_H
#define KESTREL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "model_internal.h"
#include "passes/passes.h"

#define KN_KESTREL_MAGIC "KESTREL\x1a"
#define KN_KESTREL_MAGIC_SIZE 8
#define KN_KESTREL_VERSION 1
#define KN_KESTREL_HEADER_SIZE 128
#define KN_KESTREL_CRC_OFFSET 12
#define KN_KESTREL_DATA_ALIGN 64

bool kn_format_is_kestrel(const uint8_t *data, size_t size);

/* CRC-32C (Castagnoli), hardware-accelerated where the CPU has it. */
uint32_t kn_crc32c(uint32_t crc, const void *data, size_t size);
/* The checksum the header should hold for this file (size >= header). */
uint32_t kn_format_checksum(const uint8_t *data, size_t size);

/* Parses m->bytes/m->size (a whole .kestrel file) into m->graph (allocated,
 * empty), fills m->sha256 with the source model's hash and m->sidecar with
 * the embedded sidecar, then validates the graph (shape inference on every
 * node). Constant data is borrowed from m->bytes. */
kestrel_status kn_format_load(kestrel_model *m,
                              const kestrel_load_options *options,
                              kestrel_error *err);

/* Serializes a prepared graph. *out is malloc'd. */
typedef struct kn_format_source {
  const char *sha256_hex; /* 64 hex digits, or NULL */
  kestrel_model_format format;
  const char *sidecar;
  size_t sidecar_size;
  const kn_memory_plan *plan; /* may be NULL */
} kn_format_source;
kestrel_status kn_format_write(const kn_graph *g, const kn_format_source *src,
                               uint8_t **out, size_t *out_size,
                               kestrel_error *err);

/* The embedded sidecar of a whole .kestrel file in memory (checksum and
 * section table checked; the graph is not parsed). */
kestrel_status kn_format_find_sidecar(const uint8_t *data, size_t size,
                                      const char **text, size_t *text_size,
                                      kestrel_error *err);

#endif
