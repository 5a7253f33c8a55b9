/* Drawing boxes, points and text in place into raw video frames, plain C
 * (kestreloverlay wraps it; the tests call it directly).
 *
 * YUV formats are drawn on their planes directly (no conversion): luma at
 * full resolution, chroma on every chroma sample the shape touches. Colours
 * are given in RGB and converted once per call (BT.601, limited range, as
 * GStreamer's default for SD and HD raw video).
 *
 *   kestrel_canvas c = { KESTREL_DRAW_I420, w, h, {y, u, v}, {w, w/2, w/2} };
 *   kestrel_color red = { 255, 0, 0 };
 *   kestrel_draw_rect (&c, 10, 10, 100, 50, 2, red);
 *   kestrel_draw_text (&c, 10, 0, 2, "face 97%", white);
 *
 * Everything clips to the frame; any coordinates are safe.
 */
#ifndef KESTREL_DRAW_H
#define KESTREL_DRAW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum
{
  KESTREL_DRAW_I420,            /* Y, U, V planes; chroma 2x2 subsampled */
  KESTREL_DRAW_NV12,            /* Y plane, interleaved UV plane (2x2) */
  KESTREL_DRAW_YUY2,            /* packed Y0 U Y1 V */
  KESTREL_DRAW_RGB,
  KESTREL_DRAW_BGR,
  KESTREL_DRAW_RGBX,
  KESTREL_DRAW_BGRX,
} kestrel_draw_format;

typedef struct
{
  kestrel_draw_format format;
  int width, height;
  uint8_t *planes[3];
  int strides[3];
} kestrel_canvas;

typedef struct
{
  uint8_t r, g, b;
} kestrel_color;

/* The built-in font: 5x7 glyphs in 6x9 cells (a column and two rows of
 * spacing), ASCII 32..126; other bytes draw as '?'. */
#define KESTREL_FONT_WIDTH 5
#define KESTREL_FONT_HEIGHT 7
#define KESTREL_FONT_ADVANCE 6
#define KESTREL_FONT_LINE 9

/* A filled rectangle. */
void kestrel_draw_fill (const kestrel_canvas * canvas, int x, int y, int w,
    int h, kestrel_color color);

/* A rectangle outline `thickness` pixels wide, drawn inside x,y,w,h. */
void kestrel_draw_rect (const kestrel_canvas * canvas, int x, int y, int w,
    int h, int thickness, kestrel_color color);

/* A filled square of side 2 * radius + 1 centred on cx, cy. */
void kestrel_draw_point (const kestrel_canvas * canvas, int cx, int cy,
    int radius, kestrel_color color);

/* Text with its top-left corner at x, y, each font pixel scale x scale.
 * Stops at the end of the string or a newline. Returns the width drawn. */
int kestrel_draw_text (const kestrel_canvas * canvas, int x, int y,
    int scale, const char *text, kestrel_color color);

/* Size of `text` (up to a newline) drawn at `scale`, without drawing. */
int kestrel_draw_text_width (const char *text, int scale);
int kestrel_draw_text_height (int scale);

/* The glyph rows of a character: 7 bytes, bit 4 is the leftmost pixel. */
const uint8_t *kestrel_font_glyph (unsigned char c);

#ifdef __cplusplus
}
#endif
#endif /* KESTREL_DRAW_H */
