/* GstKestrelInfer: model loading, model swaps, threading, statistics and
 * bus messages shared by kestreldetect and kestrelclassify.
 *
 * Threading model:
 *  - Property setters and the LATENCY query run on application threads;
 *    every field they share with the streaming side sits under priv->lock.
 *  - Loading: the model named at start is loaded in start() (an error stops
 *    the pipeline). A model (or config, or threads) changed while the
 *    element runs is loaded on a loader thread (a GThreadPool of one) and
 *    parked in priv->pending; the thread that runs inferences picks it up
 *    before its next inference, so the swap happens at a frame boundary. A
 *    load that fails posts a warning and the old model keeps running.
 *  - Sync mode (default for non-live sources): inference runs inline on the
 *    streaming thread for every due frame; output is deterministic.
 *  - Async mode (default for live sources): a worker thread runs inferences
 *    from a one-slot mailbox. The streaming thread puts each due frame (a
 *    shallow copy of the buffer, sharing its memory) in the mailbox,
 *    replacing a frame still waiting there (counted as dropped), waits at
 *    most half a frame duration for its result when the worker was idle,
 *    and then sends the frame on with the latest finished result, marked
 *    stale if it came from an earlier frame. Frames therefore leave at the
 *    camera's rate however slow the model is; the LATENCY query reports
 *    that wait.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gstkestrelinfer.h"

#include <stdlib.h>
#include <kestrel/compile.h>
#include "kestreljpeg.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_infer_debug);
#define GST_CAT_DEFAULT gst_kestrel_infer_debug

#define DEFAULT_MODEL NULL
#define DEFAULT_CONFIG NULL
#define DEFAULT_LABELS NULL
#define DEFAULT_THRESHOLD -1.0
#define DEFAULT_INTERVAL 1
#define DEFAULT_ROI NULL
#define DEFAULT_THREADS 1
#define DEFAULT_MESSAGE FALSE
#define DEFAULT_MODE GST_KESTREL_INFER_MODE_AUTO
#define DEFAULT_INFERENCE_DELAY 0

#define MAX_OUTPUTS 64
#define TIMING_RING 512
/* Wait for a fresh result when the frame rate is unknown. */
#define DEFAULT_ASYNC_WAIT (10 * GST_MSECOND)
/* At most one bad-JPEG warning per this many microseconds. */
#define BAD_FRAME_WARNING_US (5 * G_USEC_PER_SEC)

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_CONFIG,
  PROP_LABELS,
  PROP_THRESHOLD,
  PROP_INTERVAL,
  PROP_ROI,
  PROP_THREADS,
  PROP_MESSAGE,
  PROP_MODE,
  PROP_INFERENCE_DELAY,
  PROP_STATS,
};

/* One frame waiting for, or under, inference. */
typedef struct
{
  GstBuffer *buffer;
  GstVideoInfo info;
  guint64 frame_number;
  GArray *regions;
} KestrelInferJob;

typedef struct
{
  GMutex lock;
  GCond cond;

  /* properties */
  gchar *model_path;
  gchar *config_path;
  gchar **labels;
  gdouble threshold;
  guint interval;
  gchar *roi_text;
  KestrelRect roi;              /* width 0: the whole frame */
  gint threads;
  gboolean message;
  GstKestrelInferMode mode;
  guint inference_delay;        /* ms */

  /* models: `model` belongs to the thread running inferences */
  KestrelInferModel *model;
  KestrelInferModel *pending;
  guint load_generation;
  GThreadPool *loader;
  gboolean started;
  gint frame_width, frame_height;       /* for `multiple` resize at load */

  /* streaming */
  GstVideoInfo info;
  gboolean have_info;
  guint64 frame_number;
  gboolean mode_decided;
  gboolean async;
  GstClockTime async_wait;
  GThread *worker;
  gboolean worker_stop;
  gboolean worker_busy;
  KestrelInferJob *mailbox;
  KestrelInferResult *latest;
  gboolean warned_failure;
  /* image/jpeg input (frame path, docs/frame-path.md): the model sees a
   * DCT-domain reduced decode; the JPEG passes on untouched. */
  gboolean jpeg;
  KestrelJpeg *jpeg_decoder;    /* the inference thread's */
  gint64 last_bad_warning;

  /* statistics */
  guint64 frames, inferences, dropped, bad_frames;
  gdouble ms_sum;
  gdouble ms_ring[TIMING_RING];
  guint ms_count;
  gdouble latency_ms;           /* inline inference estimate */
} GstKestrelInferPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (GstKestrelInfer, gst_kestrel_infer,
    GST_TYPE_BASE_TRANSFORM);

#define GET_PRIV(self) \
  ((GstKestrelInferPrivate *) gst_kestrel_infer_get_instance_private (self))

#define KESTREL_CAPS GST_VIDEO_CAPS_MAKE ("{ I420, NV12, YUY2, RGB, BGR, RGBx, BGRx }") \
    "; image/jpeg, width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ]"

GType
gst_kestrel_infer_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_KESTREL_INFER_MODE_AUTO,
        "Async when the source is live, else sync", "auto"},
    {GST_KESTREL_INFER_MODE_SYNC,
        "Run every due frame inline on the streaming thread", "sync"},
    {GST_KESTREL_INFER_MODE_ASYNC,
          "Run on a worker thread; frames carry the latest results",
        "async"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstKestrelInferMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* --- models -------------------------------------------------------------- */

static void
kestrel_infer_model_free (KestrelInferModel * m)
{
  if (!m)
    return;
  if (m->session)
    kestrel_session_free (m->session);
  if (m->model)
    kestrel_model_free (m->model);
  kestrel_sidecar_free (&m->sidecar);
  g_free (m->path);
  g_free (m->output_name);
  g_free (m);
}

static const gchar *
asset_dir (void)
{
  const gchar *env = g_getenv ("KESTREL_ASSETS");

  if (env && *env)
    return env;
#ifdef KESTREL_DATADIR
  if (g_file_test (KESTREL_DATADIR, G_FILE_TEST_IS_DIR))
    return KESTREL_DATADIR;
#endif
#ifdef KESTREL_SOURCE_ASSETS
  if (g_file_test (KESTREL_SOURCE_ASSETS, G_FILE_TEST_IS_DIR))
    return KESTREL_SOURCE_ASSETS;
#endif
  return NULL;
}

/* sha256 of a file, read in pieces (models can be large). */
static gchar *
file_sha256 (const gchar * path, GError ** error)
{
  GChecksum *sum;
  guint8 buf[65536];
  gsize n;
  gchar *hex;
  FILE *f = fopen (path, "rb");

  if (!f) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        "cannot open model file '%s': %s", path, g_strerror (errno));
    return NULL;
  }
  sum = g_checksum_new (G_CHECKSUM_SHA256);
  while ((n = fread (buf, 1, sizeof (buf), f)) > 0)
    g_checksum_update (sum, buf, n);
  fclose (f);
  hex = g_strdup (g_checksum_get_string (sum));
  g_checksum_free (sum);
  return hex;
}

