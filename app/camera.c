/* Cameras: find V4L2 capture devices, list their modes and controls through
 * libv4l2 (so a camera that needs libv4l's help still answers), and pick the
 * mode that serves a wanted size and rate best. */
#include "kiosk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libv4l2.h>
#include <linux/videodev2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A bad driver could list formats forever; real cameras list a few dozen. */
#define MAX_ENUM 256

static int xioctl(int fd, unsigned long request, void *arg) {
  int r;
  do
    r = v4l2_ioctl(fd, request, arg);
  while (r == -1 && errno == EINTR);
  return r;
}

void kiosk_camera_free(KioskCamera *cam) {
  if (!cam)
    return;
  g_free(cam->path);
  g_free(cam->card);
  g_free(cam->driver);
  g_free(cam->bus);
  if (cam->modes)
    g_array_unref(cam->modes);
  g_free(cam);
}

static gboolean format_wanted(uint32_t fourcc) {
  /* The formats the pipeline can take without a software converter in
   * front of the model: MJPEG (jpegdec gives I420) and the YUV the
   * elements and the display texture take as they are. */
  return fourcc == V4L2_PIX_FMT_MJPEG || fourcc == V4L2_PIX_FMT_YUYV || fourcc == V4L2_PIX_FMT_NV12;
}

static void add_intervals(int fd, KioskCamera *cam, uint32_t fourcc, int w, int h) {
  int added = 0;
  for (unsigned i = 0; i < MAX_ENUM; i++) {
    struct v4l2_frmivalenum iv = {
        .index = i, .pixel_format = fourcc, .width = (unsigned)w, .height = (unsigned)h};
    if (xioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iv) < 0)
      break;
    if (iv.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
      if (!iv.discrete.numerator || !iv.discrete.denominator)
        continue;
      KioskMode m = {fourcc, w, h, (int)iv.discrete.denominator, (int)iv.discrete.numerator};
      g_array_append_val(cam->modes, m);
      added++;
    } else {
      /* Continuous or stepwise: offer the fastest rate (the smallest interval). */
      if (!iv.stepwise.min.numerator || !iv.stepwise.min.denominator)
        break;
      KioskMode m = {fourcc, w, h, (int)iv.stepwise.min.denominator,
                     (int)iv.stepwise.min.numerator};
      g_array_append_val(cam->modes, m);
      added++;
      break;
    }
  }
  if (!added) {
    /* Drivers without interval enumeration: the rate is unknown, say 30. */
    KioskMode m = {fourcc, w, h, 30, 1};
    g_array_append_val(cam->modes, m);
  }
}

static void read_control(int fd, uint32_t id, KioskControl *c) {
  struct v4l2_queryctrl q = {.id = id};
  memset(c, 0, sizeof *c);
  if (xioctl(fd, VIDIOC_QUERYCTRL, &q) < 0 || (q.flags & V4L2_CTRL_FLAG_DISABLED))
    return;
  struct v4l2_control v = {.id = id};
  c->present = TRUE;
  c->min = q.minimum;
  c->max = q.maximum;
  c->step = q.step;
  c->def = q.default_value;
  c->value = xioctl(fd, VIDIOC_G_CTRL, &v) == 0 ? v.value : q.default_value;
}

KioskCamera *kiosk_camera_probe(const char *path, GError **error) {
  int fd = v4l2_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CAMERA, "%s: %s", path, g_strerror(errno));
    return NULL;
  }
  struct v4l2_capability cap = {0};
  if (xioctl(fd, VIDIOC_QUERYCAP, &cap) < 0) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CAMERA, "%s: VIDIOC_QUERYCAP: %s", path,
                g_strerror(errno));
    v4l2_close(fd);
    return NULL;
  }
  uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
  if (!(caps & V4L2_CAP_VIDEO_CAPTURE) || !(caps & V4L2_CAP_STREAMING)) {
    /* UVC cameras also expose a metadata node; it is not a camera. */
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_CAMERA, "%s: not a video capture device", path);
    v4l2_close(fd);
    return NULL;
  }

  KioskCamera *cam = g_new0(KioskCamera, 1);
  cam->path = g_strdup(path);
  cam->card = g_strndup((const char *)cap.card, sizeof cap.card);
  cam->driver = g_strndup((const char *)cap.driver, sizeof cap.driver);
  cam->bus = g_strndup((const char *)cap.bus_info, sizeof cap.bus_info);
  cam->modes = g_array_new(FALSE, FALSE, sizeof(KioskMode));

  for (unsigned fi = 0; fi < MAX_ENUM; fi++) {
    struct v4l2_fmtdesc fmt = {.index = fi, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    if (xioctl(fd, VIDIOC_ENUM_FMT, &fmt) < 0)
      break;
    /* libv4lconvert adds RGB/YUV formats it converts on the CPU; the
     * pipeline does that better itself (or not at all). */
    if ((fmt.flags & V4L2_FMT_FLAG_EMULATED) || !format_wanted(fmt.pixelformat))
      continue;
    for (unsigned si = 0; si < MAX_ENUM; si++) {
      struct v4l2_frmsizeenum fs = {.index = si, .pixel_format = fmt.pixelformat};
      if (xioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) < 0)
        break;
      if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
        add_intervals(fd, cam, fmt.pixelformat, (int)fs.discrete.width, (int)fs.discrete.height);
      } else {
        /* Stepwise sizes: offer the common sizes inside the range. */
        static const int common[][2] = {{640, 480}, {1280, 720}, {1920, 1080}};
        for (size_t c = 0; c < G_N_ELEMENTS(common); c++)
          if (common[c][0] >= (int)fs.stepwise.min_width &&
              common[c][0] <= (int)fs.stepwise.max_width &&
              common[c][1] >= (int)fs.stepwise.min_height &&
              common[c][1] <= (int)fs.stepwise.max_height)
            add_intervals(fd, cam, fmt.pixelformat, common[c][0], common[c][1]);
        break;
      }
    }
  }
  read_control(fd, V4L2_CID_BRIGHTNESS, &cam->brightness);
  read_control(fd, V4L2_CID_EXPOSURE_AUTO, &cam->exposure_auto);
  read_control(fd, V4L2_CID_EXPOSURE_ABSOLUTE, &cam->exposure_absolute);
  v4l2_close(fd);
  return cam;
}

