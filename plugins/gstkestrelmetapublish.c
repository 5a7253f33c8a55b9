/* kestrelmetapublish: one JSON line per frame with the objects and classes
 * that the Kestrel elements attached (schema: docs/metadata-schema.md),
 * written to a file or stdout, or sent over the network (UDP datagrams or
 * batched HTTP POSTs) without ever making the pipeline wait. */

/**
 * SECTION:element-kestrelmetapublish
 * @title: kestrelmetapublish
 *
 * Writes each frame's #GstVideoRegionOfInterestMeta results as one line of
 * JSON (schema version 1, documented in docs/metadata-schema.md). Buffers
 * pass through unchanged (the element is a passthrough transform that only
 * reads metadata).
 *
 * Where the lines go is set by `location`:
 *
 * - unset, "" or "-": standard output;
 * - a path or a file:// URI: that file, truncated at start;
 * - "none": nowhere (with `emit-signals`, for applications);
 * - udp://HOST:PORT: one datagram per frame. Sends never block; a datagram
 *   the socket cannot take at once, or one larger than 65000 bytes, is
 *   dropped and counted;
 * - http://HOST:PORT/PATH or https://...: batches of up to `batch-size`
 *   lines (at least every `batch-interval` ms) POSTed as
 *   application/x-ndjson from a thread of the element's own. A failed POST
 *   is retried with exponential backoff up to `retry-max` ms; meanwhile
 *   lines wait in a queue of at most `max-queue` lines, oldest dropped
 *   first, so a dead collector costs a bounded amount of memory and never
 *   slows the pipeline. At EOS and stop the queue is sent if the collector
 *   answers (waiting at most 2 s).
 *
 * The counts of lines sent and dropped are in the read-only `stats`
 * property. With `emit-signals`, the "published" signal hands every line
 * (without its newline) and the buffer to the application, on the
 * streaming thread.
 *
 * A line looks like (wrapped here):
 * |[
 * {"version":1,"frame":12,"timestamp":800000000,"width":1280,"height":720,
 *  "objects":[{"label":"face","label_id":0,"confidence":0.9731,
 *   "box":{"x":412,"y":118,"width":161,"height":161},
 *   "box_normalized":{"x_min":0.3219,"y_min":0.1639,
 *     "x_max":0.4477,"y_max":0.3875},
 *   "track_id":3,"stale":false,"keypoints":[[0.3711,0.2344],...],
 *   "classifications":[]}],
 *  "classifications":[]}
 * ]|
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreltrack ! kestrelmetapublish location=out.jsonl ! fakesink
 * gst-launch-1.0 v4l2src ! decodebin ! videoconvert ! kestreldetect model=face.kestrel ! kestrelmetapublish location=http://collector.local:8080/ingest batch-size=30 ! fakesink
 * gst-launch-1.0 v4l2src ! decodebin ! videoconvert ! kestreldetect model=face.kestrel ! kestrelmetapublish location=udp://127.0.0.1:5005 ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gst/video/video.h>
#include <libsoup/soup.h>

#include "gstkestrelmetapublish.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_meta_publish_debug);
#define GST_CAT_DEFAULT gst_kestrel_meta_publish_debug

#define SCHEMA_VERSION 1
#define DEFAULT_LOCATION NULL
#define DEFAULT_FLUSH TRUE
#define DEFAULT_EMIT_SIGNALS FALSE
#define DEFAULT_BATCH_SIZE 50
#define DEFAULT_BATCH_INTERVAL 1000
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_TIMEOUT 5
#define DEFAULT_RETRY_MAX 30000

/* IPv4's limit is 65507; stay clear of it and of IPv6 jumbogram rules. */
#define UDP_MAX_DATAGRAM 65000
/* The first retry comes after this, then twice as long each time. */
#define RETRY_FIRST_MS 250
#define SENDER_TICK_MS 50
#define DRAIN_WAIT_US (2 * G_USEC_PER_SEC)

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_FLUSH,
  PROP_EMIT_SIGNALS,
  PROP_BATCH_SIZE,
  PROP_BATCH_INTERVAL,
  PROP_MAX_QUEUE,
  PROP_TIMEOUT,
  PROP_RETRY_MAX,
  PROP_STATS,
};

enum
{
  SIGNAL_PUBLISHED,
  LAST_SIGNAL
};

static guint signals[LAST_SIGNAL];

typedef enum
{
  TARGET_NONE,
  TARGET_STDOUT,
  TARGET_FILE,
  TARGET_UDP,
  TARGET_HTTP,
} PublishTarget;

/* The HTTP POST sender: a thread with its own main context, fed through a
 * bounded queue. Everything under `lock` is shared with the streaming
 * thread; the rest belongs to the sender's thread. */
