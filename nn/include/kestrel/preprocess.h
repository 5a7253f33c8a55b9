/* Camera frames straight into a model's input tensor: crop, resize
 * (footprint mean when shrinking by 2x or more, else bilinear), colour
 * conversion from the frame's own pixel format, normalization and
 * quantization in one pass over the rows the tensor needs, with no
 * full-size RGB copy of the frame.
 *
 *   kestrel_image img;
 *   kestrel_image_init(&img, KESTREL_PIXEL_I420, 1920, 1080, planes, strides);
 *   kestrel_image_set_yuv(&img, 0.299, 0.114, 0);       // BT.601 limited
 *   kestrel_transform tf;
 *   kestrel_preprocess_image(&sidecar, &img, NULL,
 *                            kestrel_session_input(session, 0), &tf,
 *                            NULL, 0, &err);
 *
 * Sampling is kestrel_preprocess's (same tensor for the same RGB pixels, bit
 * for bit); YUV frames are averaged or interpolated in YUV at luma
 * resolution (chroma taken from the sample covering each luma pixel) and
 * converted once per tensor pixel. The per-ISA kernels (C reference, AVX2,
 * NEON in nn/kernels/preprocess/) give identical bytes.
 *
 * An image may be a reduced view of a larger frame (a JPEG decoded at 1/2,
 * 1/4 or 1/8 in the DCT domain): set frame_width/frame_height to the full
 * size. Crops, the transform and so decoded boxes are then in full-frame
 * pixels, while only the small pixels are read.
 */
#ifndef KESTREL_PREPROCESS_H
#define KESTREL_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include <kestrel/decode.h>
#include <kestrel/status.h>
#include <kestrel/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kestrel_pixel_format {
  KESTREL_PIXEL_RGB = 0,
  KESTREL_PIXEL_BGR = 1,
  KESTREL_PIXEL_RGBX = 2, /* 4 bytes per pixel, the 4th ignored */
  KESTREL_PIXEL_BGRX = 3,
  KESTREL_PIXEL_I420 = 4, /* planar Y, U, V; chroma 1/2 x 1/2 */
  KESTREL_PIXEL_NV12 = 5, /* planar Y, interleaved UV; chroma 1/2 x 1/2 */
  KESTREL_PIXEL_YUY2 = 6, /* packed Y0 U Y1 V; chroma 1/2 x 1 */
  KESTREL_PIXEL_Y42B = 7, /* planar Y, U, V; chroma 1/2 x 1 (4:2:2 JPEG) */
  KESTREL_PIXEL_Y444 = 8, /* planar Y, U, V; full chroma */
} kestrel_pixel_format;

/* Y'CbCr -> RGB: y' = (Y - y_offset) * y_scale, u' = (U - 128) * c_scale,
 * v' likewise; R = y' + cr_r v', G = y' + cb_g u' + cr_g v', B = y' + cb_b u',
 * each clamped to [0, 255]. */
typedef struct kestrel_yuv_coeffs {
  float y_offset, y_scale, c_scale;
  float cr_r, cb_g, cr_g, cb_b;
} kestrel_yuv_coeffs;

typedef struct kestrel_image {
  kestrel_pixel_format format;
  int width, height;           /* stored pixels */
  const uint8_t *planes[3];    /* as many as the format has */
  size_t strides[3];           /* bytes per row of each plane */
  kestrel_yuv_coeffs yuv;      /* YUV formats only */
  int frame_width, frame_height; /* the full frame shown; 0: width/height */
} kestrel_image;

/* A rectangle in frame pixels. */
typedef struct kestrel_crop {
  int x, y, width, height;
} kestrel_crop;

/* Describes the image (planes stay the caller's) with BT.601 limited range
 * coefficients. KESTREL_ERROR_INVALID_ARGUMENT for a bad size or a NULL
 * plane the format needs. */
kestrel_status kestrel_image_init(kestrel_image *img,
                                  kestrel_pixel_format format, int width,
                                  int height, const uint8_t *const planes[3],
                                  const size_t strides[3]);
/* Matrix by its luma weights (BT.601: 0.299, 0.114; BT.709: 0.2126,
 * 0.0722) and range (full: 0..255, else 16..235 / 16..240). */
void kestrel_image_set_yuv(kestrel_image *img, double kr, double kb,
                           int full_range);

/* Bytes of scratch kestrel_preprocess_image needs for this image and
 * tensor size (an upper bound for any crop). */
size_t kestrel_preprocess_image_scratch(const kestrel_image *img,
                                        int tensor_width, int tensor_height);

/* Fills `input` (rank 4, [1,3,H,W] or [1,H,W,3] per sc->layout; float32,
 * uint8 or int8) from the part `crop` (frame pixels, clipped to the frame;
 * NULL: all of it) of the image and records in *tf where the crop lies in
 * the tensor (boxes decoded through it come back in crop pixels of the
 * frame). Integer tensors with a per-tensor quantization (quant.count == 1)
 * get the normalized value quantized: clamp(lrintf(v / scale) + zero_point);
 * without one they take raw pixel values (0..255, minus 128 for int8), as
 * kestrel_preprocess does. The sidecar's MULTIPLE resize is not handled
 * here (use a tensor of the size kestrel_preprocess_size gives; it is
 * treated as STRETCH). scratch: kestrel_preprocess_image_scratch() bytes,
 * 16-byte aligned, or NULL to have it allocated and freed per call. */
kestrel_status kestrel_preprocess_image(const kestrel_sidecar *sc,
                                        const kestrel_image *img,
                                        const kestrel_crop *crop,
                                        kestrel_tensor *input,
                                        kestrel_transform *tf, void *scratch,
                                        size_t scratch_size,
                                        kestrel_error *err);

#ifdef __cplusplus
}
#endif
#endif
