/* kestreloverlay: draws detections, tracks and a HUD into raw video. */
#ifndef __GST_KESTREL_OVERLAY_H__
#define __GST_KESTREL_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_OVERLAY (gst_kestrel_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelOverlay, gst_kestrel_overlay, GST,
    KESTREL_OVERLAY, GstVideoFilter);

GST_ELEMENT_REGISTER_DECLARE (kestreloverlay);

G_END_DECLS
#endif /* __GST_KESTREL_OVERLAY_H__ */
