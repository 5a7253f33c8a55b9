/* Per-model sidecar files (what a model expects and how to read its
 * outputs) and image preprocessing into the input tensor.
 *
 * Format: UTF-8 text, one `key = value` per line, grouped by `[section]`.
 * Lines whose first non-blank character is `#` or `;` are comments. Lists
 * are comma-separated; an item may be double-quoted to hold commas or
 * spaces ("a, b"). Booleans are true/false/1/0/yes/no. Unknown sections
 * and keys are errors, so a typo never silently falls back to a default.
 *
 *   [model]    name, sha256 (of the model file; used to find the sidecar)
 *   [input]    width, height, layout = nchw|nhwc, channels = rgb|bgr,
 *              scale, mean, std  (value = (pixel * scale - mean) / std; mean
 *              and std take 1 or 3 values), offset (sets mean = -offset),
 *              resize = stretch|letterbox|pad_right|multiple, pad_value,
 *              limit_side, limit_type = max|min, multiple
 *   [decoder]  type = none|classify|ssd|dbnet, labels (list), labels_file
 *              (one label a line, relative to the sidecar), keypoints (list)
 *   [ssd]      MediaPipe SsdAnchors/TensorsToDetections option names
 *   [classify] softmax, top_k, min_score
 *   [dbnet]    threshold, box_threshold, unclip_ratio, max_candidates,
 *              min_size
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/decode.h>

#include "graph.h"
#include "preprocess/preprocess_kernels.h"

/* Sidecars are a few hundred bytes; a labels file may hold ImageNet's or a
 * CJK character set (~7k lines). Anything far above is not ours. */
#define SIDECAR_MAX_BYTES (1u << 20)
#define LABELS_MAX_BYTES (8u << 20)
#define LABELS_MAX_COUNT 100000
#define LINE_MAX_CHARS 8192
#define MAX_TENSOR_SIDE 16384

void kestrel_sidecar_init(kestrel_sidecar *sc) {
  memset(sc, 0, sizeof(*sc));
  sc->layout = KESTREL_LAYOUT_NCHW;
  sc->scale = 1.0f / 255.0f;
  for (int c = 0; c < 3; c++) {
    sc->mean[c] = 0.0f;
    sc->std[c] = 1.0f;
  }
  sc->pad_value = NAN; /* resolved after parsing: normalized black */
  sc->limit_side = 960;
  sc->limit_max = 1;
  sc->multiple = 32;

  kestrel_ssd_options *s = &sc->ssd;
  s->anchor_offset_x = 0.5f;
  s->anchor_offset_y = 0.5f;
  s->num_aspect_ratios = 1;
  s->aspect_ratios[0] = 1.0f;
  s->interpolated_scale_aspect_ratio = 1.0f;
  s->fixed_anchor_size = 1;
  s->num_coords = 4;
  s->keypoint_coord_offset = 4;
  s->num_values_per_keypoint = 2;
  s->x_scale = s->y_scale = s->w_scale = s->h_scale = 1.0f;
  s->sigmoid_score = 1;
  s->score_clipping = 100.0f;
  s->min_score = 0.5f;
  s->nms = KESTREL_NMS_WEIGHTED;
  s->nms_iou = 0.3f;
  s->max_detections = 100;

  sc->classify.top_k = 5;
  sc->classify.min_score = 0.0f;

  sc->dbnet.threshold = 0.3f;
  sc->dbnet.box_threshold = 0.6f;
  sc->dbnet.unclip_ratio = 1.5f;
  sc->dbnet.max_candidates = 1000;
  sc->dbnet.min_size = 3.0f;
}

static void free_strings(char **v, int n) {
  for (int i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void kestrel_sidecar_free(kestrel_sidecar *sc) {
  if (!sc)
    return;
  free_strings(sc->labels, sc->num_labels);
  free_strings(sc->keypoint_names, sc->num_keypoint_names);
  sc->labels = NULL;
  sc->keypoint_names = NULL;
  sc->num_labels = sc->num_keypoint_names = 0;
}

/* --- reading files -------------------------------------------------------- */

static kestrel_status read_file(const char *path, size_t limit, char **out,
                                size_t *size, kestrel_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return kn_fail(err, KESTREL_ERROR_IO, "%s: %s", path, strerror(errno));
  char *buf = malloc(limit + 1);
  if (!buf) {
    fclose(f);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                   path);
  }
  size_t n = fread(buf, 1, limit + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return kn_fail(err, KESTREL_ERROR_IO, "%s: read error", path);
  }
  if (n > limit) {
    free(buf);
    return kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "%s: larger than %zu bytes, not a sidecar/labels file",
                   path, limit);
  }
  buf[n] = '\0';
  *out = buf;
  *size = n;
  return KESTREL_OK;
}