static gboolean
model_is_quantized (const kestrel_model * model)
{
  const gchar *names[256];
  size_t counts[256];
  size_t n = kestrel_model_op_histogram (model, names, counts, 256);
  const kestrel_tensor *in = kestrel_model_input (model, 0);

  if (in && (in->dtype == KESTREL_DTYPE_I8 || in->dtype == KESTREL_DTYPE_U8))
    return TRUE;
  for (size_t i = 0; i < n && i < 256; i++)
    if (strstr (names[i], "Quantize") || strstr (names[i], "Integer")
        || strstr (names[i], "QLinear"))
      return TRUE;
  return FALSE;
}

/* GstStructure names: a letter first, then letters, digits and "/-_.:+". */
static gchar *
structure_name_from (const gchar * name)
{
  GString *s = g_string_new (NULL);

  for (const gchar * p = name ? name : ""; *p; p++) {
    gchar c = *p;
    if (!(g_ascii_isalnum (c) || strchr ("/-_.:+", c)))
      c = '_';
    g_string_append_c (s, c);
  }
  if (s->len == 0 || !g_ascii_isalpha (s->str[0]))
    g_string_prepend (s, "output_");
  return g_string_free (s, FALSE);
}

/* Loads (or reloads for a new tensor size) the model and a session. */
static gboolean
model_open (KestrelInferModel * m, gint tensor_width, gint tensor_height,
    GError ** error)
{
  kestrel_error err;
  kestrel_status st;
  kestrel_load_options lo = kestrel_load_options_default ();
  kestrel_session_options so = {.threads = m->threads };
  const kestrel_tensor *in;
  int64_t nchw[4] = { 1, 3, tensor_height, tensor_width };
  int64_t nhwc[4] = { 1, tensor_height, tensor_width, 3 };

  if (m->session)
    kestrel_session_free (m->session);
  if (m->model)
    kestrel_model_free (m->model);
  m->session = NULL;
  m->model = NULL;

  memcpy (lo.input_shape,
      m->sidecar.layout == KESTREL_LAYOUT_NHWC ? nhwc : nchw, sizeof (nchw));
  lo.input_shape_ndim = 4;
  st = kestrel_model_load (m->path, &lo, &m->model, &err);
  if (st != KESTREL_OK) {
    g_set_error (error, GST_STREAM_ERROR,
        st == KESTREL_ERROR_IO ? GST_STREAM_ERROR_FAILED :
        GST_STREAM_ERROR_DECODE, "cannot load model '%s' (%s): %s", m->path,
        kestrel_status_string (st), err.message);
    return FALSE;
  }
  /* An ONNX or TFLite model runs optimized, as `kestrel compile` would
   * save it (fusion, NHWC, packed weights for the fast kernels); a .kestrel
   * file already is. */
  if (kestrel_model_source_format (m->model) != KESTREL_FORMAT_KESTREL) {
    kestrel_compile_options co = kestrel_compile_options_default ();
    st = kestrel_model_optimize (m->model, &co, &err);
    if (st != KESTREL_OK) {
      g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
          "cannot optimize model '%s' (%s): %s", m->path,
          kestrel_status_string (st), err.message);
      return FALSE;
    }
  }
  in = kestrel_model_input (m->model, 0);
  if (kestrel_model_num_inputs (m->model) < 1 || !in || in->ndim != 4) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
        "model '%s' does not take one image (input 0 must be rank 4)",
        m->path);
    return FALSE;
  }
  st = kestrel_session_create (m->model, &so, &m->session, &err);
  if (st != KESTREL_OK) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
        "cannot plan model '%s': %s", m->path, err.message);
    return FALSE;
  }
  m->tensor_width = tensor_width;
  m->tensor_height = tensor_height;
  return TRUE;
}

/* Runs the model once on a blank image and decodes the output: proves the
 * outputs suit the sidecar's decoder and measures a first inference time. */
static gboolean
model_warm_up (KestrelInferModel * m, GError ** error)
{
  kestrel_tensor *in = kestrel_session_input (m->session, 0);
  const kestrel_tensor *outs[MAX_OUTPUTS];
  kestrel_transform tf = {
    .image_width = m->tensor_width,.image_height = m->tensor_height,
    .tensor_width = m->tensor_width,.tensor_height = m->tensor_height,
    .scale_x = 1,.scale_y = 1,
  };
  kestrel_result res = { 0 };
  kestrel_error err;
  kestrel_status st;
  size_t nout = MIN (kestrel_model_num_outputs (m->model), MAX_OUTPUTS);
  gint64 t0;

  memset (in->data, 0, kestrel_tensor_bytes (in));
  t0 = g_get_monotonic_time ();
  st = kestrel_session_run (m->session, &err);
  m->warmup_ms = (g_get_monotonic_time () - t0) / 1000.0;
  if (st != KESTREL_OK) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
        "model '%s' failed its first run: %s", m->path, err.message);
    return FALSE;
  }
  for (size_t i = 0; i < nout; i++)
    outs[i] = kestrel_session_output (m->session, i);
  if (m->sidecar.decoder != KESTREL_DECODER_NONE) {
    st = kestrel_decode (&m->sidecar, outs, nout, &tf, &res, &err);
    kestrel_result_free (&res);
    if (st != KESTREL_OK) {
      g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
          "the outputs of model '%s' do not suit its sidecar's decoder "
          "(wrong model or wrong config?): %s", m->path, err.message);
      return FALSE;
    }
  }
  return TRUE;
}

/* The sidecar embedded in a compiled .kestrel file (kestrel compile and
 * kestrel quantize write it there), so INT8 models need no config. */
static kestrel_status
load_embedded_sidecar (const gchar * path, kestrel_sidecar * sc,
    kestrel_error * err)
{
  char *text = NULL;
  size_t size = 0;
  kestrel_status st = kestrel_compiled_sidecar (path, &text, &size, err);

  if (st != KESTREL_OK)
    return st;
  st = kestrel_sidecar_parse (text, size, path, NULL, sc, err);
  free (text);
  return st;
}

/* Loads model + sidecar + session; may run on any thread. frame_width /
 * frame_height (0: unknown) size the tensor of `multiple` resize models. */
