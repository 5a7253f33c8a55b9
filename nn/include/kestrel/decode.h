/* Turning a model's raw outputs into answers: per-model sidecar files,
 * image preprocessing and the task decoders (classification, MediaPipe-style
 * SSD with anchors, PP-OCR DBNet text detection).
 *
 *   kestrel_sidecar sc;
 *   kestrel_error err;
 *   if (kestrel_sidecar_load("face.sidecar", &sc, &err) != KESTREL_OK) ...
 *   kestrel_transform tf;
 *   kestrel_preprocess(&sc, rgb, width, height, width * 3,
 *                      kestrel_session_input(session, 0), &tf, &err);
 *   kestrel_session_run(session, &err);
 *   const kestrel_tensor *outs[2] = {kestrel_session_output(session, 0),
 *                                    kestrel_session_output(session, 1)};
 *   kestrel_result res = {0};
 *   if (kestrel_decode(&sc, outs, 2, &tf, &res, &err) == KESTREL_OK)
 *     for (size_t i = 0; i < res.num_objects; i++)
 *       printf("%s %.2f\n", res.objects[i].label, res.objects[i].confidence);
 *   kestrel_result_free(&res);
 *   kestrel_sidecar_free(&sc);
 *
 * The sidecar format (docs in nn/src/decode/sidecar.c and
 * assets/models/README.md) is INI-like text: `key = value` lines grouped in
 * [model], [input], [decoder], [ssd], [classify] and [dbnet] sections.
 */
#ifndef KESTREL_DECODE_H
#define KESTREL_DECODE_H

#include <stdint.h>

#include <kestrel/status.h>
#include <kestrel/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KESTREL_MAX_KEYPOINTS 8
#define KESTREL_SSD_MAX_LAYERS 8

typedef enum kestrel_decoder_type {
  KESTREL_DECODER_NONE = 0,     /* raw outputs only */
  KESTREL_DECODER_CLASSIFY = 1, /* scores per class */
  KESTREL_DECODER_SSD = 2,      /* MediaPipe SSD anchors + (weighted) NMS */
  KESTREL_DECODER_DBNET = 3,    /* PP-OCR DB text detection */
} kestrel_decoder_type;

typedef enum kestrel_resize_mode {
  KESTREL_RESIZE_STRETCH = 0,   /* to width x height, aspect not kept */
  KESTREL_RESIZE_LETTERBOX = 1, /* keep aspect, centre, pad both sides */
  KESTREL_RESIZE_PAD_RIGHT = 2, /* keep aspect to height, pad on the right
                                   (PP-OCR cls); wider images are squeezed */
  KESTREL_RESIZE_MULTIPLE = 3,  /* keep aspect, limit a side, round each side
                                   to a multiple (PP-OCR det); the tensor size
                                   depends on the image */
} kestrel_resize_mode;

typedef enum kestrel_layout {
  KESTREL_LAYOUT_NCHW = 0,
  KESTREL_LAYOUT_NHWC = 1,
} kestrel_layout;

typedef enum kestrel_nms_mode {
  KESTREL_NMS_NONE = 0,
  KESTREL_NMS_PLAIN = 1,    /* keep the best, drop overlaps */
  KESTREL_NMS_WEIGHTED = 2, /* MediaPipe: blend overlaps by score */
} kestrel_nms_mode;

typedef struct kestrel_ssd_options {
  /* Anchor generation (MediaPipe SsdAnchorsCalculatorOptions). */
  int num_layers;
  int strides[KESTREL_SSD_MAX_LAYERS];
  float min_scale, max_scale;
  float anchor_offset_x, anchor_offset_y;
  int num_aspect_ratios;
  float aspect_ratios[KESTREL_SSD_MAX_LAYERS];
  float interpolated_scale_aspect_ratio; /* 0 disables the extra anchor */
  int fixed_anchor_size;
  int reduce_boxes_in_lowest_layer;
  /* Box decoding (TensorsToDetectionsCalculatorOptions). */
  int num_coords;
  int box_coord_offset;
  int keypoint_coord_offset;
  int num_keypoints;
  int num_values_per_keypoint;
  int reverse_output_order; /* boxes stored x,y,w,h rather than y,x,h,w */
  float x_scale, y_scale, w_scale, h_scale;
  int sigmoid_score;
  float score_clipping; /* raw scores clipped to +-this before sigmoid */
  float min_score;
  kestrel_nms_mode nms;
  float nms_iou; /* overlap above which boxes are merged/suppressed */
  int max_detections;
} kestrel_ssd_options;

typedef struct kestrel_classify_options {
  int softmax; /* apply softmax to the scores first */
  int top_k;
  float min_score;
} kestrel_classify_options;

typedef struct kestrel_dbnet_options {
  float threshold;     /* binarize the probability map */
  float box_threshold; /* drop boxes with lower mean probability */
  float unclip_ratio;  /* grow boxes by area*ratio/perimeter */
  int max_candidates;
  float min_size; /* shorter side of a box, in map pixels */
} kestrel_dbnet_options;