/* --- parsing -------------------------------------------------------------- */

typedef struct parser {
  const char *name; /* for messages */
  const char *base_dir;
  int line;
  char key[64];
  kestrel_error *err;
} parser;

static kestrel_status perr(parser *p, const char *fmt, const char *detail) {
  return kn_fail(p->err, KESTREL_ERROR_MALFORMED, "%s:%d: key '%s': %s%s",
                 p->name, p->line, p->key, fmt, detail ? detail : "");
}

static char *trim(char *s) {
  while (*s && isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Splits a list value in place. Items are trimmed and unquoted; returns the
 * count, or -1 on an unterminated quote. */
static int split_list(char *s, char **items, int capacity) {
  int n = 0;
  char *p = s;
  while (*p) {
    while (*p && isspace((unsigned char)*p))
      p++;
    if (!*p)
      break;
    char *start, *end;
    if (*p == '"') {
      start = ++p;
      while (*p && *p != '"')
        p++;
      if (*p != '"')
        return -1;
      end = p++;
      while (*p && isspace((unsigned char)*p))
        p++;
      if (*p == ',')
        p++;
      else if (*p)
        return -1;
    } else {
      start = p;
      while (*p && *p != ',')
        p++;
      end = p;
      if (*p == ',')
        p++;
      while (end > start && isspace((unsigned char)end[-1]))
        end--;
    }
    *end = '\0';
    if (n >= capacity)
      return capacity + 1;
    items[n++] = start;
  }
  return n;
}

static kestrel_status parse_float(parser *p, const char *v, float lo, float hi,
                                  float *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(d))
    return perr(p, "not a number: ", v);
  if (d < lo || d > hi) {
    char msg[96];
    snprintf(msg, sizeof(msg), "out of range [%g, %g]: ", lo, hi);
    return perr(p, msg, v);
  }
  *out = (float)d;
  return KESTREL_OK;
}

static kestrel_status parse_int(parser *p, const char *v, long lo, long hi,
                                int *out) {
  char *end;
  errno = 0;
  long d = strtol(v, &end, 10);
  if (end == v || *end || errno)
    return perr(p, "not an integer: ", v);
  if (d < lo || d > hi) {
    char msg[96];
    snprintf(msg, sizeof(msg), "out of range [%ld, %ld]: ", lo, hi);
    return perr(p, msg, v);
  }
  *out = (int)d;
  return KESTREL_OK;
}

static kestrel_status parse_bool(parser *p, const char *v, int *out) {
  if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
    *out = 1;
    return KESTREL_OK;
  }
  if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
    *out = 0;
    return KESTREL_OK;
  }
  return perr(p, "not a boolean (true/false): ", v);
}

/* names: NULL-terminated; the value is the index. */
static kestrel_status parse_enum(parser *p, const char *v,
                                 const char *const *names, int *out) {
  for (int i = 0; names[i]; i++) {
    if (!strcmp(v, names[i])) {
      *out = i;
      return KESTREL_OK;
    }
  }
  return perr(p, "unknown value: ", v);
}

static kestrel_status parse_float_list(parser *p, char *v, float lo, float hi,
                                       float *out, int capacity, int *count) {
  char *items[KESTREL_SSD_MAX_LAYERS + 1];
  int n = split_list(v, items, KESTREL_SSD_MAX_LAYERS);
  if (n < 0)
    return perr(p, "unterminated quote", NULL);
  if (n == 0 || n > capacity)
    return perr(p, "wrong number of values", NULL);
  for (int i = 0; i < n; i++) {
    kestrel_status st = parse_float(p, items[i], lo, hi, &out[i]);
    if (st)
      return st;
  }
  *count = n;
  return KESTREL_OK;
}

static kestrel_status set_strings(parser *p, char **items, int n, char ***out,
                                  int *count) {
  char **v = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
  if (!v)
    return kn_fail(p->err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                   p->name);
  for (int i = 0; i < n; i++) {
    if (strlen(items[i]) > 255) {
      free_strings(v, i);
      return perr(p, "label longer than 255 bytes", NULL);
    }
    v[i] = strdup(items[i]);
    if (!v[i]) {
      free_strings(v, i);
      return kn_fail(p->err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                     p->name);
    }
  }
  free_strings(*out, *count);
  *out = v;
  *count = n;
  return KESTREL_OK;
}

static kestrel_status parse_string_list(parser *p, char *v, char ***out,
                                        int *count) {
  /* A list cannot have more items than commas + 1. */
  size_t cap = 1;
  for (const char *c = v; *c; c++)
    cap += *c == ',';
  if (cap > LABELS_MAX_COUNT)
    return perr(p, "too many items", NULL);
  char **items = malloc(cap * sizeof(char *));
  if (!items)
    return kn_fail(p->err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                   p->name);
  int n = split_list(v, items, (int)cap);
  kestrel_status st;
  if (n < 0)
    st = perr(p, "unterminated or misplaced quote", NULL);
  else
    st = set_strings(p, items, n, out, count);
  free(items);
  return st;
}