static KestrelInferModel *
kestrel_infer_model_load (const gchar * path, const gchar * config,
    gint threads, gint frame_width, gint frame_height, GError ** error)
{
  KestrelInferModel *m;
  kestrel_error err;
  kestrel_status st;
  gint tw, th;

  if (!path || !*path) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
        "no model set: set the model property to a .kestrel, ONNX or TFLite "
        "file");
    return NULL;
  }
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "model file '%s' does not exist (check the model property)", path);
    return NULL;
  }
  m = g_new0 (KestrelInferModel, 1);
  m->path = g_strdup (path);
  m->threads = threads;
  kestrel_sidecar_init (&m->sidecar);

  if (config && *config) {
    st = kestrel_sidecar_load (config, &m->sidecar, &err);
    if (st != KESTREL_OK) {
      g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
          "cannot read config '%s': %s", config, err.message);
      goto error;
    }
  } else if (kestrel_is_compiled_file (path)
      && (st = load_embedded_sidecar (path, &m->sidecar, &err))
      != KESTREL_ERROR_IO) {
    /* A compiled model carries its sidecar; KESTREL_ERROR_IO means it has
     * none and the usual lookup below applies. */
    if (st != KESTREL_OK) {
      g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
          "cannot read the sidecar embedded in '%s': %s", path, err.message);
      goto error;
    }
  } else {
    gchar found[4096];
    gchar *sha = file_sha256 (path, error);
    if (!sha)
      goto error;
    st = kestrel_sidecar_find (path, sha, asset_dir (), found, sizeof (found),
        &err);
    g_free (sha);
    if (st != KESTREL_OK) {
      g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
          "model '%s' has no sidecar describing its input and outputs: %s "
          "(set the config property to a .sidecar file, or KESTREL_ASSETS "
          "to a folder of them)", path, err.message);
      goto error;
    }
    st = kestrel_sidecar_load (found, &m->sidecar, &err);
    if (st != KESTREL_OK) {
      g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
          "cannot read sidecar '%s': %s", found, err.message);
      goto error;
    }
  }

  if (m->sidecar.resize == KESTREL_RESIZE_MULTIPLE && frame_width > 0
      && frame_height > 0) {
    st = kestrel_preprocess_size (&m->sidecar, frame_width, frame_height, &tw,
        &th, &err);
  } else if (m->sidecar.resize == KESTREL_RESIZE_MULTIPLE) {
    tw = th = MAX (m->sidecar.multiple,
        m->sidecar.limit_side - m->sidecar.limit_side % MAX (1,
            m->sidecar.multiple));
    st = KESTREL_OK;
  } else {
    st = kestrel_preprocess_size (&m->sidecar, 1, 1, &tw, &th, &err);
  }
  if (st != KESTREL_OK) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
        "model '%s': %s", path, err.message);
    goto error;
  }
  if (!model_open (m, tw, th, error))
    goto error;
  m->is_float = !model_is_quantized (m->model);
  {
    const kestrel_tensor *out = kestrel_model_output (m->model, 0);
    m->output_name = structure_name_from (out && out->name && *out->name ?
        out->name : m->sidecar.name);
  }
  if (!model_warm_up (m, error))
    goto error;
  return m;

error:
  kestrel_infer_model_free (m);
  return NULL;
}

/* --- results ------------------------------------------------------------- */

static KestrelInferResult *
result_ref (KestrelInferResult * r)
{
  if (r)
    g_atomic_int_inc (&r->refcount);
  return r;
}

static void
result_unref (KestrelInferResult * r)
{
  if (r && g_atomic_int_dec_and_test (&r->refcount)) {
    if (r->free_data && r->data)
      r->free_data (r->data);
    g_free (r);
  }
}

static void
job_free (KestrelInferJob * job)
{
  if (!job)
    return;
  gst_buffer_unref (job->buffer);
  g_array_unref (job->regions);
  g_free (job);
}

/* --- errors and messages ------------------------------------------------- */

static void
post_gerror (GstKestrelInfer * self, GstMessageType type, GError * error)
{
  gst_element_message_full (GST_ELEMENT (self), type, error->domain,
      error->code, g_strdup (error->message), NULL, __FILE__, GST_FUNCTION,
      __LINE__);
}

static gboolean
check_model (GstKestrelInfer * self, KestrelInferModel * m, GError ** error)
{
  GstKestrelInferClass *klass = GST_KESTREL_INFER_GET_CLASS (self);

  if (klass->check_model && !klass->check_model (self, m, error))
    return FALSE;
  if (m->is_float)
    GST_INFO_OBJECT (self, "model %s runs in FP32 (float weights); an INT8 "
        ".kestrel model from `kestrel quantize` runs faster", m->path);
  else
    GST_INFO_OBJECT (self, "model %s runs in INT8", m->path);
  GST_INFO_OBJECT (self, "loaded %s: %dx%d input, first run %.1f ms",
      m->path, m->tensor_width, m->tensor_height, m->warmup_ms);
  return TRUE;
}

/* --- loading off the streaming thread ------------------------------------ */

typedef struct
{
  guint generation;
  gchar *path, *config;
  gint threads, frame_width, frame_height;
} LoadRequest;

static void
load_request_free (LoadRequest * req)
{
  g_free (req->path);
  g_free (req->config);
  g_free (req);
}

static void
loader_func (gpointer data, gpointer user_data)
{
  LoadRequest *req = data;
  GstKestrelInfer *self = user_data;
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GError *error = NULL;
  KestrelInferModel *m;
  gboolean current;

  g_mutex_lock (&priv->lock);
  current = priv->started && req->generation == priv->load_generation;
  g_mutex_unlock (&priv->lock);
  if (!current)
    goto done;                  /* superseded before we started */

  m = kestrel_infer_model_load (req->path, req->config, req->threads,
      req->frame_width, req->frame_height, &error);
  if (m && !check_model (self, m, &error)) {
    kestrel_infer_model_free (m);
    m = NULL;
  }
  if (!m) {
    GError *warning = g_error_new (error->domain, error->code,
        "%s; the previous model keeps running", error->message);
    post_gerror (self, GST_MESSAGE_WARNING, warning);
    g_error_free (warning);
    g_error_free (error);
    goto done;
  }
  g_mutex_lock (&priv->lock);
  if (priv->started && req->generation == priv->load_generation) {
    kestrel_infer_model_free (priv->pending);
    priv->pending = m;
    m = NULL;
  }
  g_mutex_unlock (&priv->lock);
  kestrel_infer_model_free (m);
  GST_DEBUG_OBJECT (self, "model %s loaded, swapping at the next frame",
      req->path);

done:
  load_request_free (req);
}

/* Called with the lock held when model/config/threads change. */
static void
schedule_reload_locked (GstKestrelInfer * self)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  LoadRequest *req;

  if (!priv->started || !priv->loader)
    return;
  req = g_new0 (LoadRequest, 1);
  req->generation = ++priv->load_generation;
  req->path = g_strdup (priv->model_path);
  req->config = g_strdup (priv->config_path);
  req->threads = priv->threads;
  req->frame_width = priv->frame_width;
  req->frame_height = priv->frame_height;
  g_thread_pool_push (priv->loader, req, NULL);
}

/* The runner's frame boundary: take a freshly loaded model if one waits. */
static void
swap_in_pending (GstKestrelInfer * self)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  KestrelInferModel *old = NULL;
  gboolean swapped = FALSE;

  g_mutex_lock (&priv->lock);
  if (priv->pending) {
    old = priv->model;
    priv->model = priv->pending;
    priv->pending = NULL;
    priv->latency_ms = priv->model->warmup_ms;
    swapped = TRUE;
  }
  g_mutex_unlock (&priv->lock);
  if (swapped) {
    GST_INFO_OBJECT (self, "swapped in model %s", priv->model->path);
    kestrel_infer_model_free (old);
  }
}

