/* TurboJPEG decoding to planar YUV for the frame path (see kestreljpeg.h).
 *
 * tjDecompressToYUVPlanes skips libjpeg's colour conversion and chroma
 * upsampling: a 4:2:0 JPEG lands in I420 planes as it is coded, and a
 * 1/2..1/8 decode skips most of the inverse DCT work too (Huffman decoding
 * stays: it is the floor, which is why no frame is ever decoded twice).
 * libjpeg warnings (premature end of data, corrupt Huffman codes, missing
 * EOI) come back as TJERR_WARNING with the picture filled as far as it
 * goes: those frames are DAMAGED, the caller decides to drop or show them. */
#include <string.h>
#include <turbojpeg.h>

#include "kestreljpeg.h"

struct _KestrelJpeg
{
  tjhandle tj;
  guint8 *scratch;              /* raw chroma of odd subsamplings */
  gsize scratch_size;
  guint8 *planes;               /* kestrel_jpeg_decode_frame's output */
  gsize planes_size;
};

KestrelJpeg *
kestrel_jpeg_new (void)
{
  KestrelJpeg *jpeg = g_new0 (KestrelJpeg, 1);

  jpeg->tj = tjInitDecompress ();
  if (!jpeg->tj) {
    g_free (jpeg);
    return NULL;
  }
  return jpeg;
}

void
kestrel_jpeg_free (KestrelJpeg * jpeg)
{
  if (!jpeg)
    return;
  tjDestroy (jpeg->tj);
  g_free (jpeg->scratch);
  g_free (jpeg->planes);
  g_free (jpeg);
}

static guint8 *
scratch (KestrelJpeg * jpeg, gsize size)
{
  if (jpeg->scratch_size < size) {
    g_free (jpeg->scratch);
    jpeg->scratch = g_malloc (size);
    jpeg->scratch_size = size;
  }
  return jpeg->scratch;
}

gint
kestrel_jpeg_scaled (gint side, gint denom)
{
  tjscalingfactor f = { 1, denom };
  return TJSCALED (side, f);
}

gint
kestrel_jpeg_pick_denom (gint width, gint height, gint need_width,
    gint need_height)
{
  for (gint denom = 8; denom > 1; denom /= 2)
    if (kestrel_jpeg_scaled (width, denom) >= need_width
        && kestrel_jpeg_scaled (height, denom) >= need_height)
      return denom;
  return 1;
}

gboolean
kestrel_jpeg_has_eoi (const guint8 * data, gsize size)
{
  /* UVC payloads are often padded with zeros after the EOI. */
  while (size > 2 && data[size - 1] == 0)
    size--;
  return size >= 4 && data[size - 2] == 0xFF && data[size - 1] == 0xD9;
}

gboolean
kestrel_jpeg_header (KestrelJpeg * jpeg, const guint8 * data, gsize size,
    gint * width, gint * height, gchar * why, gsize why_size)
{
  int w, h, subsamp, colorspace;

  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    g_snprintf (why, why_size, "no JPEG start-of-image marker (%"
        G_GSIZE_FORMAT " bytes)", size);
    return FALSE;
  }
  if (size > G_MAXULONG || tjDecompressHeader3 (jpeg->tj, data,
          (unsigned long) size, &w, &h, &subsamp, &colorspace) != 0) {
    g_snprintf (why, why_size, "bad JPEG header: %s",
        tjGetErrorStr2 (jpeg->tj));
    return FALSE;
  }
  if (w < 1 || h < 1 || w > KESTREL_JPEG_MAX_SIDE
      || h > KESTREL_JPEG_MAX_SIDE) {
    g_snprintf (why, why_size, "JPEG size %dx%d out of range", w, h);
    return FALSE;
  }
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    g_snprintf (why, why_size, "CMYK/YCCK JPEG: not a camera frame");
    return FALSE;
  }
  *width = w;
  *height = h;
  return TRUE;
}

