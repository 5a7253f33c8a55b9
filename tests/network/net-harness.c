/* A small pipeline with the kiosk's network outputs, for the network tests
 * and benchmarks/http-load.sh: source [! kestreldetect ! kestreltrack]
 * ! kestrelmetapublish ! kestreloverlay ! tee ! fakesink, with the HTTP and
 * RTSP servers of app/net_*.c attached exactly as the kiosk attaches them.
 *
 *   net-harness --http 127.0.0.1:0 --rtsp 0 [--source FILE] [--model M]
 *               [--token T] [--max-clients N] [--duration S]
 *
 * Prints "http-port N" / "rtsp-port N" once listening, and at the end
 * "frames N seconds S fps F" measured at the tee. */
#include "net_auth.h"
#include "net_http.h"
#include "net_rtsp.h"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static GMainLoop *loop;
static NetHttp *http;
static guint64 frames;
static gint64 first_us, last_us;

static GstPadProbeReturn count_frame(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  gint64 now = g_get_monotonic_time();
  if (!frames)
    first_us = now;
  last_us = now;
  frames++;
  return GST_PAD_PROBE_OK;
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data) {
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    double ms;
    gboolean stale = FALSE;
    if (http && s && gst_structure_has_name(s, "kestrel-inference") &&
        gst_structure_get_double(s, "inference-ms", &ms)) {
      gst_structure_get_boolean(s, "stale", &stale);
      if (!stale)
        net_http_note_inference(http, ms);
    }
    break;
  }
  case GST_MESSAGE_ERROR: {
    GError *err = NULL;
    gst_message_parse_error(msg, &err, NULL);
    g_printerr("net-harness: error: %s\n", err->message);
    g_error_free(err);
    g_main_loop_quit(loop);
    break;
  }
  case GST_MESSAGE_EOS:
    g_main_loop_quit(loop);
    break;
  default:
    break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean on_stop(gpointer data) {
  g_main_loop_quit(loop);
  return G_SOURCE_REMOVE;
}

