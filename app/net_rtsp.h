/* RTSP output of the annotated video (gst-rtsp-server), H.264 on the mount
 * point /kestrel, from a thread and GMainContext of its own.
 *
 *   NetRtspOptions o = {.port = 8554};
 *   NetRtsp *r = net_rtsp_new(&o, &error);             // rtsp://127.0.0.1:8554/kestrel
 *   net_rtsp_attach(r, GST_BIN(pipeline), tee, &error); // per pipeline (re)build
 *   net_rtsp_free(r);                                  // after the pipeline is gone
 *
 * Frames cross from the kiosk's pipeline into the server's media pipeline
 * through appsink -> appsrc, both leaky: the encoder runs only while a
 * client watches, and a slow encoder or client never holds the kiosk back.
 * With a token ([network] token) clients authenticate with
 * "Authorization: Bearer TOKEN", ?token=TOKEN, or Basic with the token as
 * password (rtsp://kestrel:TOKEN@host:port/kestrel, for players that only
 * speak Basic). */
#ifndef KESTREL_NET_RTSP_H
#define KESTREL_NET_RTSP_H

#include <glib.h>
#include <gst/gst.h>

#define NET_RTSP_MOUNT "/kestrel"

typedef struct {
  const char *address; /* NULL: 127.0.0.1 */
  guint port;          /* 0: any free port (see net_rtsp_port) */
  const char *token;   /* NULL or "": none (then loopback only) */
  int max_clients;     /* 0: default */
  int bitrate_kbps;    /* 0: 2000 */
} NetRtspOptions;

typedef struct NetRtsp NetRtsp;

NetRtsp *net_rtsp_new(const NetRtspOptions *options, GError **error);
void net_rtsp_free(NetRtsp *r);
guint net_rtsp_port(NetRtsp *r);
/* The H.264 encoder in use: "x264enc" or "openh264enc". */
const char *net_rtsp_encoder(NetRtsp *r);
/* Adds tee ! queue(leaky) ! appsink to pipeline; its frames feed the
 * clients' media. */
gboolean net_rtsp_attach(NetRtsp *r, GstBin *pipeline, GstElement *tee, GError **error);

#endif
