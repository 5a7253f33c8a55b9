/* The kiosk's settings: built-in defaults, then a GKeyFile, then flags.
 * One table describes every key, so loading, flags, checking and
 * --print-config can never disagree about names, types or ranges. */
#include "kiosk.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

GQuark kiosk_error_quark(void) {
  return g_quark_from_static_string("kestrel-kiosk-error");
}

typedef enum { KEY_STRING, KEY_INT, KEY_INT64, KEY_DOUBLE, KEY_BOOL, KEY_CHOICE } KeyType;

typedef struct {
  const char *group, *key;
  KeyType type;
  size_t offset;
  double min, max;      /* numbers */
  const char *choices;  /* KEY_CHOICE: "a|b|c"; KEY_STRING: a word that is always allowed */
  const char *fallback; /* default, as text */
  const char *help;
} KeyInfo;

#define OFF(field) offsetof(KioskConfig, field)

static const KeyInfo keys[] = {
    {"source", "source", KEY_STRING, OFF(source), 0, 0, NULL, "auto",
     "auto (first camera, else the default clip), /dev/videoN, a video file, or an "
     "rtsp://, http://, https:// or file:// URL"},
    {"source", "width", KEY_INT, OFF(width), 16, 8192, NULL, "1280", "wanted frame width"},
    {"source", "height", KEY_INT, OFF(height), 16, 8192, NULL, "720", "wanted frame height"},
    {"source", "fps", KEY_INT, OFF(fps), 1, 240, NULL, "30", "wanted camera frame rate"},
    {"source", "format", KEY_CHOICE, OFF(format), 0, 0, "auto|mjpeg|yuyv|nv12", "auto",
     "camera pixel format; auto prefers MJPEG at 720p and above"},
    {"source", "loop", KEY_BOOL, OFF(loop), 0, 0, NULL, "true", "replay files at their end"},
    {"camera", "exposure", KEY_STRING, OFF(exposure), 0, 0, "auto", "auto",
     "auto, or a manual exposure time (exposure_absolute, 100 us units on UVC cameras)"},
    {"camera", "brightness", KEY_STRING, OFF(brightness), 0, 0, "default", "default",
     "default (leave the camera's), or a value in the camera's range"},
    {"model", "path", KEY_STRING, OFF(model), 0, 0, "auto", "auto",
     "auto (INT8 BlazeFace full range from $KESTREL_CACHE/compiled, else the FP32 .tflite), "
     "none (video only), or a .kestrel, .onnx or .tflite file"},
    {"model", "sidecar", KEY_STRING, OFF(sidecar), 0, 0, "auto", "auto",
     "auto (next to the model, else assets/models/STEM.sidecar), or a .sidecar file"},
    {"model", "threshold", KEY_DOUBLE, OFF(threshold), -1, 1, NULL, "-1",
     "minimum confidence, 0..1 (-1: the sidecar's)"},
    {"model", "threads", KEY_INT, OFF(threads), 1, 64, NULL, "1", "threads for one inference"},
    {"model", "interval", KEY_INT, OFF(interval), 1, 1000, NULL, "1",
     "run the model on every Nth frame"},
    {"model", "track", KEY_BOOL, OFF(track), 0, 0, NULL, "true", "give objects stable ids"},
    {"display", "mode", KEY_CHOICE, OFF(display), 0, 0, "auto|window|fullscreen|none", "auto",
     "auto: full screen on a bare device (KMSDRM), a window on a desktop, none without a display"},
    {"display", "width", KEY_INT, OFF(window_width), 64, 16384, NULL, "1280", "window width"},
    {"display", "height", KEY_INT, OFF(window_height), 64, 16384, NULL, "720", "window height"},
    {"display", "hud", KEY_BOOL, OFF(hud), 0, 0, NULL, "true",
     "status line: fps, inference ms, objects, model, camera mode"},
    {"display", "overlay", KEY_BOOL, OFF(overlay), 0, 0, NULL, "true",
     "draw boxes and labels (the o key toggles)"},
    {"snapshot", "dir", KEY_STRING, OFF(snapshot_dir), 0, 0, "auto", "auto",
     "where snapshots go; auto: $KESTREL_CACHE/snapshots"},
    {"snapshot", "every", KEY_INT, OFF(snapshot_every), 0, 1000000, NULL, "0",
     "save every Nth frame (0: only on the s key)"},
    {"snapshot", "quality", KEY_INT, OFF(snapshot_quality), 1, 100, NULL, "90", "JPEG quality"},
    {"run", "frames", KEY_INT64, OFF(frames), 0, 1e15, NULL, "0",
     "stop after N frames (0: run until stopped)"},
    {"run", "duration", KEY_DOUBLE, OFF(duration), 0, 1e9, NULL, "0",
     "stop after S seconds (0: run until stopped)"},
    {"run", "status-every", KEY_DOUBLE, OFF(status_every), 0, 86400, NULL, "5",
     "seconds between status lines when running without a display (0: none)"},
    {"network", "http", KEY_STRING, OFF(http), 0, 0, "off", "off",
     "serve the web view, /stream.mjpg, /events and /metrics on ADDR:PORT (e.g. "
     "127.0.0.1:8080); off: no HTTP server"},
    {"network", "rtsp-port", KEY_INT, OFF(rtsp_port), 0, 65535, NULL, "0",
     "serve the annotated video as H.264 over RTSP on this port, at /kestrel (0: off)"},
    {"network", "rtsp-address", KEY_STRING, OFF(rtsp_address), 0, 0, NULL, "127.0.0.1",
     "address the RTSP server listens on"},
    {"network", "token", KEY_STRING, OFF(token), 0, 0, "none", "none",
     "access token (16 to 256 characters) for HTTP and RTSP; required when a server listens "
     "on an address other than loopback"},
    {"network", "max-clients", KEY_INT, OFF(max_clients), 1, 10000, NULL, "64",
     "most concurrent HTTP requests (streams included), and RTSP clients"},
    {"network", "mjpeg-width", KEY_INT, OFF(mjpeg_width), 0, 8192, NULL, "640",
     "width of /stream.mjpg (0: the frame's)"},
    {"network", "mjpeg-quality", KEY_INT, OFF(mjpeg_quality), 1, 100, NULL, "75",
     "JPEG quality of /stream.mjpg"},
    {"network", "publish", KEY_STRING, OFF(publish), 0, 0, "none", "none",
     "also send each frame's results as JSON lines (kestrelmetapublish location): a file, "
     "udp://HOST:PORT or http://HOST:PORT/PATH; none: off"},
};