int main(int argc, char **argv) {
  gchar *http_spec = NULL, *source = NULL, *model = NULL, *sidecar = NULL, *token = NULL;
  gint rtsp_port = -1, max_clients = 0, mjpeg_width = 640, quality = 75, fps = 30;
  gint width = 640, height = 360;
  gdouble duration = 0;
  gboolean no_sync = FALSE;
  GOptionEntry entries[] = {
      {"http", 0, 0, G_OPTION_ARG_STRING, &http_spec, "Serve HTTP on ADDR:PORT", "ADDR:PORT"},
      {"rtsp", 0, 0, G_OPTION_ARG_INT, &rtsp_port, "Serve RTSP on PORT (0: any)", "PORT"},
      {"token", 0, 0, G_OPTION_ARG_STRING, &token, "Access token", "T"},
      {"max-clients", 0, 0, G_OPTION_ARG_INT, &max_clients, "Client cap", "N"},
      {"mjpeg-width", 0, 0, G_OPTION_ARG_INT, &mjpeg_width, "MJPEG width (0: frame's)", "W"},
      {"quality", 0, 0, G_OPTION_ARG_INT, &quality, "JPEG quality", "Q"},
      {"source", 0, 0, G_OPTION_ARG_FILENAME, &source, "A video file (default: test pattern)",
       "FILE"},
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "Detection model", "FILE"},
      {"sidecar", 0, 0, G_OPTION_ARG_FILENAME, &sidecar, "The model's sidecar", "FILE"},
      {"width", 0, 0, G_OPTION_ARG_INT, &width, "Test pattern width", "W"},
      {"height", 0, 0, G_OPTION_ARG_INT, &height, "Test pattern height", "H"},
      {"fps", 0, 0, G_OPTION_ARG_INT, &fps, "Test pattern rate", "N"},
      {"no-sync", 0, 0, G_OPTION_ARG_NONE, &no_sync, "Run as fast as possible", NULL},
      {"duration", 0, 0, G_OPTION_ARG_DOUBLE, &duration, "Stop after S seconds", "S"},
      {NULL, 0, 0, 0, NULL, NULL, NULL},
  };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new("- kiosk network outputs on a test pipeline");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    g_printerr("net-harness: %s\n", error->message);
    return 2;
  }
  g_option_context_free(ctx);

  GString *desc = g_string_new(NULL);
  if (source)
    g_string_append_printf(desc,
                           "filesrc location=\"%s\" ! decodebin ! videoconvert ! "
                           "video/x-raw,format=I420 ! ",
                           source);
  else
    g_string_append_printf(desc,
                           "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,"
                           "width=%d,height=%d,framerate=%d/1 ! ",
                           width, height, fps);
  if (model) {
    g_string_append_printf(desc, "kestreldetect model=\"%s\" message=true ", model);
    if (sidecar)
      g_string_append_printf(desc, "config=\"%s\" ", sidecar);
    g_string_append(desc, "! kestreltrack ! ");
  }
  g_string_append_printf(desc, "kestrelmetapublish name=publish location=none ! "
                               "kestreloverlay ! tee name=tee ! queue ! fakesink name=display "
                               "sync=%s",
                         no_sync ? "false" : "true");
  GstElement *pipeline = gst_parse_launch(desc->str, &error);
  g_string_free(desc, TRUE);
  if (!pipeline) {
    g_printerr("net-harness: %s\n", error->message);
    return 1;
  }
  GstElement *tee = gst_bin_get_by_name(GST_BIN(pipeline), "tee");
  GstElement *publish = gst_bin_get_by_name(GST_BIN(pipeline), "publish");
  NetRtsp *rtsp = NULL;
  if (http_spec) {
    NetHttpOptions o = {0};
    char *addr = NULL;
    guint port = 0;
    if (!net_parse_listen(http_spec, &addr, &port, &error)) {
      g_printerr("net-harness: --http %s\n", error->message);
      return 2;
    }
    o.address = addr;
    o.port = port;
    o.token = token;
    o.max_clients = max_clients;
    o.mjpeg_width = mjpeg_width;
    o.mjpeg_quality = quality;
    http = net_http_new(&o, &error);
    g_free(addr);
    if (!http || !net_http_attach(http, GST_BIN(pipeline), tee, &error)) {
      g_printerr("net-harness: %s\n", error->message);
      return 1;
    }
    net_http_attach_metadata(http, publish);
    NetHttpStatus st = {.camera_state = "running",
                        .source = source ? source : "videotestsrc",
                        .model_path = model};
    net_http_set_status(http, &st);
    printf("http-port %u\n", net_http_port(http));
  }
  if (rtsp_port >= 0) {
    NetRtspOptions o = {.port = (guint)rtsp_port, .token = token, .max_clients = max_clients};
    rtsp = net_rtsp_new(&o, &error);
    if (!rtsp || !net_rtsp_attach(rtsp, GST_BIN(pipeline), tee, &error)) {
      g_printerr("net-harness: %s\n", error->message);
      return 1;
    }
    printf("rtsp-port %u encoder %s\n", net_rtsp_port(rtsp), net_rtsp_encoder(rtsp));
  }
  fflush(stdout);
  GstPad *pad = gst_element_get_static_pad(tee, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, count_frame, NULL, NULL);
  gst_object_unref(pad);

  loop = g_main_loop_new(NULL, FALSE);
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_bus_add_watch(bus, on_bus, NULL);
  gst_object_unref(bus);
  g_unix_signal_add(SIGINT, on_stop, NULL);
  g_unix_signal_add(SIGTERM, on_stop, NULL);
  if (duration > 0)
    g_timeout_add((guint)(duration * 1000), on_stop, NULL);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  g_main_loop_run(loop);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  double secs = (double)(last_us - first_us) / G_USEC_PER_SEC;
  printf("frames %" G_GUINT64_FORMAT " seconds %.3f fps %.3f\n", frames, secs,
         secs > 0 ? (double)(frames - 1) / secs : 0.0);
  gst_object_unref(tee);
  gst_object_unref(publish);
  gst_object_unref(pipeline);
  net_http_free(http);
  net_rtsp_free(rtsp);
  g_free(http_spec);
  g_free(source);
  g_free(model);
  g_free(sidecar);
  g_free(token);
  return 0;
}
