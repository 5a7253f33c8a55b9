/* The live web view: a libsoup 3 server on a thread and GMainContext of its
 * own. Frames and results come from GStreamer threads into one "latest"
 * slot each, so a stalled network thread can never hold more than a frame
 * and a few events, and a stalled client never holds more than two frames. */
#include "net_http.h"

#include "net_auth.h"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <libsoup/soup.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <turbojpeg.h>

#define BOUNDARY "kestrelframe"
#define DEFAULT_QUALITY 75
/* Events waiting for the network thread, and for one client: at 30 fps a
 * client that falls half a second behind starts losing the oldest. */
#define PENDING_EVENTS_MAX 32
#define CLIENT_EVENTS_MAX 16
#define FPS_WINDOW 64
#define STREAM_SNDBUF (256 * 1024)
#define LABELS_MAX 256 /* distinct labels kept for the metrics */

static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,   0.25,   0.5,   1.0,  2.5};
#define N_BUCKETS G_N_ELEMENTS(latency_buckets)

typedef enum { CLIENT_MJPEG, CLIENT_EVENTS } ClientKind;

typedef struct {
  NetHttp *h;
  SoupServerMessage *msg;
  ClientKind kind;
  gboolean in_flight; /* a chunk is appended and not yet written to the socket */
  gboolean paused;
  GBytes *next_frame; /* MJPEG: the newest frame not sent yet */
  GQueue events;      /* SSE: GBytes, at most CLIENT_EVENTS_MAX */
} Client;

typedef struct {
  char *label;
  int now;
  guint64 total;
} LabelCount;

struct NetHttp {
  NetAuth *auth;
  int max_clients, mjpeg_width, quality;
  guint port;
  GBytes *page, *script, *style;

  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  SoupServer *server;

  /* network thread only */
  GList *clients;
  int active_requests;

  /* any thread */
  gint mjpeg_clients, event_clients; /* atomic */
  GMutex lock;                       /* guards everything below */
  GBytes *latest_frame;
  GQueue pending_events;
  gboolean dispatch_scheduled;
  gint64 started_us;
  guint64 frames_total, frames_encoded, frames_sent, frames_dropped_clients, events_dropped;
  guint64 frames_dropped_display;
  gint64 frame_times[FPS_WINDOW];
  guint64 buckets[N_BUCKETS + 1];
  double latency_sum;
  guint64 latency_count;
  GArray *labels; /* LabelCount */
  int width, height;
  char *camera_state, *source, *model_path, *model_name, *model_sha256;
  guint64 frames_shown, inferences, inferences_dropped, reconnects;
  gboolean have_status;
};

/* --- the page's files -------------------------------------------------------- */

static char *find_web_dir(const char *wanted) {
  const char *env = g_getenv("KESTREL_WEB_DIR");
  const char *candidates[4] = {wanted, env, NULL, NULL};
  /* The kiosk knows where the models' assets are; the page sits beside them. */
#ifdef KESTREL_SOURCE_ASSETS
  g_autofree char *src_parent = g_path_get_dirname(KESTREL_SOURCE_ASSETS);
  g_autofree char *source = g_build_filename(src_parent, "web", NULL);
  candidates[2] = source;
#endif
#ifdef KESTREL_DATADIR
  g_autofree char *data_parent = g_path_get_dirname(KESTREL_DATADIR);
  g_autofree char *installed = g_build_filename(data_parent, "web", NULL);
  candidates[3] = installed;
#endif
  for (size_t i = 0; i < G_N_ELEMENTS(candidates); i++) {
    if (!candidates[i] || !*candidates[i])
      continue;
    g_autofree char *index = g_build_filename(candidates[i], "index.html", NULL);
    if (g_file_test(index, G_FILE_TEST_IS_REGULAR))
      return g_strdup(candidates[i]);
  }
  return NULL;
}

static GBytes *read_web_file(const char *dir, const char *name) {
  g_autofree char *path = g_build_filename(dir, name, NULL);
  char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &data, &len, NULL))
    return NULL;
  return g_bytes_new_take(data, len);
}

/* --- clients ------------------------------------------------------------------- */

static void client_feed(Client *c) {
  if (c->in_flight)
    return;
  GBytes *next = NULL;
  if (c->kind == CLIENT_MJPEG) {
    next = c->next_frame;
    c->next_frame = NULL;
  } else {
    next = g_queue_pop_head(&c->events);
  }
  if (!next) {
    /* Nothing to say: libsoup stops writing until there is. */
    if (!c->paused) {
      soup_server_message_pause(c->msg);
      c->paused = TRUE;
    }
    return;
  }
  soup_message_body_append_bytes(soup_server_message_get_response_body(c->msg), next);
  g_bytes_unref(next);
  c->in_flight = TRUE;
  if (c->kind == CLIENT_MJPEG) {
    g_mutex_lock(&c->h->lock);
    c->h->frames_sent++;
    g_mutex_unlock(&c->h->lock);
  }
  if (c->paused) {
    soup_server_message_unpause(c->msg);
    c->paused = FALSE;
  }
}

