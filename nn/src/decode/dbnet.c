/* DBNet (PP-OCR det) post-processing: binarize the text probability map,
 * find connected regions, fit a minimum-area rotated rectangle to each,
 * score it by the mean probability inside, grow it by the "unclip" offset
 * and map it back to image pixels.
 *
 * Coordinates of map pixels are their integer indices (pixel centres), the
 * convention PaddleOCR's contour-based reference uses, so box sizes and the
 * min_size test agree with it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode_internal.h"
#include "graph.h"

#define DB_MAX_SIDE 16384

typedef struct component {
  int label;
  int x0, y0, x1, y1; /* inclusive bounds */
} component;

static double cross(kestrel_point o, kestrel_point a, kestrel_point b) {
  return (double)(a.x - o.x) * (b.y - o.y) - (double)(a.y - o.y) * (b.x - o.x);
}

static int by_xy(const void *pa, const void *pb) {
  const kestrel_point *a = pa, *b = pb;
  if (a->x != b->x)
    return a->x < b->x ? -1 : 1;
  if (a->y != b->y)
    return a->y < b->y ? -1 : 1;
  return 0;
}

/* Andrew's monotone chain; sorts pts in place, writes the hull
 * counter-clockwise (in y-up terms) into hull (room for count + 1). */
static size_t convex_hull(kestrel_point *pts, size_t n, kestrel_point *hull) {
  if (n < 3) {
    memcpy(hull, pts, n * sizeof(*pts));
    if (n == 2 && pts[0].x == pts[1].x && pts[0].y == pts[1].y)
      return 1;
    return n;
  }
  qsort(pts, n, sizeof(*pts), by_xy);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    while (k >= 2 && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0)
      k--;
    hull[k++] = pts[i];
  }
  for (size_t i = n - 1, lower = k + 1; i-- > 0;) {
    while (k >= lower && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0)
      k--;
    hull[k++] = pts[i];
  }
  return k > 1 ? k - 1 : k; /* last point repeats the first */
}

/* Orders 4 corners as PaddleOCR does: of the two leftmost, the upper is
 * top-left and the lower bottom-left; of the two rightmost, the upper is
 * top-right. Result: TL, TR, BR, BL (clockwise on screen). */
static void order_corners(kestrel_point c[4]) {
  qsort(c, 4, sizeof(*c), by_xy);
  kestrel_point tl = c[0], bl = c[1], tr = c[2], br = c[3];
  if (bl.y < tl.y) {
    kestrel_point t = tl;
    tl = bl;
    bl = t;
  }
  if (br.y < tr.y) {
    kestrel_point t = tr;
    tr = br;
    br = t;
  }
  c[0] = tl;
  c[1] = tr;
  c[2] = br;
  c[3] = bl;
}

/* The minimum-area rectangle around a convex polygon has one side on a
 * hull edge (the rotating-calipers theorem), so it suffices to try each
 * edge direction and take the extents of the hull along it and its normal.
 * O(h^2) in hull points, which stay few for text regions. */
