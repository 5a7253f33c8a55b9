/* RTSP output: gst-rtsp-server with one shared media on /kestrel whose
 * pipeline starts at an appsrc fed from the kiosk's pipeline. See
 * net_rtsp.h for the why of the split. */
#include "net_rtsp.h"

#include "net_auth.h"

#include <gio/gio.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <string.h>

#define DEFAULT_BITRATE_KBPS 2000
/* Frames between key frames: a new client waits at most this long. */
#define KEY_INTERVAL 30
#define ROLE "viewer"

/* --- authentication: Bearer, ?token= or Basic, through net_auth ------------ */

typedef struct {
  GstRTSPAuth parent;
  NetAuth *rules;       /* borrowed from the NetRtsp */
  GstRTSPToken *token;  /* what an authenticated client gets */
} NetRtspAuth;

typedef struct {
  GstRTSPAuthClass parent_class;
} NetRtspAuthClass;

static GType net_rtsp_auth_get_type(void);
G_DEFINE_TYPE(NetRtspAuth, net_rtsp_auth, GST_TYPE_RTSP_AUTH)

/* Leaves ctx->token unset on failure: the base class then answers 401 with
 * a Basic challenge, which is what makes players ask for the password. */
static gboolean net_rtsp_auth_authenticate(GstRTSPAuth *auth, GstRTSPContext *ctx) {
  NetRtspAuth *self = (NetRtspAuth *)auth;
  gchar *authorization = NULL; /* owned by the message */
  if (ctx->request)
    gst_rtsp_message_get_header(ctx->request, GST_RTSP_HDR_AUTHORIZATION, &authorization, 0);
  g_autofree char *query_token = net_query_token(ctx->uri ? ctx->uri->query : NULL);
  /* Players build the SETUP and PLAY URLs from the stream's control URL,
   * which loses a ?token= given to DESCRIBE: a connection that has shown
   * the token once stays authenticated (it is the same peer). */
  gboolean known = ctx->client && g_object_get_data(G_OBJECT(ctx->client), "kestrel-authenticated");
  if (known || net_auth_check(self->rules, authorization, query_token) == NET_AUTH_OK) {
    ctx->token = self->token; /* borrowed, as the base class does */
    if (ctx->client)
      g_object_set_data(G_OBJECT(ctx->client), "kestrel-authenticated", GINT_TO_POINTER(1));
  }
  return TRUE;
}

static void net_rtsp_auth_finalize(GObject *object) {
  NetRtspAuth *self = (NetRtspAuth *)object;
  gst_rtsp_token_unref(self->token);
  G_OBJECT_CLASS(net_rtsp_auth_parent_class)->finalize(object);
}

static void net_rtsp_auth_class_init(NetRtspAuthClass *klass) {
  GST_RTSP_AUTH_CLASS(klass)->authenticate = net_rtsp_auth_authenticate;
  G_OBJECT_CLASS(klass)->finalize = net_rtsp_auth_finalize;
}

static void net_rtsp_auth_init(NetRtspAuth *self) {
  self->token = gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, ROLE, NULL);
}

/* --- the server ----------------------------------------------------------------- */

struct NetRtsp {
  NetAuth *auth;
  int max_clients, bitrate_kbps;
  const char *encoder;
  guint port;

  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GstRTSPServer *server;
  GSource *source;
  int clients; /* server thread only */

  GMutex lock; /* guards appsrc and caps */
  GstElement *appsrc;
  GstCaps *caps;
};

static const char *pick_encoder(void) {
  const char *candidates[] = {"x264enc", "openh264enc"};
  for (size_t i = 0; i < G_N_ELEMENTS(candidates); i++) {
    GstElementFactory *f = gst_element_factory_find(candidates[i]);
    if (f) {
      gst_object_unref(f);
      return candidates[i];
    }
  }
  return NULL;
}

static char *launch_line(const NetRtsp *r) {
  /* The appsrc holds two frames at most and drops the older: a busy encoder
   * skips frames instead of queueing them. */
  const char *head = "( appsrc name=videosrc is-live=true format=time block=false "
                     "max-buffers=2 leaky-type=downstream "
                     "! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream "
                     "! videoconvert ! video/x-raw,format=I420 ! ";
  if (!strcmp(r->encoder, "x264enc"))
    return g_strdup_printf("%s x264enc tune=zerolatency speed-preset=ultrafast bitrate=%d "
                           "key-int-max=%d ! video/x-h264,profile=constrained-baseline "
                           "! rtph264pay name=pay0 pt=96 config-interval=-1 )",
                           head, r->bitrate_kbps, KEY_INTERVAL);
  return g_strdup_printf("%s openh264enc bitrate=%d gop-size=%d complexity=low usage-type=camera "
                         "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
                         head, r->bitrate_kbps * 1000, KEY_INTERVAL);
}

static void on_media_unprepared(GstRTSPMedia *media, gpointer data) {
  NetRtsp *r = data;
  GstElement *bin = gst_rtsp_media_get_element(media);
  GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "videosrc");
  g_mutex_lock(&r->lock);
  if (src && r->appsrc == src)
    gst_clear_object(&r->appsrc);
  g_mutex_unlock(&r->lock);
  if (src)
    gst_object_unref(src);
  gst_object_unref(bin);
}