typedef struct
{
  GstKestrelMetaPublish *element;       /* not a reference: outlived */
  gchar *url;
  guint batch_size, interval_ms, max_queue, timeout_s, retry_max_ms;

  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  SoupSession *session;
  GCancellable *cancellable;
  GPtrArray *batch;             /* the lines of the POST in flight */
  gint64 last_send_us, next_try_us;

  GMutex lock;
  guint failures;               /* in a row; written by the sender only */
  GCond idle;                   /* signalled after each POST completes */
  GQueue queue;                 /* gchar *, each ending in '\n' */
  gboolean in_flight, flush_now;
  guint64 sent, dropped, failed_requests;
} HttpSender;

struct _GstKestrelMetaPublish
{
  GstBaseTransform parent;

  /* under the object lock */
  gchar *location;
  gboolean flush;
  gboolean emit_signals;
  guint batch_size, batch_interval, max_queue, timeout, retry_max;
  guint64 lines, dropped;       /* lines made; lines lost (UDP, queue) */

  /* streaming thread only (and start/stop) */
  PublishTarget target;
  FILE *file;
  GSocket *socket;
  GSocketAddress *udp_address;
  gboolean udp_warned;
  HttpSender *sender;
  guint64 frame_number;
  gint width, height;
  GString *line;
};

G_DEFINE_TYPE (GstKestrelMetaPublish, gst_kestrel_meta_publish,
    GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (kestrelmetapublish, "kestrelmetapublish",
    GST_RANK_NONE, GST_TYPE_KESTREL_META_PUBLISH);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

/* --- JSON writing -------------------------------------------------------- */

static void
json_string (GString * out, const gchar * s)
{
  g_string_append_c (out, '"');
  for (const guchar * p = (const guchar *)(s ? s : ""); *p; p++) {
    switch (*p) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (*p < 0x20 || *p == 0x7f)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (gchar) * p);
    }
  }
  g_string_append_c (out, '"');
}

/* Fixed four decimals, C locale; JSON has no NaN or infinity: null. */
static void
json_number (GString * out, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v)) {
    g_string_append (out, "null");
    return;
  }
  g_ascii_formatd (buf, sizeof (buf), "%.4f", v);
  /* "-0.0000" and "0.0000" should read the same. */
  if (strcmp (buf, "-0.0000") == 0)
    g_string_append (out, "0.0000");
  else
    g_string_append (out, buf);
}

static void
json_double_field (GString * out, const gchar * name, gdouble v)
{
  g_string_append_printf (out, "\"%s\":", name);
  json_number (out, v);
}

/* The classification structures of a ROI: every params structure except
 * "detection" and "object_id" that carries a label. */
static void
json_classifications (GString * out, GstVideoRegionOfInterestMeta * roi)
{
  gboolean first = TRUE;

  g_string_append (out, "\"classifications\":[");
  for (GList * l = roi->params; l; l = l->next) {
    GstStructure *s = l->data;
    const gchar *label = gst_structure_get_string (s, "label");
    gdouble confidence = 0;
    gint label_id = -1;
    gboolean stale = FALSE;

    if (gst_structure_has_name (s, "detection")
        || gst_structure_has_name (s, "object_id") || !label)
      continue;
    gst_structure_get_double (s, "confidence", &confidence);
    gst_structure_get_int (s, "label_id", &label_id);
    gst_structure_get_boolean (s, "stale", &stale);
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    g_string_append (out, "{\"name\":");
    json_string (out, gst_structure_get_name (s));
    g_string_append (out, ",\"label\":");
    json_string (out, label);
    g_string_append_printf (out, ",\"label_id\":%d,", label_id);
    json_double_field (out, "confidence", confidence);
    g_string_append_printf (out, ",\"stale\":%s}", stale ? "true" : "false");
  }
  g_string_append_c (out, ']');
}