static float rect_from_hull(const kestrel_point *hull, size_t h,
                            kestrel_point corners[4]) {
  if (h == 0) {
    memset(corners, 0, 4 * sizeof(*corners));
    return 0;
  }
  double best = INFINITY;
  double bux = 1, buy = 0, bmin_u = 0, bmax_u = 0, bmin_v = 0, bmax_v = 0;
  size_t edges = h < 2 ? 1 : h;
  for (size_t i = 0; i < edges; i++) {
    double ux = 1, uy = 0;
    if (h >= 2) {
      const kestrel_point *a = &hull[i], *b = &hull[(i + 1) % h];
      double dx = b->x - a->x, dy = b->y - a->y;
      double len = sqrt(dx * dx + dy * dy);
      if (len <= 0)
        continue;
      ux = dx / len;
      uy = dy / len;
    }
    double min_u = INFINITY, max_u = -INFINITY;
    double min_v = INFINITY, max_v = -INFINITY;
    for (size_t j = 0; j < h; j++) {
      double u = hull[j].x * ux + hull[j].y * uy;
      double v = -hull[j].x * uy + hull[j].y * ux;
      min_u = fmin(min_u, u);
      max_u = fmax(max_u, u);
      min_v = fmin(min_v, v);
      max_v = fmax(max_v, v);
    }
    double area = (max_u - min_u) * (max_v - min_v);
    if (area < best) {
      best = area;
      bux = ux, buy = uy;
      bmin_u = min_u, bmax_u = max_u, bmin_v = min_v, bmax_v = max_v;
    }
  }
  /* Back from (u, v) to (x, y): x = u*ux - v*uy, y = u*uy + v*ux. */
  double us[4] = {bmin_u, bmax_u, bmax_u, bmin_u};
  double vs[4] = {bmin_v, bmin_v, bmax_v, bmax_v};
  for (int k = 0; k < 4; k++) {
    corners[k].x = (float)(us[k] * bux - vs[k] * buy);
    corners[k].y = (float)(us[k] * buy + vs[k] * bux);
  }
  order_corners(corners);
  return (float)best;
}

float kestrel_min_area_rect(const kestrel_point *points, size_t count,
                            kestrel_point corners[4]) {
  if (!points || count == 0) {
    memset(corners, 0, 4 * sizeof(*corners));
    return 0;
  }
  kestrel_point *pts = malloc(count * sizeof(*pts));
  kestrel_point *hull = malloc((count + 1) * sizeof(*hull));
  float area = 0;
  if (pts && hull) {
    memcpy(pts, points, count * sizeof(*pts));
    size_t h = convex_hull(pts, count, hull);
    area = rect_from_hull(hull, h, corners);
  } else {
    memset(corners, 0, 4 * sizeof(*corners));
  }
  free(pts);
  free(hull);
  return area;
}

static float side(kestrel_point a, kestrel_point b) {
  return hypotf(b.x - a.x, b.y - a.y);
}

/* Mean probability over map pixels inside the convex quad (boundary
 * included), like PaddleOCR's box_score_fast mask. */
static float quad_score(const float *prob, int w, int h,
                        const kestrel_point q[4]) {
  float fx0 = q[0].x, fx1 = q[0].x, fy0 = q[0].y, fy1 = q[0].y;
  for (int k = 1; k < 4; k++) {
    fx0 = fminf(fx0, q[k].x);
    fx1 = fmaxf(fx1, q[k].x);
    fy0 = fminf(fy0, q[k].y);
    fy1 = fmaxf(fy1, q[k].y);
  }
  int x0 = (int)floorf(fx0), x1 = (int)ceilf(fx1);
  int y0 = (int)floorf(fy0), y1 = (int)ceilf(fy1);
  x0 = x0 < 0 ? 0 : x0;
  y0 = y0 < 0 ? 0 : y0;
  x1 = x1 > w - 1 ? w - 1 : x1;
  y1 = y1 > h - 1 ? h - 1 : y1;
  /* The quad is clockwise on screen; a point is inside when it is on the
   * same side of every edge (tolerance for points on the boundary). */
  double sum = 0;
  size_t n = 0;
  for (int y = y0; y <= y1; y++) {
    for (int x = x0; x <= x1; x++) {
      kestrel_point p = {(float)x, (float)y};
      int inside = 1;
      for (int k = 0; k < 4 && inside; k++) {
        kestrel_point a = q[k], b = q[(k + 1) % 4];
        double len = side(a, b);
        double c = cross(a, b, p);
        inside = c >= -0.5 * (len > 0 ? len : 1);
      }
      if (inside) {
        sum += prob[(size_t)y * w + x];
        n++;
      }
    }
  }
  return n ? (float)(sum / n) : 0.0f;
}

static void map_to_image(const kestrel_transform *tf, int map_w, int map_h,
                         kestrel_point *p) {
  if (!tf)
    return;
  float sx = (float)tf->tensor_width / map_w;
  float sy = (float)tf->tensor_height / map_h;
  float x = (p->x * sx - tf->pad_x) / tf->scale_x;
  float y = (p->y * sy - tf->pad_y) / tf->scale_y;
  p->x = fminf(fmaxf(x, 0.0f), (float)tf->image_width);
  p->y = fminf(fmaxf(y, 0.0f), (float)tf->image_height);
}