static void on_wrote_chunk(SoupServerMessage *msg, gpointer data) {
  Client *c = data;
  c->in_flight = FALSE;
  client_feed(c);
}

static void client_free(Client *c) {
  if (c->next_frame)
    g_bytes_unref(c->next_frame);
  g_queue_clear_full(&c->events, (GDestroyNotify)g_bytes_unref);
  g_free(c);
}

static void on_client_finished(SoupServerMessage *msg, gpointer data) {
  Client *c = data;
  NetHttp *h = c->h;
  h->clients = g_list_remove(h->clients, c);
  g_atomic_int_add(c->kind == CLIENT_MJPEG ? &h->mjpeg_clients : &h->event_clients, -1);
  g_signal_handlers_disconnect_by_data(msg, c);
  client_free(c);
}

/* Runs on the network thread: hands the newest frame and the waiting
 * events to every client. A client still writing the previous frame gets
 * the new one in its single slot, replacing (dropping) any older one. */
static gboolean dispatch(gpointer data) {
  NetHttp *h = data;
  GQueue events = G_QUEUE_INIT;
  g_mutex_lock(&h->lock);
  GBytes *frame = h->latest_frame;
  h->latest_frame = NULL;
  while (!g_queue_is_empty(&h->pending_events))
    g_queue_push_tail(&events, g_queue_pop_head(&h->pending_events));
  h->dispatch_scheduled = FALSE;
  g_mutex_unlock(&h->lock);

  guint64 dropped = 0, events_dropped = 0;
  for (GList *l = h->clients; l; l = l->next) {
    Client *c = l->data;
    if (c->kind == CLIENT_MJPEG && frame) {
      if (c->next_frame) {
        g_bytes_unref(c->next_frame);
        dropped++;
      }
      c->next_frame = g_bytes_ref(frame);
    } else if (c->kind == CLIENT_EVENTS) {
      for (GList *e = events.head; e; e = e->next) {
        g_queue_push_tail(&c->events, g_bytes_ref(e->data));
        if (c->events.length > CLIENT_EVENTS_MAX) {
          g_bytes_unref(g_queue_pop_head(&c->events));
          events_dropped++;
        }
      }
    }
    client_feed(c);
  }
  if (frame)
    g_bytes_unref(frame);
  g_queue_clear_full(&events, (GDestroyNotify)g_bytes_unref);
  if (dropped || events_dropped) {
    g_mutex_lock(&h->lock);
    h->frames_dropped_clients += dropped;
    h->events_dropped += events_dropped;
    g_mutex_unlock(&h->lock);
  }
  return G_SOURCE_REMOVE;
}

static void schedule_dispatch_locked(NetHttp *h) {
  if (h->dispatch_scheduled)
    return;
  h->dispatch_scheduled = TRUE;
  GSource *s = g_idle_source_new();
  g_source_set_priority(s, G_PRIORITY_DEFAULT);
  g_source_set_callback(s, dispatch, h, NULL);
  g_source_attach(s, h->context);
  g_source_unref(s);
}

static void start_stream(NetHttp *h, SoupServerMessage *msg, ClientKind kind) {
  SoupMessageHeaders *headers = soup_server_message_get_response_headers(msg);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_replace(headers, "Content-Type",
                               kind == CLIENT_MJPEG
                                   ? "multipart/x-mixed-replace; boundary=" BOUNDARY
                                   : "text/event-stream; charset=utf-8");
  soup_message_headers_replace(headers, "Cache-Control", "no-cache, no-store");
  soup_message_headers_replace(headers, "X-Content-Type-Options", "nosniff");
  if (!strcmp(soup_server_message_get_method(msg), "HEAD"))
    return;
  soup_message_headers_set_encoding(headers, SOUP_ENCODING_CHUNKED);
  /* Written chunks are dropped at once: memory stays at what is queued. */
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);

  /* The kernel's send buffer is a queue too, and autotuning lets it grow
   * to megabytes: a stalled viewer would then see seconds-old frames when
   * it wakes. A fixed 256 KiB still carries 30 fps of large JPEGs easily. */
  GSocket *sock = soup_server_message_get_socket(msg);
  if (sock)
    g_socket_set_option(sock, SOL_SOCKET, SO_SNDBUF, STREAM_SNDBUF, NULL);

  Client *c = g_new0(Client, 1);
  c->h = h;
  c->msg = msg;
  c->kind = kind;
  g_queue_init(&c->events);
  h->clients = g_list_prepend(h->clients, c);
  g_atomic_int_add(kind == CLIENT_MJPEG ? &h->mjpeg_clients : &h->event_clients, 1);
  g_signal_connect(msg, "wrote-chunk", G_CALLBACK(on_wrote_chunk), c);
  g_signal_connect(msg, "finished", G_CALLBACK(on_client_finished), c);
  if (kind == CLIENT_EVENTS) {
    /* Browsers reconnect after this many ms if the stream breaks. */
    c->in_flight = TRUE;
    soup_message_body_append(soup_server_message_get_response_body(msg), SOUP_MEMORY_STATIC,
                             "retry: 1000\n\n", 13);
  } else {
    client_feed(c); /* pauses until the first frame */
  }
}