static kestrel_status load_labels_file(parser *p, const char *file,
                                       kestrel_sidecar *sc) {
  char path[4096];
  if (file[0] == '/' || !p->base_dir || !p->base_dir[0])
    snprintf(path, sizeof(path), "%s", file);
  else
    snprintf(path, sizeof(path), "%s/%s", p->base_dir, file);
  char *text;
  size_t size;
  kestrel_error sub;
  if (read_file(path, LABELS_MAX_BYTES, &text, &size, &sub))
    return perr(p, "", sub.message);
  size_t cap = 1;
  for (size_t i = 0; i < size; i++)
    cap += text[i] == '\n';
  kestrel_status st = KESTREL_OK;
  char **items = NULL;
  if (cap > LABELS_MAX_COUNT) {
    st = perr(p, "too many labels in ", path);
    goto done;
  }
  items = malloc(cap * sizeof(char *));
  if (!items) {
    st = kn_fail(p->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  int n = 0;
  char *line = text;
  while (line < text + size) {
    char *nl = memchr(line, '\n', (size_t)(text + size - line));
    char *end = nl ? nl : text + size;
    *end = '\0';
    if (end > line && end[-1] == '\r')
      end[-1] = '\0';
    items[n++] = line;
    line = end + 1;
  }
  st = set_strings(p, items, n, &sc->labels, &sc->num_labels);
done:
  free(items);
  free(text);
  return st;
}

static kestrel_status set_key(parser *p, const char *section, char *v,
                              kestrel_sidecar *sc) {
  static const char *const layouts[] = {"nchw", "nhwc", NULL};
  static const char *const channels[] = {"rgb", "bgr", NULL};
  static const char *const resizes[] = {"stretch", "letterbox", "pad_right",
                                        "multiple", NULL};
  static const char *const limits[] = {"min", "max", NULL};
  static const char *const decoders[] = {"none", "classify", "ssd", "dbnet",
                                         NULL};
  static const char *const nms_modes[] = {"none", "plain", "weighted", NULL};
  const char *k = p->key;
  int count;
  int tmp = 0;
  kestrel_status st;

  if (!strcmp(section, "model")) {
    if (!strcmp(k, "name")) {
      if (strlen(v) >= sizeof(sc->name))
        return perr(p, "longer than 63 bytes", NULL);
      strcpy(sc->name, v);
      return KESTREL_OK;
    }
    if (!strcmp(k, "sha256")) {
      if (strlen(v) != 64)
        return perr(p, "want 64 hex digits", NULL);
      for (int i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)v[i]))
          return perr(p, "want 64 hex digits", NULL);
        sc->sha256[i] = (char)tolower((unsigned char)v[i]);
      }
      sc->sha256[64] = '\0';
      return KESTREL_OK;
    }
  } else if (!strcmp(section, "input")) {
    if (!strcmp(k, "width"))
      return parse_int(p, v, 1, MAX_TENSOR_SIDE, &sc->width);
    if (!strcmp(k, "height"))
      return parse_int(p, v, 1, MAX_TENSOR_SIDE, &sc->height);
    if (!strcmp(k, "layout")) {
      st = parse_enum(p, v, layouts, &tmp);
      sc->layout = (kestrel_layout)tmp;
      return st;
    }
    if (!strcmp(k, "channels"))
      return parse_enum(p, v, channels, &sc->bgr);
    if (!strcmp(k, "scale"))
      return parse_float(p, v, -1e6f, 1e6f, &sc->scale);
    if (!strcmp(k, "mean") || !strcmp(k, "std") || !strcmp(k, "offset")) {
      float vals[3];
      st = parse_float_list(p, v, -1e6f, 1e6f, vals, 3, &count);
      if (st)
        return st;
      if (count == 2)
        return perr(p, "want 1 or 3 values", NULL);
      for (int c = 0; c < 3; c++) {
        float x = vals[count == 1 ? 0 : c];
        if (k[0] == 'm')
          sc->mean[c] = x;
        else if (k[0] == 'o')
          sc->mean[c] = -x;
        else if (fabsf(x) < 1e-12f)
          return perr(p, "std must not be 0", NULL);
        else
          sc->std[c] = x;
      }
      return KESTREL_OK;
    }
    if (!strcmp(k, "resize")) {
      st = parse_enum(p, v, resizes, &tmp);
      sc->resize = (kestrel_resize_mode)tmp;
      return st;
    }
    if (!strcmp(k, "pad_value"))
      return parse_float(p, v, -1e6f, 1e6f, &sc->pad_value);
    if (!strcmp(k, "limit_side"))
      return parse_int(p, v, 1, MAX_TENSOR_SIDE, &sc->limit_side);
    if (!strcmp(k, "limit_type"))
      return parse_enum(p, v, limits, &sc->limit_max);
    if (!strcmp(k, "multiple"))
      return parse_int(p, v, 1, 1024, &sc->multiple);
  } else if (!strcmp(section, "decoder")) {
    if (!strcmp(k, "type")) {
      st = parse_enum(p, v, decoders, &tmp);
      sc->decoder = (kestrel_decoder_type)tmp;
      return st;
    }
    if (!strcmp(k, "labels"))
      return parse_string_list(p, v, &sc->labels, &sc->num_labels);
    if (!strcmp(k, "labels_file"))
      return load_labels_file(p, v, sc);
    if (!strcmp(k, "keypoints")) {
      st = parse_string_list(p, v, &sc->keypoint_names,
                             &sc->num_keypoint_names);
      if (!st && sc->num_keypoint_names > KESTREL_MAX_KEYPOINTS)
        return perr(p, "more than 8 keypoints", NULL);
      return st;
    }
  } else if (!strcmp(section, "ssd")) {
    kestrel_ssd_options *s = &sc->ssd;
    if (!strcmp(k, "num_layers"))
      return parse_int(p, v, 1, KESTREL_SSD_MAX_LAYERS, &s->num_layers);
    if (!strcmp(k, "strides")) {
      float f[KESTREL_SSD_MAX_LAYERS];
      st = parse_float_list(p, v, 1, 4096, f, KESTREL_SSD_MAX_LAYERS, &count);
      if (st)
        return st;
      for (int i = 0; i < count; i++) {
        if (f[i] != floorf(f[i]))
          return perr(p, "strides must be integers", NULL);
        s->strides[i] = (int)f[i];
      }
      /* num_layers defaults to the number of strides. */
      if (s->num_layers == 0)
        s->num_layers = count;
      else if (s->num_layers != count)
        return perr(p, "count differs from num_layers", NULL);
      return KESTREL_OK;
    }
    if (!strcmp(k, "min_scale"))
      return parse_float(p, v, 0, 100, &s->min_scale);
    if (!strcmp(k, "max_scale"))
      return parse_float(p, v, 0, 100, &s->max_scale);
    if (!strcmp(k, "anchor_offset_x"))
      return parse_float(p, v, 0, 1, &s->anchor_offset_x);
    if (!strcmp(k, "anchor_offset_y"))
      return parse_float(p, v, 0, 1, &s->anchor_offset_y);
    if (!strcmp(k, "aspect_ratios"))
      return parse_float_list(p, v, 1e-3f, 1e3f, s->aspect_ratios,
                              KESTREL_SSD_MAX_LAYERS, &s->num_aspect_ratios);
    if (!strcmp(k, "interpolated_scale_aspect_ratio"))
      return parse_float(p, v, 0, 1e3f, &s->interpolated_scale_aspect_ratio);
    if (!strcmp(k, "fixed_anchor_size"))
      return parse_bool(p, v, &s->fixed_anchor_size);
    if (!strcmp(k, "reduce_boxes_in_lowest_layer"))
      return parse_bool(p, v, &s->reduce_boxes_in_lowest_layer);
    if (!strcmp(k, "num_coords"))
      return parse_int(p, v, 4, 1024, &s->num_coords);
    if (!strcmp(k, "box_coord_offset"))
      return parse_int(p, v, 0, 1024, &s->box_coord_offset);
    if (!strcmp(k, "keypoint_coord_offset"))
      return parse_int(p, v, 0, 1024, &s->keypoint_coord_offset);
    if (!strcmp(k, "num_keypoints"))
      return parse_int(p, v, 0, KESTREL_MAX_KEYPOINTS, &s->num_keypoints);
    if (!strcmp(k, "num_values_per_keypoint"))
      return parse_int(p, v, 2, 16, &s->num_values_per_keypoint);
    if (!strcmp(k, "reverse_output_order"))
      return parse_bool(p, v, &s->reverse_output_order);
    if (!strcmp(k, "x_scale"))
      return parse_float(p, v, 1e-6f, 1e6f, &s->x_scale);
    if (!strcmp(k, "y_scale"))
      return parse_float(p, v, 1e-6f, 1e6f, &s->y_scale);
    if (!strcmp(k, "w_scale"))
      return parse_float(p, v, 1e-6f, 1e6f, &s->w_scale);
    if (!strcmp(k, "h_scale"))
      return parse_float(p, v, 1e-6f, 1e6f, &s->h_scale);
    if (!strcmp(k, "sigmoid_score"))
      return parse_bool(p, v, &s->sigmoid_score);
    if (!strcmp(k, "score_clipping"))
      return parse_float(p, v, 0, 1e6f, &s->score_clipping);
    if (!strcmp(k, "min_score"))
      return parse_float(p, v, 0, 1, &s->min_score);
    if (!strcmp(k, "nms")) {
      st = parse_enum(p, v, nms_modes, &tmp);
      s->nms = (kestrel_nms_mode)tmp;
      return st;
    }
    if (!strcmp(k, "nms_iou"))
      return parse_float(p, v, 0, 1, &s->nms_iou);
    if (!strcmp(k, "max_detections"))
      return parse_int(p, v, 1, 100000, &s->max_detections);
  } else if (!strcmp(section, "classify")) {
    if (!strcmp(k, "softmax"))
      return parse_bool(p, v, &sc->classify.softmax);
    if (!strcmp(k, "top_k"))
      return parse_int(p, v, 1, 100000, &sc->classify.top_k);
    if (!strcmp(k, "min_score"))
      return parse_float(p, v, -1e6f, 1e6f, &sc->classify.min_score);
  } else if (!strcmp(section, "dbnet")) {
    kestrel_dbnet_options *d = &sc->dbnet;
    if (!strcmp(k, "threshold"))
      return parse_float(p, v, 0, 1, &d->threshold);
    if (!strcmp(k, "box_threshold"))
      return parse_float(p, v, 0, 1, &d->box_threshold);
    if (!strcmp(k, "unclip_ratio"))
      return parse_float(p, v, 0, 100, &d->unclip_ratio);
    if (!strcmp(k, "max_candidates"))
      return parse_int(p, v, 1, 1000000, &d->max_candidates);
    if (!strcmp(k, "min_size"))
      return parse_float(p, v, 0, 1e4f, &d->min_size);
  }
  return perr(p, "unknown key in section ", section);
}