kestrel_status kestrel_dbnet_decode(const kestrel_dbnet_options *opt,
                                    const float *prob, int width, int height,
                                    const kestrel_transform *tf,
                                    kestrel_result *res, kestrel_error *err) {
  if (!opt || !prob || !res || width < 1 || height < 1 ||
      width > DB_MAX_SIDE || height > DB_MAX_SIDE)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "dbnet: bad map %dx%d", width, height);
  size_t npix = (size_t)width * height;
  int32_t *label = calloc(npix, sizeof(*label));
  int32_t *queue = malloc(npix * sizeof(*queue));
  size_t max_comp = opt->max_candidates > 0 ? (size_t)opt->max_candidates : 1;
  component *comps = malloc(max_comp * sizeof(*comps));
  /* Hull input: at most two points (row ends) per row of a component. */
  kestrel_point *pts = malloc(2 * (size_t)height * sizeof(*pts));
  kestrel_point *hull = malloc((2 * (size_t)height + 1) * sizeof(*hull));
  kestrel_status st = KESTREL_OK;
  if (!label || !queue || !comps || !pts || !hull) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "dbnet: out of memory");
    goto done;
  }

  /* 8-connected regions of prob > threshold, in raster order of their
   * first pixel, up to max_candidates. Breadth-first with an explicit
   * queue: recursion would overflow the stack on large regions. */
  size_t ncomp = 0;
  for (int y = 0; y < height && ncomp < max_comp; y++) {
    for (int x = 0; x < width && ncomp < max_comp; x++) {
      size_t i = (size_t)y * width + x;
      if (label[i] || !(prob[i] > opt->threshold))
        continue;
      component *c = &comps[ncomp];
      c->label = (int)ncomp + 1;
      c->x0 = c->x1 = x;
      c->y0 = c->y1 = y;
      size_t head = 0, tail = 0;
      label[i] = c->label;
      queue[tail++] = (int32_t)i;
      while (head < tail) {
        int32_t p = queue[head++];
        int px = p % width, py = p / width;
        c->x0 = px < c->x0 ? px : c->x0;
        c->x1 = px > c->x1 ? px : c->x1;
        c->y0 = py < c->y0 ? py : c->y0;
        c->y1 = py > c->y1 ? py : c->y1;
        for (int dy = -1; dy <= 1; dy++) {
          int ny = py + dy;
          if (ny < 0 || ny >= height)
            continue;
          for (int dx = -1; dx <= 1; dx++) {
            int nx = px + dx;
            if (nx < 0 || nx >= width)
              continue;
            size_t j = (size_t)ny * width + nx;
            if (!label[j] && prob[j] > opt->threshold) {
              label[j] = c->label;
              queue[tail++] = (int32_t)j;
            }
          }
        }
      }
      ncomp++;
    }
  }

  for (size_t ci = 0; ci < ncomp; ci++) {
    const component *c = &comps[ci];
    size_t n = 0;
    for (int y = c->y0; y <= c->y1; y++) {
      const int32_t *row = label + (size_t)y * width;
      int lo = -1, hi = -1;
      for (int x = c->x0; x <= c->x1; x++) {
        if (row[x] == c->label) {
          if (lo < 0)
            lo = x;
          hi = x;
        }
      }
      if (lo < 0)
        continue;
      pts[n++] = (kestrel_point){(float)lo, (float)y};
      if (hi != lo)
        pts[n++] = (kestrel_point){(float)hi, (float)y};
    }
    size_t h = convex_hull(pts, n, hull);
    kestrel_point q[4];
    rect_from_hull(hull, h, q);
    float rw = side(q[0], q[1]), rh = side(q[1], q[2]);
    if (fminf(rw, rh) < opt->min_size)
      continue;
    float score = quad_score(prob, width, height, q);
    if (!(score >= opt->box_threshold)) /* NaN never passes */
      continue;
    /* Unclip: offsetting a rectangle outwards by d (round joins) and
     * taking the min-area rectangle again gives the same rectangle grown
     * by d on every side, d = area * ratio / perimeter. */
    float perimeter = 2 * (rw + rh);
    float d = perimeter > 0 ? rw * rh * opt->unclip_ratio / perimeter : 0;
    kestrel_point ctr = {0.25f * (q[0].x + q[1].x + q[2].x + q[3].x),
                         0.25f * (q[0].y + q[1].y + q[2].y + q[3].y)};
    kestrel_point u = {(q[1].x - q[0].x) / (rw > 0 ? rw : 1),
                       (q[1].y - q[0].y) / (rw > 0 ? rw : 1)};
    kestrel_point v = {(q[3].x - q[0].x) / (rh > 0 ? rh : 1),
                       (q[3].y - q[0].y) / (rh > 0 ? rh : 1)};
    if (rw <= 0)
      u = (kestrel_point){-v.y, v.x};
    if (rh <= 0)
      v = (kestrel_point){-u.y, u.x};
    float hw = 0.5f * rw + d, hh = 0.5f * rh + d;
    if (fminf(2 * hw, 2 * hh) < opt->min_size + 2)
      continue;
    kestrel_point g[4] = {
        {ctr.x - u.x * hw - v.x * hh, ctr.y - u.y * hw - v.y * hh},
        {ctr.x + u.x * hw - v.x * hh, ctr.y + u.y * hw - v.y * hh},
        {ctr.x + u.x * hw + v.x * hh, ctr.y + u.y * hw + v.y * hh},
        {ctr.x - u.x * hw + v.x * hh, ctr.y - u.y * hw + v.y * hh},
    };
    order_corners(g);
    kestrel_object *o = kd_push_object(res);
    if (!o) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "dbnet: out of memory");
      goto done;
    }
    float x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (int k = 0; k < 4; k++) {
      map_to_image(tf, width, height, &g[k]);
      o->quad[k] = g[k];
      x0 = fminf(x0, g[k].x);
      y0 = fminf(y0, g[k].y);
      x1 = fmaxf(x1, g[k].x);
      y1 = fmaxf(y1, g[k].y);
    }
    o->has_quad = 1;
    o->x = x0;
    o->y = y0;
    o->w = x1 - x0;
    o->h = y1 - y0;
    o->confidence = score;
    o->label_id = 0;
    o->label = "text";
  }