/* --- metrics ------------------------------------------------------------------- */

static void prom_escape(GString *out, const char *s) {
  for (const char *p = s ? s : ""; *p; p++) {
    if (*p == '\\')
      g_string_append(out, "\\\\");
    else if (*p == '"')
      g_string_append(out, "\\\"");
    else if (*p == '\n')
      g_string_append(out, "\\n");
    else
      g_string_append_c(out, *p);
  }
}

static void prom_head(GString *out, const char *name, const char *type, const char *help) {
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_value(GString *out, const char *name, double v) {
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  /* Whole counts print whole; the rest with enough digits, C locale. */
  if (v == floor(v) && fabs(v) < 1e15)
    g_string_append_printf(out, "%s %.0f\n", name, v);
  else
    g_string_append_printf(out, "%s %s\n", name, g_ascii_formatd(buf, sizeof buf, "%.6f", v));
}

static double fps_locked(NetHttp *h) {
  guint64 n = MIN(h->frames_total, (guint64)FPS_WINDOW);
  if (n < 2)
    return 0.0;
  gint64 newest = h->frame_times[(h->frames_total - 1) % FPS_WINDOW];
  gint64 oldest = h->frame_times[(h->frames_total - n) % FPS_WINDOW];
  /* A stopped pipeline has no fps, whatever its last frames were. */
  if (g_get_monotonic_time() - newest > 2 * G_USEC_PER_SEC)
    return 0.0;
  return newest > oldest ? (double)(n - 1) * G_USEC_PER_SEC / (double)(newest - oldest) : 0.0;
}

static char *metrics_text(NetHttp *h) {
  GString *o = g_string_sized_new(4096);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_mutex_lock(&h->lock);
  prom_head(o, "kestrel_uptime_seconds", "gauge", "Seconds since the server started.");
  prom_value(o, "kestrel_uptime_seconds",
             (double)(g_get_monotonic_time() - h->started_us) / G_USEC_PER_SEC);
  prom_head(o, "kestrel_fps", "gauge", "Frames per second through the pipeline, recent.");
  prom_value(o, "kestrel_fps", fps_locked(h));
  prom_head(o, "kestrel_frames_total", "counter", "Frames through the pipeline.");
  prom_value(o, "kestrel_frames_total", (double)h->frames_total);
  prom_head(o, "kestrel_frames_dropped_total", "counter",
            "Frames not delivered, by where: display (the kiosk showed a newer one), "
            "mjpeg_client (a slow web client got a newer one).");
  g_string_append_printf(o,
                         "kestrel_frames_dropped_total{stage=\"display\"} %" G_GUINT64_FORMAT "\n",
                         h->frames_dropped_display);
  g_string_append_printf(
      o, "kestrel_frames_dropped_total{stage=\"mjpeg_client\"} %" G_GUINT64_FORMAT "\n",
      h->frames_dropped_clients);
  prom_head(o, "kestrel_inferences_total", "counter", "Inferences run.");
  prom_value(o, "kestrel_inferences_total", (double)h->inferences);
  prom_head(o, "kestrel_inferences_dropped_total", "counter",
            "Frames not analysed because the inference worker was busy.");
  prom_value(o, "kestrel_inferences_dropped_total", (double)h->inferences_dropped);

  prom_head(o, "kestrel_inference_latency_seconds", "histogram", "Time of one inference.");
  guint64 cumulative = 0;
  for (size_t i = 0; i < N_BUCKETS; i++) {
    cumulative += h->buckets[i];
    g_string_append_printf(
        o, "kestrel_inference_latency_seconds_bucket{le=\"%s\"} %" G_GUINT64_FORMAT "\n",
        g_ascii_formatd(buf, sizeof buf, "%g", latency_buckets[i]), cumulative);
  }
  cumulative += h->buckets[N_BUCKETS];
  g_string_append_printf(
      o, "kestrel_inference_latency_seconds_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
      cumulative);
  prom_value(o, "kestrel_inference_latency_seconds_sum", h->latency_sum);
  prom_value(o, "kestrel_inference_latency_seconds_count", (double)h->latency_count);

  prom_head(o, "kestrel_objects", "gauge", "Objects on the latest frame, by label.");
  for (guint i = 0; i < h->labels->len; i++) {
    LabelCount *lc = &g_array_index(h->labels, LabelCount, i);
    g_string_append(o, "kestrel_objects{label=\"");
    prom_escape(o, lc->label);
    g_string_append_printf(o, "\"} %d\n", lc->now);
  }
  prom_head(o, "kestrel_objects_total", "counter", "Objects seen, summed over frames, by label.");
  for (guint i = 0; i < h->labels->len; i++) {
    LabelCount *lc = &g_array_index(h->labels, LabelCount, i);
    g_string_append(o, "kestrel_objects_total{label=\"");
    prom_escape(o, lc->label);
    g_string_append_printf(o, "\"} %" G_GUINT64_FORMAT "\n", lc->total);
  }

  prom_head(o, "kestrel_model_info", "gauge", "The model running: file name and sha256.");
  if (h->model_name) {
    g_string_append(o, "kestrel_model_info{name=\"");
    prom_escape(o, h->model_name);
    g_string_append(o, "\",sha256=\"");
    prom_escape(o, h->model_sha256 ? h->model_sha256 : "");
    g_string_append(o, "\"} 1\n");
  }
  prom_head(o, "kestrel_camera_state", "gauge", "1 for the source's current state.");
  static const char *const states[] = {"running", "lost", "stopped"};
  const char *state = h->camera_state ? h->camera_state : (h->frames_total ? "running" : "stopped");
  for (size_t i = 0; i < G_N_ELEMENTS(states); i++)
    g_string_append_printf(o, "kestrel_camera_state{state=\"%s\"} %d\n", states[i],
                           !strcmp(state, states[i]));
  prom_head(o, "kestrel_camera_reconnects_total", "counter", "Times the source came back.");
  prom_value(o, "kestrel_camera_reconnects_total", (double)h->reconnects);
  prom_head(o, "kestrel_source_info", "gauge", "The video source and frame size.");
  g_string_append(o, "kestrel_source_info{source=\"");
  prom_escape(o, h->source ? h->source : "");
  g_string_append_printf(o, "\",width=\"%d\",height=\"%d\"} 1\n", h->width, h->height);

  prom_head(o, "kestrel_http_clients", "gauge", "Connected streaming clients, by endpoint.");
  g_string_append_printf(o, "kestrel_http_clients{endpoint=\"mjpeg\"} %d\n",
                         g_atomic_int_get(&h->mjpeg_clients));
  g_string_append_printf(o, "kestrel_http_clients{endpoint=\"events\"} %d\n",
                         g_atomic_int_get(&h->event_clients));
  prom_head(o, "kestrel_mjpeg_frames_encoded_total", "counter",
            "JPEG frames encoded for the MJPEG stream (once each, shared by all clients).");
  prom_value(o, "kestrel_mjpeg_frames_encoded_total", (double)h->frames_encoded);
  prom_head(o, "kestrel_mjpeg_frames_sent_total", "counter", "MJPEG frames handed to clients.");
  prom_value(o, "kestrel_mjpeg_frames_sent_total", (double)h->frames_sent);
  prom_head(o, "kestrel_events_dropped_total", "counter",
            "Events a slow /events client missed (its queue was full).");
  prom_value(o, "kestrel_events_dropped_total", (double)h->events_dropped);
  g_mutex_unlock(&h->lock);
  return g_string_free(o, FALSE);
}

/* --- requests ---------------------------------------------------------------------- */

static void reply_text(SoupServerMessage *msg, guint status, const char *text) {
  soup_server_message_set_status(msg, status, NULL);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_COPY, text,
                                   strlen(text));
}