/* Cross-field checks a single key cannot make. */
static kestrel_status validate(parser *p, kestrel_sidecar *sc) {
  p->line = 0;
  if (sc->decoder == KESTREL_DECODER_SSD) {
    const kestrel_ssd_options *s = &sc->ssd;
    snprintf(p->key, sizeof(p->key), "ssd");
    if (s->num_layers < 1)
      return perr(p, "[ssd] needs strides", NULL);
    if (sc->width < 1 || sc->height < 1)
      return perr(p, "[input] width and height are needed for anchors",
                  NULL);
    if (s->box_coord_offset + 4 > s->num_coords)
      return perr(p, "box_coord_offset + 4 exceeds num_coords", NULL);
    if (s->keypoint_coord_offset +
            s->num_keypoints * s->num_values_per_keypoint >
        s->num_coords)
      return perr(p, "keypoints exceed num_coords", NULL);
  }
  if (sc->resize == KESTREL_RESIZE_MULTIPLE) {
    if (sc->multiple > sc->limit_side) {
      snprintf(p->key, sizeof(p->key), "multiple");
      return perr(p, "larger than limit_side", NULL);
    }
  } else if ((sc->width > 0) != (sc->height > 0)) {
    snprintf(p->key, sizeof(p->key), "width");
    return perr(p, "width and height go together", NULL);
  }
  if (isnan(sc->pad_value))
    sc->pad_value = (0.0f - sc->mean[0]) / sc->std[0];
  return KESTREL_OK;
}