/* A client asked for the stream: the media pipeline exists; remember its
 * appsrc so that frames flow into it. */
static void on_media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer data) {
  NetRtsp *r = data;
  GstElement *bin = gst_rtsp_media_get_element(media);
  GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "videosrc");
  gst_object_unref(bin);
  if (!src)
    return;
  g_mutex_lock(&r->lock);
  if (r->caps)
    gst_app_src_set_caps(GST_APP_SRC(src), r->caps);
  gst_clear_object(&r->appsrc);
  r->appsrc = src; /* takes the reference */
  g_mutex_unlock(&r->lock);
  g_signal_connect(media, "unprepared", G_CALLBACK(on_media_unprepared), r);
}

static void on_client_closed(GstRTSPClient *client, gpointer data) {
  NetRtsp *r = data;
  r->clients--;
}

static GstRTSPStatusCode refuse_if_over_cap(GstRTSPClient *client, GstRTSPContext *ctx,
                                            gpointer data) {
  return g_object_get_data(G_OBJECT(client), "kestrel-over-cap")
             ? GST_RTSP_STS_SERVICE_UNAVAILABLE
             : GST_RTSP_STS_OK;
}

static void on_client_connected(GstRTSPServer *server, GstRTSPClient *client, gpointer data) {
  NetRtsp *r = data;
  r->clients++;
  g_signal_connect(client, "closed", G_CALLBACK(on_client_closed), r);
  if (r->clients > r->max_clients) {
    /* Answered 503 from its first DESCRIBE or SETUP on. */
    g_object_set_data(G_OBJECT(client), "kestrel-over-cap", GINT_TO_POINTER(1));
    g_signal_connect(client, "pre-describe-request", G_CALLBACK(refuse_if_over_cap), r);
    g_signal_connect(client, "pre-setup-request", G_CALLBACK(refuse_if_over_cap), r);
  }
}

static gpointer run_thread(gpointer data) {
  NetRtsp *r = data;
  g_main_context_push_thread_default(r->context);
  g_main_loop_run(r->loop);
  g_main_context_pop_thread_default(r->context);
  return NULL;
}

NetRtsp *net_rtsp_new(const NetRtspOptions *o, GError **error) {
  NetAuth *auth = net_auth_new(o->address, o->token, error);
  if (!auth)
    return NULL;
  NetRtsp *r = g_new0(NetRtsp, 1);
  r->auth = auth;
  r->max_clients = o->max_clients > 0 ? o->max_clients : NET_DEFAULT_MAX_CLIENTS;
  r->bitrate_kbps = o->bitrate_kbps > 0 ? o->bitrate_kbps : DEFAULT_BITRATE_KBPS;
  g_mutex_init(&r->lock);
  r->encoder = pick_encoder();
  if (!r->encoder) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "RTSP needs an H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc) or "
                "gstreamer1.0-plugins-bad (openh264enc)");
    net_rtsp_free(r);
    return NULL;
  }

  r->server = gst_rtsp_server_new();
  g_autofree char *service = g_strdup_printf("%u", o->port);
  gst_rtsp_server_set_address(r->server, net_auth_address(auth));
  gst_rtsp_server_set_service(r->server, service);
  g_signal_connect(r->server, "client-connected", G_CALLBACK(on_client_connected), r);

  GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();
  g_autofree char *launch = launch_line(r);
  gst_rtsp_media_factory_set_launch(factory, launch);
  /* One encoder for all clients. */
  gst_rtsp_media_factory_set_shared(factory, TRUE);
  gst_rtsp_media_factory_set_latency(factory, 0);
  g_signal_connect(factory, "media-configure", G_CALLBACK(on_media_configure), r);
  if (net_auth_required(auth)) {
    NetRtspAuth *ra = g_object_new(net_rtsp_auth_get_type(), NULL);
    ra->rules = auth;
    gst_rtsp_auth_set_supported_methods(GST_RTSP_AUTH(ra), GST_RTSP_AUTH_BASIC);
    gst_rtsp_media_factory_add_role(factory, ROLE, GST_RTSP_PERM_MEDIA_FACTORY_ACCESS,
                                    G_TYPE_BOOLEAN, TRUE, GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
                                    G_TYPE_BOOLEAN, TRUE, NULL);
    gst_rtsp_server_set_auth(r->server, GST_RTSP_AUTH(ra));
    g_object_unref(ra);
  }
  GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(r->server);
  gst_rtsp_mount_points_add_factory(mounts, NET_RTSP_MOUNT, factory); /* takes factory */
  g_object_unref(mounts);

  r->source = gst_rtsp_server_create_source(r->server, NULL, error);
  if (!r->source) {
    g_prefix_error(error, "RTSP server on %s:%u: ", net_auth_address(auth), o->port);
    net_rtsp_free(r);
    return NULL;
  }
  r->port = (guint)gst_rtsp_server_get_bound_port(r->server);
  r->context = g_main_context_new();
  r->loop = g_main_loop_new(r->context, FALSE);
  g_source_attach(r->source, r->context);
  r->thread = g_thread_new("kestrel-rtsp", run_thread, r);
  return r;
}