static void
json_object (GString * out, GstVideoRegionOfInterestMeta * roi,
    GstStructure * det, gint width, gint height)
{
  GstStructure *oid =
      gst_video_region_of_interest_meta_get_param (roi, "object_id");
  const gchar *label = gst_structure_get_string (det, "label");
  const GValue *kp = gst_structure_get_value (det, "keypoints");
  gdouble confidence = 0, x_min, y_min, x_max, y_max;
  gint label_id = -1, track_id = 0;
  gboolean stale = FALSE;

  gst_structure_get_double (det, "confidence", &confidence);
  gst_structure_get_int (det, "label_id", &label_id);
  gst_structure_get_boolean (det, "stale", &stale);
  /* The normalized box as the detector wrote it, else from the pixels. */
  if (!gst_structure_get_double (det, "x_min", &x_min))
    x_min = width ? (gdouble) roi->x / width : 0;
  if (!gst_structure_get_double (det, "y_min", &y_min))
    y_min = height ? (gdouble) roi->y / height : 0;
  if (!gst_structure_get_double (det, "x_max", &x_max))
    x_max = width ? (gdouble) (roi->x + roi->w) / width : 0;
  if (!gst_structure_get_double (det, "y_max", &y_max))
    y_max = height ? (gdouble) (roi->y + roi->h) / height : 0;

  g_string_append (out, "{\"label\":");
  json_string (out, label ? label : g_quark_to_string (roi->roi_type));
  g_string_append_printf (out, ",\"label_id\":%d,", label_id);
  json_double_field (out, "confidence", confidence);
  g_string_append_printf (out,
      ",\"box\":{\"x\":%u,\"y\":%u,\"width\":%u,\"height\":%u}",
      roi->x, roi->y, roi->w, roi->h);
  g_string_append (out, ",\"box_normalized\":{");
  json_double_field (out, "x_min", x_min);
  g_string_append_c (out, ',');
  json_double_field (out, "y_min", y_min);
  g_string_append_c (out, ',');
  json_double_field (out, "x_max", x_max);
  g_string_append_c (out, ',');
  json_double_field (out, "y_max", y_max);
  g_string_append_c (out, '}');
  if (oid && gst_structure_get_int (oid, "id", &track_id))
    g_string_append_printf (out, ",\"track_id\":%d", track_id);
  else
    g_string_append (out, ",\"track_id\":null");
  g_string_append_printf (out, ",\"stale\":%s", stale ? "true" : "false");
  g_string_append (out, ",\"keypoints\":[");
  if (kp && GST_VALUE_HOLDS_ARRAY (kp)) {
    guint n = gst_value_array_get_size (kp);
    for (guint k = 0; k + 1 < n; k += 2) {
      const GValue *vx = gst_value_array_get_value (kp, k);
      const GValue *vy = gst_value_array_get_value (kp, k + 1);
      if (!G_VALUE_HOLDS_DOUBLE (vx) || !G_VALUE_HOLDS_DOUBLE (vy))
        continue;
      g_string_append (out, k ? ",[" : "[");
      json_number (out, g_value_get_double (vx));
      g_string_append_c (out, ',');
      json_number (out, g_value_get_double (vy));
      g_string_append_c (out, ']');
    }
  }
  g_string_append (out, "],");
  json_classifications (out, roi);
  g_string_append_c (out, '}');
}

static void
build_line (GstKestrelMetaPublish * self, GstBuffer * buf, GString * out)
{
  gpointer state = NULL;
  GstMeta *meta;
  gboolean first = TRUE;

  g_string_printf (out, "{\"version\":%d,\"frame\":%" G_GUINT64_FORMAT
      ",\"timestamp\":", SCHEMA_VERSION, self->frame_number);
  if (GST_BUFFER_PTS_IS_VALID (buf))
    g_string_append_printf (out, "%" G_GUINT64_FORMAT, GST_BUFFER_PTS (buf));
  else
    g_string_append (out, "null");
  g_string_append_printf (out, ",\"width\":%d,\"height\":%d,\"objects\":[",
      self->width, self->height);

  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *det =
        gst_video_region_of_interest_meta_get_param (roi, "detection");
    if (!det)
      continue;
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    json_object (out, roi, det, self->width, self->height);
  }

  /* Classes of the whole frame: ROIs without a "detection". */
  g_string_append (out, "],\"classifications\":[");
  first = TRUE;
  state = NULL;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GString *classes;
    if (gst_video_region_of_interest_meta_get_param (roi, "detection"))
      continue;
    classes = g_string_new (NULL);
    json_classifications (classes, roi);
    /* Strip `"classifications":[` and `]` to splice the items in. */
    {
      const gchar *items = classes->str + strlen ("\"classifications\":[");
      gsize len = strlen (items) - 1;
      if (len > 0) {
        if (!first)
          g_string_append_c (out, ',');
        first = FALSE;
        g_string_append_len (out, items, len);
      }
    }
    g_string_free (classes, TRUE);
  }
  g_string_append (out, "]}\n");
}

/* --- HTTP POST sender ---------------------------------------------------- */

static void http_sender_try (HttpSender * s);

/* Drops the oldest lines beyond max-queue. Called with the lock held. */
static void
http_sender_trim_locked (HttpSender * s)
{
  while (s->queue.length > s->max_queue) {
    g_free (g_queue_pop_head (&s->queue));
    s->dropped++;
  }
}

