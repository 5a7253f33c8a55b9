/* img2npy: turn a real photo (JPEG or PNG) into a PP-OCR input tensor saved as .npy, so that
 * Kestrel and ONNX Runtime are fed exactly the same bytes in the reference comparisons.
 *
 *   img2npy det  PHOTO OUT.npy WIDTHxHEIGHT [x,y,w,h]   detector input [1,3,H,W]
 *   img2npy cls  PHOTO OUT.npy WIDTHxHEIGHT [x,y,w,h]   classifier input [1,3,H,W]
 *
 * det: the (optionally cropped) photo is stretched to W x H, channels in BGR order (PaddleOCR reads
 *      with OpenCV), normalised with the ImageNet mean/std on x/255.
 * cls: the crop is resized to height H keeping its aspect ratio (width capped at W), normalised to
 *      (x/255 - 0.5) / 0.5 and zero-padded on the right to W, as PaddleOCR's classifier expects.
 * Resizing is bilinear with pixel centres at +0.5 (OpenCV's INTER_LINEAR convention).
 */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Photos in the test data are at most a few thousand pixels wide; refuse anything absurd. */
#define MAX_SIDE 16384

struct image {
    int width, height;
    unsigned char *rgb; /* height rows of width * 3 bytes */
};

static int fail(const char *msg, const char *detail)
{
    fprintf(stderr, "img2npy: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n > 0 && n < (1L << 30) && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    *size = buf ? (size_t)n : 0;
    return buf;
}

static int decode_jpeg(const unsigned char *data, size_t size, struct image *img)
{
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return fail("tjInitDecompress failed", NULL);
    int w, h, subsamp, colorspace, rc = 1;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, &colorspace) != 0) {
        fail("bad JPEG header", tjGetErrorStr2(tj));
    } else if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE) {
        fail("JPEG size out of range", NULL);
    } else if (!(img->rgb = malloc((size_t)w * (size_t)h * 3))) {
        fail("out of memory", NULL);
    } else if (tjDecompress2(tj, data, (unsigned long)size, img->rgb, w, w * 3, h, TJPF_RGB,
                             TJFLAG_ACCURATEDCT) != 0) {
        fail("JPEG decode failed", tjGetErrorStr2(tj));
    } else {
        img->width = w;
        img->height = h;
        rc = 0;
    }
    tjDestroy(tj);
    return rc;
}

static int decode_png(const unsigned char *data, size_t size, struct image *img)
{
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&png, data, size))
        return fail("bad PNG", png.message);
    if (png.width == 0 || png.height == 0 || png.width > MAX_SIDE || png.height > MAX_SIDE) {
        png_image_free(&png);
        return fail("PNG size out of range", NULL);
    }
    png.format = PNG_FORMAT_RGB; /* libpng composes alpha on black and expands grey/palette */
    img->rgb = malloc(PNG_IMAGE_SIZE(png));
    if (!img->rgb) {
        png_image_free(&png);
        return fail("out of memory", NULL);
    }
    if (!png_image_finish_read(&png, NULL, img->rgb, 0, NULL))
        return fail("PNG decode failed", png.message);
    img->width = (int)png.width;
    img->height = (int)png.height;
    return 0;
}

