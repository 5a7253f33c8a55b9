/* kestreldetect: object detection on raw video, results as ROI metadata. */
#ifndef __GST_KESTREL_DETECT_H__
#define __GST_KESTREL_DETECT_H__

#include "gstkestrelinfer.h"

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_DETECT (gst_kestrel_detect_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelDetect, gst_kestrel_detect, GST,
    KESTREL_DETECT, GstKestrelInfer);

GST_ELEMENT_REGISTER_DECLARE (kestreldetect);

G_END_DECLS
#endif /* __GST_KESTREL_DETECT_H__ */