static void
http_sender_done (GObject * source, GAsyncResult * result, gpointer user_data)
{
  HttpSender *s = user_data;
  SoupMessage *msg = soup_session_get_async_result_message (s->session,
      result);
  GError *error = NULL;
  GBytes *reply = soup_session_send_and_read_finish (s->session, result,
      &error);
  guint status = msg ? soup_message_get_status (msg) : 0;
  gboolean ok = reply && SOUP_STATUS_IS_SUCCESSFUL (status);
  gboolean cancelled = error
      && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  gint64 now = g_get_monotonic_time ();

  if (reply)
    g_bytes_unref (reply);
  if (ok) {
    g_mutex_lock (&s->lock);
    s->sent += s->batch->len;
    s->in_flight = FALSE;
    g_cond_broadcast (&s->idle);
    g_mutex_unlock (&s->lock);
    for (guint i = 0; i < s->batch->len; i++)
      g_free (g_ptr_array_index (s->batch, i));
    g_ptr_array_set_size (s->batch, 0);
    if (s->failures)
      GST_INFO_OBJECT (s->element, "%s answers again", s->url);
    g_mutex_lock (&s->lock);
    s->failures = 0;
    g_mutex_unlock (&s->lock);
    s->next_try_us = 0;
  } else {
    guint64 delay_ms;

    /* The batch goes back to the front of the queue, so order is kept and
     * the oldest lines are the first to go if the queue overflows. */
    g_mutex_lock (&s->lock);
    for (guint i = s->batch->len; i > 0; i--)
      g_queue_push_head (&s->queue, g_ptr_array_index (s->batch, i - 1));
    g_ptr_array_set_size (s->batch, 0);
    s->failed_requests++;
    http_sender_trim_locked (s);
    s->in_flight = FALSE;
    if (!cancelled)
      s->failures++;
    g_cond_broadcast (&s->idle);
    g_mutex_unlock (&s->lock);
    if (cancelled)
      goto out;
    delay_ms = (guint64) RETRY_FIRST_MS << MIN (s->failures - 1, 20u);
    delay_ms = MIN (delay_ms, (guint64) s->retry_max_ms);
    /* Up to a quarter less, so that many devices do not retry in step. */
    delay_ms -= g_random_int_range (0, (gint32) (delay_ms / 4) + 1);
    s->next_try_us = now + (gint64) delay_ms * 1000;
    if (s->failures == 1)
      GST_ELEMENT_WARNING (s->element, RESOURCE, WRITE,
          ("Could not send metadata to %s: %s.", s->url,
              error ? error->message : soup_status_get_phrase (status)),
          ("HTTP status %u; retrying with backoff up to %u ms; up to %u "
              "lines are kept meanwhile (max-queue)", status, s->retry_max_ms,
              s->max_queue));
    GST_DEBUG_OBJECT (s->element, "POST failed (%u, %s), retry in %"
        G_GUINT64_FORMAT " ms", status, error ? error->message : "-",
        delay_ms);
  }
out:
  g_clear_error (&error);
  if (ok)
    http_sender_try (s);        /* more may be waiting */
}

/* On the sender's thread: POSTs the next batch when one is due. */
static void
http_sender_try (HttpSender * s)
{
  gint64 now = g_get_monotonic_time ();
  GString *body;
  SoupMessage *msg;
  GBytes *bytes;
  gboolean due;

  if (now < s->next_try_us)
    return;
  g_mutex_lock (&s->lock);
  due = !s->in_flight && s->queue.length > 0 && (s->flush_now
      || s->queue.length >= s->batch_size
      || now - s->last_send_us >= (gint64) s->interval_ms * 1000);
  if (!due) {
    g_mutex_unlock (&s->lock);
    return;
  }
  while (s->batch->len < s->batch_size && s->queue.length > 0)
    g_ptr_array_add (s->batch, g_queue_pop_head (&s->queue));
  s->in_flight = TRUE;
  g_mutex_unlock (&s->lock);

  body = g_string_sized_new (4096);
  for (guint i = 0; i < s->batch->len; i++)
    g_string_append (body, g_ptr_array_index (s->batch, i));
  s->last_send_us = now;
  msg = soup_message_new (SOUP_METHOD_POST, s->url);
  bytes = g_string_free_to_bytes (body);
  soup_message_set_request_body_from_bytes (msg, "application/x-ndjson",
      bytes);
  g_bytes_unref (bytes);
  soup_session_send_and_read_async (s->session, msg, G_PRIORITY_DEFAULT,
      s->cancellable, http_sender_done, s);
  g_object_unref (msg);
}

static gboolean
http_sender_tick (gpointer user_data)
{
  http_sender_try (user_data);
  return G_SOURCE_CONTINUE;
}

