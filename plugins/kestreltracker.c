/* SORT-like tracker: constant-velocity Kalman filters and Hungarian IoU
 * matching (see kestreltracker.h for the model). */
#include "kestreltracker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Noise of the motion model, as fractions of the box height: a face box
 * jitters by a few percent of its size from frame to frame, and its speed
 * changes more slowly than that (DeepSORT's 1/20 and 1/160). */
#define STD_POSITION 0.05
#define STD_VELOCITY 0.00625
/* Cost of a forbidden pair: larger than any sum of allowed costs (<= 1). */
#define FORBIDDEN_COST 1.0e6f

typedef struct
{
  double p, v;                  /* position and velocity */
  double pp, pv, vv;            /* covariance [[pp, pv], [pv, vv]] */
} Filter1D;

typedef struct
{
  Filter1D f[4];                /* centre x, centre y, width, height */
  int label_id;
  int id;                       /* 0 while tentative */
  int hits;
  int age;
  int detection;                /* index matched this update, -1 if none */
} Track;

struct kestrel_tracker
{
  kestrel_tracker_params params;
  Track *tracks;
  int num_tracks;
  int next_id;
};

void
kestrel_tracker_params_default (kestrel_tracker_params * params)
{
  params->iou_threshold = 0.3f;
  params->max_age = 15;
  params->min_hits = 3;
}

static int
params_valid (const kestrel_tracker_params * params)
{
  return params && params->iou_threshold > 0.0f
      && params->iou_threshold <= 1.0f && params->max_age >= 0
      && params->max_age <= 100000 && params->min_hits >= 1
      && params->min_hits <= 100000;
}

kestrel_tracker *
kestrel_tracker_new (const kestrel_tracker_params * params)
{
  kestrel_tracker *t;

  if (!params_valid (params))
    return NULL;
  t = calloc (1, sizeof (*t));
  if (!t)
    return NULL;
  t->tracks = calloc (KESTREL_TRACKER_MAX_TRACKS, sizeof (Track));
  if (!t->tracks) {
    free (t);
    return NULL;
  }
  t->params = *params;
  t->next_id = 1;
  return t;
}

void
kestrel_tracker_free (kestrel_tracker * tracker)
{
  if (!tracker)
    return;
  free (tracker->tracks);
  free (tracker);
}

int
kestrel_tracker_set_params (kestrel_tracker * tracker,
    const kestrel_tracker_params * params)
{
  if (!params_valid (params))
    return -1;
  tracker->params = *params;
  return 0;
}

void
kestrel_tracker_reset (kestrel_tracker * tracker)
{
  tracker->num_tracks = 0;
  tracker->next_id = 1;
}

float
kestrel_track_iou (const kestrel_track_box * a, const kestrel_track_box * b)
{
  float x0 = fmaxf (a->x, b->x), y0 = fmaxf (a->y, b->y);
  float x1 = fminf (a->x + a->w, b->x + b->w);
  float y1 = fminf (a->y + a->h, b->y + b->h);
  float inter, uni;

  if (!(a->w > 0 && a->h > 0 && b->w > 0 && b->h > 0))
    return 0.0f;
  if (x1 <= x0 || y1 <= y0)
    return 0.0f;
  inter = (x1 - x0) * (y1 - y0);
  uni = a->w * a->h + b->w * b->h - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

/* --- Kalman filter, one coordinate --------------------------------------- */

static void
filter_init (Filter1D * f, double position, double scale)
{
  double sp = 2.0 * STD_POSITION * scale, sv = 10.0 * STD_VELOCITY * scale;

  f->p = position;
  f->v = 0.0;
  f->pp = sp * sp;
  f->pv = 0.0;
  f->vv = sv * sv;
}

/* x' = F x with F = [[1, 1], [0, 1]]; P' = F P F^T + Q, Q diagonal. */
static void
filter_predict (Filter1D * f, double scale)
{
  double qp = STD_POSITION * scale, qv = STD_VELOCITY * scale;
  double pp = f->pp + 2.0 * f->pv + f->vv, pv = f->pv + f->vv;

  f->p += f->v;
  f->pp = pp + qp * qp;
  f->pv = pv;
  f->vv += qv * qv;
}

/* Measurement of the position only: H = [1, 0], R = (STD_POSITION*scale)^2. */
static void
filter_correct (Filter1D * f, double z, double scale)
{
  double r = STD_POSITION * scale;
  double s = f->pp + r * r;
  double kp = f->pp / s, kv = f->pv / s;
  double innovation = z - f->p;
  double pp = f->pp, pv = f->pv;

  f->p += kp * innovation;
  f->v += kv * innovation;
  f->pp = (1.0 - kp) * pp;
  f->pv = (1.0 - kp) * pv;
  f->vv -= kv * pv;
}

static void
track_box (const Track * t, kestrel_track_box * box)
{
  double w = fmax (t->f[2].p, 1.0), h = fmax (t->f[3].p, 1.0);

  box->x = (float) (t->f[0].p - w / 2);
  box->y = (float) (t->f[1].p - h / 2);
  box->w = (float) w;
  box->h = (float) h;
  box->label_id = t->label_id;
}

static double
track_scale (const Track * t)
{
  return fmax (t->f[3].p, 1.0);
}

static void
track_init (Track * t, const kestrel_track_box * b)
{
  double scale = fmax (b->h, 1.0f);

  memset (t, 0, sizeof (*t));
  filter_init (&t->f[0], b->x + b->w / 2.0, scale);
  filter_init (&t->f[1], b->y + b->h / 2.0, scale);
  filter_init (&t->f[2], b->w, scale);
  filter_init (&t->f[3], b->h, scale);
  t->label_id = b->label_id;
  t->hits = 1;
}

static void
track_predict (Track * t)
{
  double scale = track_scale (t);

  for (int k = 0; k < 4; k++)
    filter_predict (&t->f[k], scale);
  /* A shrinking box must not turn inside out while coasting. */
  if (t->f[2].p < 1.0) {
    t->f[2].p = 1.0;
    t->f[2].v = 0.0;
  }
  if (t->f[3].p < 1.0) {
    t->f[3].p = 1.0;
    t->f[3].v = 0.0;
  }
}

static void
track_correct (Track * t, const kestrel_track_box * b)
{
  double scale = fmax (b->h, 1.0f);

  filter_correct (&t->f[0], b->x + b->w / 2.0, scale);
  filter_correct (&t->f[1], b->y + b->h / 2.0, scale);
  filter_correct (&t->f[2], b->w, scale);
  filter_correct (&t->f[3], b->h, scale);
}

/* --- Hungarian algorithm ------------------------------------------------ */

/* Shortest augmenting paths with potentials (Kuhn-Munkres, O(n^2 m)) for
 * n <= m: every row is assigned to a distinct column. cost is n x m. */
static int
assign_rows (const float *cost, int n, int m, int *row_match)
{
  double *u = calloc ((size_t) n + 1, sizeof (double));
  double *v = calloc ((size_t) m + 1, sizeof (double));
  double *minv = malloc (((size_t) m + 1) * sizeof (double));
  int *p = calloc ((size_t) m + 1, sizeof (int));
  int *way = calloc ((size_t) m + 1, sizeof (int));
  char *used = malloc ((size_t) m + 1);
  int ok = u && v && minv && p && way && used;

  /* p[j]: row (1-based) assigned to column j; column 0 is the sentinel
   * through which each new row enters. */
  for (int i = 1; ok && i <= n; i++) {
    int j0 = 0;
    p[0] = i;
    for (int j = 0; j <= m; j++) {
      minv[j] = INFINITY;
      used[j] = 0;
    }
    do {
      int i0 = p[j0], j1 = 0;
      double delta = INFINITY;
      used[j0] = 1;
      for (int j = 1; j <= m; j++) {
        if (used[j])
          continue;
        double cur = cost[(size_t) (i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  if (ok) {
    for (int i = 0; i < n; i++)
      row_match[i] = -1;
    for (int j = 1; j <= m; j++)
      if (p[j] > 0)
        row_match[p[j] - 1] = j - 1;
  }
  free (u);
  free (v);
  free (minv);
  free (p);
  free (way);
  free (used);
  return ok ? 0 : -1;
}

int
kestrel_track_assign (const float *cost, int n_rows, int n_cols,
    float forbidden, int *match)
{
  int matched = 0;

  if (n_rows < 0 || n_cols < 0 || n_rows > KESTREL_TRACKER_MAX_TRACKS
      || n_cols > KESTREL_TRACKER_MAX_TRACKS)
    return -1;
  for (int r = 0; r < n_rows; r++)
    match[r] = -1;
  if (n_rows == 0 || n_cols == 0)
    return 0;

  /* The solver wants rows <= columns: transpose otherwise. Forbidden pairs
   * get a cost above any total of allowed ones, so the optimum first
   * minimizes how many of them it uses, then the real cost; they are
   * dropped from the answer afterwards. */
  {
    int transpose = n_rows > n_cols;
    int n = transpose ? n_cols : n_rows, m = transpose ? n_rows : n_cols;
    float *c = malloc ((size_t) n * m * sizeof (float));
    int *row_match = malloc ((size_t) n * sizeof (int));

    if (!c || !row_match) {
      free (c);
      free (row_match);
      return -1;
    }
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m; j++) {
        float x = transpose ? cost[(size_t) j * n_cols + i]
            : cost[(size_t) i * n_cols + j];
        c[(size_t) i * m + j] = (x >= forbidden || !isfinite (x))
            ? FORBIDDEN_COST : x;
      }
    if (assign_rows (c, n, m, row_match) < 0) {
      free (c);
      free (row_match);
      return -1;
    }
    for (int i = 0; i < n; i++) {
      int j = row_match[i];
      if (j < 0 || c[(size_t) i * m + j] >= FORBIDDEN_COST)
        continue;
      if (transpose)
        match[j] = i;
      else
        match[i] = j;
      matched++;
    }
    free (c);
    free (row_match);
  }
  return matched;
}

/* --- update ------------------------------------------------------------- */

static int
box_valid (const kestrel_track_box * b)
{
  return isfinite (b->x) && isfinite (b->y) && isfinite (b->w)
      && isfinite (b->h) && b->w > 0 && b->h > 0
      && fabsf (b->x) < 1e7f && fabsf (b->y) < 1e7f && b->w < 1e7f
      && b->h < 1e7f;
}

int
kestrel_tracker_update (kestrel_tracker * tracker,
    const kestrel_track_box * boxes, int n, int *ids)
{
  const kestrel_tracker_params *params = &tracker->params;
  int valid[KESTREL_TRACKER_MAX_DETECTIONS];
  int num_valid = 0, num_ids = 0, kept = 0;
  int nt = tracker->num_tracks;
  float *cost = NULL;
  int *match = NULL;

  if (n < 0)
    n = 0;
  for (int i = 0; i < n; i++) {
    ids[i] = 0;
    if (num_valid < KESTREL_TRACKER_MAX_DETECTIONS && box_valid (&boxes[i]))
      valid[num_valid++] = i;
  }

  for (int t = 0; t < nt; t++) {
    track_predict (&tracker->tracks[t]);
    tracker->tracks[t].detection = -1;
  }

  /* Rows are tracks, columns the valid detections; cost 1 - IoU. */
  if (nt > 0 && num_valid > 0) {
    cost = malloc ((size_t) nt * num_valid * sizeof (float));
    match = malloc ((size_t) nt * sizeof (int));
    if (cost && match) {
      for (int t = 0; t < nt; t++) {
        kestrel_track_box predicted;
        track_box (&tracker->tracks[t], &predicted);
        for (int d = 0; d < num_valid; d++) {
          const kestrel_track_box *b = &boxes[valid[d]];
          float iou = kestrel_track_iou (&predicted, b);
          int allowed = b->label_id == predicted.label_id
              && iou >= params->iou_threshold;
          cost[(size_t) t * num_valid + d] = allowed ? 1.0f - iou : 2.0f;
        }
      }
      if (kestrel_track_assign (cost, nt, num_valid, 1.5f, match) >= 0)
        for (int t = 0; t < nt; t++)
          if (match[t] >= 0)
            tracker->tracks[t].detection = valid[match[t]];
    }
    /* Out of memory: nothing matches this frame; tracks coast. */
    free (cost);
    free (match);
  }

  /* Correct matched tracks, age the others, and drop the dead. */
  for (int t = 0; t < nt; t++) {
    Track *tr = &tracker->tracks[t];
    if (tr->detection >= 0) {
      track_correct (tr, &boxes[tr->detection]);
      tr->hits++;
      tr->age = 0;
      if (tr->id == 0 && tr->hits >= params->min_hits)
        tr->id = tracker->next_id++;
      if (tr->id > 0) {
        ids[tr->detection] = tr->id;
        num_ids++;
      }
    } else {
      tr->hits = 0;
      tr->age++;
      /* A tentative track that misses a frame was likely a false positive. */
      if (tr->id == 0 || tr->age > params->max_age)
        continue;
    }
    if (kept != t)
      tracker->tracks[kept] = *tr;
    kept++;
  }
  nt = kept;

  /* New tentative tracks for the unmatched detections, in input order. */
  for (int d = 0; d < num_valid; d++) {
    int i = valid[d], taken = 0;
    for (int t = 0; t < nt && !taken; t++)
      taken = tracker->tracks[t].detection == i && tracker->tracks[t].age == 0
          && tracker->tracks[t].hits > 0;
    if (taken || nt >= KESTREL_TRACKER_MAX_TRACKS)
      continue;
    track_init (&tracker->tracks[nt], &boxes[i]);
    tracker->tracks[nt].detection = i;
    if (params->min_hits <= 1) {
      tracker->tracks[nt].id = tracker->next_id++;
      ids[i] = tracker->tracks[nt].id;
      num_ids++;
    }
    nt++;
  }
  tracker->num_tracks = nt;
  return num_ids;
}

int
kestrel_tracker_get_tracks (const kestrel_tracker * tracker,
    kestrel_track_info * out, int max)
{
  int n = 0;

  for (int t = 0; t < tracker->num_tracks && n < max; t++) {
    const Track *tr = &tracker->tracks[t];
    out[n].id = tr->id;
    track_box (tr, &out[n].box);
    out[n].hits = tr->hits;
    out[n].age = tr->age;
    n++;
  }
  return n;
}
