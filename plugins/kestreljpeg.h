/* JPEG frames (MJPEG cameras) decoded with libjpeg-turbo's TurboJPEG API
 * straight to planar YUV: full size into a downstream I420 buffer
 * (kestreljpegdec), or reduced 1/2, 1/4, 1/8 in the DCT domain for a
 * model that needs only a small picture (kestreldetect/kestrelclassify on
 * image/jpeg). Never RGB. Damaged frames are classified, not fatal. */
#ifndef __KESTREL_JPEG_H__
#define __KESTREL_JPEG_H__

#include <glib.h>

#include "kestrelframe.h"

G_BEGIN_DECLS

typedef enum
{
  KESTREL_JPEG_OK = 0,
  /* Decoded with libjpeg warnings (truncated data, no EOI, corrupt
   * entropy-coded data): the picture may be partly grey or garbled. */
  KESTREL_JPEG_DAMAGED = 1,
  /* Nothing usable (no SOI, bad header, unsupported colour space, fatal
   * decoder error). */
  KESTREL_JPEG_FAILED = 2,
} KestrelJpegStatus;

/* A decoder with its scratch, used by one thread at a time. */
typedef struct _KestrelJpeg KestrelJpeg;

/* Largest frame side accepted (larger headers are refused). */
#define KESTREL_JPEG_MAX_SIDE 16384

KestrelJpeg *kestrel_jpeg_new (void);
void kestrel_jpeg_free (KestrelJpeg * jpeg);

/* Size from the header. FALSE (why filled) if there is no usable header. */
gboolean kestrel_jpeg_header (KestrelJpeg * jpeg, const guint8 * data,
    gsize size, gint * width, gint * height, gchar * why, gsize why_size);

/* Whether the data ends with an EOI marker (zero padding after it, which
 * UVC cameras add, is allowed). */
gboolean kestrel_jpeg_has_eoi (const guint8 * data, gsize size);

/* Output size of a 1/denom decode (denom 1, 2, 4 or 8): ceil(side/denom). */
gint kestrel_jpeg_scaled (gint side, gint denom);

/* The largest denominator (8, 4, 2, 1) whose decode of a width x height
 * frame still has at least need_width x need_height pixels. */
gint kestrel_jpeg_pick_denom (gint width, gint height, gint need_width,
    gint need_height);

/* Decodes at 1/denom into I420 planes of exactly the scaled size (other
 * subsamplings are converted: chroma averaged or repeated; greyscale gets
 * neutral chroma). The header must say width x height (else FAILED). */
KestrelJpegStatus kestrel_jpeg_decode_i420 (KestrelJpeg * jpeg,
    const guint8 * data, gsize size, gint width, gint height, gint denom,
    guint8 * const planes[3], const gint strides[3], gchar * why,
    gsize why_size);

/* Decodes at 1/denom into the decoder's own planes (valid until the next
 * call) in the JPEG's own subsampling where the preprocessing kernels take
 * it (4:2:0, 4:2:2, 4:4:4; others as I420) and describes them in *frame:
 * full-range BT.601 (JFIF), a reduced view of the full-size frame. */
KestrelJpegStatus kestrel_jpeg_decode_frame (KestrelJpeg * jpeg,
    const guint8 * data, gsize size, gint denom, KestrelFrame * frame,
    gchar * why, gsize why_size);

G_END_DECLS
#endif /* __KESTREL_JPEG_H__ */