/* --- running inferences -------------------------------------------------- */

const gchar *
gst_kestrel_infer_label (GstKestrelInfer * self, const gchar * label,
    gint label_id, gchar * buf, gsize buf_size)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_mutex_lock (&priv->lock);
  if (priv->labels && label_id >= 0
      && (guint) label_id < g_strv_length (priv->labels))
    g_strlcpy (buf, priv->labels[label_id], buf_size);
  else if (label)
    g_strlcpy (buf, label, buf_size);
  else
    g_snprintf (buf, buf_size, "%d", label_id);
  g_mutex_unlock (&priv->lock);
  return buf;
}

gboolean
gst_kestrel_infer_run_region (GstKestrelInfer * self,
    KestrelInferModel * m, const KestrelFrame * frame,
    const KestrelRect * rect, const KestrelDecodeSettings * settings,
    kestrel_result * res, GError ** error)
{
  kestrel_sidecar sc = m->sidecar;      /* shallow: overrides only */
  kestrel_transform tf;
  kestrel_error err;
  kestrel_status st;
  const kestrel_tensor *outs[MAX_OUTPUTS];
  size_t nout;

  /* `multiple` models take a tensor sized after the image. */
  if (sc.resize == KESTREL_RESIZE_MULTIPLE) {
    gint tw, th;
    st = kestrel_preprocess_size (&sc, rect->width, rect->height, &tw, &th,
        &err);
    if (st != KESTREL_OK)
      goto engine_error;
    if ((tw != m->tensor_width || th != m->tensor_height)
        && !model_open (m, tw, th, error))
      return FALSE;
  }
  if (settings->threshold >= 0) {
    sc.ssd.min_score = (float) settings->threshold;
    sc.dbnet.box_threshold = (float) settings->threshold;
    sc.classify.min_score = (float) settings->threshold;
  }
  if (settings->nms_iou >= 0)
    sc.ssd.nms_iou = (float) settings->nms_iou;
  if (settings->max_detections >= 0) {
    sc.ssd.max_detections = settings->max_detections;
    sc.dbnet.max_candidates = MAX (settings->max_detections, 1);
  }

  st = kestrel_frame_preprocess (&sc, frame, rect,
      kestrel_session_input (m->session, 0), &tf, &err);
  if (st != KESTREL_OK)
    goto engine_error;
  st = kestrel_session_run (m->session, &err);
  if (st != KESTREL_OK)
    goto engine_error;
  nout = MIN (kestrel_model_num_outputs (m->model), MAX_OUTPUTS);
  for (size_t i = 0; i < nout; i++)
    outs[i] = kestrel_session_output (m->session, i);
  st = kestrel_decode (&sc, outs, nout, &tf, res, &err);
  if (st != KESTREL_OK)
    goto engine_error;

  if (settings->max_detections >= 0
      && res->num_objects > (size_t) settings->max_detections)
    res->num_objects = (size_t) settings->max_detections;
  /* Crop pixels -> frame pixels. */
  for (size_t i = 0; i < res->num_objects; i++) {
    kestrel_object *o = &res->objects[i];
    o->x += rect->x;
    o->y += rect->y;
    for (gint k = 0; k < o->num_keypoints; k++) {
      o->keypoints[k].x += rect->x;
      o->keypoints[k].y += rect->y;
    }
    if (o->has_quad)
      for (gint k = 0; k < 4; k++) {
        o->quad[k].x += rect->x;
        o->quad[k].y += rect->y;
      }
  }
  return TRUE;

engine_error:
  g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
      "inference with %s failed (%s): %s", m->path, kestrel_status_string (st),
      err.message);
  return FALSE;
}

static void
record_timing_locked (GstKestrelInferPrivate * priv, gdouble ms)
{
  priv->inferences++;
  priv->ms_sum += ms;
  priv->ms_ring[priv->ms_count % TIMING_RING] = ms;
  priv->ms_count++;
}

/* The DCT scale for the model: the smallest picture (1/8 .. 1/1) that still
 * has as many pixels across every region as the tensor gives it. */
static gint
jpeg_denom (const KestrelInferModel * m, const KestrelInferJob * job)
{
  gint denom = 8;

  for (guint i = 0; i < job->regions->len; i++) {
    const KestrelRect *r =
        &g_array_index (job->regions, KestrelRegion, i).rect;
    gdouble sx = (gdouble) m->tensor_width / MAX (r->width, 1);
    gdouble sy = (gdouble) m->tensor_height / MAX (r->height, 1);
    gint need_w, need_h;
    if (m->sidecar.resize == KESTREL_RESIZE_LETTERBOX)
      sx = sy = MIN (sx, sy);
    need_w = (gint) ceil (r->width * MIN (sx, 1.0));
    need_h = (gint) ceil (r->height * MIN (sy, 1.0));
    while (denom > 1 && (r->width / denom < need_w
            || r->height / denom < need_h))
      denom /= 2;
  }
  return denom;
}

/* Inference on a JPEG frame: one reduced decode, results in full-size
 * pixels. A damaged frame is counted and skipped (no inference), with a
 * warning at most every BAD_FRAME_WARNING_US. */
static gpointer
run_jpeg_job (GstKestrelInfer * self, KestrelInferJob * job,
    const KestrelDecodeSettings * settings, GError ** error)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GstKestrelInferClass *klass = GST_KESTREL_INFER_GET_CLASS (self);
  KestrelJpegStatus status = KESTREL_JPEG_FAILED;
  KestrelFrame frame;
  gpointer data = NULL;
  gchar why[256] = "";
  GstMapInfo map;

  if (!priv->jpeg_decoder)
    priv->jpeg_decoder = kestrel_jpeg_new ();
  if (!priv->jpeg_decoder || !gst_buffer_map (job->buffer, &map,
          GST_MAP_READ)) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
        "cannot set up JPEG decoding");
    return NULL;
  }
  status = kestrel_jpeg_decode_frame (priv->jpeg_decoder, map.data,
      map.size, jpeg_denom (priv->model, job), &frame, why, sizeof (why));
  if (status == KESTREL_JPEG_OK && !kestrel_jpeg_has_eoi (map.data, map.size)) {
    status = KESTREL_JPEG_DAMAGED;
    g_strlcpy (why, "no end-of-image marker", sizeof (why));
  }
  if (status == KESTREL_JPEG_OK && (frame.width != job->info.width
          || frame.height != job->info.height)) {
    status = KESTREL_JPEG_FAILED;
    g_snprintf (why, sizeof (why), "frame is %dx%d, caps say %dx%d",
        frame.width, frame.height, job->info.width, job->info.height);
  }
  if (status == KESTREL_JPEG_OK)
    data = klass->process (self, priv->model, &frame,
        (const KestrelRegion *) job->regions->data, job->regions->len,
        settings, error);
  gst_buffer_unmap (job->buffer, &map);

  if (status != KESTREL_JPEG_OK) {
    gint64 now = g_get_monotonic_time ();
    gboolean warn;
    guint64 count;
    g_mutex_lock (&priv->lock);
    count = ++priv->bad_frames;
    warn = priv->last_bad_warning == 0
        || now - priv->last_bad_warning >= BAD_FRAME_WARNING_US;
    if (warn)
      priv->last_bad_warning = now;
    g_mutex_unlock (&priv->lock);
    GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": bad JPEG (%s), "
        "no inference", job->frame_number, why);
    if (warn)
      GST_ELEMENT_WARNING (self, STREAM, DECODE,
          ("%" G_GUINT64_FORMAT " bad JPEG frame(s) so far: not inferred "
              "on (the frames pass on unchanged)", count),
          ("last: %s; see the stats property", why));
  }
  return data;
}

