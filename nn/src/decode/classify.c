/* Classification decoding (softmax, top-k) and the entry point that sends
 * a model's outputs to the decoder its sidecar names.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode_internal.h"
#include "graph.h"

/* No decoder of ours produces more than this many results per frame. */
#define RESULT_MAX_ITEMS (1u << 22)

static void *grow(void *items, size_t *cap, size_t need, size_t item_size) {
  if (need <= *cap)
    return items;
  if (need > RESULT_MAX_ITEMS)
    return NULL;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need)
    n *= 2;
  void *p = realloc(items, n * item_size);
  if (p)
    *cap = n;
  return p;
}

kestrel_object *kd_push_object(kestrel_result *res) {
  kestrel_object *p = grow(res->objects, &res->cap_objects,
                           res->num_objects + 1, sizeof(*p));
  if (!p)
    return NULL;
  res->objects = p;
  kestrel_object *o = &p[res->num_objects++];
  memset(o, 0, sizeof(*o));
  return o;
}

kestrel_class *kd_push_class(kestrel_result *res) {
  kestrel_class *p = grow(res->classes, &res->cap_classes,
                          res->num_classes + 1, sizeof(*p));
  if (!p)
    return NULL;
  res->classes = p;
  kestrel_class *c = &p[res->num_classes++];
  memset(c, 0, sizeof(*c));
  return c;
}

void kestrel_result_free(kestrel_result *res) {
  if (!res)
    return;
  free(res->objects);
  free(res->classes);
  memset(res, 0, sizeof(*res));
}

const float *kd_tensor_floats(const kestrel_tensor *t, float **copy,
                              kestrel_error *err) {
  *copy = NULL;
  if (!t->data && kestrel_tensor_numel(t) > 0) {
    kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "output '%s' has no data",
            t->name ? t->name : "");
    return NULL;
  }
  if (t->dtype == KESTREL_DTYPE_F32)
    return t->data;
  if (t->dtype == KESTREL_DTYPE_F16) {
    size_t n = kestrel_tensor_numel(t);
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f) {
      kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      return NULL;
    }
    const uint16_t *h = t->data;
    for (size_t i = 0; i < n; i++)
      f[i] = kestrel_f16_to_f32(h[i]);
    *copy = f;
    return f;
  }
  kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
          "decoder needs float outputs; '%s' is %s", t->name ? t->name : "",
          kestrel_dtype_name(t->dtype));
  return NULL;
}

const char *kd_label(const kestrel_sidecar *sc, int id) {
  if (sc && id >= 0 && id < sc->num_labels)
    return sc->labels[id];
  return NULL;
}

typedef struct scored {
  float score;
  int id;
} scored;

static int by_score_desc(const void *pa, const void *pb) {
  const scored *a = pa, *b = pb;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  return a->id - b->id;
}

static kestrel_status decode_classify(const kestrel_sidecar *sc,
                                      const kestrel_tensor *const *outputs,
                                      size_t num_outputs, kestrel_result *res,
                                      kestrel_error *err) {
  if (num_outputs < 1 || !outputs[0])
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "classify: no output tensor");
  const kestrel_tensor *t = outputs[0];
  size_t n = kestrel_tensor_numel(t);
  if (n == 0 || n > RESULT_MAX_ITEMS)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "classify: output '%s' has %zu scores",
                   t->name ? t->name : "", n);
  if (t->ndim >= 1 && t->dims[0] > 1)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "classify: batch %lld, only batch 1 is decoded",
                   (long long)t->dims[0]);
  float *copy;
  const float *v = kd_tensor_floats(t, &copy, err);
  if (!v)
    return KESTREL_ERROR_UNSUPPORTED;
  scored *s = malloc(n * sizeof(*s));
  if (!s) {
    free(copy);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  float max = -INFINITY;
  for (size_t i = 0; i < n; i++)
    max = fmaxf(max, v[i]);
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    s[i].id = (int)i;
    s[i].score = v[i];
    if (sc->classify.softmax) {
      /* Subtract the max so exp never overflows. */
      s[i].score = expf(v[i] - max);
      sum += s[i].score;
    }
  }
  if (sc->classify.softmax && sum > 0)
    for (size_t i = 0; i < n; i++)
      s[i].score = (float)(s[i].score / sum);
  qsort(s, n, sizeof(*s), by_score_desc);
  size_t k = sc->classify.top_k > 0 ? (size_t)sc->classify.top_k : n;
  kestrel_status st = KESTREL_OK;
  for (size_t i = 0; i < n && i < k; i++) {
    if (!(s[i].score >= sc->classify.min_score))
      break;
    kestrel_class *c = kd_push_class(res);
    if (!c) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      break;
    }
    c->label_id = s[i].id;
    c->label = kd_label(sc, s[i].id);
    c->score = s[i].score;
  }
  free(s);
  free(copy);
  return st;
}

kestrel_status kestrel_decode(const kestrel_sidecar *sc,
                              const kestrel_tensor *const *outputs,
                              size_t num_outputs, const kestrel_transform *tf,
                              kestrel_result *res, kestrel_error *err) {
  if (!sc || !res || (num_outputs && !outputs))
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "decode: NULL argument");
  res->num_objects = 0;
  res->num_classes = 0;
  switch (sc->decoder) {
  case KESTREL_DECODER_NONE:
    return KESTREL_OK;
  case KESTREL_DECODER_CLASSIFY:
    return decode_classify(sc, outputs, num_outputs, res, err);
  case KESTREL_DECODER_SSD:
  case KESTREL_DECODER_DBNET:
    if (!tf || tf->scale_x <= 0 || tf->scale_y <= 0 || tf->tensor_width < 1 ||
        tf->tensor_height < 1)
      return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                     "decode: detection decoders need the preprocessing "
                     "transform");
    if (sc->decoder == KESTREL_DECODER_SSD)
      return kd_decode_ssd(sc, outputs, num_outputs, tf, res, err);
    return kd_decode_dbnet(sc, outputs, num_outputs, tf, res, err);
  }
  return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                 "decode: unknown decoder type %d", (int)sc->decoder);
}
