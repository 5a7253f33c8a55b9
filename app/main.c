/* kestrel-kiosk: find the camera, run the Kestrel pipeline, show it.
 *
 *   kestrel-kiosk                         # first camera, else the default clip in a loop
 *   kestrel-kiosk --list-cameras [--json]
 *   kestrel-kiosk --source /dev/video2 --width 1920 --height 1080 --fullscreen
 *   kestrel-kiosk --source clip.avi --headless --frames 300 --snapshot-every 30
 *
 * One thread owns SDL and the pipeline's state; GStreamer's threads only
 * hand frames over through the appsink and news through the bus, which this
 * loop polls. So every state change (camera lost, model failed, stop) is
 * made here, in one place, in order. */
#include "kiosk.h"
#include "net_auth.h"
#include "net_http.h"
#include "net_rtsp.h"

#include <SDL.h>
#include <errno.h>
#include <gst/app/gstappsink.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define RECONNECT_POLL_US (100 * G_TIME_SPAN_MILLISECOND)
#define IDLE_REDRAW_US (250 * G_TIME_SPAN_MILLISECOND)
#define PULL_TIMEOUT_NS (20 * GST_MSECOND)
#define FPS_WINDOW 32
#define DEFAULT_MODEL_STEM "face_detection_full_range"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
  stop_signal = sig;
}

typedef enum { STATE_RUNNING, STATE_LOST, STATE_DONE } RunState;

typedef struct {
  KioskConfig *cfg;
  KioskSource src;
  char *camera_wanted; /* for camera sources: the node to wait for */
  char *model, *sidecar, *model_label;
  char *model_error;
  char *mode_label;
  char *snapshot_dir;
  char *screenshot;
  KioskPipeline *pipe;
  KioskDisplay *display;
  gboolean headless, unlimited, paused, overlay, hud, dirty;
  RunState state;
  int exit_code;

  /* statistics */
  gint64 started_us, first_frame_us, last_frame_us, last_status_us, last_render_us;
  guint64 frames, frames_at_status;
  double inference_sum;
  guint64 inferences, objects_seen;
  int objects_now;
  double last_inference_ms;
  GHashTable *track_ids;
  gint64 frame_times[FPS_WINDOW];
  GArray *latency_ms; /* capture to display, live sources */
  double cpu_at_first_frame;
  GstSample *last_sample;

  /* network outputs (issue 7), NULL when off; they outlive pipelines */
  NetHttp *http;
  NetRtsp *rtsp;
  gint64 last_net_status_us;

  /* reliability */
  gint64 lost_us, last_probe_us;
  guint reconnects;
  gboolean waiting_first_frame_after_loss;
} Kiosk;

/* --- small helpers --------------------------------------------------------- */

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int open_fds(void) {
  int n = 0;
  GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
  if (!dir)
    return -1;
  while (g_dir_read_name(dir))
    n++;
  g_dir_close(dir);
  return n - 1; /* the GDir's own descriptor */
}

static long rss_kb(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double fps_now(const Kiosk *k) {
  guint64 n = MIN(k->frames, (guint64)FPS_WINDOW);
  if (n < 2)
    return 0.0;
  gint64 newest = k->frame_times[(k->frames - 1) % FPS_WINDOW];
  gint64 oldest = k->frame_times[(k->frames - n) % FPS_WINDOW];
  return newest > oldest ? (double)(n - 1) * G_USEC_PER_SEC / (double)(newest - oldest) : 0.0;
}

/* kestreldetect's "stats": inferences run and their mean time, since the
 * pipeline started. Restarts (reconnects) fold them into the totals. */
static gboolean detect_stats(const Kiosk *k, guint64 *inferences, double *mean_ms) {
  GstElement *detect = k->pipe ? kiosk_pipeline_detect(k->pipe) : NULL;
  GstStructure *s = NULL;
  *inferences = 0;
  *mean_ms = 0;
  if (!detect)
    return FALSE;
  g_object_get(detect, "stats", &s, NULL);
  if (!s)
    return FALSE;
  gst_structure_get_uint64(s, "inferences", inferences);
  gst_structure_get_double(s, "mean-inference-ms", mean_ms);
  gst_structure_free(s);
  return TRUE;
}

static double mean_inference(const Kiosk *k, guint64 *count) {
  guint64 n = 0;
  double mean = 0;
  detect_stats(k, &n, &mean);
  double sum = k->inference_sum + mean * (double)n;
  n += k->inferences;
  if (count)
    *count = n;
  return n ? sum / (double)n : 0.0;
}

static int compare_doubles(gconstpointer a, gconstpointer b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double mean_of(GArray *values) {
  double sum = 0;
  for (guint i = 0; i < values->len; i++)
    sum += g_array_index(values, double, i);
  return values->len ? sum / values->len : 0.0;
}

static double percentile(GArray *values, double p) {
  if (!values->len)
    return 0.0;
  g_array_sort(values, compare_doubles);
  guint i = (guint)MIN((double)values->len - 1, floor(p * (values->len - 1) + 0.5));
  return g_array_index(values, double, i);
}

/* --- choosing the source and the model ----------------------------------- */

static gboolean is_url(const char *s) {
  return strstr(s, "://") != NULL;
}

static gboolean resolve_camera(Kiosk *k, const char *path, GError **error) {
  KioskCamera *cam = kiosk_camera_probe(path, error);
  if (!cam)
    return FALSE;
  KioskMode mode;
  if (!kiosk_camera_pick_mode(cam, k->cfg->width, k->cfg->height, k->cfg->fps, k->cfg->format,
                              &mode)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CAMERA, "%s offers no MJPEG, YUYV or NV12 mode",
                path);
    kiosk_camera_free(cam);
    return FALSE;
  }
  k->src.mode = mode;
  g_autofree char *d = kiosk_mode_describe(&mode);
  g_free(k->mode_label);
  k->mode_label = g_strdup_printf("%s %s", path, d);
  kiosk_camera_free(cam);
  return TRUE;
}

static gboolean choose_source(Kiosk *k, GError **error) {
  const char *s = k->cfg->source;
  g_autofree char *cache = kiosk_cache_dir();
  if (!strcmp(s, "auto") || !strcmp(s, "camera")) {
    GPtrArray *cams = kiosk_cameras_enumerate();
    if (cams->len) {
      const KioskCamera *cam = g_ptr_array_index(cams, 0);
      k->camera_wanted = g_strdup(cam->path);
    }
    g_ptr_array_unref(cams);
    if (!k->camera_wanted && !strcmp(s, "camera"))
      k->camera_wanted = g_strdup("/dev/video0"); /* wait for it */
    if (!k->camera_wanted) {
      /* No camera: the bundled face clip in a loop (the README's main job),
       * else the face photos as a slideshow. */
      g_autofree char *clip = g_build_filename(cache, "clips", "faces-720p.avi", NULL);
      g_autofree char *photo = g_build_filename(cache, "photos", "sample1.jpg", NULL);
      if (g_file_test(clip, G_FILE_TEST_IS_REGULAR)) {
        k->src.kind = KIOSK_SOURCE_FILE;
        k->src.location = g_strdup(clip);
      } else if (g_file_test(photo, G_FILE_TEST_IS_REGULAR)) {
        k->src.kind = KIOSK_SOURCE_PHOTOS;
        k->src.location = g_build_filename(cache, "photos", NULL);
      } else {
        g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG,
                    "no camera found and no default clip in %s/clips (run scripts/setup.sh, "
                    "or give --source)",
                    cache);
        return FALSE;
      }
    }
  } else if (g_str_has_prefix(s, "/dev/")) {
    k->camera_wanted = g_strdup(s);
  } else if (is_url(s) && !g_str_has_prefix(s, "file://")) {
    k->src.kind = KIOSK_SOURCE_URL;
    k->src.location = g_strdup(s);
    k->src.live = g_str_has_prefix(s, "rtsp");
  } else {
    g_autofree char *path =
        g_str_has_prefix(s, "file://") ? g_filename_from_uri(s, NULL, NULL) : g_strdup(s);
    if (!path || !g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
      g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG,
                  "[source] source: '%s' is not a camera, a URL or an existing file", s);
      return FALSE;
    }
    k->src.kind = KIOSK_SOURCE_FILE;
    k->src.location = g_steal_pointer(&path);
  }

  if (k->camera_wanted) {
    k->src.kind = KIOSK_SOURCE_CAMERA;
    k->src.location = g_strdup(k->camera_wanted);
    k->src.live = TRUE;
    k->mode_label = g_strdup(k->camera_wanted);
  } else if (!k->mode_label) {
    k->mode_label = k->src.kind == KIOSK_SOURCE_PHOTOS ? g_strdup("photos (slideshow)")
                                                       : g_path_get_basename(k->src.location);
  }
  return TRUE;
}