/* The raw decode into planes of the JPEG's own subsampling. */
static KestrelJpegStatus
decode_planes (KestrelJpeg * jpeg, const guint8 * data, gsize size,
    gint width, gint height, guint8 ** planes, gint * strides, gchar * why,
    gsize why_size)
{
  int flags = TJFLAG_LIMITSCANS;

  if (tjDecompressToYUVPlanes (jpeg->tj, data, (unsigned long) size, planes,
          width, strides, height, flags) == 0)
    return KESTREL_JPEG_OK;
  g_snprintf (why, why_size, "%s", tjGetErrorStr2 (jpeg->tj));
  return tjGetErrorCode (jpeg->tj) == TJERR_WARNING ? KESTREL_JPEG_DAMAGED :
      KESTREL_JPEG_FAILED;
}

/* Box-resamples one chroma plane to another size (2:1 and 1:1 ratios in
 * practice: 4:2:2 and 4:4:4 to 4:2:0). */
static void
resample_plane (const guint8 * src, gint sw, gint sh, gint sstride,
    guint8 * dst, gint dw, gint dh, gint dstride)
{
  for (gint y = 0; y < dh; y++) {
    gint y0 = (gint) ((gint64) y * sh / dh);
    gint y1 = MAX (y0 + 1, (gint) ((gint64) (y + 1) * sh / dh));
    guint8 *out = dst + (gsize) y * dstride;

    if (sw == dw && y1 == y0 + 1) {
      memcpy (out, src + (gsize) y0 * sstride, dw);
      continue;
    }
    if (sw == dw && y1 == y0 + 2) {
      const guint8 *a = src + (gsize) y0 * sstride, *b = a + sstride;
      for (gint x = 0; x < dw; x++)
        out[x] = (guint8) ((a[x] + b[x] + 1) >> 1);
      continue;
    }
    for (gint x = 0; x < dw; x++) {
      gint x0 = (gint) ((gint64) x * sw / dw);
      gint x1 = MAX (x0 + 1, (gint) ((gint64) (x + 1) * sw / dw));
      guint sum = 0;
      for (gint yy = y0; yy < y1; yy++)
        for (gint xx = x0; xx < x1; xx++)
          sum += src[(gsize) yy * sstride + xx];
      out[x] = (guint8) ((sum + (guint) ((x1 - x0) * (y1 - y0)) / 2)
          / (guint) ((x1 - x0) * (y1 - y0)));
    }
  }
}

static gboolean
read_layout (KestrelJpeg * jpeg, const guint8 * data, gsize size,
    gint * width, gint * height, gint * subsamp, gchar * why, gsize why_size)
{
  int cs;

  if (!kestrel_jpeg_header (jpeg, data, size, width, height, why, why_size))
    return FALSE;
  /* kestrel_jpeg_header just parsed it: this cannot fail. */
  tjDecompressHeader3 (jpeg->tj, data, (unsigned long) size, width, height,
      subsamp, &cs);
  return TRUE;
}