done:
  free(label);
  free(queue);
  free(comps);
  free(pts);
  free(hull);
  return st;
}

kestrel_status kd_decode_dbnet(const kestrel_sidecar *sc,
                               const kestrel_tensor *const *outputs,
                               size_t num_outputs,
                               const kestrel_transform *tf,
                               kestrel_result *res, kestrel_error *err) {
  if (num_outputs < 1 || !outputs[0])
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "dbnet: no output tensor");
  const kestrel_tensor *t = outputs[0];
  if (t->ndim < 2)
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "dbnet: output '%s' has rank %d, want [..,H,W]",
                   t->name ? t->name : "", t->ndim);
  int64_t h = t->dims[t->ndim - 2], w = t->dims[t->ndim - 1];
  if (h < 1 || w < 1 || h > DB_MAX_SIDE || w > DB_MAX_SIDE ||
      kestrel_tensor_numel(t) != (size_t)(h * w))
    return kn_fail(err, KESTREL_ERROR_SHAPE,
                   "dbnet: output '%s' is not a single [H,W] map",
                   t->name ? t->name : "");
  float *copy;
  const float *prob = kd_tensor_floats(t, &copy, err);
  if (!prob)
    return KESTREL_ERROR_UNSUPPORTED;
  kestrel_status st =
      kestrel_dbnet_decode(&sc->dbnet, prob, (int)w, (int)h, tf, res, err);
  if (!st && sc->num_labels > 0)
    for (size_t i = 0; i < res->num_objects; i++)
      res->objects[i].label = sc->labels[0];
  free(copy);
  return st;
}