/* Runs one job on the calling thread (streaming or worker) and makes its
 * result the latest. */
static void
run_job (GstKestrelInfer * self, KestrelInferJob * job)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GstKestrelInferClass *klass = GST_KESTREL_INFER_GET_CLASS (self);
  KestrelDecodeSettings settings = {.threshold = -1,.nms_iou = -1,
    .max_detections = -1
  };
  KestrelInferResult *result;
  GstVideoFrame vframe;
  KestrelFrame frame;
  GError *error = NULL;
  gpointer data = NULL;
  guint delay;
  gint64 t0;

  swap_in_pending (self);
  g_mutex_lock (&priv->lock);
  settings.threshold = priv->threshold;
  delay = priv->inference_delay;
  g_mutex_unlock (&priv->lock);

  t0 = g_get_monotonic_time ();
  if (job->regions->len > 0) {
    if (!priv->model) {
      g_set_error (&error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
          "no model loaded");
    } else if (priv->jpeg) {
      data = run_jpeg_job (self, job, &settings, &error);
    } else if (!gst_video_frame_map (&vframe, &job->info, job->buffer,
            GST_MAP_READ)) {
      g_set_error (&error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
          "cannot map the frame for reading");
    } else {
      if (kestrel_frame_init_from_video_frame (&frame, &vframe))
        data = klass->process (self, priv->model, &frame,
            (const KestrelRegion *) job->regions->data, job->regions->len,
            &settings, &error);
      else
        g_set_error (&error, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT,
            "unsupported frame format");
      gst_video_frame_unmap (&vframe);
    }
    if (delay > 0)
      g_usleep ((gulong) delay * 1000);
  } else {
    /* Nothing to look at (e.g. no objects to classify): an empty, fresh
     * result without running the model. */
    data = klass->process (self, priv->model, NULL, NULL, 0, &settings,
        &error);
  }

  if (error) {
    /* A frame the model could not take should not end the stream: say so
     * once, then keep going with empty results. */
    if (!priv->warned_failure) {
      priv->warned_failure = TRUE;
      post_gerror (self, GST_MESSAGE_WARNING, error);
    }
    GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": %s",
        job->frame_number, error->message);
    g_clear_error (&error);
    if (data && klass->free_data)
      klass->free_data (data);
    data = NULL;
  }

  result = g_new0 (KestrelInferResult, 1);
  result->refcount = 1;
  result->frame_number = job->frame_number;
  result->inference_ms = (g_get_monotonic_time () - t0) / 1000.0;
  result->frame_width = GST_VIDEO_INFO_WIDTH (&job->info);
  result->frame_height = GST_VIDEO_INFO_HEIGHT (&job->info);
  result->data = data;
  result->free_data = klass->free_data;

  g_mutex_lock (&priv->lock);
  if (job->regions->len > 0)
    record_timing_locked (priv, result->inference_ms);
  result_unref (priv->latest);
  priv->latest = result;
  g_cond_broadcast (&priv->cond);
  g_mutex_unlock (&priv->lock);
}

static gpointer
worker_func (gpointer user_data)
{
  GstKestrelInfer *self = user_data;
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_mutex_lock (&priv->lock);
  while (TRUE) {
    KestrelInferJob *job;
    while (!priv->worker_stop && !priv->mailbox)
      g_cond_wait (&priv->cond, &priv->lock);
    if (priv->worker_stop)
      break;
    job = priv->mailbox;
    priv->mailbox = NULL;
    priv->worker_busy = TRUE;
    g_mutex_unlock (&priv->lock);

    run_job (self, job);
    job_free (job);

    g_mutex_lock (&priv->lock);
    priv->worker_busy = FALSE;
    g_cond_broadcast (&priv->cond);
  }
  g_mutex_unlock (&priv->lock);
  return NULL;
}

static void
stop_worker (GstKestrelInfer * self)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GThread *worker;

  g_mutex_lock (&priv->lock);
  worker = priv->worker;
  priv->worker = NULL;
  priv->worker_stop = TRUE;
  g_cond_broadcast (&priv->cond);
  g_mutex_unlock (&priv->lock);
  if (worker)
    g_thread_join (worker);
  g_mutex_lock (&priv->lock);
  job_free (priv->mailbox);
  priv->mailbox = NULL;
  priv->worker_busy = FALSE;
  priv->worker_stop = FALSE;
  g_mutex_unlock (&priv->lock);
}

/* --- GstBaseTransform ---------------------------------------------------- */

static gboolean
gst_kestrel_infer_start (GstBaseTransform * trans)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (trans);
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GError *error = NULL;
  KestrelInferModel *m;
  gchar *path, *config;
  gint threads;

  g_mutex_lock (&priv->lock);
  path = g_strdup (priv->model_path);
  config = g_strdup (priv->config_path);
  threads = priv->threads;
  g_mutex_unlock (&priv->lock);

  m = kestrel_infer_model_load (path, config, threads, 0, 0, &error);
  g_free (path);
  g_free (config);
  if (m && !check_model (self, m, &error)) {
    kestrel_infer_model_free (m);
    m = NULL;
  }
  if (!m)
    goto load_failed;

  g_mutex_lock (&priv->lock);
  priv->model = m;
  priv->latency_ms = m->warmup_ms;
  priv->started = TRUE;
  priv->frame_number = 0;
  priv->frames = priv->inferences = priv->dropped = priv->bad_frames = 0;
  priv->last_bad_warning = 0;
  priv->ms_sum = 0;
  priv->ms_count = 0;
  priv->mode_decided = FALSE;
  priv->async = FALSE;
  priv->warned_failure = FALSE;
  priv->loader = g_thread_pool_new (loader_func, self, 1, FALSE, NULL);
  g_mutex_unlock (&priv->lock);
  return TRUE;

load_failed:
  post_gerror (self, GST_MESSAGE_ERROR, error);
  g_error_free (error);
  return FALSE;
}