static void on_request_finished(SoupServerMessage *msg, gpointer data) {
  NetHttp *h = data;
  h->active_requests--;
}

static gsize headers_size(SoupMessageHeaders *headers) {
  SoupMessageHeadersIter it;
  const char *name, *value;
  gsize n = 0;
  soup_message_headers_iter_init(&it, headers);
  while (soup_message_headers_iter_next(&it, &name, &value))
    n += strlen(name) + strlen(value) + 4;
  return n;
}

static void on_reject_written(GObject *stream, GAsyncResult *result, gpointer data) {
  g_output_stream_write_all_finish(G_OUTPUT_STREAM(stream), result, NULL, NULL);
  g_io_stream_close_async(data, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_object_unref(data);
}

/* libsoup would read an announced body before answering, however large:
 * take the connection over, answer, and close it instead. */
static void reject_and_close(SoupServerMessage *msg, const char *status, const char *text) {
  GIOStream *io = soup_server_message_steal_connection(msg);
  if (!io)
    return;
  char *reply = g_strdup_printf("HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                status, strlen(text), text);
  GBytes *bytes = g_bytes_new_take(reply, strlen(reply));
  gsize size = 0;
  const void *data = g_bytes_get_data(bytes, &size);
  /* The bytes must outlive the write: they ride along as the stream's data. */
  g_object_set_data_full(G_OBJECT(io), "kestrel-reply", bytes, (GDestroyNotify)g_bytes_unref);
  g_output_stream_write_all_async(g_io_stream_get_output_stream(io), data, size,
                                  G_PRIORITY_DEFAULT, NULL, on_reject_written, io);
}

#define TOKEN_COOKIE "kestrel_token"

/* The page's own requests (style, script, the <img> and EventSource) carry
 * no header and should not all need ?token=: a page opened with a good
 * ?token= gets it as a strict, script-invisible cookie. */
static char *cookie_token(SoupMessageHeaders *req) {
  const char *cookies = soup_message_headers_get_list(req, "Cookie");
  if (!cookies)
    return NULL;
  g_auto(GStrv) parts = g_strsplit(cookies, ";", 32);
  for (int i = 0; parts[i]; i++) {
    const char *c = parts[i];
    while (*c == ' ' || *c == ',')
      c++;
    if (g_str_has_prefix(c, TOKEN_COOKIE "="))
      return g_uri_unescape_string(c + strlen(TOKEN_COOKIE "="), NULL);
  }
  return NULL;
}

/* After the headers, before any body: everything that can be refused
 * cheaply is refused here, so a large or hostile request costs nothing. */
static void early_handler(SoupServer *server, SoupServerMessage *msg, const char *path,
                          GHashTable *query, gpointer data) {
  NetHttp *h = data;
  SoupMessageHeaders *req = soup_server_message_get_request_headers(msg);
  const char *method = soup_server_message_get_method(msg);
  g_autofree char *uri = g_uri_to_string(soup_server_message_get_uri(msg));

  if (strlen(uri) > NET_MAX_URI_LENGTH) {
    reply_text(msg, SOUP_STATUS_REQUEST_URI_TOO_LONG, "URI too long\n");
    return;
  }
  if (headers_size(req) > NET_MAX_HEADER_BYTES) {
    reply_text(msg, 431, "request headers too large\n");
    return;
  }
  /* Only GET and HEAD exist here: a body is never wanted. */
  goffset length = soup_message_headers_get_content_length(req);
  SoupEncoding enc = soup_message_headers_get_encoding(req);
  if ((enc == SOUP_ENCODING_CONTENT_LENGTH && length > 0) || enc == SOUP_ENCODING_CHUNKED) {
    reject_and_close(msg, "413 Content Too Large", "request bodies are not accepted\n");
    return;
  }
  if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
                                 "GET, HEAD");
    reply_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    return;
  }
  const char *token = query ? g_hash_table_lookup(query, "token") : NULL;
  g_autofree char *cookie = token ? NULL : cookie_token(req);
  NetAuthResult auth = net_auth_check(h->auth, soup_message_headers_get_one(req, "Authorization"),
                                      token ? token : cookie);
  if (auth != NET_AUTH_OK) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                                 "Bearer realm=\"kestrel\"");
    reply_text(msg, SOUP_STATUS_UNAUTHORIZED,
               auth == NET_AUTH_MISSING
                   ? "access token required (Authorization: Bearer TOKEN, or ?token=TOKEN)\n"
                   : "wrong access token\n");
    return;
  }
  if (h->active_requests >= h->max_clients) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", "5");
    reply_text(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "too many clients\n");
    return;
  }
  h->active_requests++;
  g_signal_connect(msg, "finished", G_CALLBACK(on_request_finished), h);
}