/* A compiled .kestrel carries no sidecar of its own: look for the one of
 * the model it was compiled from (assets/models/STEM.sidecar). */
static char *find_sidecar(const char *model) {
  g_autofree char *base = g_path_get_basename(model);
  g_autofree char *dir = g_path_get_dirname(model);
  g_autofree char *stem = g_strdup(base);
  char *dot = strchr(stem, '.');
  if (dot)
    *dot = 0;
  g_autofree char *beside = g_strconcat(model, ".sidecar", NULL);
  g_autofree char *beside2 = g_build_filename(dir, stem, NULL);
  g_autofree char *beside3 = g_strconcat(beside2, ".sidecar", NULL);
  if (g_file_test(beside, G_FILE_TEST_IS_REGULAR) || g_file_test(beside3, G_FILE_TEST_IS_REGULAR))
    return NULL; /* kestreldetect finds these itself */
  if (!g_str_has_suffix(base, ".kestrel"))
    return NULL; /* ONNX/TFLite: found by the plugin by sha256 */
  const char *dirs[] = {g_getenv("KESTREL_ASSETS"), KESTREL_SOURCE_ASSETS, KESTREL_DATADIR};
  for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
    if (!dirs[i] || !*dirs[i])
      continue;
    g_autofree char *name = g_strconcat(stem, ".sidecar", NULL);
    g_autofree char *path = g_build_filename(dirs[i], name, NULL);
    if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
      return g_steal_pointer(&path);
  }
  return NULL;
}

static void choose_model(Kiosk *k) {
  const char *m = k->cfg->model;
  if (!strcmp(m, "none"))
    return;
  if (!strcmp(m, "auto")) {
    g_autofree char *cache = kiosk_cache_dir();
    g_autofree char *int8 =
        g_build_filename(cache, "compiled", DEFAULT_MODEL_STEM ".int8.kestrel", NULL);
    g_autofree char *fp32 = g_build_filename(cache, "models", DEFAULT_MODEL_STEM ".tflite", NULL);
    if (g_file_test(int8, G_FILE_TEST_IS_REGULAR))
      k->model = g_steal_pointer(&int8);
    else if (g_file_test(fp32, G_FILE_TEST_IS_REGULAR))
      k->model = g_steal_pointer(&fp32);
    else {
      k->model_error = g_strdup_printf("no face model in %s (run scripts/setup.sh)", cache);
      return;
    }
  } else {
    k->model = g_strdup(m);
  }
  if (strcmp(k->cfg->sidecar, "auto"))
    k->sidecar = g_strdup(k->cfg->sidecar);
  else
    k->sidecar = find_sidecar(k->model);
  k->model_label = g_path_get_basename(k->model);
}

/* --- the pipeline's life ----------------------------------------------------- */

static void handle_message(Kiosk *k, GstMessage *msg);

static void drop_pipeline(Kiosk *k) {
  guint64 n;
  double mean;
  if (!k->pipe)
    return;
  if (detect_stats(k, &n, &mean)) {
    k->inference_sum += mean * (double)n;
    k->inferences += n;
  }
  kiosk_pipeline_collect_tracks(k->pipe, k->track_ids);
  kiosk_pipeline_free(k->pipe); /* sets it to NULL first: devices closed, threads joined */
  k->pipe = NULL;
}

static void set_model_error(Kiosk *k, const char *why) {
  g_free(k->model_error);
  k->model_error = g_strdup_printf("model %s failed to load: %s", k->model_label, why);
  g_printerr("kestrel-kiosk: %s; the video goes on without detection\n", k->model_error);
  g_clear_pointer(&k->model, g_free);
  k->dirty = TRUE;
}