typedef struct kestrel_sidecar {
  char name[64];
  char sha256[65]; /* of the model file, lower-case hex; "" if unset */
  /* [input] */
  int width, height; /* tensor size; for MULTIPLE the upper bound hint */
  kestrel_layout layout;
  int bgr; /* channel order of the tensor: 0 RGB, 1 BGR */
  /* value = (pixel * scale - mean[c]) / std[c] */
  float scale;
  float mean[3], std[3];
  kestrel_resize_mode resize;
  float pad_value; /* tensor value of padding */
  int limit_side;  /* MULTIPLE: longest (or shortest) side limit */
  int limit_max;   /* MULTIPLE: 1 limits the longest side, 0 the shortest */
  int multiple;    /* MULTIPLE: each side rounded to this */
  /* [decoder] */
  kestrel_decoder_type decoder;
  char **labels; /* owned */
  int num_labels;
  char **keypoint_names; /* owned */
  int num_keypoint_names;
  kestrel_ssd_options ssd;
  kestrel_classify_options classify;
  kestrel_dbnet_options dbnet;
} kestrel_sidecar;

/* Where an image lies inside the input tensor: tensor = image * scale + pad.
 * Decoders use it to return boxes in original image pixels. */
typedef struct kestrel_transform {
  int image_width, image_height;
  int tensor_width, tensor_height;
  float scale_x, scale_y;
  float pad_x, pad_y;
} kestrel_transform;

typedef struct kestrel_point {
  float x, y;
} kestrel_point;

typedef struct kestrel_object {
  const char *label; /* points into the sidecar (or a static string) */
  int label_id;
  float confidence;
  float x, y, w, h; /* axis-aligned box in image pixels */
  int num_keypoints;
  kestrel_point keypoints[KESTREL_MAX_KEYPOINTS];
  int has_quad; /* DBNet: rotated box corners, clockwise from top-left */
  kestrel_point quad[4];
} kestrel_object;

typedef struct kestrel_class {
  const char *label;
  int label_id;
  float score;
} kestrel_class;

/* Filled by kestrel_decode; reuse across frames (arrays grow as needed). */
typedef struct kestrel_result {
  kestrel_object *objects;
  size_t num_objects, cap_objects;
  kestrel_class *classes; /* best first */
  size_t num_classes, cap_classes;
} kestrel_result;

/* --- sidecars ----------------------------------------------------------- */
/* Defaults for a decoder type (MediaPipe / PaddleOCR conventions). */
void kestrel_sidecar_init(kestrel_sidecar *sc);
kestrel_status kestrel_sidecar_load(const char *path, kestrel_sidecar *sc,
                                    kestrel_error *err);
/* `name` only names the text in messages; labels_file paths are relative to
 * base_dir (may be NULL). */
kestrel_status kestrel_sidecar_parse(const char *text, size_t size,
                                     const char *name, const char *base_dir,
                                     kestrel_sidecar *sc, kestrel_error *err);
void kestrel_sidecar_free(kestrel_sidecar *sc);
/* Finds the sidecar of a model: `MODEL.sidecar`, then `BASENAME.sidecar`
 * next to it, then any *.sidecar in asset_dir whose sha256 matches. Writes
 * the path to out (size out_size). KESTREL_ERROR_IO if none. */
kestrel_status kestrel_sidecar_find(const char *model_path,
                                    const char *model_sha256,
                                    const char *asset_dir, char *out,
                                    size_t out_size, kestrel_error *err);

/* --- preprocessing ------------------------------------------------------ */
/* Tensor width/height the sidecar wants for an image (MULTIPLE depends on
 * the image; the others return the sidecar's size). */
kestrel_status kestrel_preprocess_size(const kestrel_sidecar *sc,
                                       int image_width, int image_height,
                                       int *tensor_width, int *tensor_height,
                                       kestrel_error *err);
/* Bilinear resize + normalize an RGB8 image (stride bytes per row) into a
 * float32 input tensor of rank 4 ([1,3,H,W] or [1,H,W,3] per sc->layout).
 * Records the mapping in *tf. */
kestrel_status kestrel_preprocess(const kestrel_sidecar *sc,
                                  const uint8_t *rgb, int width, int height,
                                  size_t stride, kestrel_tensor *input,
                                  kestrel_transform *tf, kestrel_error *err);

/* --- decoding ----------------------------------------------------------- */
kestrel_status kestrel_decode(const kestrel_sidecar *sc,
                              const kestrel_tensor *const *outputs,
                              size_t num_outputs, const kestrel_transform *tf,
                              kestrel_result *res, kestrel_error *err);
void kestrel_result_free(kestrel_result *res);

/* Building blocks, public for tests and for callers with their own
 * pipelines. Anchors are (x_center, y_center, w, h) in [0,1]. Returns the
 * anchor count, or -1 with *err set; anchors may be NULL to count. */
int kestrel_ssd_anchors(const kestrel_ssd_options *opt, int input_width,
                        int input_height, float *anchors, int capacity,
                        kestrel_error *err);
/* In-place NMS on objects sorted or not; returns the number kept (first
 * entries of the array, best first). */
size_t kestrel_nms(kestrel_object *objects, size_t count,
                   kestrel_nms_mode mode, float iou_threshold,
                   size_t max_keep);
float kestrel_box_iou(const kestrel_object *a, const kestrel_object *b);
/* Minimum-area enclosing rectangle of a point set (convex hull + rotating
 * calipers). Writes 4 corners clockwise from the top-left; returns area. */
float kestrel_min_area_rect(const kestrel_point *points, size_t count,
                            kestrel_point corners[4]);
/* DB post-processing on a [H,W] probability map (map pixels); boxes are
 * mapped to the image through tf (NULL: map pixels). */
kestrel_status kestrel_dbnet_decode(const kestrel_dbnet_options *opt,
                                    const float *prob, int width, int height,
                                    const kestrel_transform *tf,
                                    kestrel_result *res, kestrel_error *err);

#ifdef __cplusplus
}
#endif
#endif