kestrel_status kestrel_sidecar_parse(const char *text, size_t size,
                                     const char *name, const char *base_dir,
                                     kestrel_sidecar *sc, kestrel_error *err) {
  kestrel_sidecar_init(sc);
  parser p = {.name = name ? name : "sidecar", .base_dir = base_dir,
              .err = err};
  char section[32] = "";
  char line[LINE_MAX_CHARS];
  size_t pos = 0;
  kestrel_status st = KESTREL_OK;
  if (size > SIDECAR_MAX_BYTES)
    return kn_fail(err, KESTREL_ERROR_MALFORMED, "%s: larger than %u bytes",
                   p.name, SIDECAR_MAX_BYTES);
  while (pos < size) {
    p.line++;
    p.key[0] = '\0';
    const char *nl = memchr(text + pos, '\n', size - pos);
    size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
    if (len >= sizeof(line)) {
      st = kn_fail(err, KESTREL_ERROR_MALFORMED, "%s:%d: line longer than %d",
                   p.name, p.line, LINE_MAX_CHARS - 1);
      goto fail;
    }
    memcpy(line, text + pos, len);
    line[len] = '\0';
    pos += len + 1;
    if (memchr(line, '\0', len)) {
      st = kn_fail(err, KESTREL_ERROR_MALFORMED, "%s:%d: NUL byte in text",
                   p.name, p.line);
      goto fail;
    }
    char *s = trim(line);
    if (!*s || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *close = strchr(s, ']');
      if (!close || close[1] != '\0') {
        st = kn_fail(err, KESTREL_ERROR_MALFORMED,
                     "%s:%d: malformed section header", p.name, p.line);
        goto fail;
      }
      *close = '\0';
      char *sec = trim(s + 1);
      static const char *const known[] = {"model", "input", "decoder", "ssd",
                                          "classify", "dbnet", NULL};
      int ok = 0;
      for (int i = 0; known[i]; i++)
        ok |= !strcmp(sec, known[i]);
      if (!ok) {
        st = kn_fail(err, KESTREL_ERROR_MALFORMED,
                     "%s:%d: unknown section [%.40s]", p.name, p.line, sec);
        goto fail;
      }
      snprintf(section, sizeof(section), "%s", sec);
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq) {
      st = kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "%s:%d: expected 'key = value'", p.name, p.line);
      goto fail;
    }
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (!*key || strlen(key) >= sizeof(p.key)) {
      st = kn_fail(err, KESTREL_ERROR_MALFORMED, "%s:%d: bad key", p.name,
                   p.line);
      goto fail;
    }
    strcpy(p.key, key);
    if (!section[0]) {
      st = perr(&p, "key outside any [section]", NULL);
      goto fail;
    }
    st = set_key(&p, section, value, sc);
    if (st)
      goto fail;
  }
  st = validate(&p, sc);
  if (st)
    goto fail;
  return KESTREL_OK;