/* --- network outputs (net_*.c) -------------------------------------------------- */

static const char *config_token(const Kiosk *k) {
  return strcmp(k->cfg->token, "none") ? k->cfg->token : NULL;
}

/* Starts the servers once; pipelines come and go under them. */
static gboolean start_network(Kiosk *k, GError **error) {
  if (strcmp(k->cfg->http, "off")) {
    g_autofree char *address = NULL;
    guint port = 0;
    if (!net_parse_listen(k->cfg->http, &address, &port, error)) {
      g_prefix_error(error, "[network] http: ");
      return FALSE;
    }
    NetHttpOptions o = {.address = address,
                        .port = port,
                        .token = config_token(k),
                        .max_clients = k->cfg->max_clients,
                        .mjpeg_width = k->cfg->mjpeg_width,
                        .mjpeg_quality = k->cfg->mjpeg_quality};
    if (!(k->http = net_http_new(&o, error)))
      return FALSE;
    printf("kestrel-kiosk: web view on http://%s:%u/\n", address, net_http_port(k->http));
  }
  if (k->cfg->rtsp_port) {
    NetRtspOptions o = {.address = k->cfg->rtsp_address,
                        .port = (guint)k->cfg->rtsp_port,
                        .token = config_token(k),
                        .max_clients = k->cfg->max_clients};
    if (!(k->rtsp = net_rtsp_new(&o, error)))
      return FALSE;
    printf("kestrel-kiosk: RTSP on rtsp://%s:%u" NET_RTSP_MOUNT " (%s)\n", k->cfg->rtsp_address,
           net_rtsp_port(k->rtsp), net_rtsp_encoder(k->rtsp));
  }
  return TRUE;
}

static gboolean attach_network(Kiosk *k, GError **error) {
  GstBin *bin = GST_BIN(kiosk_pipeline_element(k->pipe));
  GstElement *tee = kiosk_pipeline_tee(k->pipe);
  if (k->http) {
    if (!net_http_attach(k->http, bin, tee, error))
      return FALSE;
    net_http_attach_metadata(k->http, kiosk_pipeline_publish(k->pipe));
  }
  return !k->rtsp || net_rtsp_attach(k->rtsp, bin, tee, error);
}

/* What only the kiosk knows, for /metrics; a few times a second. */
static void update_network_status(Kiosk *k) {
  gint64 now = g_get_monotonic_time();
  if (!k->http || now - k->last_net_status_us < 250 * G_TIME_SPAN_MILLISECOND)
    return;
  k->last_net_status_us = now;
  guint64 inferences = 0, dropped = 0;
  GstElement *detect = k->pipe ? kiosk_pipeline_detect(k->pipe) : NULL;
  GstStructure *s = NULL;
  if (detect)
    g_object_get(detect, "stats", &s, NULL);
  if (s) {
    gst_structure_get_uint64(s, "inferences", &inferences);
    gst_structure_get_uint64(s, "dropped", &dropped);
    gst_structure_free(s);
  }
  NetHttpStatus st = {.camera_state = k->state == STATE_RUNNING ? "running"
                                      : k->state == STATE_LOST  ? "lost"
                                                                : "stopped",
                      .source = k->src.location,
                      .model_path = k->model,
                      .frames_shown = k->frames,
                      .inferences = k->inferences + inferences,
                      .inferences_dropped = dropped,
                      .reconnects = k->reconnects};
  net_http_set_status(k->http, &st);
}

/* Builds and starts the pipeline. Errors during start-up come back through
 * the bus and take the same paths as errors while running. */
static gboolean start_pipeline(Kiosk *k, GError **error) {
  for (int attempt = 0; attempt < 2; attempt++) {
    k->pipe = kiosk_pipeline_new(k->cfg, &k->src, k->model, k->sidecar, k->headless, error);
    if (!k->pipe)
      return FALSE;
    if (!attach_network(k, error)) {
      drop_pipeline(k);
      return FALSE;
    }
    kiosk_pipeline_set_overlay(k->pipe, k->overlay);
    GstElement *pipeline = kiosk_pipeline_element(k->pipe);
    GstStateChangeReturn r = gst_element_set_state(pipeline, GST_STATE_PLAYING);
    if (r != GST_STATE_CHANGE_FAILURE)
      return TRUE;
    /* Find out who failed: the model (run on without it) or the source. */
    g_autoptr(GstBus) bus = gst_element_get_bus(pipeline);
    GstMessage *msg;
    gboolean model_failed = FALSE;
    char *why = NULL;
    while ((msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR))) {
      GError *err = NULL;
      gst_message_parse_error(msg, &err, NULL);
      GstElement *detect = kiosk_pipeline_detect(k->pipe);
      if (detect && GST_MESSAGE_SRC(msg) == GST_OBJECT(detect))
        model_failed = TRUE;
      if (!why)
        why = g_strdup(err->message);
      else if (model_failed) {
        g_free(why);
        why = g_strdup(err->message);
      }
      g_error_free(err);
      gst_message_unref(msg);
      if (model_failed)
        break;
    }
    drop_pipeline(k);
    if (model_failed) {
      set_model_error(k, why);
      g_free(why);
      continue; /* once more, without the model */
    }
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_PIPELINE, "%s",
                why ? why : "the pipeline did not start");
    g_free(why);
    return FALSE;
  }
  g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_PIPELINE, "the pipeline did not start");
  return FALSE;
}

static void enter_lost(Kiosk *k, const char *why) {
  if (k->state != STATE_LOST) {
    g_printerr("kestrel-kiosk: camera lost (%s): %s; waiting for it to come back\n",
               k->src.location, why);
    k->lost_us = g_get_monotonic_time();
  }
  drop_pipeline(k);
  k->state = STATE_LOST;
  k->waiting_first_frame_after_loss = TRUE;
  k->objects_now = 0;
  if (k->display)
    kiosk_display_forget_frame(k->display);
  k->dirty = TRUE;
}

/* Camera lost: look for the node every 100 ms, and start again when it
 * answers. Everything else keeps running (window, HUD, signals). */
