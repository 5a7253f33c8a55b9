/* Image files for the CLI: JPEG through TurboJPEG, PNG through libpng,
 * both to packed RGB8. The library itself never decodes images. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifdef KESTREL_HAVE_IMAGES
#include <png.h>
#include <turbojpeg.h>
#endif

#include "cli.h"

/* 16k x 16k RGB is 768 MiB: anything larger is refused before decoding. */
#define IMAGE_MAX_SIDE 16384
#define IMAGE_FILE_MAX ((size_t)256 << 20)

static kestrel_status fail(kestrel_error *err, kestrel_status st,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kestrel_status fail(kestrel_error *err, kestrel_status st,
                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return st;
}

void image_free(cli_image *img) {
  if (!img)
    return;
  free(img->rgb);
  memset(img, 0, sizeof(*img));
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcasecmp(s + n - m, suffix);
}

int path_is_image(const char *path) {
  return has_suffix(path, ".jpg") || has_suffix(path, ".jpeg") ||
         has_suffix(path, ".png");
}

#ifdef KESTREL_HAVE_IMAGES
static kestrel_status load_jpeg(const char *path, const uint8_t *data,
                                size_t size, cli_image *img,
                                kestrel_error *err) {
  tjhandle tj = tjInitDecompress();
  if (!tj)
    return fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: TurboJPEG init failed",
                path);
  int w, h, subsamp, colorspace;
  kestrel_status st = KESTREL_OK;
  if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp,
                          &colorspace)) {
    st = fail(err, KESTREL_ERROR_MALFORMED, "%s: %s", path,
              tjGetErrorStr2(tj));
    goto done;
  }
  if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE) {
    st = fail(err, KESTREL_ERROR_UNSUPPORTED, "%s: %dx%d image too large",
              path, w, h);
    goto done;
  }
  img->rgb = malloc((size_t)w * h * 3);
  if (!img->rgb) {
    st = fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  /* Accurate DCT: detector scores should not depend on a speed trade. */
  if (tjDecompress2(tj, data, (unsigned long)size, img->rgb, w, w * 3, h,
                    TJPF_RGB, TJFLAG_ACCURATEDCT) &&
      tjGetErrorCode(tj) == TJERR_FATAL) {
    st = fail(err, KESTREL_ERROR_MALFORMED, "%s: %s", path,
              tjGetErrorStr2(tj));
    image_free(img);
    goto done;
  }
  img->width = w;
  img->height = h;
done:
  tjDestroy(tj);
  return st;
}

typedef struct png_reader {
  const uint8_t *data;
  size_t size, pos;
} png_reader;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  png_reader *r = png_get_io_ptr(png);
  if (n > r->size - r->pos)
    png_error(png, "truncated file");
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

static kestrel_status load_png(const char *path, const uint8_t *data,
                               size_t size, cli_image *img,
                               kestrel_error *err) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: libpng init failed",
                path);
  }
  png_reader r = {data, size, 0};
  /* volatile: modified between setjmp and a possible longjmp. */
  uint8_t *volatile rgb = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    free(rgb);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: corrupt PNG", path);
  }
  png_set_read_fn(png, &r, png_read_mem);
  png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info);
  png_uint_32 h = png_get_image_height(png, info);
  int color = png_get_color_type(png, info);
  /* Everything to 8-bit RGB: expand palettes and grey, drop alpha. */
  if (png_get_bit_depth(png, info) == 16)
    png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != (size_t)w * 3)
    png_error(png, "unexpected row size");
  rgb = malloc((size_t)w * h * 3);
  rows = malloc(h * sizeof(png_bytep));
  if (!rgb || !rows)
    png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++)
    rows[y] = rgb + (size_t)y * w * 3;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  img->rgb = rgb;
  img->width = (int)w;
  img->height = (int)h;
  return KESTREL_OK;
}

#endif /* KESTREL_HAVE_IMAGES */

kestrel_status image_load(const char *path, cli_image *img,
                          kestrel_error *err) {
  memset(img, 0, sizeof(*img));
  uint8_t *data;
  size_t size;
  if (cli_read_file(path, IMAGE_FILE_MAX, &data, &size, err))
    return KESTREL_ERROR_IO;
  kestrel_status st;
#ifdef KESTREL_HAVE_IMAGES
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    st = load_jpeg(path, data, size, img, err);
  else if (size >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8))
    st = load_png(path, data, size, img, err);
  else
#else
  if ((size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) ||
      (size >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)))
    st = fail(err, KESTREL_ERROR_UNSUPPORTED,
              "%s: built without JPEG/PNG support (meson -Dimages)", path);
  else
#endif
    st = fail(err, KESTREL_ERROR_UNSUPPORTED,
              "%s: not a JPEG or PNG file (checked magic bytes)", path);
  free(data);
  return st;
}