static void reply_file(SoupServerMessage *msg, GBytes *bytes, const char *type) {
  if (!bytes) {
    reply_text(msg, SOUP_STATUS_NOT_FOUND, "the web page is not installed (assets/web)\n");
    return;
  }
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control",
                               "no-cache");
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, g_bytes_get_data(bytes, NULL),
                                   g_bytes_get_size(bytes));
}

static void handler(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                    gpointer data) {
  NetHttp *h = data;
  if (soup_server_message_get_status(msg) != 0)
    return; /* refused by the early handler */
  if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
    const char *token = query ? g_hash_table_lookup(query, "token") : NULL;
    if (token && net_auth_required(h->auth)) {
      /* Checked by the early handler already. */
      g_autofree char *escaped = g_uri_escape_string(token, NULL, FALSE);
      g_autofree char *set = g_strdup_printf(TOKEN_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict",
                                             escaped);
      soup_message_headers_append(soup_server_message_get_response_headers(msg), "Set-Cookie",
                                  set);
    }
    reply_file(msg, h->page, "text/html; charset=utf-8");
  }
  else if (!strcmp(path, "/app.js"))
    reply_file(msg, h->script, "text/javascript; charset=utf-8");
  else if (!strcmp(path, "/style.css"))
    reply_file(msg, h->style, "text/css; charset=utf-8");
  else if (!strcmp(path, "/stream.mjpg"))
    start_stream(h, msg, CLIENT_MJPEG);
  else if (!strcmp(path, "/events"))
    start_stream(h, msg, CLIENT_EVENTS);
  else if (!strcmp(path, "/metrics")) {
    char *text = metrics_text(h);
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    soup_server_message_set_response(msg, "text/plain; version=0.0.4; charset=utf-8",
                                     SOUP_MEMORY_TAKE, text, strlen(text));
  } else if (!strcmp(path, "/healthz"))
    reply_text(msg, SOUP_STATUS_OK, "ok\n");
  else
    reply_text(msg, SOUP_STATUS_NOT_FOUND, "not found\n");
}

/* --- life ------------------------------------------------------------------------- */

static gpointer run_thread(gpointer data) {
  NetHttp *h = data;
  g_main_context_push_thread_default(h->context);
  g_main_loop_run(h->loop);
  g_main_context_pop_thread_default(h->context);
  return NULL;
}