fail:
  kestrel_sidecar_free(sc);
  return st;
}

kestrel_status kestrel_sidecar_load(const char *path, kestrel_sidecar *sc,
                                    kestrel_error *err) {
  char *text;
  size_t size;
  kestrel_sidecar_init(sc);
  kestrel_status st = read_file(path, SIDECAR_MAX_BYTES, &text, &size, err);
  if (st)
    return st;
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    strcpy(dir, ".");
  st = kestrel_sidecar_parse(text, size, path, dir, sc, err);
  free(text);
  return st;
}

/* --- finding a model's sidecar -------------------------------------------- */

static int file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  fclose(f);
  return 1;
}

/* Cheap textual look for `sha256 = HEX` so that one broken sidecar in the
 * folder does not hide the others; the chosen file is then fully parsed. */
static int sidecar_has_sha(const char *path, const char *sha) {
  char *text;
  size_t size;
  kestrel_error ignored;
  if (read_file(path, SIDECAR_MAX_BYTES, &text, &size, &ignored))
    return 0;
  int found = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && !found;
       line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (!eq)
      continue;
    *eq = '\0';
    if (strcmp(trim(line), "sha256"))
      continue;
    char *v = trim(eq + 1);
    found = strlen(v) == 64 && !strncasecmp(v, sha, 64);
  }
  free(text);
  return found;
}

kestrel_status kestrel_sidecar_find(const char *model_path,
                                    const char *model_sha256,
                                    const char *asset_dir, char *out,
                                    size_t out_size, kestrel_error *err) {
  char path[4096];
  if (model_path) {
    snprintf(path, sizeof(path), "%s.sidecar", model_path);
    if (file_exists(path))
      goto found;
    snprintf(path, sizeof(path), "%s", model_path);
    char *slash = strrchr(path, '/');
    char *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash)) {
      size_t room = sizeof(path) - (size_t)(dot - path);
      snprintf(dot, room, ".sidecar");
      if (file_exists(path))
        goto found;
    }
  }
  if (asset_dir && model_sha256 && strlen(model_sha256) == 64) {
    DIR *d = opendir(asset_dir);
    if (d) {
      struct dirent *e;
      int hit = 0;
      /* readdir order is arbitrary: pick the smallest matching name so the
       * choice is reproducible. */
      char best[256] = "";
      while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 9 || strcmp(e->d_name + n - 8, ".sidecar"))
          continue;
        snprintf(path, sizeof(path), "%s/%s", asset_dir, e->d_name);
        if (sidecar_has_sha(path, model_sha256) &&
            (!hit || strcmp(e->d_name, best) < 0)) {
          snprintf(best, sizeof(best), "%s", e->d_name);
          hit = 1;
        }
      }
      closedir(d);
      if (hit) {
        snprintf(path, sizeof(path), "%s/%s", asset_dir, best);
        goto found;
      }
    }
  }
  return kn_fail(err, KESTREL_ERROR_IO,
                 "no sidecar for %s (tried MODEL.sidecar, BASENAME.sidecar "
                 "and sha256 match in %s); pass --config FILE",
                 model_path ? model_path : "model",
                 asset_dir ? asset_dir : "(no asset folder)");