static GstRTSPFilterResult close_client(GstRTSPServer *server, GstRTSPClient *client,
                                        gpointer data) {
  return GST_RTSP_FILTER_REMOVE;
}

static gboolean stop_in_thread(gpointer data) {
  NetRtsp *r = data;
  g_source_destroy(r->source);
  gst_rtsp_server_client_filter(r->server, close_client, NULL);
  g_main_loop_quit(r->loop);
  return G_SOURCE_REMOVE;
}

void net_rtsp_free(NetRtsp *r) {
  if (!r)
    return;
  if (r->thread) {
    g_main_context_invoke(r->context, stop_in_thread, r);
    g_thread_join(r->thread);
    /* Media pipelines shut down through the context: let them. */
    g_main_context_push_thread_default(r->context);
    while (g_main_context_iteration(r->context, FALSE))
      ;
    g_main_context_pop_thread_default(r->context);
  }
  if (r->source)
    g_source_unref(r->source);
  g_clear_object(&r->server);
  if (r->loop)
    g_main_loop_unref(r->loop);
  if (r->context)
    g_main_context_unref(r->context);
  gst_clear_object(&r->appsrc);
  gst_clear_caps(&r->caps);
  g_mutex_clear(&r->lock);
  net_auth_free(r->auth);
  g_free(r);
}

guint net_rtsp_port(NetRtsp *r) {
  return r->port;
}

const char *net_rtsp_encoder(NetRtsp *r) {
  return r->encoder;
}

/* --- the branch in the kiosk's pipeline ----------------------------------------- */

/* Streaming thread of the branch: hands the frame to the media's appsrc,
 * stamped with the media pipeline's running time (its clock, not ours). */
static GstFlowReturn on_sample(GstAppSink *sink, gpointer data) {
  NetRtsp *r = data;
  GstSample *sample = gst_app_sink_pull_sample(sink);
  if (!sample)
    return GST_FLOW_EOS;
  GstCaps *caps = gst_sample_get_caps(sample);
  GstElement *src = NULL;
  g_mutex_lock(&r->lock);
  gboolean new_caps = caps && (!r->caps || !gst_caps_is_equal(caps, r->caps));
  if (new_caps)
    gst_caps_replace(&r->caps, caps);
  if (r->appsrc)
    src = gst_object_ref(r->appsrc);
  g_mutex_unlock(&r->lock);
  if (!src)
    goto done; /* nobody watching */
  if (new_caps)
    gst_app_src_set_caps(GST_APP_SRC(src), caps);
  GstClock *clock = gst_element_get_clock(src);
  if (clock) {
    GstClockTime now = gst_clock_get_time(clock);
    GstClockTime base = gst_element_get_base_time(src);
    gst_object_unref(clock);
    if (now >= base) {
      /* A shallow copy: the memory is shared, only the stamps differ. */
      GstBuffer *buf = gst_buffer_copy(gst_sample_get_buffer(sample));
      GST_BUFFER_PTS(buf) = now - base;
      GST_BUFFER_DTS(buf) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_DURATION(buf) = GST_CLOCK_TIME_NONE;
      gst_app_src_push_buffer(GST_APP_SRC(src), buf);
    }
  }
  gst_object_unref(src);
done:
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

gboolean net_rtsp_attach(NetRtsp *r, GstBin *pipeline, GstElement *tee, GError **error) {
  GstElement *queue = gst_element_factory_make("queue", NULL);
  GstElement *sink = gst_element_factory_make("appsink", NULL);
  if (!queue || !sink) {
    if (queue)
      gst_object_unref(gst_object_ref_sink(queue));
    if (sink)
      gst_object_unref(gst_object_ref_sink(sink));
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "GStreamer elements queue/appsink are missing (gstreamer1.0-plugins-base)");
    return FALSE;
  }
  g_object_set(queue, "max-size-buffers", 1, "max-size-bytes", 0, "max-size-time", (guint64)0,
               "leaky", 2, NULL);
  g_object_set(sink, "sync", FALSE, "async", FALSE, "max-buffers", 1, "drop", TRUE,
               "enable-last-sample", FALSE, "qos", FALSE, NULL);
  GstAppSinkCallbacks callbacks = {.new_sample = on_sample};
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, r, NULL);
  gst_bin_add_many(pipeline, queue, sink, NULL);
  GstPad *src = gst_element_request_pad_simple(tee, "src_%u");
  GstPad *sinkpad = gst_element_get_static_pad(queue, "sink");
  gboolean ok = src && gst_pad_link(src, sinkpad) == GST_PAD_LINK_OK &&
                gst_element_link(queue, sink);
  gst_object_unref(sinkpad);
  if (src)
    gst_object_unref(src);
  if (!ok) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "could not link the RTSP branch");
    return FALSE;
  }
  gst_element_sync_state_with_parent(sink);
  gst_element_sync_state_with_parent(queue);
  return TRUE;
}