static gpointer
http_sender_run (gpointer user_data)
{
  HttpSender *s = user_data;
  GSource *tick;

  g_main_context_push_thread_default (s->context);
  s->session = soup_session_new_with_options ("timeout", s->timeout_s,
      "idle-timeout", 60, "user-agent", "kestrelmetapublish ", NULL);
  tick = g_timeout_source_new (SENDER_TICK_MS);
  g_source_set_callback (tick, http_sender_tick, s, NULL);
  g_source_attach (tick, s->context);
  g_main_loop_run (s->loop);
  g_source_destroy (tick);
  g_source_unref (tick);
  /* Let a cancelled request finish its callback before the session goes. */
  while (g_main_context_iteration (s->context, FALSE));
  g_clear_object (&s->session);
  g_main_context_pop_thread_default (s->context);
  return NULL;
}

static HttpSender *
http_sender_new (GstKestrelMetaPublish * self, const gchar * url)
{
  HttpSender *s = g_new0 (HttpSender, 1);

  s->element = self;
  s->url = g_strdup (url);
  GST_OBJECT_LOCK (self);
  s->batch_size = self->batch_size;
  s->interval_ms = self->batch_interval;
  s->max_queue = self->max_queue;
  s->timeout_s = self->timeout;
  s->retry_max_ms = self->retry_max;
  GST_OBJECT_UNLOCK (self);
  /* Its lines move between it and the queue: no free function. */
  s->batch = g_ptr_array_new ();
  s->cancellable = g_cancellable_new ();
  s->context = g_main_context_new ();
  s->loop = g_main_loop_new (s->context, FALSE);
  g_mutex_init (&s->lock);
  g_cond_init (&s->idle);
  g_queue_init (&s->queue);
  s->last_send_us = g_get_monotonic_time ();
  s->thread = g_thread_new ("kestrel-publish", http_sender_run, s);
  return s;
}

/* Streaming thread: never waits for the network. */
static void
http_sender_push (HttpSender * s, const gchar * line, gsize len)
{
  g_mutex_lock (&s->lock);
  g_queue_push_tail (&s->queue, g_strndup (line, len));
  http_sender_trim_locked (s);
  g_mutex_unlock (&s->lock);
}

static void
http_sender_flush_soon (HttpSender * s)
{
  g_mutex_lock (&s->lock);
  s->flush_now = TRUE;
  g_mutex_unlock (&s->lock);
}

static gboolean
http_sender_quit (gpointer user_data)
{
  HttpSender *s = user_data;

  g_main_loop_quit (s->loop);
  return G_SOURCE_REMOVE;
}

/* Sends what is queued, retrying, for at most DRAIN_WAIT_US, then stops
 * the thread. Returns the lines that never got out. */
static guint64
http_sender_free (HttpSender * s, guint64 * sent)
{
  gint64 deadline = g_get_monotonic_time () + DRAIN_WAIT_US;
  guint64 lost;

  g_mutex_lock (&s->lock);
  s->flush_now = TRUE;
  /* Retries go on meanwhile, with their backoff: a collector that is only
   * briefly unwell still gets everything. */
  while ((s->in_flight || s->queue.length > 0)
      && g_cond_wait_until (&s->idle, &s->lock, deadline));
  g_mutex_unlock (&s->lock);

  g_cancellable_cancel (s->cancellable);
  g_main_context_invoke (s->context, http_sender_quit, s);
  g_thread_join (s->thread);

  lost = s->dropped + s->queue.length + s->batch->len;
  *sent = s->sent;
  g_queue_clear_full (&s->queue, g_free);
  for (guint i = 0; i < s->batch->len; i++)
    g_free (g_ptr_array_index (s->batch, i));
  g_ptr_array_unref (s->batch);
  g_object_unref (s->cancellable);
  g_main_loop_unref (s->loop);
  g_main_context_unref (s->context);
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->idle);
  g_free (s->url);
  g_free (s);
  return lost;
}

/* --- element ------------------------------------------------------------- */

static gboolean
open_udp (GstKestrelMetaPublish * self, const gchar * location)
{
  GError *error = NULL;
  GSocketConnectable *where;
  GSocketAddressEnumerator *it;
  GSocketAddress *address = NULL;

  where = g_network_address_parse_uri (location, 0, &error);
  if (!where)
    goto bad_uri;
  if (g_network_address_get_port (G_NETWORK_ADDRESS (where)) == 0) {
    g_object_unref (where);
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "no port");
    goto bad_uri;
  }
  /* Resolved once, here: a name lookup must not happen per frame. */
  it = g_socket_connectable_enumerate (where);
  address = g_socket_address_enumerator_next (it, NULL, &error);
  g_object_unref (it);
  g_object_unref (where);
  if (!address)
    goto bad_uri;
  self->socket = g_socket_new (g_socket_address_get_family (address),
      G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  if (!self->socket) {
    g_object_unref (address);
    goto bad_uri;
  }
  g_socket_set_blocking (self->socket, FALSE);
  self->udp_address = address;
  self->udp_warned = FALSE;
  return TRUE;

bad_uri:
  GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
      ("Cannot send metadata to \"%s\": %s.", location,
          error ? error->message : "unknown error"),
      ("use location=udp://HOST:PORT, e.g. udp://127.0.0.1:5005"));
  g_clear_error (&error);
  return FALSE;
}