NetHttp *net_http_new(const NetHttpOptions *o, GError **error) {
  NetAuth *auth = net_auth_new(o->address, o->token, error);
  if (!auth)
    return NULL;
  NetHttp *h = g_new0(NetHttp, 1);
  h->auth = auth;
  h->max_clients = o->max_clients > 0 ? o->max_clients : NET_DEFAULT_MAX_CLIENTS;
  h->mjpeg_width = MAX(o->mjpeg_width, 0);
  h->quality = o->mjpeg_quality > 0 ? CLAMP(o->mjpeg_quality, 1, 100) : DEFAULT_QUALITY;
  h->started_us = g_get_monotonic_time();
  h->labels = g_array_new(FALSE, TRUE, sizeof(LabelCount));
  g_mutex_init(&h->lock);
  g_queue_init(&h->pending_events);

  g_autofree char *web = find_web_dir(o->web_dir);
  if (web) {
    h->page = read_web_file(web, "index.html");
    h->script = read_web_file(web, "app.js");
    h->style = read_web_file(web, "style.css");
  } else {
    g_printerr("kestrel: the web page (assets/web) was not found; / answers 404 "
               "(set KESTREL_WEB_DIR)\n");
  }

  h->context = g_main_context_new();
  h->loop = g_main_loop_new(h->context, FALSE);
  /* Listening sockets attach to the thread-default context at listen time. */
  g_main_context_push_thread_default(h->context);
  h->server = soup_server_new("server-header", "kestrel", NULL);
  soup_server_add_early_handler(h->server, NULL, early_handler, h, NULL);
  soup_server_add_handler(h->server, NULL, handler, h, NULL);
  GInetAddress *ia = g_inet_address_new_from_string(net_auth_address(auth));
  GSocketAddress *sa = g_inet_socket_address_new(ia, (guint16)o->port);
  gboolean ok = soup_server_listen(h->server, sa, 0, error);
  g_object_unref(sa);
  g_object_unref(ia);
  if (ok) {
    GSList *listeners = soup_server_get_listeners(h->server);
    if (listeners) {
      GSocketAddress *local = g_socket_get_local_address(listeners->data, NULL);
      if (local) {
        h->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
        g_object_unref(local);
      }
    }
    g_slist_free(listeners);
  }
  g_main_context_pop_thread_default(h->context);
  if (!ok) {
    g_prefix_error(error, "HTTP server on %s:%u: ", net_auth_address(auth), o->port);
    net_http_free(h);
    return NULL;
  }
  h->thread = g_thread_new("kestrel-http", run_thread, h);
  return h;
}

static gboolean stop_in_thread(gpointer data) {
  NetHttp *h = data;
  /* Closes every connection; their "finished" handlers run here. */
  soup_server_disconnect(h->server);
  g_main_loop_quit(h->loop);
  return G_SOURCE_REMOVE;
}

void net_http_free(NetHttp *h) {
  if (!h)
    return;
  if (h->thread) {
    g_main_context_invoke(h->context, stop_in_thread, h);
    g_thread_join(h->thread);
  }
  g_main_context_push_thread_default(h->context);
  g_clear_object(&h->server);
  while (g_main_context_iteration(h->context, FALSE))
    ; /* let closing connections finish */
  g_main_context_pop_thread_default(h->context);
  g_list_free_full(h->clients, (GDestroyNotify)client_free);
  g_main_loop_unref(h->loop);
  g_main_context_unref(h->context);
  if (h->latest_frame)
    g_bytes_unref(h->latest_frame);
  g_queue_clear_full(&h->pending_events, (GDestroyNotify)g_bytes_unref);
  for (guint i = 0; i < h->labels->len; i++)
    g_free(g_array_index(h->labels, LabelCount, i).label);
  g_array_unref(h->labels);
  g_clear_pointer(&h->page, g_bytes_unref);
  g_clear_pointer(&h->script, g_bytes_unref);
  g_clear_pointer(&h->style, g_bytes_unref);
  g_free(h->camera_state);
  g_free(h->source);
  g_free(h->model_path);
  g_free(h->model_name);
  g_free(h->model_sha256);
  g_mutex_clear(&h->lock);
  net_auth_free(h->auth);
  g_free(h);
}

guint net_http_port(NetHttp *h) {
  return h->port;
}

/* --- the video branch ---------------------------------------------------------------- */

typedef struct {
  NetHttp *h;
  tjhandle tj;
  unsigned char *jpeg;
  unsigned long jpeg_capacity;
} Encoder;

static void encoder_free(gpointer data) {
  Encoder *e = data;
  if (e->tj)
    tjDestroy(e->tj);
  tjFree(e->jpeg);
  g_free(e);
}