static gboolean
gst_kestrel_infer_stop (GstBaseTransform * trans)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (trans);
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GThreadPool *loader;

  stop_worker (self);
  g_mutex_lock (&priv->lock);
  priv->started = FALSE;
  loader = priv->loader;
  priv->loader = NULL;
  g_mutex_unlock (&priv->lock);
  /* Waits for a load in progress; queued ones see started == FALSE. */
  if (loader)
    g_thread_pool_free (loader, FALSE, TRUE);

  g_mutex_lock (&priv->lock);
  kestrel_infer_model_free (priv->model);
  kestrel_infer_model_free (priv->pending);
  priv->model = priv->pending = NULL;
  result_unref (priv->latest);
  priv->latest = NULL;
  priv->have_info = FALSE;
  kestrel_jpeg_free (priv->jpeg_decoder);
  priv->jpeg_decoder = NULL;
  g_mutex_unlock (&priv->lock);
  return TRUE;
}

static gboolean
gst_kestrel_infer_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (trans);
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GstVideoInfo info;
  GstClockTime wait;
  gboolean jpeg;

  if (!gst_video_info_from_caps (&info, incaps))
    goto not_negotiated;
  jpeg = gst_structure_has_name (gst_caps_get_structure (incaps, 0),
      "image/jpeg");
  if (!jpeg && !kestrel_frame_format_supported (GST_VIDEO_INFO_FORMAT (&info)))
    goto not_negotiated;

  if (GST_VIDEO_INFO_FPS_N (&info) > 0 && GST_VIDEO_INFO_FPS_D (&info) > 0)
    wait = gst_util_uint64_scale (GST_SECOND, GST_VIDEO_INFO_FPS_D (&info),
        2 * (guint64) GST_VIDEO_INFO_FPS_N (&info));
  else
    wait = DEFAULT_ASYNC_WAIT;

  g_mutex_lock (&priv->lock);
  priv->info = info;
  priv->have_info = TRUE;
  priv->jpeg = jpeg;
  priv->frame_width = GST_VIDEO_INFO_WIDTH (&info);
  priv->frame_height = GST_VIDEO_INFO_HEIGHT (&info);
  priv->async_wait = wait;
  g_mutex_unlock (&priv->lock);
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, incaps);
  return TRUE;

not_negotiated:
  GST_WARNING_OBJECT (self, "cannot handle caps %" GST_PTR_FORMAT, incaps);
  return FALSE;
}

static gboolean
upstream_is_live (GstKestrelInfer * self)
{
  GstQuery *q = gst_query_new_latency ();
  gboolean live = FALSE;

  if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (self), q))
    gst_query_parse_latency (q, &live, NULL, NULL);
  gst_query_unref (q);
  return live;
}

/* Decides sync or async on the first frame and starts the worker. */
static void
decide_mode (GstKestrelInfer * self)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GstKestrelInferMode mode;
  gboolean async;

  g_mutex_lock (&priv->lock);
  mode = priv->mode;
  g_mutex_unlock (&priv->lock);
  if (mode == GST_KESTREL_INFER_MODE_AUTO)
    async = upstream_is_live (self);
  else
    async = mode == GST_KESTREL_INFER_MODE_ASYNC;

  g_mutex_lock (&priv->lock);
  priv->mode_decided = TRUE;
  priv->async = async;
  priv->worker_stop = FALSE;
  g_mutex_unlock (&priv->lock);
  if (async) {
    GError *error = NULL;
    GThread *t = g_thread_try_new ("kestrel-infer", worker_func, self, &error);
    g_mutex_lock (&priv->lock);
    if (t) {
      priv->worker = t;
    } else {
      GST_WARNING_OBJECT (self, "no worker thread (%s): running inline",
          error->message);
      g_clear_error (&error);
      priv->async = FALSE;
    }
    g_mutex_unlock (&priv->lock);
  }
  GST_INFO_OBJECT (self, "inference runs %s", priv->async ?
      "on a worker thread (async)" : "inline (sync)");
}

static GstFlowReturn
gst_kestrel_infer_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (trans);
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  GstKestrelInferClass *klass = GST_KESTREL_INFER_GET_CLASS (self);
  KestrelInferResult *result;
  KestrelInferJob *job = NULL;
  GstVideoInfo info;
  guint64 frame_number;
  gboolean due, stale, message;
  KestrelRect roi;

  if (!priv->mode_decided)
    decide_mode (self);

  g_mutex_lock (&priv->lock);
  if (!priv->have_info)
    goto not_negotiated_locked;
  info = priv->info;
  frame_number = priv->frame_number++;
  priv->frames++;
  due = frame_number % MAX (priv->interval, 1) == 0;
  roi = priv->roi;
  message = priv->message;
  g_mutex_unlock (&priv->lock);

  if (due) {
    if (roi.width <= 0 || roi.height <= 0) {
      roi.x = roi.y = 0;
      roi.width = GST_VIDEO_INFO_WIDTH (&info);
      roi.height = GST_VIDEO_INFO_HEIGHT (&info);
    }
    job = g_new0 (KestrelInferJob, 1);
    job->info = info;
    job->frame_number = frame_number;
    job->regions = g_array_new (FALSE, FALSE, sizeof (KestrelRegion));
    if (kestrel_rect_clip (&roi, GST_VIDEO_INFO_WIDTH (&info),
            GST_VIDEO_INFO_HEIGHT (&info)))
      klass->plan (self, buf, &info, frame_number, &roi, job->regions);
  }

  if (job && !priv->async) {
    job->buffer = gst_buffer_ref (buf);
    run_job (self, job);
    /* Drop our ref before attaching metas: the buffer must stay writable. */
    job_free (job);
  } else if (job) {
    gboolean idle;
    /* Shares the memory, not the GstBuffer: buf stays writable. */
    job->buffer = gst_buffer_copy (buf);
    g_mutex_lock (&priv->lock);
    if (priv->mailbox) {
      job_free (priv->mailbox);
      priv->dropped++;
    }
    idle = !priv->worker_busy;
    priv->mailbox = job;
    g_cond_broadcast (&priv->cond);
    if (idle) {
      gint64 deadline = g_get_monotonic_time () + priv->async_wait / 1000;
      while (!(priv->latest && priv->latest->frame_number == frame_number)
          && !priv->worker_stop)
        if (!g_cond_wait_until (&priv->cond, &priv->lock, deadline))
          break;
    }
    g_mutex_unlock (&priv->lock);
  }

  g_mutex_lock (&priv->lock);
  result = result_ref (priv->latest);
  g_mutex_unlock (&priv->lock);
  /* Results of other frame sizes (before a caps change) do not apply. */
  if (result && (result->frame_width != GST_VIDEO_INFO_WIDTH (&info)
          || result->frame_height != GST_VIDEO_INFO_HEIGHT (&info))) {
    result_unref (result);
    result = NULL;
  }
  stale = !result || result->frame_number != frame_number;

  {
    GValue objects = G_VALUE_INIT;
    if (message)
      g_value_init (&objects, GST_TYPE_ARRAY);
    klass->attach (self, buf, &info, frame_number, result, stale,
        message ? &objects : NULL);
    if (message) {
      GstStructure *s = gst_structure_new ("kestrel-inference",
          "frame-number", G_TYPE_UINT64, frame_number,
          "timestamp", G_TYPE_UINT64, GST_BUFFER_PTS (buf),
          "inference-ms", G_TYPE_DOUBLE, result ? result->inference_ms : 0.0,
          "stale", G_TYPE_BOOLEAN, stale, NULL);
      gst_structure_take_value (s, "objects", &objects);
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self), s));
    }
  }
  result_unref (result);
  return GST_FLOW_OK;