found:
  if (strlen(path) >= out_size)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "path too long: %s",
                   path);
  strcpy(out, path);
  return KESTREL_OK;
}

/* --- preprocessing -------------------------------------------------------- */

static int round_to_multiple(double v, int m) {
  int r = (int)lround(v / m) * m;
  return r < m ? m : r;
}

kestrel_status kestrel_preprocess_size(const kestrel_sidecar *sc,
                                       int image_width, int image_height,
                                       int *tensor_width, int *tensor_height,
                                       kestrel_error *err) {
  if (image_width < 1 || image_height < 1 || image_width > 65535 ||
      image_height > 65535)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "image size %dx%d out of range", image_width,
                   image_height);
  if (sc->resize == KESTREL_RESIZE_MULTIPLE) {
    /* PaddleOCR det: scale so the longest (limit_type max) or shortest
     * (min) side meets limit_side, then round each side to the multiple. */
    int side = sc->limit_max ? (image_width > image_height ? image_width
                                                           : image_height)
                             : (image_width < image_height ? image_width
                                                           : image_height);
    double ratio = 1.0;
    if (sc->limit_max ? side > sc->limit_side : side < sc->limit_side)
      ratio = (double)sc->limit_side / side;
    int w = round_to_multiple(image_width * ratio, sc->multiple);
    int h = round_to_multiple(image_height * ratio, sc->multiple);
    if (w > MAX_TENSOR_SIDE || h > MAX_TENSOR_SIDE)
      return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                     "tensor size %dx%d too large", w, h);
    *tensor_width = w;
    *tensor_height = h;
    return KESTREL_OK;
  }
  if (sc->width < 1 || sc->height < 1)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "sidecar gives no input width/height");
  *tensor_width = sc->width;
  *tensor_height = sc->height;
  return KESTREL_OK;
}

/* Samples channel values at tensor pixel (tx, ty): bilinear when enlarging
 * or shrinking gently, the mean over the pixel's footprint when shrinking
 * by 2x or more (bilinear alone aliases badly from 1920 to 192). Returns 0
 * when the pixel lies outside the image (padding). */
static int sample(const uint8_t *rgb, int w, int h, size_t stride,
                  const kestrel_transform *tf, int tx, int ty, float out[3]) {
  float sx0 = (tx - tf->pad_x) / tf->scale_x;
  float sy0 = (ty - tf->pad_y) / tf->scale_y;
  float sx1 = (tx + 1 - tf->pad_x) / tf->scale_x;
  float sy1 = (ty + 1 - tf->pad_y) / tf->scale_y;
  float cx = 0.5f * (sx0 + sx1), cy = 0.5f * (sy0 + sy1);
  if (cx < 0 || cy < 0 || cx >= w || cy >= h)
    return 0;
  if (sx1 - sx0 >= 2.0f || sy1 - sy0 >= 2.0f) {
    int x0 = (int)floorf(sx0 + 0.5f), x1 = (int)floorf(sx1 + 0.5f);
    int y0 = (int)floorf(sy0 + 0.5f), y1 = (int)floorf(sy1 + 0.5f);
    if (x0 < 0)
      x0 = 0;
    if (y0 < 0)
      y0 = 0;
    if (x1 > w)
      x1 = w;
    if (y1 > h)
      y1 = h;
    if (x1 <= x0) {
      x0 = x0 < w ? x0 : w - 1;
      x1 = x0 + 1;
    }
    if (y1 <= y0) {
      y0 = y0 < h ? y0 : h - 1;
      y1 = y0 + 1;
    }
    uint32_t acc[3] = {0, 0, 0};
    for (int y = y0; y < y1; y++) {
      const uint8_t *row = rgb + (size_t)y * stride + (size_t)x0 * 3;
      for (int x = x0; x < x1; x++, row += 3) {
        acc[0] += row[0];
        acc[1] += row[1];
        acc[2] += row[2];
      }
    }
    float inv = 1.0f / (float)((x1 - x0) * (y1 - y0));
    for (int c = 0; c < 3; c++)
      out[c] = acc[c] * inv;
    return 1;
  }
  /* Half-pixel centres, edges clamped (as OpenCV's INTER_LINEAR). */
  float fx = cx - 0.5f, fy = cy - 0.5f;
  if (fx < 0)
    fx = 0;
  if (fy < 0)
    fy = 0;
  int x0 = (int)fx, y0 = (int)fy;
  if (x0 > w - 1)
    x0 = w - 1;
  if (y0 > h - 1)
    y0 = h - 1;
  int x1 = x0 + 1 < w ? x0 + 1 : w - 1;
  int y1 = y0 + 1 < h ? y0 + 1 : h - 1;
  float ax = fx - x0, ay = fy - y0;
  if (ax > 1)
    ax = 1;
  if (ay > 1)
    ay = 1;
  const uint8_t *p00 = rgb + (size_t)y0 * stride + (size_t)x0 * 3;
  const uint8_t *p01 = rgb + (size_t)y0 * stride + (size_t)x1 * 3;
  const uint8_t *p10 = rgb + (size_t)y1 * stride + (size_t)x0 * 3;
  const uint8_t *p11 = rgb + (size_t)y1 * stride + (size_t)x1 * 3;
  for (int c = 0; c < 3; c++) {
    float top = p00[c] + (p01[c] - p00[c]) * ax;
    float bot = p10[c] + (p11[c] - p10[c]) * ax;
    out[c] = top + (bot - top) * ay;
  }
  return 1;
}

