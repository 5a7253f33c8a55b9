/* SSD decoding as MediaPipe's face detectors need it: anchors generated the
 * way SsdAnchorsCalculator does (consecutive layers of equal stride share
 * one grid), boxes and keypoints decoded against them as in
 * TensorsToDetectionsCalculator, then (weighted) NMS, then mapped from the
 * tensor back to image pixels through the preprocessing transform.
 */
#include <math.h>
#include <stdlib.h>

#include "decode/decode_internal.h"
#include "graph.h"

/* Anchor count cap: 192x192 at stride 1 with 8 boxes is ~300k; beyond a
 * million a sidecar is wrong, not ambitious. */
#define SSD_MAX_ANCHORS (1 << 20)

static float layer_scale(const kestrel_ssd_options *o, int layer,
                         int num_layers) {
  if (num_layers == 1)
    return 0.5f * (o->min_scale + o->max_scale);
  return o->min_scale +
         (o->max_scale - o->min_scale) * (float)layer / (float)(num_layers - 1);
}

int kestrel_ssd_anchors(const kestrel_ssd_options *opt, int input_width,
                        int input_height, float *anchors, int capacity,
                        kestrel_error *err) {
  if (opt->num_layers < 1 || opt->num_layers > KESTREL_SSD_MAX_LAYERS) {
    kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
            "ssd: num_layers %d out of range", opt->num_layers);
    return -1;
  }
  if (input_width < 1 || input_height < 1) {
    kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "ssd: input size %dx%d",
            input_width, input_height);
    return -1;
  }
  int n = 0;
  int layer = 0;
  while (layer < opt->num_layers) {
    /* Up to KESTREL_SSD_MAX_LAYERS layers x (ratios + 1) boxes each. */
    float widths[KESTREL_SSD_MAX_LAYERS * (KESTREL_SSD_MAX_LAYERS + 1)];
    float heights[KESTREL_SSD_MAX_LAYERS * (KESTREL_SSD_MAX_LAYERS + 1)];
    int per_cell = 0;
    int last = layer;
    while (last < opt->num_layers && opt->strides[last] == opt->strides[layer]) {
      float scale = layer_scale(opt, last, opt->num_layers);
      if (last == 0 && opt->reduce_boxes_in_lowest_layer) {
        /* MediaPipe's fixed trio for the lowest layer. */
        static const float ratios[3] = {1.0f, 2.0f, 0.5f};
        float scales[3] = {0.1f, scale, scale};
        for (int i = 0; i < 3; i++) {
          widths[per_cell] = scales[i] * sqrtf(ratios[i]);
          heights[per_cell++] = scales[i] / sqrtf(ratios[i]);
        }
      } else {
        for (int i = 0; i < opt->num_aspect_ratios; i++) {
          float r = sqrtf(opt->aspect_ratios[i]);
          widths[per_cell] = scale * r;
          heights[per_cell++] = scale / r;
        }
        if (opt->interpolated_scale_aspect_ratio > 0.0f) {
          float next = last == opt->num_layers - 1
                           ? 1.0f
                           : layer_scale(opt, last + 1, opt->num_layers);
          float s = sqrtf(scale * next);
          float r = sqrtf(opt->interpolated_scale_aspect_ratio);
          widths[per_cell] = s * r;
          heights[per_cell++] = s / r;
        }
      }
      last++;
    }
    int stride = opt->strides[layer];
    if (stride < 1) {
      kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "ssd: stride %d", stride);
      return -1;
    }
    int fh = (input_height + stride - 1) / stride;
    int fw = (input_width + stride - 1) / stride;
    if ((int64_t)fh * fw * per_cell + n > SSD_MAX_ANCHORS) {
      kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
              "ssd: more than %d anchors", SSD_MAX_ANCHORS);
      return -1;
    }
    for (int y = 0; y < fh; y++) {
      for (int x = 0; x < fw; x++) {
        for (int a = 0; a < per_cell; a++, n++) {
          if (!anchors)
            continue;
          if (n >= capacity) {
            kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                    "ssd: anchor buffer of %d too small", capacity);
            return -1;
          }
          float *o = anchors + (size_t)n * 4;
          o[0] = (x + opt->anchor_offset_x) / fw;
          o[1] = (y + opt->anchor_offset_y) / fh;
          o[2] = opt->fixed_anchor_size ? 1.0f : widths[a];
          o[3] = opt->fixed_anchor_size ? 1.0f : heights[a];
        }
      }
    }
    layer = last;
  }
  return n;
}

/* Normalized tensor coordinates to image pixels. */
static void to_image(const kestrel_transform *tf, float nx, float ny,
                     float *ix, float *iy) {
  *ix = (nx * tf->tensor_width - tf->pad_x) / tf->scale_x;
  *iy = (ny * tf->tensor_height - tf->pad_y) / tf->scale_y;
}