static gboolean
gst_kestrel_meta_publish_start (GstBaseTransform * trans)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  gchar *location, *path = NULL;
  HttpSender *sender;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  self->lines = self->dropped = 0;
  GST_OBJECT_UNLOCK (self);

  self->frame_number = 0;
  self->width = self->height = 0;
  self->file = NULL;
  if (!location || !*location || g_str_equal (location, "-")) {
    self->target = TARGET_STDOUT;
    self->file = stdout;
  } else if (g_str_equal (location, "none")) {
    self->target = TARGET_NONE;
  } else if (g_str_has_prefix (location, "udp://")) {
    self->target = TARGET_UDP;
    if (!open_udp (self, location))
      goto failed;
  } else if (g_str_has_prefix (location, "http://")
      || g_str_has_prefix (location, "https://")) {
    GUri *uri = g_uri_parse (location, G_URI_FLAGS_NONE, NULL);
    if (!uri || !g_uri_get_host (uri) || !*g_uri_get_host (uri))
      goto bad_http;
    g_uri_unref (uri);
    self->target = TARGET_HTTP;
    sender = http_sender_new (self, location);
    GST_OBJECT_LOCK (self);
    self->sender = sender;
    GST_OBJECT_UNLOCK (self);
  } else {
    self->target = TARGET_FILE;
    path = g_str_has_prefix (location, "file://")
        ? g_filename_from_uri (location, NULL, NULL) : g_strdup (location);
    self->file = path ? g_fopen (path, "w") : NULL;
    if (!self->file)
      goto open_failed;
  }
  self->line = g_string_sized_new (1024);
  GST_INFO_OBJECT (self, "publishing JSON lines to %s",
      self->target == TARGET_STDOUT ? "stdout" : location);
  g_free (path);
  g_free (location);
  return TRUE;

bad_http:
  GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
      ("\"%s\" is not a valid HTTP URL.", location),
      ("use location=http://HOST:PORT/PATH"));
  goto failed;
open_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
      ("Could not open \"%s\" for writing: %s.", location,
          g_strerror (errno)),
      ("set location to a writable file, or leave it unset for stdout"));
failed:
  g_free (path);
  g_free (location);
  return FALSE;
}

static gboolean
gst_kestrel_meta_publish_stop (GstBaseTransform * trans)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  HttpSender *sender;
  gboolean ok = TRUE;

  if (self->file) {
    if (self->target == TARGET_FILE)
      ok = fclose (self->file) == 0;
    else
      fflush (self->file);
  }
  self->file = NULL;
  GST_OBJECT_LOCK (self);
  sender = self->sender;
  self->sender = NULL;
  GST_OBJECT_UNLOCK (self);
  if (sender) {
    guint64 sent = 0, lost = http_sender_free (sender, &sent);
    GST_OBJECT_LOCK (self);
    self->dropped += lost;
    GST_OBJECT_UNLOCK (self);
    if (lost)
      GST_WARNING_OBJECT (self, "%" G_GUINT64_FORMAT " lines were not "
          "delivered (%" G_GUINT64_FORMAT " were)", lost, sent);
  }
  g_clear_object (&self->socket);
  g_clear_object (&self->udp_address);
  if (self->line)
    g_string_free (self->line, TRUE);
  self->line = NULL;
  if (!ok)
    GST_ELEMENT_WARNING (self, RESOURCE, CLOSE, (NULL),
        ("closing the output failed (%s): it may be incomplete",
            g_strerror (errno)));
  return TRUE;
}

static gboolean
gst_kestrel_meta_publish_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  GstStructure *s = gst_caps_get_structure (incaps, 0);

  self->width = self->height = 0;
  gst_structure_get_int (s, "width", &self->width);
  gst_structure_get_int (s, "height", &self->height);
  return TRUE;
}