static void try_reconnect(Kiosk *k) {
  gint64 now = g_get_monotonic_time();
  if (now - k->last_probe_us < RECONNECT_POLL_US)
    return;
  k->last_probe_us = now;
  GError *error = NULL;
  if (k->src.kind == KIOSK_SOURCE_CAMERA) {
    if (!g_file_test(k->camera_wanted, G_FILE_TEST_EXISTS))
      return;
    if (!resolve_camera(k, k->camera_wanted, &error)) {
      g_error_free(error);
      return;
    }
  }
  if (start_pipeline(k, &error)) {
    k->state = STATE_RUNNING;
    k->reconnects++;
    k->dirty = TRUE;
  } else {
    g_error_free(error);
  }
}

static void on_inference(Kiosk *k, const GstStructure *s) {
  double ms = 0;
  /* Frames carry the newest result, which may be an earlier frame's
   * (stale) while the worker runs; the time is that result's. The mean
   * comes from the element's own count (stats), which sees every run. */
  gboolean stale = FALSE;
  gst_structure_get_boolean(s, "stale", &stale);
  if (gst_structure_get_double(s, "inference-ms", &ms) && ms > 0) {
    k->last_inference_ms = ms;
    if (k->http && !stale)
      net_http_note_inference(k->http, ms);
  }
  const GValue *objects = gst_structure_get_value(s, "objects");
  k->objects_now =
      objects && GST_VALUE_HOLDS_ARRAY(objects) ? (int)gst_value_array_get_size(objects) : 0;
  k->objects_seen += (guint64)k->objects_now;
}

static void handle_message(Kiosk *k, GstMessage *msg) {
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (s && gst_structure_has_name(s, "kestrel-inference"))
      on_inference(k, s);
    break;
  }
  case GST_MESSAGE_EOS:
    if (k->src.kind == KIOSK_SOURCE_FILE && k->cfg->loop) {
      /* Loop the clip without tearing anything down. */
      if (!gst_element_seek_simple(kiosk_pipeline_element(k->pipe), GST_FORMAT_TIME,
                                   GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT, 0)) {
        g_printerr("kestrel-kiosk: %s cannot be replayed (not seekable)\n", k->src.location);
        k->state = STATE_DONE;
      }
    } else if (k->src.kind == KIOSK_SOURCE_CAMERA || k->src.kind == KIOSK_SOURCE_URL) {
      enter_lost(k, "end of stream");
    } else {
      k->state = STATE_DONE;
    }
    break;
  case GST_MESSAGE_WARNING: {
    GError *err = NULL;
    gst_message_parse_warning(msg, &err, NULL);
    g_printerr("kestrel-kiosk: warning from %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)),
               err->message);
    g_error_free(err);
    break;
  }
  case GST_MESSAGE_ERROR: {
    GError *err = NULL;
    gchar *debug = NULL;
    gst_message_parse_error(msg, &err, &debug);
    GstElement *detect = kiosk_pipeline_detect(k->pipe);
    if (detect && GST_MESSAGE_SRC(msg) == GST_OBJECT(detect)) {
      set_model_error(k, err->message);
      drop_pipeline(k);
      GError *again = NULL;
      if (!start_pipeline(k, &again)) {
        g_printerr("kestrel-kiosk: %s\n", again->message);
        g_error_free(again);
        k->exit_code = 1;
        k->state = STATE_DONE;
      }
    } else if (k->src.kind == KIOSK_SOURCE_CAMERA || k->src.kind == KIOSK_SOURCE_URL) {
      /* Unplugged (ENODEV), a USB hiccup (EIO), a broken stream: close
       * everything, wait for the device, open it again. */
      enter_lost(k, err->message);
    } else {
      g_printerr("kestrel-kiosk: error from %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)),
                 err->message);
      if (debug)
        g_printerr("  (%s)\n", debug);
      k->exit_code = 1;
      k->state = STATE_DONE;
    }
    g_error_free(err);
    g_free(debug);
    break;
  }
  default:
    break;
  }
}

static void poll_bus(Kiosk *k) {
  for (int i = 0; i < 256 && k->pipe; i++) {
    g_autoptr(GstBus) bus = gst_element_get_bus(kiosk_pipeline_element(k->pipe));
    GstMessage *msg = gst_bus_pop(bus);
    if (!msg)
      break;
    handle_message(k, msg);
    gst_message_unref(msg);
  }
}

/* --- frames -------------------------------------------------------------------- */

static void save_snapshot(Kiosk *k, const char *name) {
  if (!k->last_sample)
    return;
  if (g_mkdir_with_parents(k->snapshot_dir, 0755) != 0) {
    g_printerr("kestrel-kiosk: snapshot folder %s: %s\n", k->snapshot_dir, g_strerror(errno));
    return;
  }
  g_autofree char *path = g_build_filename(k->snapshot_dir, name, NULL);
  GError *error = NULL;
  if (!kiosk_write_jpeg(k->last_sample, path, k->cfg->snapshot_quality, &error)) {
    g_printerr("kestrel-kiosk: snapshot: %s\n", error->message);
    g_error_free(error);
  }
}

/* Capture to display: the buffer's running time is when the camera took it
 * (v4l2src maps the driver's timestamp onto the pipeline clock). */
static void note_latency(Kiosk *k, GstSample *sample) {
  if (!k->src.live || !k->pipe)
    return;
  GstElement *pipeline = kiosk_pipeline_element(k->pipe);
  GstBuffer *buf = gst_sample_get_buffer(sample);
  const GstSegment *seg = gst_sample_get_segment(sample);
  g_autoptr(GstClock) clock = gst_element_get_clock(pipeline);
  if (!clock || !buf || !seg || !GST_BUFFER_PTS_IS_VALID(buf))
    return;
  GstClockTime rt = gst_segment_to_running_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(buf));
  GstClockTime now = gst_clock_get_time(clock) - gst_element_get_base_time(pipeline);
  if (rt == GST_CLOCK_TIME_NONE || now < rt)
    return;
  double ms = (double)(now - rt) / GST_MSECOND;
  if (k->latency_ms->len < 1000000)
    g_array_append_val(k->latency_ms, ms);
}