static int video_number(const char *name) {
  if (strncmp(name, "video", 5) || !g_ascii_isdigit(name[5]))
    return -1;
  char *end;
  long n = strtol(name + 5, &end, 10);
  return (*end || n > 4095) ? -1 : (int)n;
}

static gint compare_ints(gconstpointer a, gconstpointer b) {
  return *(const int *)a - *(const int *)b;
}

GPtrArray *kiosk_cameras_enumerate(void) {
  GPtrArray *cams = g_ptr_array_new_with_free_func((GDestroyNotify)kiosk_camera_free);
  g_autoptr(GArray) numbers = g_array_new(FALSE, FALSE, sizeof(int));
  /* readdir, not udev: it sees every node, including user-space ones. */
  DIR *dir = opendir("/dev");
  if (!dir)
    return cams;
  struct dirent *e;
  while ((e = readdir(dir))) {
    int n = video_number(e->d_name);
    if (n >= 0)
      g_array_append_val(numbers, n);
  }
  closedir(dir);
  g_array_sort(numbers, compare_ints);
  for (guint i = 0; i < numbers->len; i++) {
    char path[32];
    snprintf(path, sizeof path, "/dev/video%d", g_array_index(numbers, int, i));
    KioskCamera *cam = kiosk_camera_probe(path, NULL);
    if (cam && cam->modes->len)
      g_ptr_array_add(cams, cam);
    else
      kiosk_camera_free(cam);
  }
  return cams;
}

static uint32_t format_from_name(const char *format) {
  if (!g_strcmp0(format, "mjpeg"))
    return V4L2_PIX_FMT_MJPEG;
  if (!g_strcmp0(format, "yuyv"))
    return V4L2_PIX_FMT_YUYV;
  if (!g_strcmp0(format, "nv12"))
    return V4L2_PIX_FMT_NV12;
  return 0;
}

/* Lower is better. Size first (a wrong size costs the most: cropping or
 * scaling), then rate, then format: at 720p and above MJPEG, because raw
 * YUV that large rarely fits USB 2 at full rate and a JPEG decode is cheap;
 * below that raw YUV skips the decode. */
static double mode_cost(const KioskMode *m, int width, int height, int fps) {
  double want_area = (double)width * height, area = (double)m->width * m->height;
  double size = fabs(log(area / want_area)) * 100.0;
  if (area < want_area)
    size *= 2.0; /* upscaling loses detail that cannot be had back */
  if (m->width != width || m->height != height)
    size += 10.0;
  double rate = (double)m->fps_num / m->fps_den;
  double rate_cost = rate < fps ? (fps - rate) * 4.0 : (rate - fps) * 0.2;
  double format_cost;
  if (m->height >= 720)
    format_cost = m->fourcc == V4L2_PIX_FMT_MJPEG ? 0.0 : 3.0;
  else
    format_cost = m->fourcc == V4L2_PIX_FMT_MJPEG ? 1.0 : 0.0;
  return size + rate_cost + format_cost;
}

gboolean kiosk_camera_pick_mode(const KioskCamera *cam, int width, int height, int fps,
                                const char *format, KioskMode *out) {
  uint32_t only = format_from_name(format);
  double best = INFINITY;
  for (int pass = 0; pass < 2 && best == INFINITY; pass++) {
    /* A format the camera lacks is a wish, not a reason to show nothing. */
    for (guint i = 0; i < cam->modes->len; i++) {
      const KioskMode *m = &g_array_index(cam->modes, KioskMode, i);
      if (pass == 0 && only && m->fourcc != only)
        continue;
      double c = mode_cost(m, width, height, fps);
      if (c < best) {
        best = c;
        *out = *m;
      }
    }
  }
  return best != INFINITY;
}

