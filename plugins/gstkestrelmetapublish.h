/* kestrelmetapublish: writes each frame's inference results as JSON lines. */
#ifndef __GST_KESTREL_META_PUBLISH_H__
#define __GST_KESTREL_META_PUBLISH_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_KESTREL_META_PUBLISH (gst_kestrel_meta_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstKestrelMetaPublish, gst_kestrel_meta_publish, GST,
    KESTREL_META_PUBLISH, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE (kestrelmetapublish);

G_END_DECLS
#endif /* __GST_KESTREL_META_PUBLISH_H__ */