static void write_screenshot_info(Kiosk *k) {
  g_autoptr(GString) j = g_string_new("{");
  int ww = 0, wh = 0, vr[4] = {0}, hr[4] = {0};
  kiosk_display_geometry(k->display, &ww, &wh, vr, hr);
  GstCaps *caps = k->last_sample ? gst_sample_get_caps(k->last_sample) : NULL;
  GstVideoInfo info;
  int fw = 0, fh = 0;
  if (caps && gst_video_info_from_caps(&info, caps)) {
    fw = GST_VIDEO_INFO_WIDTH(&info);
    fh = GST_VIDEO_INFO_HEIGHT(&info);
  }
  g_string_append_printf(j,
                         "\"window\": [%d, %d], \"video_rect\": [%d, %d, %d, %d], "
                         "\"hud_rect\": [%d, %d, %d, %d], \"frame\": [%d, %d], "
                         "\"frame_number\": %" G_GUINT64_FORMAT ", \"objects\": [",
                         ww, wh, vr[0], vr[1], vr[2], vr[3], hr[0], hr[1], hr[2], hr[3], fw, fh,
                         k->frames);
  if (k->last_sample) {
    GstBuffer *buf = gst_sample_get_buffer(k->last_sample);
    gpointer state = NULL;
    GstMeta *meta;
    int n = 0;
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state,
                                                    GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *)meta;
      GstStructure *s = gst_video_region_of_interest_meta_get_param(roi, "object_id");
      int id = -1;
      if (s)
        gst_structure_get_int(s, "id", &id);
      g_string_append_printf(j,
                             "%s{\"x\": %u, \"y\": %u, \"width\": %u, \"height\": %u, "
                             "\"track_id\": %d}",
                             n++ ? ", " : "", roi->x, roi->y, roi->w, roi->h, id);
    }
  }
  g_string_append(j, "]}\n");
  g_autofree char *path = g_strconcat(k->screenshot, ".json", NULL);
  GError *error = NULL;
  if (!g_file_set_contents(path, j->str, (gssize)j->len, &error)) {
    g_printerr("kestrel-kiosk: %s\n", error->message);
    g_error_free(error);
  }
}

static void render(Kiosk *k, const char *screenshot) {
  if (!k->display)
    return;
  KioskHud hud = {{NULL, NULL}, NULL, NULL, k->hud};
  const char *objects_word = k->objects_now == 1 ? "object" : "objects";
  hud.lines[0] = g_strdup_printf("%.1f fps   inference %.1f ms   %d %s%s%s", fps_now(k),
                                 k->last_inference_ms, k->objects_now, objects_word,
                                 k->paused ? "   PAUSED" : "", k->overlay ? "" : "   overlay off");
  hud.lines[1] = g_strdup_printf("%s   %s", k->model_label ? k->model_label : "no model",
                                 k->mode_label ? k->mode_label : "");
  if (k->state == STATE_LOST)
    hud.banner = g_strdup_printf("Camera lost: %s - reconnecting", k->src.location);
  else if (k->frames == 0)
    hud.banner = g_strdup("Starting...");
  if (k->model_error)
    hud.warning = g_strdup(k->model_error);
  kiosk_display_render(k->display, &hud, screenshot);
  g_free(hud.lines[0]);
  g_free(hud.lines[1]);
  g_free(hud.banner);
  g_free(hud.warning);
  k->last_render_us = g_get_monotonic_time();
  k->dirty = FALSE;
}

static void on_frame(Kiosk *k, GstSample *sample) {
  gint64 now = g_get_monotonic_time();
  if (k->frames == 0) {
    k->first_frame_us = now;
    k->cpu_at_first_frame = cpu_seconds();
  }
  if (k->waiting_first_frame_after_loss && k->lost_us) {
    g_printerr("kestrel-kiosk: camera back: first frame %.2f s after the loss (reconnect %u, "
               "fds %d, rss %ld kB)\n",
               (now - k->lost_us) / 1e6, k->reconnects, open_fds(), rss_kb());
  }
  k->waiting_first_frame_after_loss = FALSE;
  k->frame_times[k->frames % FPS_WINDOW] = now;
  k->frames++;
  k->last_frame_us = now;
  if (k->last_sample)
    gst_sample_unref(k->last_sample);
  k->last_sample = sample;

  if (k->display)
    kiosk_display_upload(k->display, sample);
  if (k->cfg->snapshot_every > 0 && k->frames % (guint64)k->cfg->snapshot_every == 0) {
    char name[64];
    snprintf(name, sizeof name, "kiosk-%08" G_GUINT64_FORMAT ".jpg", k->frames);
    save_snapshot(k, name);
  }
}

static gboolean limits_reached(Kiosk *k) {
  if (k->cfg->frames > 0 && k->frames >= (guint64)k->cfg->frames)
    return TRUE;
  if (k->cfg->duration > 0 &&
      g_get_monotonic_time() - k->started_us >= (gint64)(k->cfg->duration * G_USEC_PER_SEC))
    return TRUE;
  return FALSE;
}

static void print_status(Kiosk *k) {
  gint64 now = g_get_monotonic_time();
  if (k->cfg->status_every <= 0 ||
      now - k->last_status_us < (gint64)(k->cfg->status_every * G_USEC_PER_SEC))
    return;
  double span = k->last_status_us ? (now - k->last_status_us) / 1e6 : 0;
  double rate = span > 0 ? (k->frames - k->frames_at_status) / span : 0;
  printf("kestrel-kiosk: %6.0f s  %s  frames %" G_GUINT64_FORMAT "  %.1f fps  inference %.1f "
         "ms  objects %d%s%s\n",
         (now - k->started_us) / 1e6, k->state == STATE_LOST ? "CAMERA LOST" : "running", k->frames,
         rate, mean_inference(k, NULL), k->objects_now, k->model_error ? "  (no model)" : "", "");
  fflush(stdout);
  if (k->unlimited && k->last_sample && k->cfg->snapshot_every == 0)
    save_snapshot(k, "latest.jpg");
  k->last_status_us = now;
  k->frames_at_status = k->frames;
}

