/* The kiosk's GStreamer pipeline, built element by element:
 *
 *   camera: v4l2src ! caps ! [jpegdec !] videoconvert ! caps(I420|NV12|YUY2)
 *   file:   uridecodebin (video only) ! videoconvert ! caps(I420|NV12|YUY2)
 *   photos: multifilesrc ! jpegdec ! videoscale ! videoconvert ! caps(I420 1280x720)
 *   then:   kestreldetect ! kestreltrack ! kestreloverlay ! appsink
 *
 * The appsink hands YUV frames to the display, which uploads them as YUV
 * textures: no RGB conversion on the CPU anywhere. videoconvert only does
 * work when a decoder gives a format the elements lack (4:2:2 JPEG). */
#include "kiosk.h"

#include <gst/app/gstappsink.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAW_FORMATS "video/x-raw, format=(string){ I420, NV12, YUY2 }"

struct KioskPipeline {
  GstElement *pipeline, *source, *convert, *detect, *overlay, *appsink;
  GstElement *tee, *publish; /* network outputs only */
  gulong probe_id;
  gint overlay_on; /* atomic: read on the streaming thread */
  GMutex lock;
  GHashTable *track_ids; /* under lock: every tracker id seen */
};

static GstElement *make(const char *factory, const char *name, GError **error) {
  GstElement *e = gst_element_factory_make(factory, name);
  if (!e)
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_PIPELINE,
                "GStreamer element '%s' is missing (install %s)", factory,
                g_str_has_prefix(factory, "kestrel")
                    ? "the kestrel plugin: build/plugins or set GST_PLUGIN_PATH"
                    : "gstreamer1.0-plugins-base/good");
  return e;
}

static void on_pad_added(GstElement *decodebin, GstPad *pad, gpointer user_data) {
  GstElement *convert = user_data;
  g_autoptr(GstPad) sink = gst_element_get_static_pad(convert, "sink");
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, NULL);
  const GstStructure *s = gst_caps_get_structure(caps, 0);
  /* The first video stream wins; audio and further video are left unlinked. */
  if (!gst_pad_is_linked(sink) && s && g_str_has_prefix(gst_structure_get_name(s), "video/"))
    gst_pad_link(pad, sink);
}

/* Strips the boxes before kestreloverlay while the overlay is off (the o
 * key): the element stays in place, so turning it back on is instant. */