static const char *fourcc_name(uint32_t fourcc, char buf[5]) {
  for (int i = 0; i < 4; i++) {
    char c = (char)((fourcc >> (8 * i)) & 0xff);
    buf[i] = g_ascii_isprint(c) ? c : '?';
  }
  buf[4] = 0;
  return buf;
}

char *kiosk_mode_describe(const KioskMode *mode) {
  char f[5];
  double rate = (double)mode->fps_num / (mode->fps_den ? mode->fps_den : 1);
  return g_strdup_printf("%s %dx%d@%g", fourcc_name(mode->fourcc, f), mode->width, mode->height,
                         rate);
}

static void json_string(GString *out, const char *s) {
  g_string_append_c(out, '"');
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      g_string_append_printf(out, "\\%c", c);
    else if (c < 0x20)
      g_string_append_printf(out, "\\u%04x", c);
    else
      g_string_append_c(out, (char)c);
  }
  g_string_append_c(out, '"');
}

static void json_control(GString *out, const char *name, const KioskControl *c) {
  g_string_append_printf(out, "\"%s\": ", name);
  if (!c->present) {
    g_string_append(out, "null");
    return;
  }
  g_string_append_printf(out,
                         "{\"min\": %d, \"max\": %d, \"step\": %d, \"default\": %d, "
                         "\"value\": %d}",
                         c->min, c->max, c->step, c->def, c->value);
}

void kiosk_cameras_print(GPtrArray *cams, gboolean json) {
  g_autoptr(GString) out = g_string_new(NULL);
  if (json)
    g_string_append(out, "{\"cameras\": [");
  else if (!cams->len)
    g_string_append(out, "no cameras found (looked for capture devices /dev/video*)\n");
  for (guint i = 0; i < cams->len; i++) {
    const KioskCamera *cam = g_ptr_array_index(cams, i);
    KioskMode best = {0};
    gboolean have_best = kiosk_camera_pick_mode(cam, 1280, 720, 30, "auto", &best);
    if (json) {
      g_string_append(out, i ? ",\n  {" : "\n  {");
      g_string_append(out, "\"device\": ");
      json_string(out, cam->path);
      g_string_append(out, ", \"card\": ");
      json_string(out, cam->card);
      g_string_append(out, ", \"driver\": ");
      json_string(out, cam->driver);
      g_string_append(out, ", \"bus\": ");
      json_string(out, cam->bus);
      g_string_append(out, ",\n   \"modes\": [");
      for (guint m = 0; m < cam->modes->len; m++) {
        const KioskMode *mode = &g_array_index(cam->modes, KioskMode, m);
        char f[5];
        g_string_append_printf(out,
                               "%s\n    {\"format\": \"%s\", \"width\": %d, \"height\": %d, "
                               "\"fps\": %.6g, \"interval\": \"%d/%d\"}",
                               m ? "," : "", fourcc_name(mode->fourcc, f), mode->width,
                               mode->height, (double)mode->fps_num / mode->fps_den, mode->fps_den,
                               mode->fps_num);
      }
      g_string_append(out, "],\n   \"best_720p30\": ");
      if (have_best) {
        char f[5];
        g_string_append_printf(out,
                               "{\"format\": \"%s\", \"width\": %d, \"height\": %d, \"fps\": "
                               "%.6g}",
                               fourcc_name(best.fourcc, f), best.width, best.height,
                               (double)best.fps_num / best.fps_den);
      } else {
        g_string_append(out, "null");
      }
      g_string_append(out, ",\n   \"controls\": {");
      json_control(out, "brightness", &cam->brightness);
      g_string_append(out, ", ");
      json_control(out, "exposure_auto", &cam->exposure_auto);
      g_string_append(out, ", ");
      json_control(out, "exposure_absolute", &cam->exposure_absolute);
      g_string_append(out, "}}");
    } else {
      g_string_append_printf(out, "%s: %s (%s, %s)\n", cam->path, cam->card, cam->driver, cam->bus);
      for (guint m = 0; m < cam->modes->len; m++) {
        g_autofree char *d = kiosk_mode_describe(&g_array_index(cam->modes, KioskMode, m));
        g_string_append_printf(out, "  %s\n", d);
      }
      if (have_best) {
        g_autofree char *d = kiosk_mode_describe(&best);
        g_string_append_printf(out, "  best for 1280x720@30: %s\n", d);
      }
      if (cam->brightness.present)
        g_string_append_printf(out, "  brightness %d (%d..%d, default %d)\n", cam->brightness.value,
                               cam->brightness.min, cam->brightness.max, cam->brightness.def);
      if (cam->exposure_absolute.present)
        g_string_append_printf(
            out, "  exposure %d (%d..%d, %s)\n", cam->exposure_absolute.value,
            cam->exposure_absolute.min, cam->exposure_absolute.max,
            cam->exposure_auto.present && cam->exposure_auto.value != 1 ? "auto" : "manual");
    }
  }
  if (json)
    g_string_append(out, cams->len ? "\n]}\n" : "]}\n");
  fputs(out->str, stdout);
  fflush(stdout);
}
