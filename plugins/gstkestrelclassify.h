/* kestrelclassify: classification of whole frames or of each ROI. */
#ifndef __GST_KESTREL_CLASSIFY_H__
#define __GST_KESTREL_CLASSIFY_H__

#include "gstkestrelinfer.h"

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_CLASSIFY (gst_kestrel_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelClassify, gst_kestrel_classify, GST,
    KESTREL_CLASSIFY, GstKestrelInfer);

GST_ELEMENT_REGISTER_DECLARE (kestrelclassify);

G_END_DECLS
#endif /* __GST_KESTREL_CLASSIFY_H__ */