static const KeyInfo *find_key(const char *group, const char *key) {
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
    if (!strcmp(keys[i].group, group) && !strcmp(keys[i].key, key))
      return &keys[i];
  return NULL;
}

static gboolean choice_ok(const char *choices, const char *value) {
  gchar **list = g_strsplit(choices, "|", -1);
  gboolean ok = g_strv_contains((const gchar *const *)list, value);
  g_strfreev(list);
  return ok;
}

/* Parses value into the field; on error sets *why (a phrase without the key's name). */
static gboolean parse_value(KioskConfig *cfg, const KeyInfo *k, const char *raw, char **why) {
  char *field = (char *)cfg + k->offset;
  g_autofree char *value = g_strstrip(g_strdup(raw));
  char *end = NULL;

  switch (k->type) {
  case KEY_STRING:
  case KEY_CHOICE:
    if (k->type == KEY_CHOICE && !choice_ok(k->choices, value)) {
      *why = g_strdup_printf("'%s' is not one of %s", value, k->choices);
      return FALSE;
    }
    if (k->type == KEY_STRING && !*value) {
      *why = g_strdup("is empty");
      return FALSE;
    }
    g_free(*(char **)field);
    *(char **)field = g_strdup(value);
    return TRUE;
  case KEY_INT:
  case KEY_INT64: {
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (!*value || *end || errno) {
      *why = g_strdup_printf("'%s' is not a whole number", value);
      return FALSE;
    }
    if (v < k->min || v > k->max) {
      *why = g_strdup_printf("%lld is out of range %.0f..%.0f", v, k->min, k->max);
      return FALSE;
    }
    if (k->type == KEY_INT)
      *(int *)field = (int)v;
    else
      *(gint64 *)field = v;
    return TRUE;
  }
  case KEY_DOUBLE: {
    errno = 0;
    double v = g_ascii_strtod(value, &end);
    if (!*value || *end || errno || !isfinite(v)) {
      *why = g_strdup_printf("'%s' is not a number", value);
      return FALSE;
    }
    if (v < k->min || v > k->max) {
      *why = g_strdup_printf("%g is out of range %g..%g", v, k->min, k->max);
      return FALSE;
    }
    *(double *)field = v;
    return TRUE;
  }
  case KEY_BOOL:
    if (!g_ascii_strcasecmp(value, "true") || !strcmp(value, "1") ||
        !g_ascii_strcasecmp(value, "yes") || !g_ascii_strcasecmp(value, "on"))
      *(gboolean *)field = TRUE;
    else if (!g_ascii_strcasecmp(value, "false") || !strcmp(value, "0") ||
             !g_ascii_strcasecmp(value, "no") || !g_ascii_strcasecmp(value, "off"))
      *(gboolean *)field = FALSE;
    else {
      *why = g_strdup_printf("'%s' is not true or false", value);
      return FALSE;
    }
    return TRUE;
  }
  return FALSE;
}