static gboolean
gst_kestrel_meta_publish_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);

  /* Readers see everything once the stream has ended. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    if (self->file)
      fflush (self->file);
    if (self->sender)
      http_sender_flush_soon (self->sender);
  }
  return GST_BASE_TRANSFORM_CLASS (gst_kestrel_meta_publish_parent_class)
      ->sink_event (trans, event);
}

/* Sends one datagram; anything but an immediate success drops the line. */
static gboolean
send_udp (GstKestrelMetaPublish * self, const gchar * line, gsize len)
{
  GError *error = NULL;
  gssize n;

  if (len > UDP_MAX_DATAGRAM) {
    if (!self->udp_warned)
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
          ("A frame's metadata (%" G_GSIZE_FORMAT " bytes) is too large for "
              "one UDP datagram; such frames are dropped.", len),
          ("use an http:// location for frames with many objects"));
    self->udp_warned = TRUE;
    return FALSE;
  }
  n = g_socket_send_to (self->socket, self->udp_address, line, len, NULL,
      &error);
  if (n < 0) {
    /* Full socket buffer, or ICMP port unreachable from an earlier send:
     * both mean this line is lost, neither is worth stopping for. */
    GST_LOG_OBJECT (self, "UDP send failed: %s", error->message);
    g_error_free (error);
    return FALSE;
  }
  return TRUE;
}

static GstFlowReturn
gst_kestrel_meta_publish_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  gboolean flush, emit, delivered = TRUE;

  if (!self->line)
    goto not_started;
  GST_OBJECT_LOCK (self);
  flush = self->flush;
  emit = self->emit_signals;
  GST_OBJECT_UNLOCK (self);

  build_line (self, buf, self->line);
  switch (self->target) {
    case TARGET_STDOUT:
    case TARGET_FILE:
      if (fwrite (self->line->str, 1, self->line->len, self->file)
          != self->line->len || (flush && fflush (self->file) != 0))
        goto write_failed;
      break;
    case TARGET_UDP:
      /* Without the newline: a datagram is already one record. */
      delivered = send_udp (self, self->line->str, self->line->len - 1);
      break;
    case TARGET_HTTP:
      http_sender_push (self->sender, self->line->str, self->line->len);
      break;
    case TARGET_NONE:
      break;
  }
  if (emit) {
    /* The line without its newline, as a C string. */
    self->line->str[self->line->len - 1] = '\0';
    g_signal_emit (self, signals[SIGNAL_PUBLISHED], 0, buf, self->line->str);
    self->line->str[self->line->len - 1] = '\n';
  }
  GST_OBJECT_LOCK (self);
  self->lines++;
  if (!delivered)
    self->dropped++;
  GST_OBJECT_UNLOCK (self);
  self->frame_number++;
  return GST_FLOW_OK;

not_started:
  GST_ELEMENT_ERROR (self, CORE, STATE_CHANGE, (NULL),
      ("buffer arrived before the output was opened"));
  return GST_FLOW_ERROR;
write_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
      ("Could not write metadata: %s.", g_strerror (errno)),
      ("frame %" G_GUINT64_FORMAT ": check free space on the output's disk",
          self->frame_number));
  return GST_FLOW_ERROR;
}

static GstStructure *
make_stats (GstKestrelMetaPublish * self)
{
  guint64 lines, dropped, sent = 0, failed = 0, sender_dropped = 0;
  guint queued = 0;

  /* The object lock keeps the sender alive (stop clears the pointer
   * under it before freeing); its own lock guards its counts. */
  GST_OBJECT_LOCK (self);
  lines = self->lines;
  dropped = self->dropped;
  if (self->sender) {
    g_mutex_lock (&self->sender->lock);
    sent = self->sender->sent;
    failed = self->sender->failed_requests;
    sender_dropped = self->sender->dropped;
    queued = self->sender->queue.length + (self->sender->in_flight ?
        self->sender->batch->len : 0);
    g_mutex_unlock (&self->sender->lock);
  }
  GST_OBJECT_UNLOCK (self);
  return gst_structure_new ("kestrel-publish-stats",
      "lines", G_TYPE_UINT64, lines,
      "sent", G_TYPE_UINT64, sent,
      "dropped", G_TYPE_UINT64, dropped + sender_dropped,
      "queued", G_TYPE_UINT, queued,
      "failed-requests", G_TYPE_UINT64, failed, NULL);
}

