/* kestrel-kiosk: the program that runs on the device. Camera (or file, or URL)
 * → kestreldetect → kestreltrack → kestreloverlay → SDL2 display, with a HUD.
 * This header joins the parts: config, cameras, pipeline, display, files. */
#ifndef KESTREL_KIOSK_H
#define KESTREL_KIOSK_H

#include <glib.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <stdint.h>

#define KIOSK_ERROR (kiosk_error_quark())
GQuark kiosk_error_quark(void);
enum {
  KIOSK_ERROR_CONFIG,
  KIOSK_ERROR_CAMERA,
  KIOSK_ERROR_PIPELINE,
  KIOSK_ERROR_DISPLAY,
  KIOSK_ERROR_IO
};

/* --- config.c: the effective settings, from defaults, the key file, flags --- */

typedef struct {
  /* [source] */
  char *source; /* auto | camera | /dev/videoN | a file | rtsp:// http:// https:// file:// URL */
  int width, height, fps;
  char *format; /* auto | mjpeg | yuyv | nv12 */
  gboolean loop;
  /* [camera] */
  char *exposure;   /* auto | an integer (exposure_absolute, 100 µs units on UVC) */
  char *brightness; /* default | an integer */
  /* [model] */
  char *model;      /* auto | none | a .kestrel, .onnx or .tflite file */
  char *sidecar;    /* auto | a .sidecar file */
  double threshold; /* -1: the sidecar's */
  int threads, interval;
  gboolean track;
  /* [display] */
  char *display; /* auto | window | fullscreen | none */
  int window_width, window_height;
  gboolean hud, overlay;
  /* [snapshot] */
  char *snapshot_dir; /* auto: $KESTREL_CACHE/snapshots */
  int snapshot_every; /* frames; 0 = only on the s key */
  int snapshot_quality;
  /* [run] */
  gint64 frames;       /* stop after this many displayed frames; 0 = never */
  double duration;     /* seconds; 0 = never */
  double status_every; /* seconds between status lines when headless; 0 = never */
  /* [network] (issue 7: net_http.c, net_rtsp.c, net_auth.c) */
  char *http;          /* off | ADDR:PORT */
  int rtsp_port;       /* 0: off */
  char *rtsp_address;
  char *token;         /* none | the access token */
  int max_clients, mjpeg_width, mjpeg_quality;
  char *publish;       /* none | kestrelmetapublish location: file, udp://, http:// */
} KioskConfig;

KioskConfig *kiosk_config_new(void);
void kiosk_config_free(KioskConfig *cfg);
/* Reads a key file over the current values. Errors say "FILE:LINE: [group] key: why". */
gboolean kiosk_config_load(KioskConfig *cfg, const char *path, GError **error);
/* Sets one "group.key" from text (a flag); origin names it in errors ("--fps"). */
gboolean kiosk_config_set(KioskConfig *cfg, const char *group, const char *key, const char *value,
                          const char *origin, GError **error);
char *kiosk_config_to_string(const KioskConfig *cfg);
/* $KESTREL_CACHE, else ~/.cache/kestrel. */
char *kiosk_cache_dir(void);

/* --- camera.c: V4L2 enumeration through libv4l2 --- */

typedef struct {
  uint32_t fourcc; /* V4L2_PIX_FMT_* */
  int width, height;
  int fps_num, fps_den; /* frames per second as a fraction */
} KioskMode;

typedef struct {
  gboolean present;
  int min, max, step, def, value;
} KioskControl;

typedef struct {
  char *path, *card, *driver, *bus;
  GArray *modes; /* KioskMode, in the order the driver lists them */
  KioskControl brightness, exposure_auto, exposure_absolute;
} KioskCamera;