/* Keys whose value is free text but must still make sense on their own. */
static gboolean check_semantics(const KeyInfo *k, const KioskConfig *cfg, char **why) {
  const char *text = NULL;
  if (!strcmp(k->key, "exposure"))
    text = cfg->exposure;
  else if (!strcmp(k->key, "brightness"))
    text = cfg->brightness;
  if (text && strcmp(text, k->choices)) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < -100000 || v > 100000) {
      *why = g_strdup_printf("'%s' is neither %s nor a whole number", text, k->choices);
      return FALSE;
    }
  }
  return TRUE;
}

KioskConfig *kiosk_config_new(void) {
  KioskConfig *cfg = g_new0(KioskConfig, 1);
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
    char *why = NULL;
    if (!parse_value(cfg, &keys[i], keys[i].fallback, &why))
      g_error("built-in default of %s.%s: %s", keys[i].group, keys[i].key, why);
  }
  return cfg;
}

void kiosk_config_free(KioskConfig *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
    if (keys[i].type == KEY_STRING || keys[i].type == KEY_CHOICE)
      g_free(*(char **)((char *)cfg + keys[i].offset));
  g_free(cfg);
}

gboolean kiosk_config_set(KioskConfig *cfg, const char *group, const char *key, const char *value,
                          const char *origin, GError **error) {
  const KeyInfo *k = find_key(group, key);
  char *why = NULL;
  if (!k) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s: unknown key [%s] %s", origin, group,
                key);
    return FALSE;
  }
  if (!parse_value(cfg, k, value, &why) || !check_semantics(k, cfg, &why)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s: [%s] %s: %s", origin, group, key, why);
    g_free(why);
    return FALSE;
  }
  return TRUE;
}

/* GKeyFile does not keep line numbers, so the file is also read line by line
 * here: every message can then point at the line a person has to fix, and
 * lines GKeyFile would reject are found with their number. */
typedef struct {
  char *group, *key;
  int line;
} KeyLine;

static void key_line_clear(gpointer p) {
  KeyLine *kl = p;
  g_free(kl->group);
  g_free(kl->key);
}