kestrel_status kestrel_preprocess(const kestrel_sidecar *sc,
                                  const uint8_t *rgb, int width, int height,
                                  size_t stride, kestrel_tensor *input,
                                  kestrel_transform *tf, kestrel_error *err) {
  if (!sc || !rgb || !input || !input->data || !tf)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "preprocess: NULL argument");
  if (width < 1 || height < 1 || width > 65535 || height > 65535 ||
      stride < (size_t)width * 3)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "preprocess: bad image %dx%d stride %zu", width, height,
                   stride);
  if (input->ndim != 4)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "preprocess: input '%s' has rank %d, want 4",
                   input->name ? input->name : "", input->ndim);
  int nhwc = sc->layout == KESTREL_LAYOUT_NHWC;
  int64_t c_dim = nhwc ? input->dims[3] : input->dims[1];
  int64_t th64 = nhwc ? input->dims[1] : input->dims[2];
  int64_t tw64 = nhwc ? input->dims[2] : input->dims[3];
  if (input->dims[0] != 1 || c_dim != 3 || th64 < 1 || tw64 < 1 ||
      th64 > MAX_TENSOR_SIDE || tw64 > MAX_TENSOR_SIDE)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "preprocess: input '%s' shape [%lld,%lld,%lld,%lld] is "
                   "not a 3-channel %s image",
                   input->name ? input->name : "", (long long)input->dims[0],
                   (long long)input->dims[1], (long long)input->dims[2],
                   (long long)input->dims[3], nhwc ? "NHWC" : "NCHW");
  int tw = (int)tw64, th = (int)th64;
  if (sc->resize == KESTREL_RESIZE_MULTIPLE) {
    int ew, eh;
    kestrel_status st =
        kestrel_preprocess_size(sc, width, height, &ew, &eh, err);
    if (st)
      return st;
    if (ew != tw || eh != th)
      return kn_fail(err, KESTREL_ERROR_SHAPE,
                     "preprocess: image %dx%d needs a %dx%d tensor, input is "
                     "%dx%d (load the model with that input shape)",
                     width, height, ew, eh, tw, th);
  }
  kn_preprocess_make_transform(sc, width, height, tw, th, tf);

  kestrel_dtype dt = input->dtype;
  if (dt != KESTREL_DTYPE_F32 && dt != KESTREL_DTYPE_U8 &&
      dt != KESTREL_DTYPE_I8)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   "preprocess: input dtype %s not supported",
                   kestrel_dtype_name(dt));
  float mul[3], add[3];
  for (int c = 0; c < 3; c++) {
    mul[c] = sc->scale / sc->std[c];
    add[c] = -sc->mean[c] / sc->std[c];
  }
  size_t plane = (size_t)tw * th;
  for (int y = 0; y < th; y++) {
    for (int x = 0; x < tw; x++) {
      float px[3];
      int inside = sample(rgb, width, height, stride, tf, x, y, px);
      for (int c = 0; c < 3; c++) {
        int src_c = sc->bgr ? 2 - c : c;
        size_t idx = nhwc ? ((size_t)y * tw + x) * 3 + c
                          : c * plane + (size_t)y * tw + x;
        if (dt == KESTREL_DTYPE_F32) {
          float v = inside ? px[src_c] * mul[c] + add[c] : sc->pad_value;
          ((float *)input->data)[idx] = v;
        } else {
          /* Integer inputs take raw pixels (quantized models fold their
           * normalization into the input's scale/zero point). */
          int v = inside ? (int)lrintf(px[src_c]) : 0;
          if (dt == KESTREL_DTYPE_U8)
            ((uint8_t *)input->data)[idx] = (uint8_t)v;
          else
            ((int8_t *)input->data)[idx] = (int8_t)(v - 128);
        }
      }
    }
  }
  return KESTREL_OK;
}