static GstPadProbeReturn overlay_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data) {
  KioskPipeline *p = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMeta *meta;
  gpointer state = NULL;
  /* Tracker ids are counted here, before the o key can strip them. */
  g_mutex_lock(&p->lock);
  while ((meta = gst_buffer_iterate_meta_filtered(buf, &state,
                                                  GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstStructure *s = gst_video_region_of_interest_meta_get_param(
        (GstVideoRegionOfInterestMeta *)meta, "object_id");
    int id;
    if (s && gst_structure_get_int(s, "id", &id) && g_hash_table_size(p->track_ids) < 1000000)
      g_hash_table_add(p->track_ids, GINT_TO_POINTER(id));
  }
  g_mutex_unlock(&p->lock);
  if (g_atomic_int_get(&p->overlay_on))
    return GST_PAD_PROBE_OK;
  if (!gst_buffer_get_meta(buf, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    return GST_PAD_PROBE_OK;
  buf = gst_buffer_make_writable(buf);
  state = NULL;
  GPtrArray *gone = g_ptr_array_new();
  while ((meta = gst_buffer_iterate_meta_filtered(buf, &state,
                                                  GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    g_ptr_array_add(gone, meta);
  for (guint i = 0; i < gone->len; i++)
    gst_buffer_remove_meta(buf, g_ptr_array_index(gone, i));
  g_ptr_array_free(gone, TRUE);
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  return GST_PAD_PROBE_OK;
}

static GstCaps *camera_caps(const KioskMode *m) {
  const char *media = m->fourcc == V4L2_PIX_FMT_MJPEG ? "image/jpeg" : "video/x-raw";
  GstCaps *caps =
      gst_caps_new_simple(media, "width", G_TYPE_INT, m->width, "height", G_TYPE_INT, m->height,
                          "framerate", GST_TYPE_FRACTION, m->fps_num, m->fps_den, NULL);
  if (m->fourcc == V4L2_PIX_FMT_YUYV)
    gst_caps_set_simple(caps, "format", G_TYPE_STRING, "YUY2", NULL);
  else if (m->fourcc == V4L2_PIX_FMT_NV12)
    gst_caps_set_simple(caps, "format", G_TYPE_STRING, "NV12", NULL);
  return caps;
}

/* "c,brightness=10,exposure_auto=1,exposure_absolute=300": v4l2src applies
 * these at every open, so a camera that comes back gets them again. */
static GstStructure *camera_controls(const KioskConfig *cfg) {
  GstStructure *s = gst_structure_new_empty("c");
  if (strcmp(cfg->brightness, "default"))
    gst_structure_set(s, "brightness", G_TYPE_INT, atoi(cfg->brightness), NULL);
  if (strcmp(cfg->exposure, "auto"))
    gst_structure_set(s, "exposure_auto", G_TYPE_INT, V4L2_EXPOSURE_MANUAL, "exposure_absolute",
                      G_TYPE_INT, atoi(cfg->exposure), NULL);
  if (!gst_structure_n_fields(s)) {
    gst_structure_free(s);
    return NULL;
  }
  return s;
}

static gboolean build_source(KioskPipeline *p, const KioskConfig *cfg, const KioskSource *src,
                             GError **error) {
  GstElement *bin = p->pipeline;
  GstElement *raw_caps = make("capsfilter", "rawcaps", error);
  if (!raw_caps)
    return FALSE;
  g_autoptr(GstCaps) raw = gst_caps_from_string(RAW_FORMATS);
  g_object_set(raw_caps, "caps", raw, NULL);

  p->convert = make("videoconvert", "convert", error);
  if (!p->convert) {
    gst_object_unref(gst_object_ref_sink(raw_caps));
    return FALSE;
  }
  gst_bin_add_many(GST_BIN(bin), p->convert, raw_caps, NULL);
  if (!gst_element_link(p->convert, raw_caps))
    goto link_failed;

  switch (src->kind) {
  case KIOSK_SOURCE_CAMERA: {
    GstElement *caps = make("capsfilter", "camcaps", error);
    if (!(p->source = make("v4l2src", "source", error)) || !caps)
      return FALSE;
    GstStructure *controls = camera_controls(cfg);
    g_autoptr(GstCaps) c = camera_caps(&src->mode);
    g_object_set(p->source, "device", src->location, NULL);
    if (controls) {
      g_object_set(p->source, "extra-controls", controls, NULL);
      gst_structure_free(controls);
    }
    g_object_set(caps, "caps", c, NULL);
    gst_bin_add_many(GST_BIN(bin), p->source, caps, NULL);
    if (!gst_element_link(p->source, caps))
      goto link_failed;
    if (src->mode.fourcc == V4L2_PIX_FMT_MJPEG) {
      GstElement *dec = make("jpegdec", "decode", error);
      if (!dec)
        return FALSE;
      gst_bin_add(GST_BIN(bin), dec);
      if (!gst_element_link_many(caps, dec, p->convert, NULL))
        goto link_failed;
    } else if (!gst_element_link(caps, p->convert)) {
      goto link_failed;
    }
    break;
  }
  case KIOSK_SOURCE_FILE:
  case KIOSK_SOURCE_URL: {
    if (!(p->source = make("uridecodebin", "source", error)))
      return FALSE;
    g_autofree char *uri = NULL;
    if (src->kind == KIOSK_SOURCE_FILE) {
      g_autofree char *abs = g_canonicalize_filename(src->location, NULL);
      uri = g_filename_to_uri(abs, NULL, NULL);
    } else {
      uri = g_strdup(src->location);
    }
    g_autoptr(GstCaps) video = gst_caps_from_string("video/x-raw(ANY)");
    g_object_set(p->source, "uri", uri, "caps", video, "expose-all-streams", FALSE, NULL);
    g_signal_connect(p->source, "pad-added", G_CALLBACK(on_pad_added), p->convert);
    gst_bin_add(GST_BIN(bin), p->source);
    break;
  }
  case KIOSK_SOURCE_PHOTOS: {
    /* A slideshow of the face photos, two seconds each, when there is no
     * camera and no clip yet: the photos differ in size, so each is scaled
     * into 1280x720 with borders. */
    GstElement *dec = make("jpegdec", "decode", error);
    GstElement *scale = make("videoscale", "scale", error);
    GstElement *size = make("capsfilter", "photosize", error);
    if (!(p->source = make("multifilesrc", "source", error)) || !dec || !scale || !size)
      return FALSE;
    g_autofree char *pattern = g_build_filename(src->location, "sample%d.jpg", NULL);
    g_autoptr(GstCaps) jpeg = gst_caps_from_string("image/jpeg, framerate=(fraction)1/2");
    g_autoptr(GstCaps) sized = gst_caps_from_string(
        "video/x-raw, width=(int)1280, height=(int)720, pixel-aspect-ratio=(fraction)1/1");
    g_object_set(p->source, "location", pattern, "index", 1, "start-index", 1, "stop-index", 6,
                 "loop", TRUE, "caps", jpeg, NULL);
    g_object_set(scale, "add-borders", TRUE, NULL);
    g_object_set(size, "caps", sized, NULL);
    gst_bin_add_many(GST_BIN(bin), p->source, dec, scale, size, NULL);
    if (!gst_element_link_many(p->source, dec, scale, size, p->convert, NULL))
      goto link_failed;
    break;
  }
  }
  return TRUE;

link_failed:
  g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_PIPELINE, "could not link the %s source",
              src->kind == KIOSK_SOURCE_CAMERA ? "camera" : "video");
  return FALSE;
}

KioskPipeline *kiosk_pipeline_new(const KioskConfig *cfg, const KioskSource *src, const char *model,
                                  const char *sidecar, gboolean headless, GError **error) {
  KioskPipeline *p = g_new0(KioskPipeline, 1);
  GstCaps *raw = NULL;
  g_mutex_init(&p->lock);
  p->track_ids = g_hash_table_new(NULL, NULL);
  p->pipeline = gst_pipeline_new("kestrel-kiosk");
  p->overlay_on = cfg->overlay;
  if (!build_source(p, cfg, src, error))
    goto failed;

  GstElement *last = gst_bin_get_by_name(GST_BIN(p->pipeline), "rawcaps");
  gst_object_unref(last); /* the bin keeps it alive */
  if (model) {
    if (!(p->detect = make("kestreldetect", "detect", error)))
      goto failed;
    g_object_set(p->detect, "model", model, "message", TRUE, "threads", cfg->threads, "interval",
                 (guint)cfg->interval, "threshold", cfg->threshold, NULL);
    if (sidecar)
      g_object_set(p->detect, "config", sidecar, NULL);
    gst_bin_add(GST_BIN(p->pipeline), p->detect);
    if (!gst_element_link(last, p->detect))
      goto link_failed;
    last = p->detect;
    if (cfg->track) {
      GstElement *track = make("kestreltrack", "track", error);
      if (!track)
        goto failed;
      gst_bin_add(GST_BIN(p->pipeline), track);
      if (!gst_element_link(last, track))
        goto link_failed;
      last = track;
    }
  }
  /* Each frame's results as JSON lines, for /events and [network] publish,
   * taken before the o key can strip them. */
  gboolean web = strcmp(cfg->http, "off") != 0;
  if (web || strcmp(cfg->publish, "none")) {
    if (!(p->publish = make("kestrelmetapublish", "publish", error)))
      goto failed;
    g_object_set(p->publish, "location", cfg->publish, NULL);
    gst_bin_add(GST_BIN(p->pipeline), p->publish);
    if (!gst_element_link(last, p->publish))
      goto link_failed;
    last = p->publish;
  }
  if (!(p->overlay = make("kestreloverlay", "overlay", error)))
    goto failed;
  /* With a window the HUD is drawn by SDL (sharper, with the model and
   * camera mode); headless, the frame itself carries one for snapshots. */
  g_object_set(p->overlay, "hud", headless && cfg->hud, NULL);
  gst_bin_add(GST_BIN(p->pipeline), p->overlay);
  if (!gst_element_link(last, p->overlay))
    goto link_failed;
  {
    g_autoptr(GstPad) pad = gst_element_get_static_pad(p->overlay, "sink");
    p->probe_id = gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, overlay_probe, p, NULL);
  }

  if (!(p->appsink = make("appsink", "display", error)))
    goto failed;
  raw = gst_caps_from_string(RAW_FORMATS);
  /* Live sources: show the newest frame at once and drop what the display
   * could not take (latency over completeness). Files play at their rate. */
  g_object_set(p->appsink, "caps", raw, "sync", !src->live, "max-buffers", src->live ? 1 : 2,
               "drop", src->live, "enable-last-sample", FALSE, "qos", FALSE, NULL);
  gst_bin_add(GST_BIN(p->pipeline), p->appsink);
  gst_caps_unref(raw);
  GstElement *to_display = p->overlay;
  if (web || cfg->rtsp_port) {
    /* The display, the web view and RTSP each take the annotated frame;
     * the network branches are leaky and never hold the display back. */
    if (!(p->tee = make("tee", "network", error)))
      goto failed;
    gst_bin_add(GST_BIN(p->pipeline), p->tee);
    if (!gst_element_link(p->overlay, p->tee))
      goto link_failed;
    to_display = p->tee;
  }
  if (!gst_element_link(to_display, p->appsink))
    goto link_failed;
  return p;

link_failed:
  g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_PIPELINE, "could not link the Kestrel elements");
failed:
  kiosk_pipeline_free(p);
  return NULL;
}

void kiosk_pipeline_free(KioskPipeline *p) {
  if (!p)
    return;
  gst_element_set_state(p->pipeline, GST_STATE_NULL);
  gst_object_unref(p->pipeline);
  g_hash_table_unref(p->track_ids);
  g_mutex_clear(&p->lock);
  g_free(p);
}

GstElement *kiosk_pipeline_element(KioskPipeline *p) {
  return p->pipeline;
}

GstElement *kiosk_pipeline_appsink(KioskPipeline *p) {
  return p->appsink;
}

GstElement *kiosk_pipeline_detect(KioskPipeline *p) {
  return p->detect;
}

gboolean kiosk_pipeline_is_source(KioskPipeline *p, GstObject *obj) {
  return p->source && obj &&
         (obj == GST_OBJECT(p->source) || gst_object_has_as_ancestor(obj, GST_OBJECT(p->source)));
}

void kiosk_pipeline_set_overlay(KioskPipeline *p, gboolean on) {
  g_atomic_int_set(&p->overlay_on, on);
}

GstElement *kiosk_pipeline_tee(KioskPipeline *p) {
  return p->tee;
}

GstElement *kiosk_pipeline_publish(KioskPipeline *p) {
  return p->publish;
}

void kiosk_pipeline_collect_tracks(KioskPipeline *p, GHashTable *into) {
  GHashTableIter it;
  gpointer id;
  g_mutex_lock(&p->lock);
  g_hash_table_iter_init(&it, p->track_ids);
  while (g_hash_table_iter_next(&it, &id, NULL))
    g_hash_table_add(into, id);
  g_mutex_unlock(&p->lock);
}
