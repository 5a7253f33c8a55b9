/* The screen: an SDL2 window (or the whole screen, or KMSDRM on a bare
 * device), frames uploaded as YUV textures as they come from the pipeline
 * (I420, NV12, YUY2: the GPU or SDL's renderer converts, not our CPU), and a
 * HUD drawn with SDL_ttf on top. */
#include "kiosk.h"

#include <SDL.h>
#include <SDL_ttf.h>
#include <stdlib.h>
#include <string.h>

#define FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define FONT_BOLD_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define N_TEXT 4 /* HUD line 0, HUD line 1, banner, warning */

typedef struct {
  char *text;
  SDL_Texture *texture;
  int w, h;
} TextCache;

struct KioskDisplay {
  SDL_Window *window;
  SDL_Renderer *renderer;
  SDL_Texture *video;
  Uint32 video_format;
  int video_w, video_h;
  SDL_YUV_CONVERSION_MODE yuv_mode;
  gboolean have_frame;
  gboolean ttf_ok;
  TTF_Font *font, *big_font;
  int font_for_height; /* window height the fonts were opened for */
  TextCache text[N_TEXT];
  int win_w, win_h;
  SDL_Rect video_rect, hud_rect;
};

static void text_cache_clear(TextCache *t) {
  if (t->texture)
    SDL_DestroyTexture(t->texture);
  g_free(t->text);
  memset(t, 0, sizeof *t);
}

KioskDisplay *kiosk_display_new(gboolean fullscreen, int width, int height, GError **error) {
  /* The kiosk handles SIGINT/SIGTERM itself (clean pipeline stop). */
  SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
  /* Keep the screen on: a kiosk is watched, not used. */
  SDL_SetHint(SDL_HINT_VIDEO_ALLOW_SCREENSAVER, "0");
  if (SDL_Init(SDL_INIT_VIDEO) != 0) {
    g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_DISPLAY, "no display: %s", SDL_GetError());
    return NULL;
  }
  const char *driver = SDL_GetCurrentVideoDriver();
  /* A bare device (KMSDRM) has no windows: the picture is the screen. */
  if (driver && !strcmp(driver, "KMSDRM"))
    fullscreen = TRUE;

  KioskDisplay *d = g_new0(KioskDisplay, 1);
  Uint32 flags = SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI;
  if (fullscreen)
    flags |= SDL_WINDOW_FULLSCREEN_DESKTOP;
  d->window = SDL_CreateWindow("Kestrel", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, width,
                               height, flags);
  if (!d->window)
    goto failed;
  d->renderer = SDL_CreateRenderer(d->window, -1, 0);
  if (!d->renderer)
    goto failed;
  if (fullscreen)
    SDL_ShowCursor(SDL_DISABLE);
  d->ttf_ok = TTF_Init() == 0;
  if (!d->ttf_ok)
    g_printerr("kestrel-kiosk: text disabled: %s\n", TTF_GetError());
  return d;

failed:
  g_set_error(error, KIOSK_ERROR, KIOSK_ERROR_DISPLAY, "display (%s): %s", driver ? driver : "none",
              SDL_GetError());
  kiosk_display_free(d);
  return NULL;
}

void kiosk_display_free(KioskDisplay *d) {
  if (!d)
    return;
  for (int i = 0; i < N_TEXT; i++)
    text_cache_clear(&d->text[i]);
  if (d->font)
    TTF_CloseFont(d->font);
  if (d->big_font)
    TTF_CloseFont(d->big_font);
  if (d->ttf_ok)
    TTF_Quit();
  if (d->video)
    SDL_DestroyTexture(d->video);
  if (d->renderer)
    SDL_DestroyRenderer(d->renderer);
  if (d->window)
    SDL_DestroyWindow(d->window);
  SDL_Quit();
  g_free(d);
}

const char *kiosk_display_driver(KioskDisplay *d) {
  const char *v = SDL_GetCurrentVideoDriver();
  return v ? v : "none";
}

void kiosk_display_forget_frame(KioskDisplay *d) {
  d->have_frame = FALSE;
}

void kiosk_display_toggle_fullscreen(KioskDisplay *d) {
  Uint32 now = SDL_GetWindowFlags(d->window) & SDL_WINDOW_FULLSCREEN_DESKTOP;
  SDL_SetWindowFullscreen(d->window, now ? 0 : SDL_WINDOW_FULLSCREEN_DESKTOP);
  SDL_ShowCursor(now ? SDL_ENABLE : SDL_DISABLE);
}

/* SDL's conversion must match how the frame was encoded, or skin tones
 * shift: JPEG frames are full-range BT.601, cameras' raw YUV limited range. */
static SDL_YUV_CONVERSION_MODE conversion_for(const GstVideoInfo *info) {
  const GstVideoColorimetry *c = &GST_VIDEO_INFO_COLORIMETRY(info);
  if (c->matrix == GST_VIDEO_COLOR_MATRIX_BT709)
    return SDL_YUV_CONVERSION_BT709;
  if (c->range == GST_VIDEO_COLOR_RANGE_0_255)
    return SDL_YUV_CONVERSION_JPEG;
  return SDL_YUV_CONVERSION_BT601;
}