static void print_summary(Kiosk *k) {
  gint64 end = k->last_frame_us ? k->last_frame_us : g_get_monotonic_time();
  double seconds = k->first_frame_us ? (end - k->first_frame_us) / 1e6 : 0.0;
  double fps = seconds > 0 && k->frames > 1 ? (k->frames - 1) / seconds : 0.0;
  guint64 inferences = 0;
  double inference_ms = mean_inference(k, &inferences);
  double cpu = k->frames > 1 ? (cpu_seconds() - k->cpu_at_first_frame) * 1e3 / (k->frames - 1) : 0;
  printf("kestrel-kiosk: summary: frames=%" G_GUINT64_FORMAT " seconds=%.2f fps=%.2f "
         "inference-ms=%.2f inferences=%" G_GUINT64_FORMAT " objects=%" G_GUINT64_FORMAT
         " tracks=%u cpu-ms-per-frame=%.2f latency-ms-mean=%.1f latency-ms-p50=%.1f "
         "latency-ms-p95=%.1f reconnects=%u model=%s source=%s\n",
         k->frames, seconds, fps, inference_ms, inferences, k->objects_seen,
         g_hash_table_size(k->track_ids), cpu, mean_of(k->latency_ms),
         percentile(k->latency_ms, 0.5), percentile(k->latency_ms, 0.95), k->reconnects,
         k->model_label && !k->model_error ? k->model_label : "none", k->src.location);
  fflush(stdout);
}

static void handle_key(Kiosk *k, SDL_Keycode key) {
  switch (key) {
  case SDLK_q:
  case SDLK_ESCAPE:
    k->state = STATE_DONE;
    break;
  case SDLK_f:
    kiosk_display_toggle_fullscreen(k->display);
    break;
  case SDLK_o:
    k->overlay = !k->overlay;
    if (k->pipe)
      kiosk_pipeline_set_overlay(k->pipe, k->overlay);
    break;
  case SDLK_s: {
    g_autoptr(GDateTime) t = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(t, "%Y%m%d-%H%M%S");
    g_autofree char *name = g_strdup_printf("kiosk-%s-%" G_GUINT64_FORMAT ".jpg", stamp, k->frames);
    save_snapshot(k, name);
    printf("kestrel-kiosk: snapshot %s/%s\n", k->snapshot_dir, name);
    fflush(stdout);
    break;
  }
  case SDLK_SPACE:
    k->paused = !k->paused;
    if (k->pipe)
      gst_element_set_state(kiosk_pipeline_element(k->pipe),
                            k->paused ? GST_STATE_PAUSED : GST_STATE_PLAYING);
    break;
  default:
    break;
  }
  k->dirty = TRUE;
}

static void poll_events(Kiosk *k) {
  SDL_Event e;
  while (k->display && SDL_PollEvent(&e)) {
    switch (e.type) {
    case SDL_QUIT:
      k->state = STATE_DONE;
      break;
    case SDL_KEYDOWN:
      if (!e.key.repeat)
        handle_key(k, e.key.keysym.sym);
      break;
    case SDL_WINDOWEVENT:
    case SDL_DISPLAYEVENT:
    case SDL_RENDER_TARGETS_RESET:
      /* Resized, moved to another screen, mode changed: lay out again. */
      k->dirty = TRUE;
      break;
    case SDL_RENDER_DEVICE_RESET:
      /* The renderer lost its textures: the next frame makes them again. */
      kiosk_display_forget_frame(k->display);
      k->dirty = TRUE;
      break;
    default:
      break;
    }
  }
}

/* --- start-up ---------------------------------------------------------------------- */

static gboolean ensure_plugin(void) {
  GstRegistry *reg = gst_registry_get();
  g_autoptr(GstPluginFeature) f = gst_registry_lookup_feature(reg, "kestreldetect");
  if (f)
    return TRUE;
  /* Run from the build tree without GST_PLUGIN_PATH. */
  const char *dirs[] = {KESTREL_BUILD_PLUGIN_DIR, KESTREL_INSTALL_PLUGIN_DIR};
  for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
    if (g_file_test(dirs[i], G_FILE_TEST_IS_DIR))
      gst_registry_scan_path(reg, dirs[i]);
    g_autoptr(GstPluginFeature) again = gst_registry_lookup_feature(reg, "kestreldetect");
    if (again)
      return TRUE;
  }
  return FALSE;
}

static gboolean have_display_hint(void) {
  return g_getenv("DISPLAY") || g_getenv("WAYLAND_DISPLAY") || g_getenv("SDL_VIDEODRIVER") ||
         g_file_test("/dev/dri/card0", G_FILE_TEST_EXISTS);
}

typedef struct {
  const char *flag, *group, *key, *fixed; /* fixed: the value for flags without an argument */
} FlagMap;

static const FlagMap flag_map[] = {
    {"--source", "source", "source", NULL},
    {"--width", "source", "width", NULL},
    {"--height", "source", "height", NULL},
    {"--fps", "source", "fps", NULL},
    {"--format", "source", "format", NULL},
    {"--loop", "source", "loop", "true"},
    {"--no-loop", "source", "loop", "false"},
    {"--exposure", "camera", "exposure", NULL},
    {"--brightness", "camera", "brightness", NULL},
    {"--model", "model", "path", NULL},
    {"--sidecar", "model", "sidecar", NULL},
    {"--threshold", "model", "threshold", NULL},
    {"--threads", "model", "threads", NULL},
    {"--interval", "model", "interval", NULL},
    {"--no-track", "model", "track", "false"},
    {"--display", "display", "mode", NULL},
    {"--fullscreen", "display", "mode", "fullscreen"},
    {"--window", "display", "mode", "window"},
    {"--headless", "display", "mode", "none"},
    {"--no-hud", "display", "hud", "false"},
    {"--no-overlay", "display", "overlay", "false"},
    {"--frames", "run", "frames", NULL},
    {"--duration", "run", "duration", NULL},
    {"--status-every", "run", "status-every", NULL},
    {"--snapshot-every", "snapshot", "every", NULL},
    {"--snapshot-dir", "snapshot", "dir", NULL},
    {"--http", "network", "http", NULL},
    {"--rtsp", "network", "rtsp-port", NULL},
};

/* Flags are applied after the config file, in the order given. */
static GPtrArray *pending_flags;

