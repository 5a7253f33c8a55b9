/* Raw video frames to model input tensors: crop, resize, colour conversion
 * and normalization in one pass straight from the frame's planes. */
#ifndef __KESTREL_FRAME_H__
#define __KESTREL_FRAME_H__

#include <gst/video/video.h>
#include <kestrel/decode.h>

G_BEGIN_DECLS

/* A read-only view of one raw frame. Formats: I420, NV12, YUY2, Y42B,
 * Y444 (YUV, the colour matrix and range come from the caps' colorimetry)
 * and RGB, BGR, RGBx, BGRx.
 *
 * The pixels may show a larger frame at reduced resolution (a JPEG decoded
 * at 1/2, 1/4 or 1/8 in the DCT domain): width/height are then the full
 * frame's, the size crops and results are in, and stored_width/height the
 * pixels' (see kestrel_frame_set_full_size). */
typedef struct
{
  GstVideoFormat format;
  gint width, height;
  gint stored_width, stored_height;
  const guint8 *data[3];
  gint stride[3];
  /* YUV -> RGB: r = y' + cr_r * v', g = y' + cb_g * u' + cr_g * v',
   * b = y' + cb_b * u' with y' = (y - y_offset) * y_scale and
   * u', v' = (c - 128) * c_scale. */
  gfloat y_offset, y_scale, c_scale;
  gfloat cr_r, cb_g, cr_g, cb_b;
} KestrelFrame;

typedef struct
{
  gint x, y, width, height;
} KestrelRect;

gboolean kestrel_frame_format_supported (GstVideoFormat format);

/* Describes planes the caller keeps mapped. FALSE for an unsupported
 * format. matrix/range pick the YUV conversion (UNKNOWN: BT.601, limited
 * range), ignored for RGB formats. */
gboolean kestrel_frame_init (KestrelFrame * frame, GstVideoFormat format,
    gint width, gint height, const guint8 * const data[3],
    const gint stride[3], GstVideoColorMatrix matrix,
    GstVideoColorRange range);
gboolean kestrel_frame_init_from_video_frame (KestrelFrame * frame,
    const GstVideoFrame * video_frame);
/* Declares the frame's pixels a reduced view of a full_width x full_height
 * frame: crops and decoded boxes are then in full-size pixels. */
void kestrel_frame_set_full_size (KestrelFrame * frame, gint full_width,
    gint full_height);

/* Clips rect to the frame; FALSE when nothing of it is left. */
gboolean kestrel_rect_clip (KestrelRect * rect, gint width, gint height);

/* Fills the model's input tensor (rank 4, [1,3,H,W] or [1,H,W,3] as the
 * sidecar's layout says; float32, uint8 or int8) from the part `crop` of the
 * frame (NULL: the whole frame), resized as the sidecar's resize mode says,
 * and records in *tf where the crop lies in the tensor. Decoded boxes come
 * back in crop pixels: add crop->x/y for frame pixels. This is the engine's
 * fused kernel (kestrel_preprocess_image, nn/kernels/preprocess/): sampling
 * as kestrel_preprocess (bilinear with half-pixel centres, or the footprint
 * mean when shrinking by 2x or more), so an RGB frame gives the same tensor
 * as kestrel_preprocess on the same pixels; YUV is sampled, then converted,
 * in one pass. Allocates only its per-thread scratch, once. */
kestrel_status kestrel_frame_preprocess (const kestrel_sidecar * sc,
    const KestrelFrame * frame, const KestrelRect * crop,
    kestrel_tensor * input, kestrel_transform * tf, kestrel_error * err);

G_END_DECLS
#endif /* __KESTREL_FRAME_H__ */