gboolean kiosk_display_upload(KioskDisplay *d, GstSample *sample) {
  GstCaps *caps = gst_sample_get_caps(sample);
  GstBuffer *buf = gst_sample_get_buffer(sample);
  GstVideoInfo info;
  if (!caps || !buf || !gst_video_info_from_caps(&info, caps))
    return FALSE;

  Uint32 format;
  switch (GST_VIDEO_INFO_FORMAT(&info)) {
  case GST_VIDEO_FORMAT_I420:
    format = SDL_PIXELFORMAT_IYUV;
    break;
  case GST_VIDEO_FORMAT_NV12:
    format = SDL_PIXELFORMAT_NV12;
    break;
  case GST_VIDEO_FORMAT_YUY2:
    format = SDL_PIXELFORMAT_YUY2;
    break;
  default:
    return FALSE;
  }
  int w = GST_VIDEO_INFO_WIDTH(&info), h = GST_VIDEO_INFO_HEIGHT(&info);
  SDL_YUV_CONVERSION_MODE mode = conversion_for(&info);
  if (!d->video || d->video_format != format || d->video_w != w || d->video_h != h ||
      d->yuv_mode != mode) {
    if (d->video)
      SDL_DestroyTexture(d->video);
    SDL_SetYUVConversionMode(mode);
    d->video = SDL_CreateTexture(d->renderer, format, SDL_TEXTUREACCESS_STREAMING, w, h);
    if (!d->video) {
      g_printerr("kestrel-kiosk: video texture %dx%d: %s\n", w, h, SDL_GetError());
      return FALSE;
    }
    d->video_format = format;
    d->video_w = w;
    d->video_h = h;
    d->yuv_mode = mode;
  }

  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &info, buf, GST_MAP_READ))
    return FALSE;
  int r;
  if (format == SDL_PIXELFORMAT_IYUV)
    r = SDL_UpdateYUVTexture(
        d->video, NULL, GST_VIDEO_FRAME_PLANE_DATA(&frame, 0),
        GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0), GST_VIDEO_FRAME_PLANE_DATA(&frame, 1),
        GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 1), GST_VIDEO_FRAME_PLANE_DATA(&frame, 2),
        GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 2));
  else if (format == SDL_PIXELFORMAT_NV12)
    r = SDL_UpdateNVTexture(d->video, NULL, GST_VIDEO_FRAME_PLANE_DATA(&frame, 0),
                            GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0),
                            GST_VIDEO_FRAME_PLANE_DATA(&frame, 1),
                            GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 1));
  else
    r = SDL_UpdateTexture(d->video, NULL, GST_VIDEO_FRAME_PLANE_DATA(&frame, 0),
                          GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0));
  gst_video_frame_unmap(&frame);
  if (r != 0) {
    g_printerr("kestrel-kiosk: texture upload: %s\n", SDL_GetError());
    return FALSE;
  }
  d->have_frame = TRUE;
  return TRUE;
}

static void open_fonts(KioskDisplay *d) {
  if (!d->ttf_ok || d->font_for_height == d->win_h)
    return;
  if (d->font)
    TTF_CloseFont(d->font);
  if (d->big_font)
    TTF_CloseFont(d->big_font);
  for (int i = 0; i < N_TEXT; i++)
    text_cache_clear(&d->text[i]);
  /* Sizes follow the window so the HUD reads the same on 480p and 4K. */
  int px = CLAMP(d->win_h / 40, 11, 48);
  d->font = TTF_OpenFont(FONT_PATH, px);
  d->big_font = TTF_OpenFont(FONT_BOLD_PATH, px * 2);
  if (!d->font || !d->big_font)
    g_printerr("kestrel-kiosk: font %s: %s (install fonts-dejavu-core)\n", FONT_PATH,
               TTF_GetError());
  d->font_for_height = d->win_h;
}

/* Text textures are made again only when the text changes (twice a second
 * for the HUD), not every frame. */
static TextCache *text_texture(KioskDisplay *d, int slot, TTF_Font *font, const char *text) {
  TextCache *t = &d->text[slot];
  if (!font || !text || !*text)
    return NULL;
  if (t->texture && !g_strcmp0(t->text, text))
    return t;
  text_cache_clear(t);
  SDL_Color white = {255, 255, 255, 255};
  SDL_Surface *s = TTF_RenderUTF8_Blended(font, text, white);
  if (!s)
    return NULL;
  t->texture = SDL_CreateTextureFromSurface(d->renderer, s);
  t->w = s->w;
  t->h = s->h;
  SDL_FreeSurface(s);
  if (!t->texture)
    return NULL;
  t->text = g_strdup(text);
  return t;
}

static void fill(KioskDisplay *d, const SDL_Rect *r, Uint8 red, Uint8 g, Uint8 b, Uint8 a) {
  SDL_SetRenderDrawBlendMode(d->renderer, SDL_BLENDMODE_BLEND);
  SDL_SetRenderDrawColor(d->renderer, red, g, b, a);
  SDL_RenderFillRect(d->renderer, r);
}

