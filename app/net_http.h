/* The kiosk's live web view (libsoup 3): MJPEG, Server-Sent Events with
 * each frame's results, Prometheus metrics and a small page, served from a
 * thread of its own so that no client can ever slow the pipeline.
 *
 *   NetHttpOptions o = {.address = "127.0.0.1", .port = 8080, .mjpeg_quality = 75};
 *   NetHttp *h = net_http_new(&o, &error);          // listening from here on
 *   net_http_attach(h, GST_BIN(pipeline), tee, &error);  // video branch
 *   net_http_attach_metadata(h, metapublish);       // /events and object counts
 *   ...  net_http_note_inference(h, ms); net_http_set_status(h, &status);
 *   net_http_free(h);                               // after the pipeline is gone
 *
 * Endpoints: / (page), /app.js, /style.css, /stream.mjpg, /events, /metrics,
 * /healthz. Everything else is 404. See docs/network.md. */
#ifndef KESTREL_NET_HTTP_H
#define KESTREL_NET_HTTP_H

#include <glib.h>
#include <gst/gst.h>

typedef struct {
  const char *address; /* NULL: 127.0.0.1 */
  guint port;          /* 0: any free port (see net_http_port) */
  const char *token;   /* NULL or "": none (then loopback only) */
  int max_clients;     /* concurrent requests, streams included; 0: default */
  int mjpeg_width;     /* scale the stream to this width; 0: the frame's */
  int mjpeg_quality;   /* 1..100; 0: 75 */
  const char *web_dir; /* the page's files; NULL: $KESTREL_WEB_DIR, else the built-in paths */
} NetHttpOptions;

/* What the kiosk knows and the pipeline does not; copied on set. */
typedef struct {
  const char *camera_state; /* "running", "lost", "stopped" */
  const char *source;       /* device, file or URL */
  const char *model_path;   /* NULL: no model */
  guint64 frames_shown;     /* displayed (or handed to the headless loop) */
  guint64 inferences, inferences_dropped;
  guint64 reconnects;
} NetHttpStatus;

typedef struct NetHttp NetHttp;

NetHttp *net_http_new(const NetHttpOptions *options, GError **error);
/* Stops the server and closes every client. Call after the pipeline that
 * net_http_attach fed is in NULL state. */
void net_http_free(NetHttp *h);
guint net_http_port(NetHttp *h);

/* Adds tee ! queue(leaky, 1) ! videoscale ! videoconvert ! I420 ! appsink
 * to pipeline. The JPEG is encoded once per frame, in that branch, and only
 * while a /stream.mjpg client is connected. */
gboolean net_http_attach(NetHttp *h, GstBin *pipeline, GstElement *tee, GError **error);
/* Connects to kestrelmetapublish's "published" signal (and sets
 * emit-signals): its JSON lines feed /events, its buffers the metrics. */
void net_http_attach_metadata(NetHttp *h, GstElement *metapublish);

/* One finished inference (not a stale repeat), for the latency histogram. */
void net_http_note_inference(NetHttp *h, double ms);
void net_http_set_status(NetHttp *h, const NetHttpStatus *status);

#endif
