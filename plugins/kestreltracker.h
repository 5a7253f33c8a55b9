/* A SORT-like multi-object tracker in plain C (no GLib, no GStreamer), so
 * that the algorithm is unit-tested on its own; kestreltrack wraps it.
 *
 * Each track keeps a constant-velocity Kalman filter per box coordinate
 * (centre x, centre y, width, height; each with its own velocity). Every
 * update predicts all tracks one frame ahead, matches detections to the
 * predictions by IoU with the Hungarian algorithm (pairs below the IoU
 * threshold or of different labels never match), corrects the matched
 * tracks, ages the others and starts a tentative track per unmatched
 * detection. A track is confirmed after `min_hits` matched frames in a row
 * and gets its public id then (1, 2, 3, ... in order of confirmation, so
 * ids have no gaps from tentative tracks that died); it survives `max_age`
 * frames without a match (short occlusion) before it is dropped.
 *
 *   kestrel_tracker *t = kestrel_tracker_new (&params);
 *   for each frame:
 *     kestrel_tracker_update (t, boxes, n, ids);   // ids[i]: 0 = not yet
 *   kestrel_tracker_free (t);
 */
#ifndef KESTREL_TRACKER_H
#define KESTREL_TRACKER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits an update works with; more detections than this are not tracked
 * (their id is 0), so one frame's cost stays bounded (O(n^3) matching). */
#define KESTREL_TRACKER_MAX_DETECTIONS 256
#define KESTREL_TRACKER_MAX_TRACKS 512

typedef struct
{
  float iou_threshold;          /* a match needs IoU >= this (0..1] */
  int max_age;                  /* frames a track lives without a match */
  int min_hits;                 /* matched frames before it gets an id */
} kestrel_tracker_params;

/* A detection: box in pixels (top-left corner and size) and its class. */
typedef struct
{
  float x, y, w, h;
  int label_id;
} kestrel_track_box;

/* A track as reported by kestrel_tracker_get_tracks. */
typedef struct
{
  int id;                       /* 0 while tentative */
  kestrel_track_box box;        /* the filter's current estimate */
  int hits;                     /* matched frames in a row */
  int age;                      /* frames since the last match */
} kestrel_track_info;

typedef struct kestrel_tracker kestrel_tracker;

/* Defaults: IoU 0.3, max_age 15, min_hits 3. */
void kestrel_tracker_params_default (kestrel_tracker_params * params);

/* NULL if out of memory or params are out of range. */
kestrel_tracker *kestrel_tracker_new (const kestrel_tracker_params * params);
void kestrel_tracker_free (kestrel_tracker * tracker);

/* Changes take effect at the next update. Returns 0, or -1 if out of range
 * (then nothing changes). */
int kestrel_tracker_set_params (kestrel_tracker * tracker,
    const kestrel_tracker_params * params);

/* Forget every track; ids start again at 1. */
void kestrel_tracker_reset (kestrel_tracker * tracker);

/* One frame: boxes[0..n) are its detections. ids[i] receives the public id
 * of the track that detection i belongs to, or 0 if that track is still
 * tentative (or the detection was not tracked). Returns how many
 * detections got an id. Boxes with non-finite or non-positive sizes are
 * not tracked. */
int kestrel_tracker_update (kestrel_tracker * tracker,
    const kestrel_track_box * boxes, int n, int *ids);

/* The tracks alive after the last update (at most `max`); returns the count
 * written. */
int kestrel_tracker_get_tracks (const kestrel_tracker * tracker,
    kestrel_track_info * out, int max);

/* IoU of two boxes (0 when either is empty). */
float kestrel_track_iou (const kestrel_track_box * a,
    const kestrel_track_box * b);

/* Minimum-cost assignment of an n_rows x n_cols cost matrix (row-major,
 * both <= KESTREL_TRACKER_MAX_TRACKS): match[r] = column of row r, or -1.
 * Entries >= `forbidden` are never chosen. Returns the number of matches,
 * or -1 if out of memory or too large. Exposed for the tests. */
int kestrel_track_assign (const float *cost, int n_rows, int n_cols,
    float forbidden, int *match);

#ifdef __cplusplus
}
#endif
#endif /* KESTREL_TRACKER_H */