static void layout_video(KioskDisplay *d) {
  if (!d->video_w || !d->video_h) {
    d->video_rect = (SDL_Rect){0, 0, d->win_w, d->win_h};
    return;
  }
  /* Fit the frame into the window with its aspect kept (letterbox). */
  double scale = MIN((double)d->win_w / d->video_w, (double)d->win_h / d->video_h);
  int w = (int)(d->video_w * scale + 0.5), h = (int)(d->video_h * scale + 0.5);
  d->video_rect = (SDL_Rect){(d->win_w - w) / 2, (d->win_h - h) / 2, w, h};
}

void kiosk_display_render(KioskDisplay *d, const KioskHud *hud, const char *screenshot_path) {
  /* The output size, not the window size: they differ on HiDPI screens and
   * the window can change at any time (resize, full screen, mode change). */
  if (SDL_GetRendererOutputSize(d->renderer, &d->win_w, &d->win_h) != 0) {
    SDL_GetWindowSize(d->window, &d->win_w, &d->win_h);
  }
  open_fonts(d);
  layout_video(d);

  SDL_SetRenderDrawColor(d->renderer, 16, 16, 20, 255);
  SDL_RenderClear(d->renderer);
  if (d->have_frame && d->video)
    SDL_RenderCopy(d->renderer, d->video, NULL, &d->video_rect);

  d->hud_rect = (SDL_Rect){0, 0, 0, 0};
  if (hud->show_hud) {
    int pad = MAX(4, d->win_h / 160), y = pad, width = 0;
    TextCache *lines[2];
    for (int i = 0; i < 2; i++) {
      lines[i] = text_texture(d, i, d->font, hud->lines[i]);
      if (lines[i]) {
        width = MAX(width, lines[i]->w);
        y += lines[i]->h;
      }
    }
    if (width) {
      d->hud_rect = (SDL_Rect){d->video_rect.x, d->video_rect.y, width + 2 * pad, y + pad};
      fill(d, &d->hud_rect, 0, 0, 0, 170);
      y = d->video_rect.y + pad;
      for (int i = 0; i < 2; i++) {
        if (!lines[i])
          continue;
        SDL_Rect dst = {d->video_rect.x + pad, y, lines[i]->w, lines[i]->h};
        SDL_RenderCopy(d->renderer, lines[i]->texture, NULL, &dst);
        y += lines[i]->h;
      }
    }
  }
  if (hud->warning) {
    TextCache *t = text_texture(d, 3, d->font, hud->warning);
    int h = t ? t->h + 8 : d->win_h / 20;
    SDL_Rect bar = {0, d->win_h - h, d->win_w, h};
    fill(d, &bar, 150, 20, 20, 220);
    if (t) {
      SDL_Rect dst = {8, d->win_h - h + 4, MIN(t->w, d->win_w - 16), t->h};
      SDL_Rect src = {0, 0, dst.w, t->h};
      SDL_RenderCopy(d->renderer, t->texture, &src, &dst);
    }
  }
  if (hud->banner) {
    TextCache *t = text_texture(d, 2, d->big_font, hud->banner);
    int w = t ? MIN(t->w, d->win_w - 40) : d->win_w / 2, h = t ? t->h : d->win_h / 10;
    SDL_Rect box = {(d->win_w - w) / 2 - 20, (d->win_h - h) / 2 - 12, w + 40, h + 24};
    fill(d, &box, 0, 0, 0, 210);
    if (t) {
      SDL_Rect dst = {(d->win_w - w) / 2, (d->win_h - h) / 2, w, h};
      SDL_Rect src = {0, 0, w, h};
      SDL_RenderCopy(d->renderer, t->texture, &src, &dst);
    }
  }

  if (screenshot_path) {
    /* Read back before Present: afterwards the back buffer is undefined. */
    int stride = d->win_w * 3;
    guint8 *rgb = g_malloc((gsize)stride * d->win_h);
    GError *error = NULL;
    if (SDL_RenderReadPixels(d->renderer, NULL, SDL_PIXELFORMAT_RGB24, rgb, stride) != 0)
      g_printerr("kestrel-kiosk: screenshot: %s\n", SDL_GetError());
    else if (!kiosk_write_png_rgb(screenshot_path, rgb, d->win_w, d->win_h, stride, &error)) {
      g_printerr("kestrel-kiosk: %s\n", error->message);
      g_error_free(error);
    }
    g_free(rgb);
  }
  SDL_RenderPresent(d->renderer);
}

void kiosk_display_geometry(KioskDisplay *d, int *win_w, int *win_h, int video_rect[4],
                            int hud_rect[4]) {
  *win_w = d->win_w;
  *win_h = d->win_h;
  video_rect[0] = d->video_rect.x;
  video_rect[1] = d->video_rect.y;
  video_rect[2] = d->video_rect.w;
  video_rect[3] = d->video_rect.h;
  hud_rect[0] = d->hud_rect.x;
  hud_rect[1] = d->hud_rect.y;
  hud_rect[2] = d->hud_rect.w;
  hud_rect[3] = d->hud_rect.h;
}