static void
gst_kestrel_meta_publish_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      /* Read once at start; a change applies at the next start. */
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_FLUSH:
      self->flush = g_value_get_boolean (value);
      break;
    case PROP_EMIT_SIGNALS:
      self->emit_signals = g_value_get_boolean (value);
      break;
    case PROP_BATCH_SIZE:
      self->batch_size = g_value_get_uint (value);
      break;
    case PROP_BATCH_INTERVAL:
      self->batch_interval = g_value_get_uint (value);
      break;
    case PROP_MAX_QUEUE:
      self->max_queue = g_value_get_uint (value);
      break;
    case PROP_TIMEOUT:
      self->timeout = g_value_get_uint (value);
      break;
    case PROP_RETRY_MAX:
      self->retry_max = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_meta_publish_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_FLUSH:
      g_value_set_boolean (value, self->flush);
      break;
    case PROP_EMIT_SIGNALS:
      g_value_set_boolean (value, self->emit_signals);
      break;
    case PROP_BATCH_SIZE:
      g_value_set_uint (value, self->batch_size);
      break;
    case PROP_BATCH_INTERVAL:
      g_value_set_uint (value, self->batch_interval);
      break;
    case PROP_MAX_QUEUE:
      g_value_set_uint (value, self->max_queue);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, self->timeout);
      break;
    case PROP_RETRY_MAX:
      g_value_set_uint (value, self->retry_max);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_meta_publish_finalize (GObject * object)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  g_free (self->location);
  G_OBJECT_CLASS (gst_kestrel_meta_publish_parent_class)->finalize (object);
}

static void
gst_kestrel_meta_publish_class_init (GstKestrelMetaPublishClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_meta_publish_debug,
      "kestrelmetapublish", 0, "Kestrel metadata publisher");

  gobject_class->set_property = gst_kestrel_meta_publish_set_property;
  gobject_class->get_property = gst_kestrel_meta_publish_get_property;
  gobject_class->finalize = gst_kestrel_meta_publish_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "Where the JSON lines go: a file (path or file:// URI, truncated "
          "at start); NULL, \"\" or \"-\": standard output; \"none\": "
          "nowhere; udp://HOST:PORT: one datagram per frame; "
          "http://HOST:PORT/PATH or https://...: batched POSTs",
          DEFAULT_LOCATION, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FLUSH,
      g_param_spec_boolean ("flush", "Flush",
          "Flush a file or stdout after every line, so that readers see each "
          "frame at once (FALSE: buffered, flushed at EOS and stop)",
          DEFAULT_FLUSH, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_EMIT_SIGNALS,
      g_param_spec_boolean ("emit-signals", "Emit signals",
          "Emit \"published\" with every line, on the streaming thread",
          DEFAULT_EMIT_SIGNALS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "HTTP: most lines in one POST", 1, 100000, DEFAULT_BATCH_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_BATCH_INTERVAL,
      g_param_spec_uint ("batch-interval", "Batch interval",
          "HTTP: milliseconds after which a partial batch is sent anyway",
          10, 3600000, DEFAULT_BATCH_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE,
      g_param_spec_uint ("max-queue", "Max queue",
          "HTTP: most lines kept while the collector does not answer; the "
          "oldest are dropped beyond it", 1, 10000000, DEFAULT_MAX_QUEUE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_TIMEOUT,
      g_param_spec_uint ("timeout", "Timeout",
          "HTTP: seconds a POST may take before it counts as failed", 1, 300,
          DEFAULT_TIMEOUT, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_RETRY_MAX,
      g_param_spec_uint ("retry-max", "Retry max",
          "HTTP: longest wait in milliseconds between retries (the wait "
          "starts at 250 ms and doubles after each failure)", 100, 3600000,
          DEFAULT_RETRY_MAX, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Read-only \"kestrel-publish-stats\" structure: lines (guint64: "
          "made since start), sent (HTTP: delivered), dropped (lost: UDP "
          "sends that failed, HTTP queue overflow), queued (guint: waiting "
          "to be sent), failed-requests (guint64: HTTP POSTs that failed)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstKestrelMetaPublish::published:
   * @element: the element
   * @buffer: the frame the line describes
   * @line: the JSON line, without its newline
   *
   * Emitted on the streaming thread for every frame when emit-signals is
   * TRUE. Handlers must be quick: the frame waits for them.
   */
  signals[SIGNAL_PUBLISHED] = g_signal_new ("published",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, GST_TYPE_BUFFER | G_SIGNAL_TYPE_STATIC_SCOPE,
      G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Kestrel metadata publisher", "Filter/Metadata/Video",
      "Writes the objects, track ids and classes attached to each frame as "
      "JSON lines to a file, stdout, UDP or HTTP; passes the frames through "
      "unchanged", "Kestrel developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_set_caps);
  trans_class->sink_event =
      GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_sink_event);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_transform_ip);
}

static void
gst_kestrel_meta_publish_init (GstKestrelMetaPublish * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->flush = DEFAULT_FLUSH;
  self->emit_signals = DEFAULT_EMIT_SIGNALS;
  self->batch_size = DEFAULT_BATCH_SIZE;
  self->batch_interval = DEFAULT_BATCH_INTERVAL;
  self->max_queue = DEFAULT_MAX_QUEUE;
  self->timeout = DEFAULT_TIMEOUT;
  self->retry_max = DEFAULT_RETRY_MAX;
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
