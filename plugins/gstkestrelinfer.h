/* GstKestrelInfer: the shared base of kestreldetect and kestrelclassify.
 *
 * It owns what both inference elements do the same way: loading a model and
 * its sidecar, swapping models while playing, sampling raw frames into the
 * input tensor, the threading model (inline, or a worker thread with a
 * one-slot mailbox for live sources), the `interval` and `roi` properties,
 * statistics, the LATENCY query and the `kestrel-inference` bus message.
 * Subclasses say which regions of a frame to run on, turn the engine's
 * results into metadata, and check that a model suits them.
 *
 * Metadata written by the subclasses (the DL Streamer convention):
 *   GstVideoRegionOfInterestMeta per object, roi_type = label quark, x/y/w/h
 *   in buffer pixels, params:
 *     "detection": x_min, y_min, x_max, y_max (gdouble, 0..1 of the frame),
 *        confidence (gdouble), label_id (gint), label (string),
 *        stale (gboolean: the box comes from an earlier frame),
 *        keypoints (GstValueArray of gdouble, x0,y0,x1,y1,... normalized to
 *        the frame, when the model has keypoints), keypoint-names
 *        (GstValueArray of strings, when the sidecar names them),
 *        quad (GstValueArray of 8 gdouble, normalized corners, text boxes).
 *     "<model output name>" (kestrelclassify): label (string), label_id
 *        (gint), confidence (gdouble), stale (gboolean).
 */
#ifndef __GST_KESTREL_INFER_H__
#define __GST_KESTREL_INFER_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <kestrel/decode.h>
#include <kestrel/run.h>

#include "kestrelframe.h"

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_INFER (gst_kestrel_infer_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstKestrelInfer, gst_kestrel_infer, GST,
    KESTREL_INFER, GstBaseTransform);

#define GST_TYPE_KESTREL_INFER_MODE (gst_kestrel_infer_mode_get_type ())
GType gst_kestrel_infer_mode_get_type (void);

typedef enum
{
  GST_KESTREL_INFER_MODE_AUTO = 0,      /* async when upstream is live */
  GST_KESTREL_INFER_MODE_SYNC = 1,      /* inline, every due frame */
  GST_KESTREL_INFER_MODE_ASYNC = 2,     /* worker thread, latest results */
} GstKestrelInferMode;

/* A loaded model with its sidecar and a session, used by one thread at a
 * time (the streaming thread, or the worker in async mode). */
typedef struct
{
  gchar *path;
  kestrel_sidecar sidecar;
  kestrel_model *model;
  kestrel_session *session;
  gint threads;
  gint tensor_width, tensor_height;
  gboolean is_float;
  gchar *output_name;           /* first output's name, a valid structure name */
  gdouble warmup_ms;
} KestrelInferModel;

/* A part of the frame to run the model on, in frame pixels. */
typedef struct
{
  KestrelRect rect;
  gint object_id;               /* from the "object_id" params, -1 if none */
  gint roi_id;                  /* GstVideoRegionOfInterestMeta id, -1: none */
} KestrelRegion;

/* Settings read at decode time (properties change without a reload). */
typedef struct
{
  gdouble threshold;            /* < 0: the sidecar's */
  gdouble nms_iou;              /* < 0: the sidecar's */
  gint max_detections;          /* < 0: the sidecar's */
} KestrelDecodeSettings;

/* What one inference produced; shared (refcounted) between the thread that
 * ran it and the streaming thread that attaches it to later frames. */
typedef struct
{
  gint refcount;
  guint64 frame_number;
  gdouble inference_ms;
  gint frame_width, frame_height;
  gpointer data;
  GDestroyNotify free_data;
} KestrelInferResult;

struct _GstKestrelInferClass
{
  GstBaseTransformClass parent_class;

  /* Does this model suit the element? Set error and return FALSE if not. */
  gboolean (*check_model) (GstKestrelInfer * self,
      const KestrelInferModel * model, GError ** error);
  /* Streaming thread, frame due for inference: the regions to run on
   * (append KestrelRegion to `regions`). `roi` is the `roi` property
   * clipped to the frame. Returning no regions skips the inference. */
  void (*plan) (GstKestrelInfer * self, GstBuffer * buffer,
      const GstVideoInfo * info, guint64 frame_number, const KestrelRect * roi,
      GArray * regions);
  /* Runner thread: run the model over the regions (with
   * gst_kestrel_infer_run_region) and return result data (freed with
   * free_data), or NULL with error set. */
    gpointer (*process) (GstKestrelInfer * self, KestrelInferModel * model,
      const KestrelFrame * frame, const KestrelRegion * regions,
      guint num_regions, const KestrelDecodeSettings * settings,
      GError ** error);
  void (*free_data) (gpointer data);
  /* Streaming thread, every frame: attach `result` (NULL: none yet) to the
   * writable buffer; append the objects to `objects` (a GST_TYPE_ARRAY of
   * structures for the bus message) when it is not NULL. */
  void (*attach) (GstKestrelInfer * self, GstBuffer * buffer,
      const GstVideoInfo * info, guint64 frame_number,
      KestrelInferResult * result, gboolean stale, GValue * objects);
};

/* Preprocess one region of the frame, run the session and decode into res
 * (boxes in frame pixels). Applies the decode settings. */
gboolean gst_kestrel_infer_run_region (GstKestrelInfer * self,
    KestrelInferModel * model, const KestrelFrame * frame,
    const KestrelRect * rect, const KestrelDecodeSettings * settings,
    kestrel_result * res, GError ** error);

/* The label of an object or class: the `labels` override if it names this
 * id, else the sidecar's, else the id as text (in buf). */
const gchar *gst_kestrel_infer_label (GstKestrelInfer * self,
    const gchar * label, gint label_id, gchar * buf, gsize buf_size);

/* The `object-class` filter of kestreldetect and kestrelclassify: a
 * comma-separated label list, blanks trimmed. NULL or "" gives NULL, which
 * class_wanted reads as "every label". Free with g_strfreev. */
gchar **gst_kestrel_infer_parse_classes (const gchar * text);
gboolean gst_kestrel_infer_class_wanted (gchar ** classes,
    const gchar * label);

/* The object id a tracker stored in a ROI ("object_id" params), or -1. */
gint gst_kestrel_infer_roi_object_id (GstVideoRegionOfInterestMeta * roi);

/* One object of the bus message's `objects` array. */
void gst_kestrel_infer_append_object (GValue * objects, const gchar * label,
    gdouble confidence, gint x, gint y, gint width, gint height,
    gint track_id);

G_END_DECLS
#endif /* __GST_KESTREL_INFER_H__ */
