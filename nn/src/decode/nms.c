/* Non-maximum suppression for detector outputs: plain (keep the best box of
 * each overlapping group) and MediaPipe's weighted variant, which replaces
 * the best box by the score-weighted mean of its group. Weighting steadies
 * boxes from frame to frame, which is why MediaPipe's face graphs use it.
 */
#include <stdlib.h>
#include <string.h>

#include <kestrel/decode.h>

float kestrel_box_iou(const kestrel_object *a, const kestrel_object *b) {
  float x0 = a->x > b->x ? a->x : b->x;
  float y0 = a->y > b->y ? a->y : b->y;
  float x1 = a->x + a->w < b->x + b->w ? a->x + a->w : b->x + b->w;
  float y1 = a->y + a->h < b->y + b->h ? a->y + a->h : b->y + b->h;
  if (x1 <= x0 || y1 <= y0)
    return 0.0f;
  float inter = (x1 - x0) * (y1 - y0);
  float uni = a->w * a->h + b->w * b->h - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

static int by_confidence_desc(const void *pa, const void *pb) {
  const kestrel_object *a = pa, *b = pb;
  if (a->confidence > b->confidence)
    return -1;
  if (a->confidence < b->confidence)
    return 1;
  /* Stable tie-break so results do not depend on qsort's order. */
  if (a->y != b->y)
    return a->y < b->y ? -1 : 1;
  return a->x < b->x ? -1 : (a->x > b->x);
}

size_t kestrel_nms(kestrel_object *objects, size_t count,
                   kestrel_nms_mode mode, float iou_threshold,
                   size_t max_keep) {
  if (!objects || count == 0 || max_keep == 0)
    return 0;
  qsort(objects, count, sizeof(*objects), by_confidence_desc);
  if (mode == KESTREL_NMS_NONE)
    return count < max_keep ? count : max_keep;
  unsigned char *used = calloc(count, 1);
  if (!used) /* degrade to "no suppression" rather than lose detections */
    return count < max_keep ? count : max_keep;

  size_t kept = 0;
  for (size_t i = 0; i < count && kept < max_keep; i++) {
    if (used[i])
      continue;
    used[i] = 1;
    kestrel_object best = objects[i];
    if (mode == KESTREL_NMS_PLAIN) {
      for (size_t j = i + 1; j < count; j++) {
        if (!used[j] && objects[j].label_id == best.label_id &&
            kestrel_box_iou(&best, &objects[j]) > iou_threshold)
          used[j] = 1;
      }
    } else {
      /* Blend corners and keypoints of every box overlapping the best one,
       * weighted by score; the group keeps the best score. */
      float wsum = best.confidence;
      float x0 = best.x * wsum, y0 = best.y * wsum;
      float x1 = (best.x + best.w) * wsum, y1 = (best.y + best.h) * wsum;
      kestrel_point kp[KESTREL_MAX_KEYPOINTS];
      int nk = best.num_keypoints;
      for (int k = 0; k < nk; k++) {
        kp[k].x = best.keypoints[k].x * wsum;
        kp[k].y = best.keypoints[k].y * wsum;
      }
      for (size_t j = i + 1; j < count; j++) {
        const kestrel_object *o = &objects[j];
        if (used[j] || o->label_id != best.label_id ||
            kestrel_box_iou(&best, o) <= iou_threshold)
          continue;
        used[j] = 1;
        float w = o->confidence;
        wsum += w;
        x0 += o->x * w;
        y0 += o->y * w;
        x1 += (o->x + o->w) * w;
        y1 += (o->y + o->h) * w;
        for (int k = 0; k < nk && k < o->num_keypoints; k++) {
          kp[k].x += o->keypoints[k].x * w;
          kp[k].y += o->keypoints[k].y * w;
        }
      }
      if (wsum > 0) {
        best.x = x0 / wsum;
        best.y = y0 / wsum;
        best.w = x1 / wsum - best.x;
        best.h = y1 / wsum - best.y;
        for (int k = 0; k < nk; k++) {
          best.keypoints[k].x = kp[k].x / wsum;
          best.keypoints[k].y = kp[k].y / wsum;
        }
      }
    }
    /* kept <= i: every slot before i has been consumed already. */
    objects[kept++] = best;
  }
  free(used);
  return kept;
}