/* Encodes the I420 frame once; the same bytes go to every client. */
static GstFlowReturn on_video_sample(GstAppSink *sink, gpointer data) {
  Encoder *e = data;
  NetHttp *h = e->h;
  GstSample *sample = gst_app_sink_pull_sample(sink);
  if (!sample)
    return GST_FLOW_EOS;
  if (g_atomic_int_get(&h->mjpeg_clients) == 0)
    goto done; /* nobody watching: no work */
  GstVideoInfo info;
  GstVideoFrame frame;
  if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) ||
      GST_VIDEO_INFO_FORMAT(&info) != GST_VIDEO_FORMAT_I420 ||
      !gst_video_frame_map(&frame, &info, gst_sample_get_buffer(sample), GST_MAP_READ))
    goto done;
  int w = GST_VIDEO_INFO_WIDTH(&info), hgt = GST_VIDEO_INFO_HEIGHT(&info);
  unsigned long need = tjBufSize(w, hgt, TJSAMP_420);
  if (!e->tj)
    e->tj = tjInitCompress();
  if (need > e->jpeg_capacity) {
    tjFree(e->jpeg);
    e->jpeg = tjAlloc((int)need);
    e->jpeg_capacity = e->jpeg ? need : 0;
  }
  const unsigned char *planes[3];
  int strides[3];
  for (int p = 0; p < 3; p++) {
    planes[p] = GST_VIDEO_FRAME_PLANE_DATA(&frame, p);
    strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p);
  }
  unsigned long size = e->jpeg_capacity;
  int r = e->tj && e->jpeg
              ? tjCompressFromYUVPlanes(e->tj, planes, w, strides, hgt, TJSAMP_420, &e->jpeg, &size,
                                        h->quality, TJFLAG_FASTDCT | TJFLAG_NOREALLOC)
              : -1;
  gst_video_frame_unmap(&frame);
  if (r != 0)
    goto done;

  /* One multipart part: boundary, headers, the JPEG, CRLF. */
  char head[160];
  int head_len = g_snprintf(head, sizeof head,
                            "--" BOUNDARY "\r\nContent-Type: image/jpeg\r\nContent-Length: %lu"
                            "\r\n\r\n",
                            size);
  gsize total = (gsize)head_len + size + 2;
  guint8 *part = g_malloc(total);
  memcpy(part, head, (size_t)head_len);
  memcpy(part + head_len, e->jpeg, size);
  memcpy(part + head_len + size, "\r\n", 2);
  GBytes *bytes = g_bytes_new_take(part, total);

  g_mutex_lock(&h->lock);
  if (h->latest_frame)
    g_bytes_unref(h->latest_frame); /* the network thread did not get to it */
  h->latest_frame = bytes;
  h->frames_encoded++;
  schedule_dispatch_locked(h);
  g_mutex_unlock(&h->lock);

done:
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

static GstElement *make(const char *factory, GError **error) {
  GstElement *e = gst_element_factory_make(factory, NULL);
  if (!e)
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "GStreamer element '%s' is missing (install gstreamer1.0-plugins-base)", factory);
  return e;
}

gboolean net_http_attach(NetHttp *h, GstBin *pipeline, GstElement *tee, GError **error) {
  GstElement *queue = make("queue", error), *scale = make("videoscale", error),
             *convert = make("videoconvert", error), *caps = make("capsfilter", error),
             *sink = make("appsink", error);
  if (!queue || !scale || !convert || !caps || !sink) {
    GstElement *all[] = {queue, scale, convert, caps, sink};
    for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
      if (all[i])
        gst_object_unref(gst_object_ref_sink(all[i]));
    return FALSE;
  }
  /* Leaky, one frame: when encoding falls behind, this branch skips frames
   * and the tee (the display, the RTSP branch) never waits for it. */
  g_object_set(queue, "max-size-buffers", 1, "max-size-bytes", 0, "max-size-time", (guint64)0,
               "leaky", 2 /* downstream: drop the older */, NULL);
  GstCaps *c = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "I420",
                                   "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  if (h->mjpeg_width > 0)
    gst_caps_set_simple(c, "width", G_TYPE_INT, h->mjpeg_width & ~1, NULL);
  g_object_set(caps, "caps", c, NULL);
  gst_caps_unref(c);
  g_object_set(sink, "sync", FALSE, "async", FALSE, "max-buffers", 1, "drop", TRUE,
               "enable-last-sample", FALSE, "qos", FALSE, NULL);
  Encoder *enc = g_new0(Encoder, 1);
  enc->h = h;
  GstAppSinkCallbacks callbacks = {.new_sample = on_video_sample};
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, enc, encoder_free);

  gst_bin_add_many(pipeline, queue, scale, convert, caps, sink, NULL);
  if (!gst_element_link_many(queue, scale, convert, caps, sink, NULL))
    goto link_failed;
  GstPad *src = gst_element_request_pad_simple(tee, "src_%u");
  GstPad *sinkpad = gst_element_get_static_pad(queue, "sink");
  GstPadLinkReturn lr = src ? gst_pad_link(src, sinkpad) : GST_PAD_LINK_REFUSED;
  gst_object_unref(sinkpad);
  if (src)
    gst_object_unref(src);
  if (lr != GST_PAD_LINK_OK)
    goto link_failed;
  /* The pipeline may already be playing (a branch added late). */
  GstElement *added[] = {sink, caps, convert, scale, queue};
  for (size_t i = 0; i < G_N_ELEMENTS(added); i++)
    gst_element_sync_state_with_parent(added[i]);
  return TRUE;

link_failed:
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "could not link the web view's branch");
  return FALSE;
}

/* --- results and status ----------------------------------------------------------------- */

static LabelCount *label_slot_locked(NetHttp *h, const char *label) {
  for (guint i = 0; i < h->labels->len; i++) {
    LabelCount *lc = &g_array_index(h->labels, LabelCount, i);
    if (!strcmp(lc->label, label))
      return lc;
  }
  if (h->labels->len >= LABELS_MAX)
    return NULL; /* a model with absurd label churn cannot grow the metrics */
  LabelCount lc = {g_strdup(label), 0, 0};
  g_array_append_val(h->labels, lc);
  return &g_array_index(h->labels, LabelCount, h->labels->len - 1);
}

