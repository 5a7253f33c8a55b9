/* The `kestrel` GStreamer plugin: registers every Kestrel element. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstkestrelclassify.h"
#include "gstkestreldetect.h"
#include "gstkestreljpegdec.h"
#include "gstkestrelmetapublish.h"
#include "gstkestreloverlay.h"
#include "gstkestreltrack.h"

#ifndef PACKAGE
#define PACKAGE "kestrel"
#endif
#ifndef KESTREL_VERSION
#define KESTREL_VERSION "0.1.0"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (kestreldetect, plugin);
  ret |= GST_ELEMENT_REGISTER (kestrelclassify, plugin);
  ret |= GST_ELEMENT_REGISTER (kestreltrack, plugin);
  ret |= GST_ELEMENT_REGISTER (kestreloverlay, plugin);
  ret |= GST_ELEMENT_REGISTER (kestrelmetapublish, plugin);
  ret |= GST_ELEMENT_REGISTER (kestreljpegdec, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, kestrel,
    "Kestrel edge-vision inference: detect, classify, track, overlay and "
    "publish metadata", plugin_init, KESTREL_VERSION, "LGPL",
    "Kestrel", "https://github.com/kestrel-vision/kestrel")