static gboolean on_flag(const gchar *name, const gchar *value, gpointer data, GError **error) {
  for (size_t i = 0; i < G_N_ELEMENTS(flag_map); i++) {
    if (strcmp(name, flag_map[i].flag))
      continue;
    g_ptr_array_add(pending_flags, g_strdup(name));
    g_ptr_array_add(pending_flags, g_strdup(flag_map[i].fixed ? flag_map[i].fixed : value));
    return TRUE;
  }
  if (!strcmp(name, "--set")) {
    g_ptr_array_add(pending_flags, g_strdup(name));
    g_ptr_array_add(pending_flags, g_strdup(value));
    return TRUE;
  }
  g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION, "unknown option %s", name);
  return FALSE;
}

static gboolean apply_flags(KioskConfig *cfg, GError **error) {
  for (guint i = 0; i + 1 < pending_flags->len; i += 2) {
    const char *name = g_ptr_array_index(pending_flags, i);
    const char *value = g_ptr_array_index(pending_flags, i + 1);
    if (!strcmp(name, "--set")) {
      /* --set group.key=value reaches every key, named or not. */
      const char *dot = strchr(value, '.'), *eq = strchr(value, '=');
      if (!dot || !eq || eq < dot) {
        g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "--set %s: expected GROUP.KEY=VALUE",
                    value);
        return FALSE;
      }
      g_autofree char *group = g_strndup(value, (gsize)(dot - value));
      g_autofree char *key = g_strndup(dot + 1, (gsize)(eq - dot - 1));
      if (!kiosk_config_set(cfg, group, key, eq + 1, "--set", error))
        return FALSE;
      continue;
    }
    for (size_t m = 0; m < G_N_ELEMENTS(flag_map); m++)
      if (!strcmp(name, flag_map[m].flag) &&
          !kiosk_config_set(cfg, flag_map[m].group, flag_map[m].key, value, name, error))
        return FALSE;
  }
  return TRUE;
}