not_negotiated_locked:
  g_mutex_unlock (&priv->lock);
  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
      ("buffer arrived before caps"));
  return GST_FLOW_NOT_NEGOTIATED;
}

static gboolean
gst_kestrel_infer_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (trans);
  GstKestrelInferPrivate *priv = GET_PRIV (self);
  gboolean ret;

  ret = GST_BASE_TRANSFORM_CLASS (gst_kestrel_infer_parent_class)->query
      (trans, direction, query);
  if (ret && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY
      && direction == GST_PAD_SRC) {
    gboolean live;
    GstClockTime min, max, ours;
    gboolean async;

    gst_query_parse_latency (query, &live, &min, &max);
    g_mutex_lock (&priv->lock);
    if (priv->mode_decided)
      async = priv->async;
    else
      async = priv->mode == GST_KESTREL_INFER_MODE_ASYNC
          || (priv->mode == GST_KESTREL_INFER_MODE_AUTO && live);
    /* Async holds a frame at most the wait; sync holds it for one
     * inference (the worst seen recently, or the warm-up run). */
    if (async) {
      ours = priv->async_wait ? priv->async_wait : DEFAULT_ASYNC_WAIT;
    } else {
      gdouble ms = priv->latency_ms;
      guint n = MIN (priv->ms_count, TIMING_RING);
      for (guint i = 0; i < n; i++)
        ms = MAX (ms, priv->ms_ring[i]);
      ours = (GstClockTime) (ms * GST_MSECOND);
    }
    g_mutex_unlock (&priv->lock);
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours;
    GST_DEBUG_OBJECT (self, "latency: ours %" GST_TIME_FORMAT ", total min %"
        GST_TIME_FORMAT, GST_TIME_ARGS (ours), GST_TIME_ARGS (min));
    gst_query_set_latency (query, live, min, max);
  }
  return ret;
}

/* --- statistics ---------------------------------------------------------- */

static gint
compare_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return x < y ? -1 : x > y;
}

static GstStructure *
make_stats_locked (GstKestrelInferPrivate * priv)
{
  guint n = MIN (priv->ms_count, TIMING_RING);
  gdouble sorted[TIMING_RING], p95 = 0;

  if (n > 0) {
    memcpy (sorted, priv->ms_ring, n * sizeof (gdouble));
    qsort (sorted, n, sizeof (gdouble), compare_double);
    p95 = sorted[MIN (n - 1, (guint) ceil (0.95 * n) - 1)];
  }
  return gst_structure_new ("kestrel-stats",
      "frames", G_TYPE_UINT64, priv->frames,
      "inferences", G_TYPE_UINT64, priv->inferences,
      "dropped", G_TYPE_UINT64, priv->dropped,
      "bad-frames", G_TYPE_UINT64, priv->bad_frames,
      "mean-inference-ms", G_TYPE_DOUBLE,
      priv->inferences ? priv->ms_sum / priv->inferences : 0.0,
      "p95-inference-ms", G_TYPE_DOUBLE, p95,
      "model", G_TYPE_STRING, priv->model ? priv->model->path : NULL, NULL);
}

/* --- properties ---------------------------------------------------------- */

static gboolean
parse_roi (const gchar * text, KestrelRect * roi)
{
  gint x, y, w, h, end = 0;

  if (!text || !*text) {
    memset (roi, 0, sizeof (*roi));
    return TRUE;
  }
  if (sscanf (text, " %d , %d , %d , %d %n", &x, &y, &w, &h, &end) != 4
      || text[end] != '\0' || x < 0 || y < 0 || w < 1 || h < 1)
    return FALSE;
  roi->x = x;
  roi->y = y;
  roi->width = w;
  roi->height = h;
  return TRUE;
}

static gchar **
parse_labels (const gchar * text)
{
  gchar *contents = NULL;
  gchar **labels;

  if (!text || !*text)
    return NULL;
  /* A file (one label per line) or an inline comma-separated list. */
  if (g_file_test (text, G_FILE_TEST_IS_REGULAR)
      && g_file_get_contents (text, &contents, NULL, NULL)) {
    g_strchomp (contents);
    labels = g_strsplit (contents, "\n", -1);
    g_free (contents);
  } else {
    labels = g_strsplit (text, ",", -1);
  }
  for (gchar ** p = labels; *p; p++)
    g_strstrip (*p);
  return labels;
}

static void
gst_kestrel_infer_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (object);
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_mutex_lock (&priv->lock);
  switch (prop_id) {
    case PROP_MODEL:
      if (priv->started && !g_value_get_string (value)) {
        GST_WARNING_OBJECT (self, "ignoring an empty model while running");
        break;
      }
      g_free (priv->model_path);
      priv->model_path = g_value_dup_string (value);
      schedule_reload_locked (self);
      break;
    case PROP_CONFIG:
      g_free (priv->config_path);
      priv->config_path = g_value_dup_string (value);
      schedule_reload_locked (self);
      break;
    case PROP_THREADS:
      priv->threads = g_value_get_int (value);
      schedule_reload_locked (self);
      break;
    case PROP_LABELS:
      g_strfreev (priv->labels);
      priv->labels = parse_labels (g_value_get_string (value));
      break;
    case PROP_THRESHOLD:
      priv->threshold = g_value_get_double (value);
      break;
    case PROP_INTERVAL:
      priv->interval = g_value_get_uint (value);
      break;
    case PROP_ROI:{
      KestrelRect roi;
      const gchar *text = g_value_get_string (value);
      if (parse_roi (text, &roi)) {
        priv->roi = roi;
        g_free (priv->roi_text);
        priv->roi_text = g_strdup (text);
      } else {
        g_mutex_unlock (&priv->lock);
        GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
            ("Invalid roi '%s': want \"x,y,width,height\" in pixels, "
                "x,y >= 0 and width,height >= 1; keeping the previous one",
                text), (NULL));
        return;
      }
      break;
    }
    case PROP_MESSAGE:
      priv->message = g_value_get_boolean (value);
      break;
    case PROP_MODE:
      priv->mode = g_value_get_enum (value);
      break;
    case PROP_INFERENCE_DELAY:
      priv->inference_delay = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  g_mutex_unlock (&priv->lock);
}

static void
gst_kestrel_infer_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (object);
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_mutex_lock (&priv->lock);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, priv->model_path);
      break;
    case PROP_CONFIG:
      g_value_set_string (value, priv->config_path);
      break;
    case PROP_THREADS:
      g_value_set_int (value, priv->threads);
      break;
    case PROP_LABELS:
      g_value_take_string (value, priv->labels ?
          g_strjoinv (",", priv->labels) : NULL);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, priv->threshold);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, priv->interval);
      break;
    case PROP_ROI:
      g_value_set_string (value, priv->roi_text);
      break;
    case PROP_MESSAGE:
      g_value_set_boolean (value, priv->message);
      break;
    case PROP_MODE:
      g_value_set_enum (value, priv->mode);
      break;
    case PROP_INFERENCE_DELAY:
      g_value_set_uint (value, priv->inference_delay);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, make_stats_locked (priv));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  g_mutex_unlock (&priv->lock);
}

