/* kestreljpegdec: MJPEG frames to I420 with TurboJPEG, no RGB on the way. */
#ifndef __GST_KESTREL_JPEGDEC_H__
#define __GST_KESTREL_JPEGDEC_H__

#include <gst/gst.h>
#include <gst/video/gstvideodecoder.h>

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_JPEGDEC (gst_kestrel_jpegdec_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelJpegdec, gst_kestrel_jpegdec, GST,
    KESTREL_JPEGDEC, GstVideoDecoder);

#define GST_TYPE_KESTREL_BAD_FRAMES (gst_kestrel_bad_frames_get_type ())
GType gst_kestrel_bad_frames_get_type (void);

/* What happens to a frame that decoded with errors (truncated, no EOI,
 * corrupt entropy-coded data). Frames with nothing usable are always
 * dropped. */
typedef enum
{
  GST_KESTREL_BAD_FRAMES_DROP = 0,
  GST_KESTREL_BAD_FRAMES_SHOW = 1,
} GstKestrelBadFrames;

GST_ELEMENT_REGISTER_DECLARE (kestreljpegdec);

G_END_DECLS
#endif /* __GST_KESTREL_JPEGDEC_H__ */