kestrel_status kd_decode_ssd(const kestrel_sidecar *sc,
                             const kestrel_tensor *const *outputs,
                             size_t num_outputs, const kestrel_transform *tf,
                             kestrel_result *res, kestrel_error *err) {
  const kestrel_ssd_options *o = &sc->ssd;
  /* The sidecar parser checks these too; callers may fill the struct by
   * hand, and these offsets index the output buffer. */
  if (o->box_coord_offset < 0 || o->keypoint_coord_offset < 0 ||
      o->num_keypoints < 0 || o->num_keypoints > KESTREL_MAX_KEYPOINTS ||
      o->num_values_per_keypoint < 2 ||
      o->box_coord_offset + 4 > o->num_coords ||
      o->keypoint_coord_offset +
              o->num_keypoints * o->num_values_per_keypoint >
          o->num_coords)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "ssd: coordinate offsets exceed num_coords %d",
                   o->num_coords);
  int na = kestrel_ssd_anchors(o, sc->width, sc->height, NULL, 0, err);
  if (na < 0)
    return KESTREL_ERROR_INVALID_ARGUMENT;
  if (na == 0)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "ssd: no anchors");
  /* Tell boxes from scores by size, not by output order: exporters differ
   * in the order they list the two heads. */
  const kestrel_tensor *boxes_t = NULL, *scores_t = NULL;
  for (size_t i = 0; i < num_outputs; i++) {
    const kestrel_tensor *t = outputs[i];
    if (!t)
      continue;
    size_t numel = kestrel_tensor_numel(t);
    if (!boxes_t && numel == (size_t)na * (size_t)o->num_coords)
      boxes_t = t;
    else if (!scores_t && numel >= (size_t)na && numel % (size_t)na == 0)
      scores_t = t;
  }
  if (!boxes_t || !scores_t)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "ssd: want a [%d,%d] box output and a [%d,classes] score "
                   "output; check num_coords and the anchor options",
                   na, o->num_coords, na);
  int num_classes = (int)(kestrel_tensor_numel(scores_t) / (size_t)na);
  float *copy_b = NULL, *copy_s = NULL;
  const float *raw = kd_tensor_floats(boxes_t, &copy_b, err);
  if (!raw)
    return KESTREL_ERROR_UNSUPPORTED;
  const float *scores = kd_tensor_floats(scores_t, &copy_s, err);
  if (!scores) {
    free(copy_b);
    return KESTREL_ERROR_UNSUPPORTED;
  }
  float *anchors = malloc((size_t)na * 4 * sizeof(float));
  if (!anchors) {
    free(copy_b);
    free(copy_s);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "ssd: out of memory");
  }
  kestrel_ssd_anchors(o, sc->width, sc->height, anchors, na, err);

  kestrel_status st = KESTREL_OK;
  size_t first = res->num_objects;
  for (int i = 0; i < na; i++) {
    int best = 0;
    float score = -INFINITY;
    for (int c = 0; c < num_classes; c++) {
      float s = scores[(size_t)i * num_classes + c];
      if (s > score) {
        score = s;
        best = c;
      }
    }
    if (o->score_clipping > 0)
      score = fminf(fmaxf(score, -o->score_clipping), o->score_clipping);
    if (o->sigmoid_score)
      score = 1.0f / (1.0f + expf(-score));
    if (!(score >= o->min_score)) /* also rejects NaN */
      continue;
    const float *a = anchors + (size_t)i * 4;
    const float *b = raw + (size_t)i * o->num_coords + o->box_coord_offset;
    float xc, yc, w, h;
    if (o->reverse_output_order) {
      xc = b[0], yc = b[1], w = b[2], h = b[3];
    } else {
      yc = b[0], xc = b[1], h = b[2], w = b[3];
    }
    xc = xc / o->x_scale * a[2] + a[0];
    yc = yc / o->y_scale * a[3] + a[1];
    w = w / o->w_scale * a[2];
    h = h / o->h_scale * a[3];
    /* Garbage in the outputs (NaN, inf) must not reach callers' JSON. */
    if (!(w > 0 && h > 0) || !isfinite(w) || !isfinite(h) || !isfinite(xc) ||
        !isfinite(yc))
      continue;
    int finite = 1;
    for (int k = 0; k < o->num_keypoints; k++) {
      const float *kp = raw + (size_t)i * o->num_coords +
                        o->keypoint_coord_offset +
                        (size_t)k * o->num_values_per_keypoint;
      finite &= isfinite(kp[0]) && isfinite(kp[1]);
    }
    if (!finite)
      continue;
    kestrel_object *obj = kd_push_object(res);
    if (!obj) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "ssd: out of memory");
      break;
    }
    float x0, y0, x1, y1;
    to_image(tf, xc - 0.5f * w, yc - 0.5f * h, &x0, &y0);
    to_image(tf, xc + 0.5f * w, yc + 0.5f * h, &x1, &y1);
    obj->x = x0;
    obj->y = y0;
    obj->w = x1 - x0;
    obj->h = y1 - y0;
    obj->confidence = score;
    obj->label_id = best;
    obj->label = kd_label(sc, best);
    obj->num_keypoints = o->num_keypoints;
    for (int k = 0; k < o->num_keypoints; k++) {
      const float *kp = raw + (size_t)i * o->num_coords +
                        o->keypoint_coord_offset +
                        (size_t)k * o->num_values_per_keypoint;
      float kx = o->reverse_output_order ? kp[0] : kp[1];
      float ky = o->reverse_output_order ? kp[1] : kp[0];
      kx = kx / o->x_scale * a[2] + a[0];
      ky = ky / o->y_scale * a[3] + a[1];
      to_image(tf, kx, ky, &obj->keypoints[k].x, &obj->keypoints[k].y);
    }
  }
  /* No object yet means res->objects may still be NULL: no pointer
   * arithmetic on it, not even + 0. */
  if (st == KESTREL_OK && res->num_objects > first) {
    size_t kept = kestrel_nms(res->objects + first, res->num_objects - first,
                              o->nms, o->nms_iou, (size_t)o->max_detections);
    res->num_objects = first + kept;
  }
  free(anchors);
  free(copy_b);
  free(copy_s);
  return st;
}