KestrelJpegStatus
kestrel_jpeg_decode_i420 (KestrelJpeg * jpeg, const guint8 * data,
    gsize size, gint width, gint height, gint denom,
    guint8 * const planes[3], const gint strides[3], gchar * why,
    gsize why_size)
{
  gint w, h, subsamp, sw, sh;
  KestrelJpegStatus st;

  if (!read_layout (jpeg, data, size, &w, &h, &subsamp, why, why_size))
    return KESTREL_JPEG_FAILED;
  if (w != width || h != height) {
    g_snprintf (why, why_size, "frame is %dx%d, stream is %dx%d", w, h,
        width, height);
    return KESTREL_JPEG_FAILED;
  }
  sw = kestrel_jpeg_scaled (w, denom);
  sh = kestrel_jpeg_scaled (h, denom);

  if (subsamp == TJSAMP_420) {
    /* Coded as I420: straight into the output planes. */
    guint8 *p[3] = { planes[0], planes[1], planes[2] };
    gint s[3] = { strides[0], strides[1], strides[2] };
    return decode_planes (jpeg, data, size, sw, sh, p, s, why, why_size);
  }
  if (subsamp == TJSAMP_GRAY) {
    guint8 *p[1] = { planes[0] };
    gint s[1] = { strides[0] };
    st = decode_planes (jpeg, data, size, sw, sh, p, s, why, why_size);
    if (st != KESTREL_JPEG_FAILED)
      for (gint c = 1; c < 3; c++)
        for (gint y = 0; y < (sh + 1) / 2; y++)
          memset (planes[c] + (gsize) y * strides[c], 128, (sw + 1) / 2);
    return st;
  }
  {
    /* Luma straight in; chroma through scratch, then to 4:2:0. */
    gint cw = tjPlaneWidth (1, sw, subsamp), ch = tjPlaneHeight (1, sh,
        subsamp);
    guint8 *tmp, *p[3];
    gint s[3];
    if (cw < 1 || ch < 1) {
      g_snprintf (why, why_size, "unsupported JPEG subsampling %d", subsamp);
      return KESTREL_JPEG_FAILED;
    }
    tmp = scratch (jpeg, (gsize) cw * ch * 2);
    p[0] = planes[0];
    p[1] = tmp;
    p[2] = tmp + (gsize) cw * ch;
    s[0] = strides[0];
    s[1] = s[2] = cw;
    st = decode_planes (jpeg, data, size, sw, sh, p, s, why, why_size);
    if (st != KESTREL_JPEG_FAILED)
      for (gint c = 1; c < 3; c++)
        resample_plane (p[c], cw, ch, cw, planes[c], (sw + 1) / 2,
            (sh + 1) / 2, strides[c]);
    return st;
  }
}

KestrelJpegStatus
kestrel_jpeg_decode_frame (KestrelJpeg * jpeg, const guint8 * data,
    gsize size, gint denom, KestrelFrame * frame, gchar * why, gsize why_size)
{
  gint w, h, subsamp, sw, sh, cw, ch, stride[3];
  GstVideoFormat format;
  const guint8 *planes[3];
  guint8 *buf;
  KestrelJpegStatus st;

  if (!read_layout (jpeg, data, size, &w, &h, &subsamp, why, why_size))
    return KESTREL_JPEG_FAILED;
  sw = kestrel_jpeg_scaled (w, denom);
  sh = kestrel_jpeg_scaled (h, denom);
  switch (subsamp) {
    case TJSAMP_422:
      format = GST_VIDEO_FORMAT_Y42B;
      cw = (sw + 1) / 2;
      ch = sh;
      break;
    case TJSAMP_444:
      format = GST_VIDEO_FORMAT_Y444;
      cw = sw;
      ch = sh;
      break;
    default:
      format = GST_VIDEO_FORMAT_I420;
      cw = (sw + 1) / 2;
      ch = (sh + 1) / 2;
      break;
  }
  stride[0] = sw;
  stride[1] = stride[2] = cw;
  if (jpeg->planes_size < (gsize) sw * sh + (gsize) cw * ch * 2) {
    g_free (jpeg->planes);
    jpeg->planes_size = (gsize) sw * sh + (gsize) cw * ch * 2;
    jpeg->planes = g_malloc (jpeg->planes_size);
  }
  buf = jpeg->planes;
  {
    guint8 *p[3] = { buf, buf + (gsize) sw * sh,
      buf + (gsize) sw * sh + (gsize) cw * ch
    };
    if (subsamp == TJSAMP_422 || subsamp == TJSAMP_444
        || subsamp == TJSAMP_420)
      st = decode_planes (jpeg, data, size, sw, sh, p, stride, why,
          why_size);
    else                        /* greyscale, 4:4:0, 4:1:1: as I420 */
      st = kestrel_jpeg_decode_i420 (jpeg, data, size, w, h, denom, p,
          stride, why, why_size);
    if (st == KESTREL_JPEG_FAILED)
      return st;
    planes[0] = p[0];
    planes[1] = p[1];
    planes[2] = p[2];
  }
  if (!kestrel_frame_init (frame, format, sw, sh, planes, stride,
          GST_VIDEO_COLOR_MATRIX_BT601, GST_VIDEO_COLOR_RANGE_0_255)) {
    g_snprintf (why, why_size, "cannot describe the decoded planes");
    return KESTREL_JPEG_FAILED;
  }
  kestrel_frame_set_full_size (frame, w, h);
  return st;
}