static int load_image(const char *path, struct image *img)
{
    size_t size;
    unsigned char *data = read_file(path, &size);
    if (!data)
        return fail("cannot read", path);
    int rc;
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        rc = decode_jpeg(data, size, img);
    else if (size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        rc = decode_png(data, size, img);
    else
        rc = fail("neither JPEG nor PNG", path);
    free(data);
    return rc;
}

/* Bilinear sample of channel c at the source position that maps to destination pixel (dx, dy). */
static float sample(const struct image *img, int x0, int y0, int cw, int ch, float sx, float sy,
                    int c)
{
    float fx = sx - 0.5f, fy = sy - 0.5f;
    if (fx < 0)
        fx = 0;
    if (fy < 0)
        fy = 0;
    int ix = (int)fx, iy = (int)fy;
    if (ix > cw - 1)
        ix = cw - 1;
    if (iy > ch - 1)
        iy = ch - 1;
    int ix1 = ix + 1 < cw ? ix + 1 : cw - 1;
    int iy1 = iy + 1 < ch ? iy + 1 : ch - 1;
    float ax = fx - (float)ix, ay = fy - (float)iy;
    if (ax > 1)
        ax = 1;
    if (ay > 1)
        ay = 1;
    size_t stride = (size_t)img->width * 3;
    const unsigned char *r0 = img->rgb + (size_t)(y0 + iy) * stride;
    const unsigned char *r1 = img->rgb + (size_t)(y0 + iy1) * stride;
    float p00 = r0[(size_t)(x0 + ix) * 3 + (size_t)c], p01 = r0[(size_t)(x0 + ix1) * 3 + (size_t)c];
    float p10 = r1[(size_t)(x0 + ix) * 3 + (size_t)c], p11 = r1[(size_t)(x0 + ix1) * 3 + (size_t)c];
    float top = p00 + (p01 - p00) * ax, bottom = p10 + (p11 - p10) * ax;
    return top + (bottom - top) * ay;
}

static int write_npy(const char *path, const float *data, int c, int h, int w)
{
    char header[128];
    int n = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (1, %d, %d, %d), }", c, h,
                     w);
    /* magic(6) + version(2) + length(2) + header + '\n' is padded to a multiple of 64 */
    int total = ((10 + n + 1 + 63) / 64) * 64;
    while (n < total - 10 - 1)
        header[n++] = ' ';
    header[n++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail("cannot write", path);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xFF),
                             (unsigned char)(n >> 8)};
    size_t count = (size_t)c * (size_t)h * (size_t)w;
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre &&
             fwrite(header, 1, (size_t)n, f) == (size_t)n &&
             fwrite(data, sizeof(float), count, f) == count;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : fail("write failed", path);
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: img2npy det|cls PHOTO OUT.npy WIDTHxHEIGHT [x,y,w,h]\n");
        return 2;
    }
    int det = strcmp(argv[1], "det") == 0;
    if (!det && strcmp(argv[1], "cls") != 0)
        return fail("mode must be det or cls", argv[1]);
    int out_w, out_h;
    if (sscanf(argv[4], "%dx%d", &out_w, &out_h) != 2 || out_w <= 0 || out_h <= 0 ||
        out_w > 4096 || out_h > 4096)
        return fail("bad size", argv[4]);

    struct image img = {0, 0, NULL};
    if (load_image(argv[2], &img) != 0)
        return 1;
    int x0 = 0, y0 = 0, cw = img.width, ch = img.height;
    if (argc == 6) {
        if (sscanf(argv[5], "%d,%d,%d,%d", &x0, &y0, &cw, &ch) != 4 || x0 < 0 || y0 < 0 ||
            cw <= 0 || ch <= 0 || x0 > img.width - cw || y0 > img.height - ch) {
            free(img.rgb);
            return fail("crop outside the image", argv[5]);
        }
    }

    size_t plane = (size_t)out_w * (size_t)out_h;
    float *out = calloc(plane * 3, sizeof(float));
    if (!out) {
        free(img.rgb);
        return fail("out of memory", NULL);
    }
    /* det and cls differ only in the resized width (cls keeps the aspect ratio) and the
       normalisation; the padding of cls is the zero left by calloc. */
    int resized_w = out_w;
    if (!det) {
        double rw = ceil((double)out_h * cw / ch);
        resized_w = rw > out_w ? out_w : (int)rw;
        if (resized_w < 1)
            resized_w = 1;
    }
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
    float scale_x = (float)cw / (float)resized_w, scale_y = (float)ch / (float)out_h;
    for (int y = 0; y < out_h; y++) {
        for (int x = 0; x < resized_w; x++) {
            float sx = ((float)x + 0.5f) * scale_x, sy = ((float)y + 0.5f) * scale_y;
            for (int k = 0; k < 3; k++) {
                int src_c = 2 - k; /* planes are B,G,R: PaddleOCR reads with OpenCV */
                float v = sample(&img, x0, y0, cw, ch, sx, sy, src_c) / 255.0f;
                v = det ? (v - mean[k]) / stdev[k] : (v - 0.5f) / 0.5f;
                out[(size_t)k * plane + (size_t)y * (size_t)out_w + (size_t)x] = v;
            }
        }
    }
    int rc = write_npy(argv[3], out, 3, out_h, out_w);
    free(out);
    free(img.rgb);
    return rc;
}
