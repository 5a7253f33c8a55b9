/* SHA-256 of a byte buffer (model identity for sidecars and compiled files). */
#ifndef KESTREL_SHA256_H
#define KESTREL_SHA256_H

#include <stddef.h>
#include <stdint.h>

void kn_sha256(const void *data, size_t size, uint8_t digest[32]);
void kn_sha256_hex(const void *data, size_t size, char hex[65]);

#endif