static void
gst_kestrel_infer_finalize (GObject * object)
{
  GstKestrelInfer *self = GST_KESTREL_INFER (object);
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_free (priv->model_path);
  g_free (priv->config_path);
  g_free (priv->roi_text);
  g_strfreev (priv->labels);
  kestrel_infer_model_free (priv->model);
  kestrel_infer_model_free (priv->pending);
  result_unref (priv->latest);
  g_mutex_clear (&priv->lock);
  g_cond_clear (&priv->cond);
  G_OBJECT_CLASS (gst_kestrel_infer_parent_class)->finalize (object);
}

static void
gst_kestrel_infer_class_init (GstKestrelInferClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstCaps *caps;

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_infer_debug, "kestrelinfer", 0,
      "Kestrel inference base");

  gobject_class->set_property = gst_kestrel_infer_set_property;
  gobject_class->get_property = gst_kestrel_infer_get_property;
  gobject_class->finalize = gst_kestrel_infer_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Model file: a compiled .kestrel, ONNX or TFLite model. Its sidecar "
          "(input size, normalization, decoder) is the config property, else "
          "MODEL.sidecar or BASENAME.sidecar next to it, else the one in "
          "$KESTREL_ASSETS or the installed models folder whose sha256 "
          "matches. Changing it while playing loads the new model on a "
          "separate thread and swaps it in between frames; if the new model "
          "fails to load, the old one keeps running and a warning is posted",
          DEFAULT_MODEL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_CONFIG,
      g_param_spec_string ("config", "Config",
          "Sidecar file describing the model's input and decoder; overrides "
          "the one found for the model (NULL: find it). Changing it while "
          "playing reloads the model as a model change does",
          DEFAULT_CONFIG, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_LABELS,
      g_param_spec_string ("labels", "Labels",
          "Label names overriding the sidecar's, by label id: a file with "
          "one label per line, or a comma-separated list (NULL: the "
          "sidecar's)", DEFAULT_LABELS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Minimum confidence of a result, 0..1 (-1: the sidecar's)",
          -1.0, 1.0, DEFAULT_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Run the model on every Nth frame; the frames in between carry the "
          "latest results, marked stale", 1, G_MAXINT, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_ROI,
      g_param_spec_string ("roi", "Region of interest",
          "Part of the frame to analyse, \"x,y,width,height\" in pixels, "
          "clipped to the frame (NULL or \"\": the whole frame)",
          DEFAULT_ROI, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "Threads the engine uses for one inference (1: the inference "
          "thread alone). Changing it while playing reloads the model",
          1, 64, DEFAULT_THREADS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MESSAGE,
      g_param_spec_boolean ("message", "Message",
          "Post an element message \"kestrel-inference\" for every frame: "
          "frame-number (guint64), timestamp (GstClockTime), inference-ms "
          "(gdouble), stale (gboolean) and objects (array of structures with "
          "label, confidence, x, y, width, height, track-id)",
          DEFAULT_MESSAGE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "Where inference runs: inline on the streaming thread (sync: every "
          "due frame waits for its results), or on a worker thread (async: "
          "frames never wait longer than half a frame duration and carry the "
          "latest results; frames that find the worker busy replace the one "
          "waiting, counted as dropped). auto picks async for live sources",
          GST_TYPE_KESTREL_INFER_MODE, DEFAULT_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_INFERENCE_DELAY,
      g_param_spec_uint ("inference-delay", "Inference delay",
          "Milliseconds added to every inference, to try a pipeline as if "
          "the model ran on slower hardware (testing)", 0, 60000,
          DEFAULT_INFERENCE_DELAY, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Read-only \"kestrel-stats\" structure: frames, inferences, "
          "dropped (guint64: frames seen, inferences run, inferences skipped "
          "because the worker was busy), bad-frames (guint64: JPEG input "
          "frames too damaged to infer on), mean-inference-ms and "
          "p95-inference-ms (gdouble, over the last 512 inferences for p95), "
          "model (string: the model running now, which lags the model "
          "property while a new one loads)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  caps = gst_caps_from_string (KESTREL_CAPS);
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_infer_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_infer_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_kestrel_infer_set_caps);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_kestrel_infer_transform_ip);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_kestrel_infer_query);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_KESTREL_INFER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_KESTREL_INFER_MODE, 0);
}

static void
gst_kestrel_infer_init (GstKestrelInfer * self)
{
  GstKestrelInferPrivate *priv = GET_PRIV (self);

  g_mutex_init (&priv->lock);
  g_cond_init (&priv->cond);
  priv->threshold = DEFAULT_THRESHOLD;
  priv->interval = DEFAULT_INTERVAL;
  priv->threads = DEFAULT_THREADS;
  priv->message = DEFAULT_MESSAGE;
  priv->mode = DEFAULT_MODE;
  priv->inference_delay = DEFAULT_INFERENCE_DELAY;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

/* --- helpers for subclasses ---------------------------------------------- */

gchar **
gst_kestrel_infer_parse_classes (const gchar * text)
{
  gchar **classes;

  if (!text || !*text)
    return NULL;
  classes = g_strsplit (text, ",", -1);
  for (gchar ** c = classes; *c; c++)
    g_strstrip (*c);
  return classes;
}

gboolean
gst_kestrel_infer_class_wanted (gchar ** classes, const gchar * label)
{
  if (!classes)
    return TRUE;
  for (gchar ** c = classes; *c; c++)
    if (!g_strcmp0 (*c, label))
      return TRUE;
  return FALSE;
}

gint
gst_kestrel_infer_roi_object_id (GstVideoRegionOfInterestMeta * roi)
{
  GstStructure *s =
      gst_video_region_of_interest_meta_get_param (roi, "object_id");
  gint id;

  if (s && gst_structure_get_int (s, "id", &id))
    return id;
  return -1;
}

void
gst_kestrel_infer_append_object (GValue * objects, const gchar * label,
    gdouble confidence, gint x, gint y, gint width, gint height,
    gint track_id)
{
  GValue v = G_VALUE_INIT;
  GstStructure *s = gst_structure_new ("object",
      "label", G_TYPE_STRING, label,
      "confidence", G_TYPE_DOUBLE, confidence,
      "x", G_TYPE_INT, x, "y", G_TYPE_INT, y,
      "width", G_TYPE_INT, width, "height", G_TYPE_INT, height,
      "track-id", G_TYPE_INT, track_id, NULL);

  g_value_init (&v, GST_TYPE_STRUCTURE);
  g_value_take_boxed (&v, s);
  gst_value_array_append_and_take_value (objects, &v);
}