int main(int argc, char **argv) {
  gchar *config_path = NULL, *screenshot = NULL;
  gboolean print_config = FALSE, list_cameras = FALSE, json = FALSE;
  pending_flags = g_ptr_array_new_with_free_func(g_free);

  GOptionEntry entries[] = {
      {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
       "Key file with the settings (default: ~/.config/kestrel/kestrel-kiosk.conf if present)",
       "FILE"},
      {"print-config", 0, 0, G_OPTION_ARG_NONE, &print_config,
       "Print the effective settings and exit", NULL},
      {"list-cameras", 0, 0, G_OPTION_ARG_NONE, &list_cameras,
       "List cameras, their modes and controls, and exit", NULL},
      {"json", 0, 0, G_OPTION_ARG_NONE, &json, "With --list-cameras: JSON output", NULL},
      {"source", 's', 0, G_OPTION_ARG_CALLBACK, on_flag,
       "auto, camera, /dev/videoN, a video file, or an rtsp:// http:// URL", "SOURCE"},
      {"width", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Wanted frame width", "W"},
      {"height", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Wanted frame height", "H"},
      {"fps", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Wanted camera frame rate", "N"},
      {"format", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Camera format: auto, mjpeg, yuyv, nv12",
       "F"},
      {"loop", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "Replay files", NULL},
      {"no-loop", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag,
       "Stop at the end of a file", NULL},
      {"exposure", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Camera exposure: auto or a number", "E"},
      {"brightness", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Camera brightness", "B"},
      {"model", 'm', 0, G_OPTION_ARG_CALLBACK, on_flag, "auto, none, or a model file", "FILE"},
      {"sidecar", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "The model's sidecar file", "FILE"},
      {"threshold", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Minimum confidence (0..1)", "T"},
      {"threads", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Inference threads", "N"},
      {"interval", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Run the model on every Nth frame", "N"},
      {"no-track", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "No tracker", NULL},
      {"display", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "auto, window, fullscreen or none", "MODE"},
      {"fullscreen", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "Full screen", NULL},
      {"window", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "In a window", NULL},
      {"headless", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "No display", NULL},
      {"no-hud", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag, "No HUD", NULL},
      {"no-overlay", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, on_flag,
       "Start with the overlay off", NULL},
      {"frames", 'n', 0, G_OPTION_ARG_CALLBACK, on_flag, "Stop after N frames", "N"},
      {"duration", 'd', 0, G_OPTION_ARG_CALLBACK, on_flag, "Stop after S seconds", "S"},
      {"status-every", 0, 0, G_OPTION_ARG_CALLBACK, on_flag,
       "Seconds between status lines when headless", "S"},
      {"snapshot-every", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Save every Nth frame as JPEG", "N"},
      {"snapshot-dir", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Folder for snapshots", "DIR"},
      {"http", 0, 0, G_OPTION_ARG_CALLBACK, on_flag,
       "Serve the web view, MJPEG, events and metrics on ADDR:PORT", "ADDR:PORT"},
      {"rtsp", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Serve RTSP (H.264) on PORT at /kestrel",
       "PORT"},
      {"set", 0, 0, G_OPTION_ARG_CALLBACK, on_flag, "Set any key: GROUP.KEY=VALUE",
       "GROUP.KEY=VALUE"},
      {"screenshot", 0, 0, G_OPTION_ARG_FILENAME, &screenshot,
       "At the end, save the window as PNG (and FILE.json: geometry and boxes)", "FILE"},
      {NULL, 0, 0, 0, NULL, NULL, NULL},
  };

  /* GStreamer 1.22's v4l2src "orphans" its buffer pool at every stop when
   * the driver allows it (uvcvideo does), and the orphaned pool keeps the
   * element and two poll descriptors alive for ever: a leak per reconnect.
   * Draining the pool instead frees everything. */
  g_setenv("GST_V4L2_FORCE_DRAIN", "1", FALSE);

  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new("- show a camera through the Kestrel pipeline");
  g_option_context_set_summary(
      ctx, "Runs camera (or file, or URL) -> kestreldetect -> kestreltrack -> kestreloverlay ->\n"
           "an SDL2 display. Keys: q quit, f full screen, o overlay, s snapshot, space pause.");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    g_printerr("kestrel-kiosk: %s\n", error->message);
    return 2;
  }
  g_option_context_free(ctx);

  if (list_cameras) {
    GPtrArray *cams = kiosk_cameras_enumerate();
    kiosk_cameras_print(cams, json);
    g_ptr_array_unref(cams);
    return 0;
  }

  Kiosk k = {0};
  k.cfg = kiosk_config_new();
  if (!config_path) {
    g_autofree char *user =
        g_build_filename(g_get_user_config_dir(), "kestrel", "kestrel-kiosk.conf", NULL);
    if (g_file_test(user, G_FILE_TEST_IS_REGULAR))
      config_path = g_steal_pointer(&user);
  }
  if ((config_path && !kiosk_config_load(k.cfg, config_path, &error)) ||
      !apply_flags(k.cfg, &error)) {
    g_printerr("kestrel-kiosk: %s\n", error->message);
    return 2;
  }
  if (print_config) {
    g_autofree char *text = kiosk_config_to_string(k.cfg);
    fputs(text, stdout);
    return 0;
  }

  if (!ensure_plugin()) {
    g_printerr("kestrel-kiosk: the GStreamer plugin 'kestrel' was not found (build it, or set "
               "GST_PLUGIN_PATH to the folder of libgstkestrel.so)\n");
    return 1;
  }

  g_autofree char *cache = kiosk_cache_dir();
  k.snapshot_dir = strcmp(k.cfg->snapshot_dir, "auto") ? g_strdup(k.cfg->snapshot_dir)
                                                       : g_build_filename(cache, "snapshots", NULL);
  k.overlay = k.cfg->overlay;
  k.hud = k.cfg->hud;
  k.screenshot = screenshot;
  k.track_ids = g_hash_table_new(NULL, NULL);
  k.latency_ms = g_array_new(FALSE, FALSE, sizeof(double));
  k.unlimited = k.cfg->frames == 0 && k.cfg->duration == 0;

  if (!choose_source(&k, &error)) {
    g_printerr("kestrel-kiosk: %s\n", error->message);
    return 2;
  }
  choose_model(&k);
  if (k.model_error)
    g_printerr("kestrel-kiosk: %s; the video goes on without detection\n", k.model_error);
  if (!start_network(&k, &error)) {
    g_printerr("kestrel-kiosk: %s\n", error->message);
    return 2;
  }

  /* The display: a window or full screen where there is a screen, else none. */
  const char *mode = k.cfg->display;
  if (strcmp(mode, "none") && (strcmp(mode, "auto") || have_display_hint())) {
    k.display = kiosk_display_new(!strcmp(mode, "fullscreen"), k.cfg->window_width,
                                  k.cfg->window_height, &error);
    if (!k.display) {
      if (strcmp(mode, "auto"))
        g_printerr("kestrel-kiosk: %s; running without a display\n", error->message);
      g_clear_error(&error);
    }
  }
  k.headless = k.display == NULL;

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  k.started_us = g_get_monotonic_time();
  k.state = STATE_RUNNING;
  if (k.src.kind == KIOSK_SOURCE_CAMERA && !resolve_camera(&k, k.camera_wanted, &error)) {
    enter_lost(&k, error->message);
    g_clear_error(&error);
  } else if (!start_pipeline(&k, &error)) {
    if (k.src.kind == KIOSK_SOURCE_CAMERA || k.src.kind == KIOSK_SOURCE_URL) {
      enter_lost(&k, error->message);
      g_clear_error(&error);
    } else {
      g_printerr("kestrel-kiosk: %s\n", error->message);
      return 1;
    }
  }

  printf("kestrel-kiosk: %s -> %s -> %s\n", k.mode_label,
         k.model_label ? k.model_label : "no model",
         k.display ? kiosk_display_driver(k.display) : "no display");
  if (k.headless && k.unlimited) {
    printf("kestrel-kiosk: no display here, so the kiosk runs headless. Look at %s/latest.jpg "
           "(the newest frame with its boxes, every %g s); snapshots go to %s. Stop with "
           "Ctrl-C.\n",
           k.snapshot_dir, k.cfg->status_every, k.snapshot_dir);
  }
  fflush(stdout);

  while (k.state != STATE_DONE) {
    if (stop_signal) {
      printf("kestrel-kiosk: stopping (%s)\n", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    poll_events(&k);
    poll_bus(&k);
    if (k.state == STATE_DONE)
      break;

    GstSample *sample = NULL;
    if (k.state == STATE_LOST) {
      try_reconnect(&k);
      g_usleep(20 * 1000);
    } else if (k.pipe && !k.paused) {
      GstAppSink *sink = GST_APP_SINK(kiosk_pipeline_appsink(k.pipe));
      sample = gst_app_sink_try_pull_sample(sink, PULL_TIMEOUT_NS);
      if (!sample && gst_app_sink_is_eos(sink))
        g_usleep(10 * 1000);
    } else {
      g_usleep(20 * 1000);
    }

    gboolean done = FALSE;
    if (sample) {
      on_frame(&k, sample);
      done = limits_reached(&k);
      render(&k, done ? k.screenshot : NULL);
      if (done && k.screenshot && k.display)
        write_screenshot_info(&k);
      note_latency(&k, sample);
    } else if (k.dirty || g_get_monotonic_time() - k.last_render_us > IDLE_REDRAW_US ||
               limits_reached(&k)) {
      done = limits_reached(&k);
      render(&k, done ? k.screenshot : NULL);
      if (done && k.screenshot && k.display)
        write_screenshot_info(&k);
    }
    if (k.headless && k.unlimited)
      print_status(&k);
    update_network_status(&k);
    if (done)
      break;
  }

  /* Clean stop: the pipeline to NULL (device closed, threads joined), files
   * were written whole (snapshots are renamed into place). */
  drop_pipeline(&k);
  net_http_free(k.http); /* after the pipeline: its branches fed them */
  net_rtsp_free(k.rtsp);
  print_summary(&k); /* after the stop: the counts include the last frames */
  if (k.last_sample)
    gst_sample_unref(k.last_sample);
  kiosk_display_free(k.display);
  g_hash_table_unref(k.track_ids);
  g_array_unref(k.latency_ms);
  kiosk_config_free(k.cfg);
  g_free(k.model);
  g_free(k.sidecar);
  g_free(k.model_label);
  g_free(k.model_error);
  g_free(k.mode_label);
  g_free(k.snapshot_dir);
  g_free(k.camera_wanted);
  g_free(k.src.location);
  g_free(config_path);
  g_free(screenshot);
  g_ptr_array_unref(pending_flags);
  gst_deinit();
  return k.exit_code;
}
