/* Replays fuzzer inputs without libFuzzer: every file under the given
 * directories goes through LLVMFuzzerTestOneInput once. Linked with each
 * fuzz_*.c so that crashers found once stay fixed in ordinary builds. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return 1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t *grown = realloc(buf, cap);
      if (!grown) {
        free(buf);
        fclose(f);
        return 1;
      }
      buf = grown;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    if (got == 0)
      break;
    len += got;
  }
  fclose(f);
  printf("replay %s (%zu bytes)\n", path, len);
  fflush(stdout);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int failures = 0, files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      fprintf(stderr, "missing %s\n", argv[i]);
      failures++;
      continue;
    }
    if (!S_ISDIR(sb.st_mode)) {
      failures += replay_file(argv[i]);
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      failures += replay_file(path);
      files++;
    }
    if (d)
      closedir(d);
  }
  printf("%d file(s) replayed, %d unreadable\n", files, failures);
  return failures ? 1 : 0;
}
