/* Files the kiosk writes: JPEG snapshots straight from the YUV planes
 * (libjpeg-turbo, no RGB step) and PNG screenshots of the window. Each is
 * written to a temporary name and renamed, so a reader (a web view, a test)
 * never sees half a file, and is flushed before the rename. */
#include "kiosk.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

static gboolean write_atomically(const char *path, const void *data, size_t size, GError **error) {
  g_autofree char *tmp = g_strdup_printf("%s.tmp%d", path, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f)
    goto failed;
  if (fwrite(data, 1, size, f) != size || fflush(f) != 0 || fsync(fileno(f)) != 0) {
    int saved = errno;
    fclose(f);
    unlink(tmp);
    errno = saved;
    goto failed;
  }
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    goto failed;
  }
  return TRUE;

failed:
  g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: %s", path, g_strerror(errno));
  return FALSE;
}

gboolean kiosk_write_jpeg(GstSample *sample, const char *path, int quality, GError **error) {
  GstCaps *caps = gst_sample_get_caps(sample);
  GstBuffer *buf = gst_sample_get_buffer(sample);
  GstVideoInfo info;
  GstVideoFrame frame;
  if (!caps || !buf || !gst_video_info_from_caps(&info, caps) ||
      !gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: no frame to save", path);
    return FALSE;
  }
  int w = GST_VIDEO_INFO_WIDTH(&info), h = GST_VIDEO_INFO_HEIGHT(&info);
  const unsigned char *planes[3];
  int strides[3], subsampling;
  guint8 *scratch = NULL;

  switch (GST_VIDEO_INFO_FORMAT(&info)) {
  case GST_VIDEO_FORMAT_I420:
    for (int i = 0; i < 3; i++) {
      planes[i] = GST_VIDEO_FRAME_PLANE_DATA(&frame, i);
      strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, i);
    }
    subsampling = TJSAMP_420;
    break;
  case GST_VIDEO_FORMAT_NV12: {
    /* libjpeg-turbo wants separate chroma planes: split the UV pairs. */
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    const guint8 *uv = GST_VIDEO_FRAME_PLANE_DATA(&frame, 1);
    int uv_stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 1);
    scratch = g_malloc((gsize)cw * ch * 2);
    for (int y = 0; y < ch; y++)
      for (int x = 0; x < cw; x++) {
        scratch[y * cw + x] = uv[y * uv_stride + 2 * x];
        scratch[cw * ch + y * cw + x] = uv[y * uv_stride + 2 * x + 1];
      }
    planes[0] = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
    strides[0] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    planes[1] = scratch;
    planes[2] = scratch + (gsize)cw * ch;
    strides[1] = strides[2] = cw;
    subsampling = TJSAMP_420;
    break;
  }
  case GST_VIDEO_FORMAT_YUY2: {
    /* Packed 4:2:2 to planar 4:2:2: a reshuffle, not a colour conversion. */
    int cw = (w + 1) / 2;
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
    int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    scratch = g_malloc((gsize)w * h + (gsize)cw * h * 2);
    guint8 *yp = scratch, *up = scratch + (gsize)w * h, *vp = up + (gsize)cw * h;
    for (int y = 0; y < h; y++) {
      const guint8 *row = src + (gsize)y * stride;
      for (int x = 0; x < w; x++)
        yp[(gsize)y * w + x] = row[2 * x];
      for (int x = 0; x < cw; x++) {
        up[(gsize)y * cw + x] = row[4 * x + 1];
        vp[(gsize)y * cw + x] = row[4 * x + 3];
      }
    }
    planes[0] = yp;
    planes[1] = up;
    planes[2] = vp;
    strides[0] = w;
    strides[1] = strides[2] = cw;
    subsampling = TJSAMP_422;
    break;
  }
  default:
    gst_video_frame_unmap(&frame);
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: cannot save %s frames", path,
                gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)));
    return FALSE;
  }

  tjhandle tj = tjInitCompress();
  unsigned char *jpeg = NULL;
  unsigned long size = 0;
  gboolean ok = FALSE;
  if (tj && tjCompressFromYUVPlanes(tj, planes, w, strides, h, subsampling, &jpeg, &size, quality,
                                    TJFLAG_FASTDCT) == 0) {
    ok = write_atomically(path, jpeg, size, error);
  } else {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: JPEG encoding failed: %s", path,
                tj ? tjGetErrorStr2(tj) : "no encoder");
  }
  tjFree(jpeg);
  if (tj)
    tjDestroy(tj);
  g_free(scratch);
  gst_video_frame_unmap(&frame);
  return ok;
}

gboolean kiosk_write_png_rgb(const char *path, const uint8_t *rgb, int width, int height,
                             int stride, GError **error) {
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = (png_uint_32)width;
  image.height = (png_uint_32)height;
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  /* Two passes: the first tells the size, the second fills the memory. */
  if (!png_image_write_to_memory(&image, NULL, &size, 0, rgb, stride, NULL)) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: PNG: %s", path, image.message);
    return FALSE;
  }
  void *mem = g_malloc(size);
  gboolean ok = png_image_write_to_memory(&image, mem, &size, 0, rgb, stride, NULL);
  if (!ok)
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_IO, "%s: PNG: %s", path, image.message);
  else
    ok = write_atomically(path, mem, size, error);
  g_free(mem);
  return ok;
}