/* kestrelmetapublish's "published" signal, on a streaming thread. */
static void on_published(GstElement *element, GstBuffer *buf, const gchar *json, gpointer data) {
  NetHttp *h = data;
  GstPad *pad = gst_element_get_static_pad(element, "sink");
  GstCaps *caps = pad ? gst_pad_get_current_caps(pad) : NULL;
  int width = 0, height = 0;
  if (caps) {
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    gst_structure_get_int(s, "width", &width);
    gst_structure_get_int(s, "height", &height);
    gst_caps_unref(caps);
  }
  if (pad)
    gst_object_unref(pad);

  g_mutex_lock(&h->lock);
  h->frame_times[h->frames_total % FPS_WINDOW] = g_get_monotonic_time();
  h->frames_total++;
  h->width = width;
  h->height = height;
  for (guint i = 0; i < h->labels->len; i++)
    g_array_index(h->labels, LabelCount, i).now = 0;
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered(buf, &state,
                                                  GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *)meta;
    GstStructure *det = gst_video_region_of_interest_meta_get_param(roi, "detection");
    if (!det)
      continue;
    const char *label = gst_structure_get_string(det, "label");
    LabelCount *lc = label_slot_locked(h, label ? label : g_quark_to_string(roi->roi_type));
    if (lc) {
      lc->now++;
      lc->total++;
    }
  }
  if (g_atomic_int_get(&h->event_clients) > 0 && json) {
    size_t n = strlen(json);
    while (n && (json[n - 1] == '\n' || json[n - 1] == '\r'))
      n--;
    /* The schema keeps a frame on one line, so one data: field suffices. */
    GBytes *event = g_bytes_new_take(g_strdup_printf("data: %.*s\n\n", (int)n, json), n + 8);
    g_queue_push_tail(&h->pending_events, event);
    if (h->pending_events.length > PENDING_EVENTS_MAX) {
      g_bytes_unref(g_queue_pop_head(&h->pending_events));
      h->events_dropped++;
    }
    schedule_dispatch_locked(h);
  }
  g_mutex_unlock(&h->lock);
}

void net_http_attach_metadata(NetHttp *h, GstElement *metapublish) {
  g_object_set(metapublish, "emit-signals", TRUE, NULL);
  g_signal_connect(metapublish, "published", G_CALLBACK(on_published), h);
}

void net_http_note_inference(NetHttp *h, double ms) {
  if (!(ms >= 0) || !isfinite(ms))
    return;
  double s = ms / 1000.0;
  size_t b = 0;
  while (b < N_BUCKETS && s > latency_buckets[b])
    b++;
  g_mutex_lock(&h->lock);
  h->buckets[b]++;
  h->latency_sum += s;
  h->latency_count++;
  g_mutex_unlock(&h->lock);
}

static char *file_sha256(const char *path) {
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  FILE *f = fopen(path, "rb");
  char *hex = NULL;
  if (f) {
    guchar buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
      g_checksum_update(sum, buf, (gssize)n);
    if (!ferror(f))
      hex = g_strdup(g_checksum_get_string(sum));
    fclose(f);
  }
  g_checksum_free(sum);
  return hex;
}

void net_http_set_status(NetHttp *h, const NetHttpStatus *st) {
  char *sha = NULL, *name = NULL;
  gboolean model_changed;
  g_mutex_lock(&h->lock);
  model_changed = g_strcmp0(st->model_path, h->model_path) != 0;
  g_mutex_unlock(&h->lock);
  if (model_changed && st->model_path) {
    /* Hashed once per model, outside the lock (a few MB). */
    sha = file_sha256(st->model_path);
    name = g_path_get_basename(st->model_path);
  }
  g_mutex_lock(&h->lock);
  if (model_changed) {
    g_free(h->model_path);
    g_free(h->model_name);
    g_free(h->model_sha256);
    h->model_path = g_strdup(st->model_path);
    h->model_name = name;
    h->model_sha256 = sha;
  }
  if (g_strcmp0(h->camera_state, st->camera_state)) {
    g_free(h->camera_state);
    h->camera_state = g_strdup(st->camera_state);
  }
  if (g_strcmp0(h->source, st->source)) {
    g_free(h->source);
    h->source = g_strdup(st->source);
  }
  /* Counters only go up, even across the kiosk's pipeline restarts. */
  h->frames_shown = MAX(h->frames_shown, st->frames_shown);
  h->inferences = MAX(h->inferences, st->inferences);
  h->inferences_dropped = MAX(h->inferences_dropped, st->inferences_dropped);
  h->reconnects = MAX(h->reconnects, st->reconnects);
  if (h->frames_total > h->frames_shown + 2) /* two may be on their way */
    h->frames_dropped_display =
        MAX(h->frames_dropped_display, h->frames_total - h->frames_shown - 2);
  h->have_status = TRUE;
  g_mutex_unlock(&h->lock);
}