void kiosk_camera_free(KioskCamera *cam);
/* Opens PATH with v4l2_open and reads capabilities, modes and controls. */
KioskCamera *kiosk_camera_probe(const char *path, GError **error);
/* Every capture device under /dev (video0, video1, ...), in number order. */
GPtrArray *kiosk_cameras_enumerate(void);
/* The best mode for the wanted size and rate; format is auto, mjpeg, yuyv or nv12. */
gboolean kiosk_camera_pick_mode(const KioskCamera *cam, int width, int height, int fps,
                                const char *format, KioskMode *out);
void kiosk_cameras_print(GPtrArray *cams, gboolean json);
/* "MJPG 1280x720@30". */
char *kiosk_mode_describe(const KioskMode *mode);

/* --- pipeline.c --- */

typedef enum {
  KIOSK_SOURCE_CAMERA,
  KIOSK_SOURCE_FILE,
  KIOSK_SOURCE_URL,
  KIOSK_SOURCE_PHOTOS
} KioskSourceKind;

typedef struct {
  KioskSourceKind kind;
  char *location; /* device path, file path, URL, or the photo folder */
  KioskMode mode; /* camera only */
  gboolean live;
} KioskSource;

typedef struct KioskPipeline KioskPipeline;
/* Builds source → [detect → track] → overlay → appsink. model may be NULL (video only). */
KioskPipeline *kiosk_pipeline_new(const KioskConfig *cfg, const KioskSource *src, const char *model,
                                  const char *sidecar, gboolean headless, GError **error);
void kiosk_pipeline_free(KioskPipeline *p);
GstElement *kiosk_pipeline_element(KioskPipeline *p);
GstElement *kiosk_pipeline_appsink(KioskPipeline *p);
GstElement *kiosk_pipeline_detect(KioskPipeline *p); /* NULL without a model */
gboolean kiosk_pipeline_is_source(KioskPipeline *p, GstObject *obj);
void kiosk_pipeline_set_overlay(KioskPipeline *p, gboolean on);
/* The tee after kestreloverlay and the kestrelmetapublish before it; NULL
 * when no [network] output needs them. */
GstElement *kiosk_pipeline_tee(KioskPipeline *p);
GstElement *kiosk_pipeline_publish(KioskPipeline *p);
/* Adds every tracker id seen so far to the set `into` (ids as GINT_TO_POINTER). */
void kiosk_pipeline_collect_tracks(KioskPipeline *p, GHashTable *into);

/* --- display.c: SDL2 window, YUV textures, HUD --- */

typedef struct KioskDisplay KioskDisplay;
typedef struct {
  char *lines[2]; /* HUD text lines (NULL: none) */
  char *banner;   /* centred message over everything ("camera lost ..."); NULL: none */
  char *warning;  /* bottom line, e.g. a model that failed to load; NULL: none */
  gboolean show_hud;
} KioskHud;

KioskDisplay *kiosk_display_new(gboolean fullscreen, int width, int height, GError **error);
void kiosk_display_free(KioskDisplay *d);
/* Uploads a decoded frame (I420, NV12 or YUY2) into the video texture. */
gboolean kiosk_display_upload(KioskDisplay *d, GstSample *sample);
/* Draws video, HUD and messages; if screenshot_path, saves the picture (PNG) before presenting. */
void kiosk_display_render(KioskDisplay *d, const KioskHud *hud, const char *screenshot_path);
void kiosk_display_toggle_fullscreen(KioskDisplay *d);
void kiosk_display_forget_frame(KioskDisplay *d);
/* Where the video and HUD were drawn last (window pixels), for tests. */
void kiosk_display_geometry(KioskDisplay *d, int *win_w, int *win_h, int video_rect[4],
                            int hud_rect[4]);
const char *kiosk_display_driver(KioskDisplay *d);

/* --- files.c: snapshots and screenshots --- */

/* Encodes the frame of sample as JPEG (libjpeg-turbo, from the YUV planes) into path. */
gboolean kiosk_write_jpeg(GstSample *sample, const char *path, int quality, GError **error);
gboolean kiosk_write_png_rgb(const char *path, const uint8_t *rgb, int width, int height,
                             int stride, GError **error);

#endif
