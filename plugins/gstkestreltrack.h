/* kestreltrack: gives each detected object a stable id across frames. */
#ifndef __GST_KESTREL_TRACK_H__
#define __GST_KESTREL_TRACK_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_TRACK (gst_kestrel_track_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelTrack, gst_kestrel_track, GST,
    KESTREL_TRACK, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE (kestreltrack);

G_END_DECLS
#endif /* __GST_KESTREL_TRACK_H__ */