static gboolean scan_lines(const char *path, const char *text, GArray *found, GError **error) {
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autofree char *group = NULL;
  for (int i = 0; lines[i]; i++) {
    g_autofree char *line = g_strstrip(g_strdup(lines[i]));
    if (!*line || line[0] == '#' || line[0] == ';')
      continue;
    if (line[0] == '[') {
      size_t n = strlen(line);
      if (n < 3 || line[n - 1] != ']') {
        g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s:%d: '%s' is not a [group] header",
                    path, i + 1, line);
        return FALSE;
      }
      g_free(group);
      group = g_strndup(line + 1, n - 2);
      continue;
    }
    char *eq = strchr(line, '=');
    if (!eq) {
      g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s:%d: '%s' is not a key = value line",
                  path, i + 1, line);
      return FALSE;
    }
    if (!group) {
      g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG,
                  "%s:%d: key before the first [group] header", path, i + 1);
      return FALSE;
    }
    KeyLine kl = {g_strdup(group), g_strstrip(g_strndup(line, (gsize)(eq - line))), i + 1};
    g_array_append_val(found, kl);
  }
  return TRUE;
}

gboolean kiosk_config_load(KioskConfig *cfg, const char *path, GError **error) {
  g_autofree char *text = NULL;
  gsize length = 0;
  GError *local = NULL;

  if (!g_file_get_contents(path, &text, &length, &local)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "config %s", local->message);
    g_error_free(local);
    return FALSE;
  }
  if (length > 1 << 20) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s: over 1 MiB, not a config file", path);
    return FALSE;
  }
  if (!g_utf8_validate(text, (gssize)length, NULL)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s: not UTF-8 text", path);
    return FALSE;
  }

  g_autoptr(GArray) found = g_array_new(FALSE, TRUE, sizeof(KeyLine));
  g_array_set_clear_func(found, key_line_clear);
  if (!scan_lines(path, text, found, error))
    return FALSE;

  g_autoptr(GKeyFile) kf = g_key_file_new();
  if (!g_key_file_load_from_data(kf, text, length, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s: %s", path, local->message);
    g_error_free(local);
    return FALSE;
  }

  for (guint i = 0; i < found->len; i++) {
    const KeyLine *kl = &g_array_index(found, KeyLine, i);
    const KeyInfo *k = find_key(kl->group, kl->key);
    char *why = NULL;
    if (!k) {
      g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s:%d: unknown key [%s] %s", path,
                  kl->line, kl->group, kl->key);
      return FALSE;
    }
    /* GKeyFile keeps the last of repeated keys; so does this loop. Its
     * unescaping (\s, \n) applies as documented for key files. */
    g_autofree char *value = g_key_file_get_value(kf, kl->group, kl->key, NULL);
    if (!value || !parse_value(cfg, k, value, &why) || !check_semantics(k, cfg, &why)) {
      g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CONFIG, "%s:%d: [%s] %s: %s", path, kl->line,
                  kl->group, kl->key, why ? why : "unreadable value");
      g_free(why);
      return FALSE;
    }
  }
  return TRUE;
}

char *kiosk_config_to_string(const KioskConfig *cfg) {
  GString *out = g_string_new("# kestrel-kiosk effective configuration\n");
  const char *group = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
    const KeyInfo *k = &keys[i];
    const char *field = (const char *)cfg + k->offset;
    if (!group || strcmp(group, k->group)) {
      g_string_append_printf(out, "\n[%s]\n", k->group);
      group = k->group;
    }
    g_string_append_printf(out, "# %s\n%s = ", k->help, k->key);
    switch (k->type) {
    case KEY_STRING:
    case KEY_CHOICE:
      g_string_append(out, *(char *const *)field);
      break;
    case KEY_INT:
      g_string_append_printf(out, "%d", *(const int *)field);
      break;
    case KEY_INT64:
      g_string_append_printf(out, "%" G_GINT64_FORMAT, *(const gint64 *)field);
      break;
    case KEY_DOUBLE: {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%g", *(const double *)field));
      break;
    }
    case KEY_BOOL:
      g_string_append(out, *(const gboolean *)field ? "true" : "false");
      break;
    }
    g_string_append_c(out, '\n');
  }
  return g_string_free(out, FALSE);
}

char *kiosk_cache_dir(void) {
  const char *env = g_getenv("KESTREL_CACHE");
  if (env && *env)
    return g_strdup(env);
  return g_build_filename(g_get_home_dir(), ".cache", "kestrel", NULL);
}
