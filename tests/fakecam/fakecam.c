/* kestrel-fakecam: an LD_PRELOAD library that makes V4L2 capture devices
 * appear at /dev/videoN with no camera and no V4L2 in the kernel, so that
 * v4l2src (with or without libv4l2) and kestrel-kiosk can be tested end to end.
 *
 *   LD_PRELOAD=build/tests/fakecam/libkestrel-fakecam.so \
 *     gst-launch-1.0 v4l2src device=/dev/video0 ! image/jpeg ! jpegdec ! fakesink
 *
 * Environment (read once, at the first call that touches /dev). Every
 * KESTREL_FAKECAM_X below except DEVICES and DEBUG may be given per device as
 * KESTREL_FAKECAM_VIDEO<N>_X (e.g. KESTREL_FAKECAM_VIDEO7_FORMATS=YUYV).
 *   KESTREL_FAKECAM_DEVICES       nodes, comma separated: /dev/video0,/dev/video7
 *                                 (or 0,7). Default /dev/video0.
 *   KESTREL_FAKECAM_SOURCE        the scene: a folder of JPEGs, JPEG files or
 *                                 globs separated by ':' or ',', or a video
 *                                 (MJPEG AVI read directly; anything else is
 *                                 decoded once by a gst-launch-1.0 child run
 *                                 without LD_PRELOAD). Default
 *                                 $KESTREL_CACHE/clips/faces-720p.avi if it
 *                                 exists, else $KESTREL_CACHE/photos/sample*.jpg
 *                                 (KESTREL_CACHE defaults to ~/.cache/kestrel).
 *   KESTREL_FAKECAM_FORMATS       MJPG, YUYV, NV12; first is the default.
 *                                 Default MJPG,YUYV.
 *   KESTREL_FAKECAM_SIZES         WxH list, first is the default.
 *                                 Default 640x480,1280x720.
 *   KESTREL_FAKECAM_FPS           integer frame rates offered, first is the
 *                                 default. Default 30.
 *   KESTREL_FAKECAM_SOURCE_FPS    source frames per second of camera time:
 *                                 default the video's own rate, 0.5 for stills;
 *                                 0 means one source frame per camera frame.
 *   KESTREL_FAKECAM_UNPLUG_AFTER  unplug after N frames were dequeued since the
 *                                 camera (re)appeared; 0 = never (default).
 *   KESTREL_FAKECAM_REPLUG_AFTER  seconds (decimal) after such an unplug when
 *                                 the node comes back; unset = never.
 *   KESTREL_FAKECAM_UNPLUG_CYCLES stop unplugging after this many (0 = no
 *                                 limit, the default).
 *   KESTREL_FAKECAM_UNPLUG_FILE   the camera is unplugged while this file
 *                                 exists (a test can unplug on demand).
 *   KESTREL_FAKECAM_CARD          QUERYCAP card name ("Kestrel Fake Camera N").
 *   KESTREL_FAKECAM_JPEG_QUALITY  quality of re-encoded MJPEG frames (85).
 *   KESTREL_FAKECAM_CACHE_MB      memory for prepared frames, all devices (256).
 *   KESTREL_FAKECAM_MAX_FRAMES    most source frames loaded (3000).
 *   KESTREL_FAKECAM_DEBUG         1: log every fake V4L2 ioctl to stderr.
 *
 * The device behaves as uvcvideo does where it matters to a client: the first
 * handle that sets a format or allocates buffers owns the stream (others get
 * EBUSY), sizes and rates are rounded to the nearest offered, frames arrive on
 * the clock (frames due while no buffer is queued are dropped and the
 * sequence number skips), timestamps are CLOCK_MONOTONIC start-of-exposure,
 * ENUMSTD/G_STD fail with ENOTTY, and after an unplug every call on an old
 * file descriptor fails with ENODEV (poll: POLLERR|POLLHUP) while the node is
 * gone from stat/open/readdir until it is "plugged" again.
 *
 * The file descriptor a client gets is a real eventfd, so close, fcntl, dup
 * and poll on other descriptors behave normally; readiness of the fake ones
 * is computed here (poll/ppoll/select are wrapped). Buffers live in a memfd
 * that mmap() maps, so a client's mappings outlive REQBUFS(0) as orphaned
 * buffers do. libv4l2 talks to the device through syscall(2), which is wrapped
 * too. Not covered: epoll, io_uring, glob()/scandir() listings of /dev (glibc
 * calls its own opendir there; use opendir/readdir or stat each node), and
 * udev/sysfs enumeration.
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE
/* Meson defines _FILE_OFFSET_BITS=64, which renames open() to open64() in the
 * headers; both must be defined here, each under its own name. */
#undef _FILE_OFFSET_BITS
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/version.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

extern char **environ;

#define FC_MAX_DEVICES 8
#define FC_MAX_FORMATS 4
#define FC_MAX_SIZES 16
#define FC_MAX_RATES 8
#define FC_MAX_BUFFERS 32 /* VIDEO_MAX_FRAME, as uvcvideo */
#define FC_MAX_DIM 8192
#define FC_NS 1000000000ull
#define FC_VIDEO_MAJOR 81

/* ---- the real libc ------------------------------------------------------ */

/* Wrapped functions that glibc 2.36 no longer declares. */
int __xstat(int ver, const char *path, struct stat *buf);
int __xstat64(int ver, const char *path, struct stat64 *buf);
int __lxstat(int ver, const char *path, struct stat *buf);
int __lxstat64(int ver, const char *path, struct stat64 *buf);
int __fxstat(int ver, int fd, struct stat *buf);
int __fxstat64(int ver, int fd, struct stat64 *buf);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

/* Looked up on first use: a preloaded library may be called before any
 * constructor of ours has run. Racing threads store the same pointer. */
static void *resolve(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!p) {
        p = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    }
    return p;
}

#define REAL_DECL(ret, name, params)                                           \
    typedef ret(*name##_fn) params;                                           \
    static void *real_##name##_slot
#define REAL(name) ((name##_fn)resolve(&real_##name##_slot, #name))

REAL_DECL(int, open, (const char *, int, ...));
REAL_DECL(int, open64, (const char *, int, ...));
REAL_DECL(int, openat, (int, const char *, int, ...));
REAL_DECL(int, openat64, (int, const char *, int, ...));
REAL_DECL(int, __open_2, (const char *, int));
REAL_DECL(int, __open64_2, (const char *, int));
REAL_DECL(int, __openat_2, (int, const char *, int));
REAL_DECL(int, __openat64_2, (int, const char *, int));
REAL_DECL(int, close, (int));
REAL_DECL(int, dup, (int));
REAL_DECL(int, dup2, (int, int));
REAL_DECL(int, dup3, (int, int, int));
REAL_DECL(int, fcntl, (int, int, ...));
REAL_DECL(int, fcntl64, (int, int, ...));
REAL_DECL(int, ioctl, (int, unsigned long, ...));
REAL_DECL(ssize_t, read, (int, void *, size_t));
REAL_DECL(ssize_t, __read_chk, (int, void *, size_t, size_t));
REAL_DECL(ssize_t, write, (int, const void *, size_t));
REAL_DECL(void *, mmap, (void *, size_t, int, int, int, off_t));
REAL_DECL(void *, mmap64, (void *, size_t, int, int, int, off64_t));
REAL_DECL(int, munmap, (void *, size_t));
REAL_DECL(int, poll, (struct pollfd *, nfds_t, int));
REAL_DECL(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *));
REAL_DECL(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *));
REAL_DECL(int, pselect,
          (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *));
REAL_DECL(int, stat, (const char *, struct stat *));
REAL_DECL(int, stat64, (const char *, struct stat64 *));
REAL_DECL(int, lstat, (const char *, struct stat *));
REAL_DECL(int, lstat64, (const char *, struct stat64 *));
REAL_DECL(int, fstat, (int, struct stat *));
REAL_DECL(int, fstat64, (int, struct stat64 *));
REAL_DECL(int, fstatat, (int, const char *, struct stat *, int));
REAL_DECL(int, fstatat64, (int, const char *, struct stat64 *, int));
REAL_DECL(int, __xstat, (int, const char *, struct stat *));
REAL_DECL(int, __xstat64, (int, const char *, struct stat64 *));
REAL_DECL(int, __lxstat, (int, const char *, struct stat *));
REAL_DECL(int, __lxstat64, (int, const char *, struct stat64 *));
REAL_DECL(int, __fxstat, (int, int, struct stat *));
REAL_DECL(int, __fxstat64, (int, int, struct stat64 *));
REAL_DECL(int, __fxstatat, (int, int, const char *, struct stat *, int));
REAL_DECL(int, __fxstatat64, (int, int, const char *, struct stat64 *, int));
REAL_DECL(int, statx, (int, const char *, int, unsigned int, struct statx *));
REAL_DECL(int, access, (const char *, int));
REAL_DECL(int, faccessat, (int, const char *, int, int));
REAL_DECL(int, euidaccess, (const char *, int));
REAL_DECL(int, eaccess, (const char *, int));
REAL_DECL(DIR *, opendir, (const char *));
REAL_DECL(int, closedir, (DIR *));
REAL_DECL(struct dirent *, readdir, (DIR *));
REAL_DECL(struct dirent64 *, readdir64, (DIR *));
REAL_DECL(void, rewinddir, (DIR *));
REAL_DECL(FILE *, fopen, (const char *, const char *));
REAL_DECL(FILE *, fopen64, (const char *, const char *));

/* ---- configuration and state ------------------------------------------- */

struct fc_jpeg {
    const unsigned char *data;
    size_t size;
};

/* A scene: compressed frames, shared by every device that names the same
 * spec. Loaded once and kept for the life of the process. */
struct fc_source {
    char *spec;
    struct fc_jpeg *frames;
    size_t count;
    double fps; /* the video's own rate; 0 for stills */
    unsigned char **blobs; /* file contents the frames point into */
    size_t nblobs;
    struct fc_source *next;
};

enum fc_buf_state { BUF_DEQUEUED, BUF_QUEUED, BUF_DONE };

struct fc_buffer {
    enum fc_buf_state state;
    uint64_t order; /* FIFO order for queued and done lists */
    size_t offset;
    uint32_t bytesused;
    uint32_t sequence;
    uint32_t flags;
    uint64_t timestamp_ns;
};

struct fc_cached {
    unsigned char *data;
    size_t size;
};

struct fc_handle;

struct fc_device {
    char path[64];
    char key[32]; /* "VIDEO7": the per-device environment prefix */
    unsigned minor;

    /* what it offers */
    uint32_t formats[FC_MAX_FORMATS];
    int n_formats;
    uint32_t widths[FC_MAX_SIZES], heights[FC_MAX_SIZES];
    int n_sizes;
    uint32_t rates[FC_MAX_RATES];
    int n_rates;
    char card[32];
    char *source_spec;
    double source_fps; /* < 0: the source's own */
    int quality;
    long unplug_after;
    double replug_after; /* < 0: never */
    long unplug_cycles;
    char *unplug_file;

    /* plug state */
    unsigned generation;
    bool plugged;
    bool counter_unplugged; /* gone because of unplug_after */
    uint64_t unplugged_at;
    long unplugs;
    long frames_since_plug;
    uint64_t plugged_at_ns;

    /* format and controls */
    struct v4l2_pix_format fmt;
    uint32_t rate; /* frames per second */
    int32_t ctrl[4];

    /* stream */
    struct fc_handle *owner;
    struct fc_buffer bufs[FC_MAX_BUFFERS];
    uint32_t nbufs;
    size_t stride;
    int memfd;
    unsigned char *mem;
    size_t mem_size;
    bool streaming;
    uint64_t next_due_ns;
    uint32_t sequence;
    uint64_t order;
    pthread_cond_t cond;

    /* prepared frames for the current format */
    struct fc_source *source;
    struct fc_cached *cache;
    size_t cache_count;
    uint32_t cache_fourcc, cache_w, cache_h;
};

/* One per open(): dup'd descriptors share it, as they share a struct file. */
struct fc_handle {
    struct fc_device *dev;
    unsigned generation;
    int refs;
    int accmode;
};

struct fc_fdmap {
    int fd;
    struct fc_handle *handle;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct fc_device g_devices[FC_MAX_DEVICES];
static int g_ndevices;
static bool g_debug;
static size_t g_cache_limit, g_cache_used;
static size_t g_max_frames;
static struct fc_source *g_sources;
static struct timespec g_start_time;

/* Fake descriptors; g_nfake lets every wrapped call skip the lock when the
 * process has none open, which is nearly always. */
static struct fc_fdmap *g_fdmap;
static size_t g_fdmap_len, g_fdmap_cap;
static atomic_int g_nfake;
/* Per-descriptor flag read without the lock, so calls on other descriptors
 * never wait for a frame being prepared under g_lock. */
#define FC_FD_FLAGS 65536
static atomic_uchar g_isfake[FC_FD_FLAGS];

/* Directory streams of /dev being listed, to append the fake nodes. */
struct fc_dirwatch {
    DIR *dir;
    int next_device;
    struct dirent64 entry;
};
static struct fc_dirwatch g_dirs[8];

/* TurboJPEG handles and scratch images, used under g_lock only. */
static tjhandle g_tjd, g_tjc;
static unsigned char *g_decoded, *g_resized;
static size_t g_decoded_cap, g_resized_cap;

static const struct fc_ctrl_info {
    uint32_t id;
    const char *name;
    uint32_t type;
    int32_t min, max, step, def;
} k_ctrls[4] = {
    {V4L2_CID_BRIGHTNESS, "Brightness", V4L2_CTRL_TYPE_INTEGER, -64, 64, 1, 0},
    {V4L2_CID_CONTRAST, "Contrast", V4L2_CTRL_TYPE_INTEGER, 0, 95, 1, 32},
    {V4L2_CID_EXPOSURE_AUTO, "Exposure, Auto", V4L2_CTRL_TYPE_MENU, 0, 3, 1,
     V4L2_EXPOSURE_APERTURE_PRIORITY},
    {V4L2_CID_EXPOSURE_ABSOLUTE, "Exposure (Absolute)", V4L2_CTRL_TYPE_INTEGER, 3, 2047, 1,
     166},
};
enum { CTRL_BRIGHTNESS, CTRL_CONTRAST, CTRL_EXPOSURE_AUTO, CTRL_EXPOSURE_ABSOLUTE };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * FC_NS + (uint64_t)ts.tv_nsec;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kestrel-fakecam: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

#define DEBUG(...)                                                             \
    do {                                                                       \
        if (g_debug)                                                           \
            logf_(__VA_ARGS__);                                                \
    } while (0)

/* ---- environment --------------------------------------------------------- */

static const char *dev_env(const struct fc_device *d, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "KESTREL_FAKECAM_%s_%s", d->key, name);
    const char *v = getenv(key);
    if (v && *v)
        return v;
    snprintf(key, sizeof key, "KESTREL_FAKECAM_%s", name);
    v = getenv(key);
    return v && *v ? v : NULL;
}

static uint32_t parse_fourcc(const char *s, size_t n)
{
    if ((n == 4 && !strncasecmp(s, "MJPG", 4)) || (n == 5 && !strncasecmp(s, "MJPEG", 5)) ||
        (n == 4 && !strncasecmp(s, "JPEG", 4)))
        return V4L2_PIX_FMT_MJPEG;
    if (n == 4 && (!strncasecmp(s, "YUYV", 4) || !strncasecmp(s, "YUY2", 4)))
        return V4L2_PIX_FMT_YUYV;
    if (n == 4 && !strncasecmp(s, "NV12", 4))
        return V4L2_PIX_FMT_NV12;
    return 0;
}

static void parse_formats(struct fc_device *d, const char *s)
{
    d->n_formats = 0;
    while (s && *s) {
        size_t n = strcspn(s, ",: ");
        uint32_t f = parse_fourcc(s, n);
        bool dup = false;
        for (int i = 0; i < d->n_formats; i++)
            dup |= d->formats[i] == f;
        if (!f)
            logf_("%s: unknown format '%.*s' ignored (MJPG, YUYV, NV12)", d->path, (int)n, s);
        else if (!dup && d->n_formats < FC_MAX_FORMATS)
            d->formats[d->n_formats++] = f;
        s += n;
        s += strspn(s, ",: ");
    }
}

static void parse_sizes(struct fc_device *d, const char *s)
{
    d->n_sizes = 0;
    while (s && *s) {
        char *end;
        unsigned long w = strtoul(s, &end, 10), h = 0;
        if (*end == 'x' || *end == 'X')
            h = strtoul(end + 1, &end, 10);
        if (w >= 16 && h >= 16 && w <= FC_MAX_DIM && h <= FC_MAX_DIM && !(w & 1) && !(h & 1) &&
            d->n_sizes < FC_MAX_SIZES) {
            d->widths[d->n_sizes] = (uint32_t)w;
            d->heights[d->n_sizes] = (uint32_t)h;
            d->n_sizes++;
        } else {
            logf_("%s: size '%.*s' ignored (even WxH, 16..%d)", d->path, (int)strcspn(s, ","), s,
                  FC_MAX_DIM);
        }
        s += strcspn(s, ",");
        s += strspn(s, ", ");
    }
}

static void parse_rates(struct fc_device *d, const char *s)
{
    d->n_rates = 0;
    while (s && *s) {
        char *end;
        unsigned long r = strtoul(s, &end, 10);
        if (r >= 1 && r <= 240 && d->n_rates < FC_MAX_RATES)
            d->rates[d->n_rates++] = (uint32_t)r;
        else
            logf_("%s: frame rate '%.*s' ignored (1..240)", d->path, (int)strcspn(s, ","), s);
        s += strcspn(s, ",");
        s += strspn(s, ", ");
    }
}

static void fill_pix(struct v4l2_pix_format *p, uint32_t fourcc, uint32_t w, uint32_t h)
{
    memset(p, 0, sizeof *p);
    p->width = w;
    p->height = h;
    p->pixelformat = fourcc;
    p->field = V4L2_FIELD_NONE;
    switch (fourcc) {
    case V4L2_PIX_FMT_YUYV:
        p->bytesperline = w * 2;
        p->sizeimage = w * h * 2;
        break;
    case V4L2_PIX_FMT_NV12:
        p->bytesperline = w;
        p->sizeimage = w * h * 3 / 2;
        break;
    default: /* MJPEG: uvcvideo reports the camera's worst case, often 2 B/px */
        p->bytesperline = 0;
        p->sizeimage = w * h * 2;
        break;
    }
    p->colorspace = V4L2_COLORSPACE_SRGB;
    p->priv = V4L2_PIX_FMT_PRIV_MAGIC;
}

static void reset_format(struct fc_device *d)
{
    fill_pix(&d->fmt, d->formats[0], d->widths[0], d->heights[0]);
    d->rate = d->rates[0];
    for (int i = 0; i < 4; i++)
        d->ctrl[i] = k_ctrls[i].def;
}

static void default_source(char *out, size_t cap)
{
    const char *cache = getenv("KESTREL_CACHE");
    char base[PATH_MAX];
    if (cache && *cache)
        snprintf(base, sizeof base, "%s", cache);
    else
        snprintf(base, sizeof base, "%s/.cache/kestrel", getenv("HOME") ? getenv("HOME") : "/root");
    char clip[PATH_MAX + 32];
    snprintf(clip, sizeof clip, "%s/clips/faces-720p.avi", base);
    struct stat st;
    if (REAL(stat)(clip, &st) == 0 && S_ISREG(st.st_mode))
        snprintf(out, cap, "%s", clip);
    else
        snprintf(out, cap, "%s/photos/sample*.jpg", base);
}

static void init_device(struct fc_device *d, const char *node, int index)
{
    if (strchr(node, '/'))
        snprintf(d->path, sizeof d->path, "%s", node);
    else if (!strncmp(node, "video", 5))
        snprintf(d->path, sizeof d->path, "/dev/%s", node);
    else
        snprintf(d->path, sizeof d->path, "/dev/video%s", node);
    const char *base = strrchr(d->path, '/') + 1;
    size_t k = 0;
    for (const char *p = base; *p && k + 1 < sizeof d->key; p++)
        d->key[k++] = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : (((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p : '_'));
    d->key[k] = 0;
    const char *digits = base + strcspn(base, "0123456789");
    d->minor = *digits ? (unsigned)strtoul(digits, NULL, 10) : (unsigned)index;

    parse_formats(d, dev_env(d, "FORMATS") ? dev_env(d, "FORMATS") : "MJPG,YUYV");
    if (!d->n_formats)
        parse_formats(d, "MJPG,YUYV");
    parse_sizes(d, dev_env(d, "SIZES") ? dev_env(d, "SIZES") : "640x480,1280x720");
    if (!d->n_sizes)
        parse_sizes(d, "640x480,1280x720");
    parse_rates(d, dev_env(d, "FPS") ? dev_env(d, "FPS") : "30");
    if (!d->n_rates)
        parse_rates(d, "30");

    const char *card = dev_env(d, "CARD");
    if (card)
        snprintf(d->card, sizeof d->card, "%s", card);
    else
        snprintf(d->card, sizeof d->card, "Kestrel Fake Camera %u", d->minor);
    const char *src = dev_env(d, "SOURCE");
    if (src) {
        d->source_spec = strdup(src);
    } else {
        char def[PATH_MAX + 64];
        default_source(def, sizeof def);
        d->source_spec = strdup(def);
    }
    const char *v = dev_env(d, "SOURCE_FPS");
    d->source_fps = v ? strtod(v, NULL) : -1.0;
    v = dev_env(d, "JPEG_QUALITY");
    d->quality = v ? atoi(v) : 85;
    if (d->quality < 10 || d->quality > 100)
        d->quality = 85;
    v = dev_env(d, "UNPLUG_AFTER");
    d->unplug_after = v ? strtol(v, NULL, 10) : 0;
    v = dev_env(d, "REPLUG_AFTER");
    d->replug_after = v ? strtod(v, NULL) : -1.0;
    v = dev_env(d, "UNPLUG_CYCLES");
    d->unplug_cycles = v ? strtol(v, NULL, 10) : 0;
    v = dev_env(d, "UNPLUG_FILE");
    d->unplug_file = v ? strdup(v) : NULL;

    d->plugged = true;
    d->generation = 1;
    d->memfd = -1;
    d->plugged_at_ns = now_ns();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &attr);
    pthread_condattr_destroy(&attr);
    reset_format(d);
}

static void init_once(void)
{
    const char *v = getenv("KESTREL_FAKECAM_DEBUG");
    g_debug = v && *v && *v != '0';
    v = getenv("KESTREL_FAKECAM_CACHE_MB");
    g_cache_limit = (size_t)(v ? strtoul(v, NULL, 10) : 256) << 20;
    v = getenv("KESTREL_FAKECAM_MAX_FRAMES");
    g_max_frames = v ? strtoul(v, NULL, 10) : 3000;
    if (g_max_frames < 1)
        g_max_frames = 1;
    clock_gettime(CLOCK_REALTIME, &g_start_time);

    const char *list = getenv("KESTREL_FAKECAM_DEVICES");
    if (!list || !*list)
        list = "/dev/video0";
    char *copy = strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok && g_ndevices < FC_MAX_DEVICES;
         tok = strtok_r(NULL, ", ", &save)) {
        init_device(&g_devices[g_ndevices], tok, g_ndevices);
        g_ndevices++;
    }
    free(copy);
    for (int i = 0; i < g_ndevices; i++)
        DEBUG("%s: %d formats, %d sizes, %d rates, source %s", g_devices[i].path,
              g_devices[i].n_formats, g_devices[i].n_sizes, g_devices[i].n_rates,
              g_devices[i].source_spec);
}

/* Paths are compared after collapsing "//" and "/./", which is how a
 * client might spell a node it built from parts. */
static struct fc_device *device_for_path(const char *path)
{
    if (!path || strncmp(path, "/dev/", 5) != 0)
        return NULL;
    char norm[64];
    size_t n = 0;
    for (const char *p = path; *p; p++) {
        if (*p == '/' && p[1] == '/')
            continue;
        if (*p == '/' && p[1] == '.' && p[2] == '/') {
            p++;
            continue;
        }
        if (n + 1 >= sizeof norm)
            return NULL;
        norm[n++] = *p;
    }
    norm[n] = 0;
    pthread_once(&g_once, init_once);
    for (int i = 0; i < g_ndevices; i++)
        if (!strcmp(norm, g_devices[i].path))
            return &g_devices[i];
    return NULL;
}

/* ---- source loading ----------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    if (fseeko(f, 0, SEEK_END) == 0) {
        off_t len = ftello(f);
        /* A scene larger than 4 GiB is a mistake, not a test. */
        if (len > 0 && len < ((off_t)4 << 30) && fseeko(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)len);
            if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            }
            *size = (size_t)len;
        }
    }
    fclose(f);
    return buf;
}

static bool jpeg_ok(const unsigned char *data, size_t size)
{
    int w, h, ss, cs;
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8)
        return false;
    if (tjDecompressHeader3(g_tjd, data, (unsigned long)size, &w, &h, &ss, &cs) < 0)
        return false;
    return w > 0 && h > 0 && w <= 16384 && h <= 16384;
}

static bool source_add_blob(struct fc_source *s, unsigned char *blob)
{
    unsigned char **b = realloc(s->blobs, (s->nblobs + 1) * sizeof *b);
    if (!b)
        return false;
    s->blobs = b;
    s->blobs[s->nblobs++] = blob;
    return true;
}

static void source_add_frame(struct fc_source *s, const unsigned char *data, size_t size)
{
    if (s->count >= g_max_frames || !jpeg_ok(data, size))
        return;
    if ((s->count & (s->count - 1)) == 0) { /* grow at powers of two */
        size_t cap = s->count ? s->count * 2 : 16;
        struct fc_jpeg *f = realloc(s->frames, cap * sizeof *f);
        if (!f)
            return;
        s->frames = f;
    }
    s->frames[s->count].data = data;
    s->frames[s->count].size = size;
    s->count++;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks RIFF/LIST chunks (depth-limited) collecting MJPEG video chunks
 * ("##dc"/"##db" starting with SOI) and the frame period from avih. */
static void avi_walk(struct fc_source *s, const unsigned char *p, const unsigned char *end,
                     int depth)
{
    while (end - p >= 8) {
        uint32_t size = le32(p + 4);
        const unsigned char *data = p + 8;
        if (size > (size_t)(end - data))
            size = (uint32_t)(end - data);
        if ((!memcmp(p, "RIFF", 4) || !memcmp(p, "LIST", 4)) && size >= 4 && depth < 6) {
            avi_walk(s, data + 4, data + size, depth + 1);
        } else if (!memcmp(p, "avih", 4) && size >= 4 && s->fps == 0) {
            uint32_t us = le32(data);
            if (us > 0)
                s->fps = 1e6 / us;
        } else if ((p[2] == 'd' && (p[3] == 'c' || p[3] == 'b')) && size >= 4) {
            source_add_frame(s, data, size);
        }
        size_t step = 8 + (size_t)size + (size & 1);
        if (step > (size_t)(end - p))
            break;
        p += step;
    }
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_jpeg_file(struct fc_source *s, const char *path)
{
    size_t size = 0;
    unsigned char *buf = read_file(path, &size);
    if (!buf) {
        logf_("cannot read %s: %s", path, strerror(errno));
        return;
    }
    size_t before = s->count;
    source_add_frame(s, buf, size);
    if (s->count == before) {
        logf_("%s is not a JPEG file; skipped", path);
        free(buf);
    } else if (!source_add_blob(s, buf)) {
        s->count = before;
        free(buf);
    }
}

static void load_dir(struct fc_source *s, const char *dir)
{
    DIR *dp = REAL(opendir)(dir);
    if (!dp)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = REAL(readdir)(dp)) != NULL) {
        if (!has_suffix(e->d_name, ".jpg") && !has_suffix(e->d_name, ".jpeg"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n])
            break;
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    REAL(closedir)(dp);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        if (s->count < g_max_frames)
            load_jpeg_file(s, names[i]);
        free(names[i]);
    }
    free(names);
}

/* Containers other than MJPEG AVI are decoded to JPEG files by GStreamer in
 * a child process, without LD_PRELOAD so the child cannot recurse into us. */
static void load_video_via_gstreamer(struct fc_source *s, const char *path)
{
    char dir[PATH_MAX];
    const char *tmp_base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kestrel-fakecam-XXXXXX",
             tmp_base && *tmp_base ? tmp_base : "/tmp");
    if (!mkdtemp(dir)) {
        logf_("mkdtemp: %s", strerror(errno));
        return;
    }
    char loc[PATH_MAX + 32], pattern[sizeof dir + 32], eos[32];
    snprintf(loc, sizeof loc, "location=%s", path);
    snprintf(pattern, sizeof pattern, "location=%s/f%%06d.jpg", dir);
    snprintf(eos, sizeof eos, "eos-after=%zu", g_max_frames);
    char *argv[] = {"gst-launch-1.0", "-q", "filesrc", loc, "!", "decodebin", "!", "videoconvert",
                    "!", "identity", eos, "!", "jpegenc", "quality=92", "!", "multifilesink",
                    pattern, NULL};
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 1, sizeof *envp);
    if (!envp)
        return;
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            envp[k++] = environ[i];
    pid_t pid;
    int rc = posix_spawnp(&pid, "gst-launch-1.0", NULL, NULL, argv, envp);
    free(envp);
    if (rc != 0) {
        logf_("cannot run gst-launch-1.0 to decode %s: %s", path, strerror(rc));
    } else {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            logf_("gst-launch-1.0 could not decode %s (status %d)", path, status);
        load_dir(s, dir);
    }
    /* Frames are in memory now; the folder goes. */
    DIR *dp = REAL(opendir)(dir);
    if (dp) {
        struct dirent *e;
        while ((e = REAL(readdir)(dp)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char f[sizeof dir + 300];
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            unlink(f);
        }
        REAL(closedir)(dp);
    }
    rmdir(dir);
}

static void load_entry(struct fc_source *s, const char *entry)
{
    struct stat st;
    if (strpbrk(entry, "*?[")) {
        glob_t g;
        if (glob(entry, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc && s->count < g_max_frames; i++)
                load_entry(s, g.gl_pathv[i]);
            globfree(&g);
        }
        return;
    }
    if (REAL(stat)(entry, &st) != 0) {
        logf_("source %s: %s", entry, strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        load_dir(s, entry);
    } else if (has_suffix(entry, ".jpg") || has_suffix(entry, ".jpeg")) {
        load_jpeg_file(s, entry);
    } else {
        size_t before = s->count;
        if (has_suffix(entry, ".avi")) {
            size_t size = 0;
            unsigned char *buf = read_file(entry, &size);
            if (buf) {
                avi_walk(s, buf, buf + size, 0);
                if (s->count == before || !source_add_blob(s, buf)) {
                    s->count = before;
                    free(buf);
                }
            }
        }
        if (s->count == before) {
            s->fps = 0;
            load_video_via_gstreamer(s, entry);
        }
    }
}

static bool ensure_tj(void)
{
    if (!g_tjd)
        g_tjd = tjInitDecompress();
    if (!g_tjc)
        g_tjc = tjInitCompress();
    return g_tjd && g_tjc;
}

static struct fc_source *source_get(const char *spec)
{
    for (struct fc_source *s = g_sources; s; s = s->next)
        if (!strcmp(s->spec, spec))
            return s->count ? s : NULL;
    struct fc_source *s = calloc(1, sizeof *s);
    if (!s || !ensure_tj())
        return NULL;
    s->spec = strdup(spec);
    char *copy = strdup(spec), *save = NULL;
    if (!s->spec || !copy)
        return NULL;
    /* ':' and ',' separate entries; a lone path keeps any it contains only
     * if it exists as it is. */
    struct stat st;
    if (REAL(stat)(spec, &st) == 0) {
        load_entry(s, spec);
    } else {
        for (char *tok = strtok_r(copy, ":,", &save); tok; tok = strtok_r(NULL, ":,", &save))
            load_entry(s, tok);
    }
    free(copy);
    s->next = g_sources;
    g_sources = s;
    if (!s->count)
        logf_("no JPEG frames in source '%s' (set KESTREL_FAKECAM_SOURCE)", spec);
    else
        DEBUG("source %s: %zu frames, %.2f fps", spec, s->count, s->fps);
    return s->count ? s : NULL;
}

/* ---- frame production ---------------------------------------------------- */

static bool grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    unsigned char *p = realloc(*buf, need);
    if (!p)
        return false;
    *buf = p;
    *cap = need;
    return true;
}

/* Decodes a source JPEG and resizes it to w x h RGB in g_resized, keeping
 * the aspect by cropping the middle, as a sensor mode with another aspect
 * would. TurboJPEG's DCT scaling does most of the shrinking; a bilinear
 * pass does the rest. */
static bool render_rgb(const struct fc_jpeg *src, uint32_t w, uint32_t h)
{
    int sw, sh, ss, cs;
    if (tjDecompressHeader3(g_tjd, src->data, (unsigned long)src->size, &sw, &sh, &ss, &cs) < 0)
        return false;
    double cw = sw, ch = sh; /* crop window in source pixels */
    if ((uint64_t)sw * h > (uint64_t)w * (uint64_t)sh)
        cw = (double)sh * w / h;
    else
        ch = (double)sw * h / w;
    int nf = 0;
    tjscalingfactor *factors = tjGetScalingFactors(&nf);
    tjscalingfactor best = {1, 1};
    double best_scale = 1e9;
    for (int i = 0; i < nf; i++) {
        double sc = (double)factors[i].num / factors[i].denom;
        if (sc <= 1.0 && cw * sc >= w && ch * sc >= h && sc < best_scale) {
            best = factors[i];
            best_scale = sc;
        }
    }
    int dw = TJSCALED(sw, best), dh = TJSCALED(sh, best);
    if (!grow(&g_decoded, &g_decoded_cap, (size_t)dw * dh * 3) ||
        !grow(&g_resized, &g_resized_cap, (size_t)w * h * 3))
        return false;
    if (tjDecompress2(g_tjd, src->data, (unsigned long)src->size, g_decoded, dw, 0, dh, TJPF_RGB,
                      TJFLAG_FASTDCT) < 0 &&
        tjGetErrorCode(g_tjd) != TJERR_WARNING)
        return false;
    double scale = (double)dw / sw;
    double x0 = ((double)sw - cw) / 2 * scale, y0 = ((double)sh - ch) / 2 * scale;
    double fx = cw * scale / w, fy = ch * scale / h;
    if ((uint32_t)dw == w && (uint32_t)dh == h) {
        memcpy(g_resized, g_decoded, (size_t)w * h * 3); /* nothing to crop or scale */
        return true;
    }
    /* Column taps once per frame, 8-bit weights: this runs per pixel. */
    static int *taps;
    static size_t taps_cap;
    if (w > taps_cap) {
        int *t = realloc(taps, (size_t)w * 3 * sizeof *t);
        if (!t)
            return false;
        taps = t;
        taps_cap = w;
    }
    for (uint32_t x = 0; x < w; x++) {
        double sx = x0 + (x + 0.5) * fx - 0.5;
        if (sx < 0)
            sx = 0;
        int ix = (int)sx;
        if (ix > dw - 1)
            ix = dw - 1;
        taps[x * 3] = ix * 3;
        taps[x * 3 + 1] = (ix + 1 < dw ? ix + 1 : ix) * 3;
        taps[x * 3 + 2] = (int)((sx - ix) * 256);
    }
    for (uint32_t y = 0; y < h; y++) {
        double sy = y0 + (y + 0.5) * fy - 0.5;
        if (sy < 0)
            sy = 0;
        int iy = (int)sy;
        if (iy > dh - 1)
            iy = dh - 1;
        int iy1 = iy + 1 < dh ? iy + 1 : iy;
        unsigned wy = (unsigned)((sy - iy) * 256);
        const unsigned char *r0 = g_decoded + (size_t)iy * dw * 3;
        const unsigned char *r1 = g_decoded + (size_t)iy1 * dw * 3;
        unsigned char *out = g_resized + (size_t)y * w * 3;
        for (uint32_t x = 0; x < w; x++) {
            int a = taps[x * 3], b = taps[x * 3 + 1];
            unsigned wx = (unsigned)taps[x * 3 + 2];
            for (int c = 0; c < 3; c++) {
                unsigned top = r0[a + c] * (256 - wx) + r0[b + c] * wx;
                unsigned bot = r1[a + c] * (256 - wx) + r1[b + c] * wx;
                out[x * 3 + c] = (unsigned char)((top * (256 - wy) + bot * wy + 32768) >> 16);
            }
        }
    }
    return true;
}

/* BT.601 limited range: what UVC YUV formats carry and what GStreamer
 * assumes for a V4L2_COLORSPACE_SRGB YUV frame. */
static inline unsigned char rgb_y(int r, int g, int b)
{
    return (unsigned char)(16 + ((66 * r + 129 * g + 25 * b + 128) >> 8));
}
static inline unsigned char rgb_u(int r, int g, int b)
{
    return (unsigned char)(128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8));
}
static inline unsigned char rgb_v(int r, int g, int b)
{
    return (unsigned char)(128 + ((112 * r - 94 * g - 18 * b + 128) >> 8));
}

static void rgb_to_yuyv(const unsigned char *rgb, uint32_t w, uint32_t h, unsigned char *out)
{
    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *s = rgb + (size_t)y * w * 3;
        unsigned char *d = out + (size_t)y * w * 2;
        for (uint32_t x = 0; x < w; x += 2, s += 6, d += 4) {
            int r = (s[0] + s[3] + 1) / 2, g = (s[1] + s[4] + 1) / 2, b = (s[2] + s[5] + 1) / 2;
            d[0] = rgb_y(s[0], s[1], s[2]);
            d[1] = rgb_u(r, g, b);
            d[2] = rgb_y(s[3], s[4], s[5]);
            d[3] = rgb_v(r, g, b);
        }
    }
}

static void rgb_to_nv12(const unsigned char *rgb, uint32_t w, uint32_t h, unsigned char *out)
{
    unsigned char *uv = out + (size_t)w * h;
    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *s = rgb + (size_t)y * w * 3;
        for (uint32_t x = 0; x < w; x++)
            out[(size_t)y * w + x] = rgb_y(s[x * 3], s[x * 3 + 1], s[x * 3 + 2]);
    }
    for (uint32_t y = 0; y < h; y += 2) {
        const unsigned char *a = rgb + (size_t)y * w * 3, *b = a + (size_t)w * 3;
        unsigned char *d = uv + (size_t)(y / 2) * w;
        for (uint32_t x = 0; x < w; x += 2) {
            int r = (a[x * 3] + a[x * 3 + 3] + b[x * 3] + b[x * 3 + 3] + 2) / 4;
            int g = (a[x * 3 + 1] + a[x * 3 + 4] + b[x * 3 + 1] + b[x * 3 + 4] + 2) / 4;
            int bl = (a[x * 3 + 2] + a[x * 3 + 5] + b[x * 3 + 2] + b[x * 3 + 5] + 2) / 4;
            d[x] = rgb_u(r, g, bl);
            d[x + 1] = rgb_v(r, g, bl);
        }
    }
}

static void cache_clear(struct fc_device *d)
{
    for (size_t i = 0; i < d->cache_count; i++) {
        g_cache_used -= d->cache[i].size;
        free(d->cache[i].data);
    }
    free(d->cache);
    d->cache = NULL;
    d->cache_count = 0;
}

static size_t source_index(const struct fc_device *d, uint32_t sequence)
{
    const struct fc_source *s = d->source;
    double sfps = d->source_fps >= 0 ? d->source_fps : (s->fps > 0 ? s->fps : 0.5);
    uint64_t i = sfps > 0 ? (uint64_t)((double)sequence * sfps / d->rate) : sequence;
    return (size_t)(i % s->count);
}

/* Fills one buffer with the scene as it is at frame `sequence`. Prepared
 * frames are kept (within the cache budget) so a looping scene costs a
 * memcpy per frame after its first pass. */
static bool produce(struct fc_device *d, uint32_t sequence, unsigned char *out, size_t cap,
                    uint32_t *used)
{
    const struct v4l2_pix_format *f = &d->fmt;
    size_t idx = source_index(d, sequence);
    const struct fc_jpeg *src = &d->source->frames[idx];

    if (d->cache_fourcc != f->pixelformat || d->cache_w != f->width || d->cache_h != f->height ||
        d->cache_count != d->source->count) {
        cache_clear(d);
        d->cache = calloc(d->source->count, sizeof *d->cache);
        d->cache_count = d->cache ? d->source->count : 0;
        d->cache_fourcc = f->pixelformat;
        d->cache_w = f->width;
        d->cache_h = f->height;
    }
    if (d->cache && d->cache[idx].data) {
        if (d->cache[idx].size > cap)
            return false;
        memcpy(out, d->cache[idx].data, d->cache[idx].size);
        *used = (uint32_t)d->cache[idx].size;
        return true;
    }

    if (f->pixelformat == V4L2_PIX_FMT_MJPEG) {
        int sw, sh, ss, cs;
        if (tjDecompressHeader3(g_tjd, src->data, (unsigned long)src->size, &sw, &sh, &ss, &cs) ==
                0 &&
            (uint32_t)sw == f->width && (uint32_t)sh == f->height && src->size <= cap) {
            memcpy(out, src->data, src->size); /* already the right size: as shot */
            *used = (uint32_t)src->size;
            return true;
        }
    }
    if (!render_rgb(src, f->width, f->height))
        return false;
    size_t size;
    if (f->pixelformat == V4L2_PIX_FMT_MJPEG) {
        unsigned char *jpeg = NULL;
        unsigned long jsize = 0;
        if (tjCompress2(g_tjc, g_resized, (int)f->width, 0, (int)f->height, TJPF_RGB, &jpeg, &jsize,
                        TJSAMP_422, d->quality, TJFLAG_FASTDCT) < 0) {
            tjFree(jpeg);
            return false;
        }
        bool fits = jsize <= cap;
        if (fits)
            memcpy(out, jpeg, jsize);
        tjFree(jpeg);
        if (!fits)
            return false;
        size = jsize;
    } else if (f->pixelformat == V4L2_PIX_FMT_NV12) {
        size = (size_t)f->width * f->height * 3 / 2;
        if (size > cap)
            return false;
        rgb_to_nv12(g_resized, f->width, f->height, out);
    } else {
        size = (size_t)f->width * f->height * 2;
        if (size > cap)
            return false;
        rgb_to_yuyv(g_resized, f->width, f->height, out);
    }
    *used = (uint32_t)size;
    if (d->cache && g_cache_used + size <= g_cache_limit) {
        d->cache[idx].data = malloc(size);
        if (d->cache[idx].data) {
            memcpy(d->cache[idx].data, out, size);
            d->cache[idx].size = size;
            g_cache_used += size;
        }
    }
    return true;
}

/* ---- device state ---------------------------------------------------------- */

static void queue_free(struct fc_device *d)
{
    d->streaming = false;
    if (d->mem)
        REAL(munmap)(d->mem, d->mem_size);
    if (d->memfd >= 0)
        REAL(close)(d->memfd);
    d->mem = NULL;
    d->mem_size = 0;
    d->memfd = -1;
    d->nbufs = 0;
    pthread_cond_broadcast(&d->cond);
}

static void unplug(struct fc_device *d, uint64_t now, bool by_counter)
{
    DEBUG("%s: unplugged%s", d->path, by_counter ? " (frame count)" : " (file)");
    d->plugged = false;
    d->counter_unplugged = by_counter;
    d->unplugged_at = now;
    d->unplugs++;
    d->generation++; /* every open handle is now stale */
    d->owner = NULL;
    queue_free(d);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return path && REAL(stat)(path, &st) == 0;
}

/* Brings the plug state up to date; called before anything looks at it. */
static void refresh(struct fc_device *d, uint64_t now)
{
    bool file = d->unplug_file && file_exists(d->unplug_file);
    if (d->plugged) {
        if (file)
            unplug(d, now, false);
        return;
    }
    if (file)
        return;
    if (d->counter_unplugged &&
        (d->replug_after < 0 || now < d->unplugged_at + (uint64_t)(d->replug_after * 1e9)))
        return;
    DEBUG("%s: plugged in again", d->path);
    d->plugged = true;
    d->counter_unplugged = false;
    d->frames_since_plug = 0;
    d->plugged_at_ns = now;
    reset_format(d);
}

static bool handle_dead(struct fc_handle *h, uint64_t now)
{
    refresh(h->dev, now);
    return h->generation != h->dev->generation || !h->dev->plugged;
}

static uint64_t period_ns(const struct fc_device *d)
{
    return FC_NS / d->rate;
}

static int oldest(const struct fc_device *d, enum fc_buf_state state)
{
    int best = -1;
    for (uint32_t i = 0; i < d->nbufs; i++)
        if (d->bufs[i].state == state && (best < 0 || d->bufs[i].order < d->bufs[best].order))
            best = (int)i;
    return best;
}

/* Delivers every frame that has come due: into the oldest queued buffer if
 * there is one, otherwise it is lost, as on a real camera. */
static void pump(struct fc_device *d, uint64_t now)
{
    if (!d->streaming || !d->plugged)
        return;
    uint64_t period = period_ns(d);
    while (now >= d->next_due_ns) {
        int b = oldest(d, BUF_QUEUED);
        if (b < 0) {
            uint64_t missed = (now - d->next_due_ns) / period + 1;
            d->sequence += (uint32_t)missed;
            d->next_due_ns += missed * period;
            break;
        }
        struct fc_buffer *buf = &d->bufs[b];
        uint32_t used = 0;
        bool ok = produce(d, d->sequence, d->mem + buf->offset, d->fmt.sizeimage, &used);
        buf->bytesused = ok ? used : 0;
        buf->flags = ok ? 0 : V4L2_BUF_FLAG_ERROR;
        buf->sequence = d->sequence;
        buf->timestamp_ns = d->next_due_ns;
        buf->state = BUF_DONE;
        buf->order = ++d->order;
        d->sequence++;
        d->next_due_ns += period;
    }
}

/* ---- descriptor table -------------------------------------------------- */

static struct fc_handle *fd_handle(int fd)
{
    for (size_t i = 0; i < g_fdmap_len; i++)
        if (g_fdmap[i].fd == fd)
            return g_fdmap[i].handle;
    return NULL;
}

static bool fd_add(int fd, struct fc_handle *h)
{
    if (g_fdmap_len == g_fdmap_cap) {
        size_t cap = g_fdmap_cap ? g_fdmap_cap * 2 : 16;
        struct fc_fdmap *m = realloc(g_fdmap, cap * sizeof *m);
        if (!m)
            return false;
        g_fdmap = m;
        g_fdmap_cap = cap;
    }
    g_fdmap[g_fdmap_len].fd = fd;
    g_fdmap[g_fdmap_len].handle = h;
    g_fdmap_len++;
    h->refs++;
    if (fd >= 0 && fd < FC_FD_FLAGS)
        atomic_store(&g_isfake[fd], 1);
    atomic_fetch_add(&g_nfake, 1);
    return true;
}

static void handle_unref(struct fc_handle *h)
{
    if (--h->refs > 0)
        return;
    struct fc_device *d = h->dev;
    if (d->owner == h) {
        d->owner = NULL;
        queue_free(d);
    }
    free(h);
}

/* Forgets fd if it is fake; the caller closes the real descriptor after. */
static void fd_remove(int fd)
{
    for (size_t i = 0; i < g_fdmap_len; i++) {
        if (g_fdmap[i].fd == fd) {
            struct fc_handle *h = g_fdmap[i].handle;
            g_fdmap[i] = g_fdmap[--g_fdmap_len];
            if (fd >= 0 && fd < FC_FD_FLAGS)
                atomic_store(&g_isfake[fd], 0);
            atomic_fetch_sub(&g_nfake, 1);
            handle_unref(h);
            return;
        }
    }
}

static bool any_fake(void)
{
    return atomic_load_explicit(&g_nfake, memory_order_relaxed) != 0;
}

/* False only when fd is certainly not one of ours. */
static bool maybe_fake(int fd)
{
    if (fd < 0 || !any_fake())
        return false;
    return fd >= FC_FD_FLAGS || atomic_load_explicit(&g_isfake[fd], memory_order_acquire);
}

/* ---- stat ------------------------------------------------------------------ */

static void fake_stat(const struct fc_device *d, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(0, 5);
    st->st_ino = 100000 + d->minor;
    st->st_mode = S_IFCHR | 0660;
    st->st_nlink = 1;
    st->st_uid = 0;
    st->st_gid = 44; /* "video" on Debian */
    st->st_rdev = makedev(FC_VIDEO_MAJOR, d->minor);
    st->st_blksize = 4096;
    st->st_atim = st->st_mtim = st->st_ctim = g_start_time;
}

/* 0 and *st filled, -1 with errno, or 1: not ours. */
static int stat_path(const char *path, struct stat *st)
{
    struct fc_device *d = device_for_path(path);
    if (!d)
        return 1;
    pthread_mutex_lock(&g_lock);
    refresh(d, now_ns());
    bool present = d->plugged;
    pthread_mutex_unlock(&g_lock);
    if (!present) {
        errno = ENOENT;
        return -1;
    }
    fake_stat(d, st);
    return 0;
}

static int stat_fd(int fd, struct stat *st)
{
    if (!maybe_fake(fd))
        return 1;
    pthread_mutex_lock(&g_lock);
    struct fc_handle *h = fd_handle(fd);
    if (h)
        fake_stat(h->dev, st);
    pthread_mutex_unlock(&g_lock);
    return h ? 0 : 1;
}

int stat(const char *path, struct stat *st)
{
    int r = stat_path(path, st);
    return r <= 0 ? r : REAL(stat)(path, st);
}

int stat64(const char *path, struct stat64 *st)
{
    int r = stat_path(path, (struct stat *)st);
    return r <= 0 ? r : REAL(stat64)(path, st);
}

int lstat(const char *path, struct stat *st)
{
    int r = stat_path(path, st);
    return r <= 0 ? r : REAL(lstat)(path, st);
}

int lstat64(const char *path, struct stat64 *st)
{
    int r = stat_path(path, (struct stat *)st);
    return r <= 0 ? r : REAL(lstat64)(path, st);
}

int fstat(int fd, struct stat *st)
{
    int r = stat_fd(fd, st);
    return r <= 0 ? r : REAL(fstat)(fd, st);
}

int fstat64(int fd, struct stat64 *st)
{
    int r = stat_fd(fd, (struct stat *)st);
    return r <= 0 ? r : REAL(fstat64)(fd, st);
}

static int statat(int dirfd, const char *path, struct stat *st, int flags)
{
    if (path && path[0] == 0 && (flags & AT_EMPTY_PATH))
        return stat_fd(dirfd, st);
    if (path && path[0] == '/')
        return stat_path(path, st);
    return 1;
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    int r = statat(dirfd, path, st, flags);
    return r <= 0 ? r : REAL(fstatat)(dirfd, path, st, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    int r = statat(dirfd, path, (struct stat *)st, flags);
    return r <= 0 ? r : REAL(fstatat64)(dirfd, path, st, flags);
}

int __xstat(int ver, const char *path, struct stat *st)
{
    int r = stat_path(path, st);
    return r <= 0 ? r : REAL(__xstat)(ver, path, st);
}

int __xstat64(int ver, const char *path, struct stat64 *st)
{
    int r = stat_path(path, (struct stat *)st);
    return r <= 0 ? r : REAL(__xstat64)(ver, path, st);
}

int __lxstat(int ver, const char *path, struct stat *st)
{
    int r = stat_path(path, st);
    return r <= 0 ? r : REAL(__lxstat)(ver, path, st);
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
    int r = stat_path(path, (struct stat *)st);
    return r <= 0 ? r : REAL(__lxstat64)(ver, path, st);
}

int __fxstat(int ver, int fd, struct stat *st)
{
    int r = stat_fd(fd, st);
    return r <= 0 ? r : REAL(__fxstat)(ver, fd, st);
}

int __fxstat64(int ver, int fd, struct stat64 *st)
{
    int r = stat_fd(fd, (struct stat *)st);
    return r <= 0 ? r : REAL(__fxstat64)(ver, fd, st);
}

int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
    int r = statat(dirfd, path, st, flags);
    return r <= 0 ? r : REAL(__fxstatat)(ver, dirfd, path, st, flags);
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
    int r = statat(dirfd, path, (struct stat *)st, flags);
    return r <= 0 ? r : REAL(__fxstatat64)(ver, dirfd, path, st, flags);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
    struct stat st;
    int r = statat(dirfd, path, &st, flags);
    if (r > 0) {
        statx_fn real = REAL(statx);
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
        return real(dirfd, path, flags, mask, stx);
    }
    if (r < 0)
        return r;
    memset(stx, 0, sizeof *stx);
    stx->stx_mask = STATX_BASIC_STATS;
    stx->stx_blksize = (uint32_t)st.st_blksize;
    stx->stx_nlink = (uint32_t)st.st_nlink;
    stx->stx_uid = st.st_uid;
    stx->stx_gid = st.st_gid;
    stx->stx_mode = (uint16_t)st.st_mode;
    stx->stx_ino = st.st_ino;
    stx->stx_rdev_major = major(st.st_rdev);
    stx->stx_rdev_minor = minor(st.st_rdev);
    stx->stx_dev_major = major(st.st_dev);
    stx->stx_dev_minor = minor(st.st_dev);
    stx->stx_atime.tv_sec = stx->stx_mtime.tv_sec = stx->stx_ctime.tv_sec = st.st_mtim.tv_sec;
    return 0;
}

static int access_path(const char *path)
{
    struct stat st;
    return stat_path(path, &st);
}

int access(const char *path, int mode)
{
    int r = access_path(path);
    return r <= 0 ? r : REAL(access)(path, mode);
}

int euidaccess(const char *path, int mode)
{
    int r = access_path(path);
    return r <= 0 ? r : REAL(euidaccess)(path, mode);
}

int eaccess(const char *path, int mode)
{
    int r = access_path(path);
    return r <= 0 ? r : REAL(eaccess)(path, mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags)
{
    int r = path[0] == '/' ? access_path(path) : 1;
    return r <= 0 ? r : REAL(faccessat)(dirfd, path, mode, flags);
}

/* ---- listing /dev ----------------------------------------------------------- */

static bool is_dev_dir(const char *path)
{
    return path && (!strcmp(path, "/dev") || !strcmp(path, "/dev/"));
}

DIR *opendir(const char *path)
{
    DIR *dir = REAL(opendir)(path);
    if (!dir || !is_dev_dir(path))
        return dir;
    pthread_once(&g_once, init_once);
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < sizeof g_dirs / sizeof g_dirs[0]; i++) {
        if (!g_dirs[i].dir) {
            g_dirs[i].dir = dir;
            g_dirs[i].next_device = 0;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return dir;
}

int closedir(DIR *dir)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < sizeof g_dirs / sizeof g_dirs[0]; i++)
        if (g_dirs[i].dir == dir)
            g_dirs[i].dir = NULL;
    pthread_mutex_unlock(&g_lock);
    return REAL(closedir)(dir);
}

void rewinddir(DIR *dir)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < sizeof g_dirs / sizeof g_dirs[0]; i++)
        if (g_dirs[i].dir == dir)
            g_dirs[i].next_device = 0;
    pthread_mutex_unlock(&g_lock);
    REAL(rewinddir)(dir);
}

/* After the real entries, one entry per plugged fake node directly in /dev. */
static struct dirent64 *next_fake_entry(DIR *dir)
{
    struct dirent64 *out = NULL;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < sizeof g_dirs / sizeof g_dirs[0] && !out; i++) {
        struct fc_dirwatch *w = &g_dirs[i];
        if (w->dir != dir)
            continue;
        uint64_t now = now_ns();
        while (w->next_device < g_ndevices) {
            struct fc_device *d = &g_devices[w->next_device++];
            const char *name = d->path + 5;
            refresh(d, now);
            if (!d->plugged || strchr(name, '/'))
                continue;
            memset(&w->entry, 0, sizeof w->entry);
            w->entry.d_ino = 100000 + d->minor;
            w->entry.d_type = DT_CHR;
            w->entry.d_reclen = sizeof w->entry;
            snprintf(w->entry.d_name, sizeof w->entry.d_name, "%s", name);
            out = &w->entry;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return out;
}

struct dirent *readdir(DIR *dir)
{
    struct dirent *e = REAL(readdir)(dir);
    if (e || !g_ndevices)
        return e;
    /* struct dirent and dirent64 are the same on LP64 Linux. */
    return (struct dirent *)next_fake_entry(dir);
}

struct dirent64 *readdir64(DIR *dir)
{
    struct dirent64 *e = REAL(readdir64)(dir);
    if (e || !g_ndevices)
        return e;
    return next_fake_entry(dir);
}

/* ---- sysfs ---------------------------------------------------------------- */

/* Tools identify a node through sysfs (v4l2-ctl reads
 * /sys/dev/char/81:N/uevent before it opens anything); synthesize the two
 * files that say "this is a V4L2 video node" and what it is called. */
static FILE *fake_sysfs(const char *path)
{
    if (!path || strncmp(path, "/sys/", 5) != 0)
        return NULL;
    pthread_once(&g_once, init_once);
    char content[160];
    content[0] = 0;
    pthread_mutex_lock(&g_lock);
    uint64_t now = now_ns();
    for (int i = 0; i < g_ndevices && !content[0]; i++) {
        struct fc_device *d = &g_devices[i];
        const char *name = strrchr(d->path, '/') + 1;
        char want[96];
        refresh(d, now);
        if (!d->plugged)
            continue;
        snprintf(want, sizeof want, "/sys/dev/char/%d:%u/uevent", FC_VIDEO_MAJOR, d->minor);
        if (!strcmp(path, want))
            snprintf(content, sizeof content, "MAJOR=%d\nMINOR=%u\nDEVNAME=%s\n", FC_VIDEO_MAJOR,
                     d->minor, d->path + 5);
        snprintf(want, sizeof want, "/sys/class/video4linux/%s/name", name);
        if (!strcmp(path, want))
            snprintf(content, sizeof content, "%s\n", d->card);
    }
    pthread_mutex_unlock(&g_lock);
    if (!content[0])
        return NULL;
    /* A real descriptor: libstdc++'s ifstream reads through fileno(). */
    int fd = memfd_create("kestrel-fakecam-sysfs", MFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t len = strlen(content);
    FILE *f = NULL;
    if (REAL(write)(fd, content, len) == (ssize_t)len && lseek(fd, 0, SEEK_SET) == 0)
        f = fdopen(fd, "r");
    if (!f)
        REAL(close)(fd);
    return f;
}

FILE *fopen(const char *path, const char *mode)
{
    FILE *f = mode[0] == 'r' ? fake_sysfs(path) : NULL;
    return f ? f : REAL(fopen)(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    FILE *f = mode[0] == 'r' ? fake_sysfs(path) : NULL;
    return f ? f : REAL(fopen64)(path, mode);
}

/* ---- open, close, dup ------------------------------------------------------- */

static int fake_open(struct fc_device *d, int flags)
{
    if (flags & O_DIRECTORY) {
        errno = ENOTDIR;
        return -1;
    }
    pthread_mutex_lock(&g_lock);
    refresh(d, now_ns());
    if (!d->plugged) {
        pthread_mutex_unlock(&g_lock);
        errno = ENOENT;
        return -1;
    }
    if ((flags & O_CREAT) && (flags & O_EXCL)) {
        pthread_mutex_unlock(&g_lock);
        errno = EEXIST;
        return -1;
    }
    if (!d->source) {
        d->source = source_get(d->source_spec);
        if (!d->source) {
            pthread_mutex_unlock(&g_lock);
            errno = EIO;
            return -1;
        }
    }
    int fd = eventfd(0, (flags & O_CLOEXEC ? EFD_CLOEXEC : 0) |
                            (flags & O_NONBLOCK ? EFD_NONBLOCK : 0));
    struct fc_handle *h = fd >= 0 ? calloc(1, sizeof *h) : NULL;
    if (!h || !fd_add(fd, h)) {
        int err = fd < 0 ? errno : ENOMEM;
        free(h);
        if (fd >= 0)
            REAL(close)(fd);
        pthread_mutex_unlock(&g_lock);
        errno = err;
        return -1;
    }
    h->dev = d;
    h->generation = d->generation;
    h->accmode = flags & O_ACCMODE;
    DEBUG("open %s -> fd %d", d->path, fd);
    pthread_mutex_unlock(&g_lock);
    return fd;
}

static mode_t open_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(openat)(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(openat64)(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(__open_2)(path, flags);
}

int __open64_2(const char *path, int flags)
{
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(__open64_2)(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(__openat_2)(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    struct fc_device *d = device_for_path(path);
    return d ? fake_open(d, flags) : REAL(__openat64_2)(dirfd, path, flags);
}

int close(int fd)
{
    if (maybe_fake(fd)) {
        pthread_mutex_lock(&g_lock);
        if (fd_handle(fd))
            DEBUG("close fd %d", fd);
        fd_remove(fd);
        pthread_mutex_unlock(&g_lock);
    }
    return REAL(close)(fd);
}

/* newfd came from duplicating oldfd (any way); mirror it in the table. */
static int track_dup(int oldfd, int newfd, bool replaced)
{
    if (newfd < 0 || (!maybe_fake(oldfd) && !maybe_fake(newfd)))
        return newfd;
    pthread_mutex_lock(&g_lock);
    if (replaced && newfd != oldfd)
        fd_remove(newfd); /* dup2 onto a fake fd closed it */
    struct fc_handle *h = fd_handle(oldfd);
    if (h && newfd != oldfd && !fd_add(newfd, h)) {
        pthread_mutex_unlock(&g_lock);
        REAL(close)(newfd);
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_unlock(&g_lock);
    return newfd;
}

int dup(int fd)
{
    return track_dup(fd, REAL(dup)(fd), false);
}

int dup2(int oldfd, int newfd)
{
    return track_dup(oldfd, REAL(dup2)(oldfd, newfd), true);
}

int dup3(int oldfd, int newfd, int flags)
{
    return track_dup(oldfd, REAL(dup3)(oldfd, newfd, flags), true);
}

static int fcntl_common(fcntl_fn real, int fd, int cmd, void *arg)
{
    int r = real(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        return track_dup(fd, r, false);
    return r;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* glibc reads it the same way */
    va_end(ap);
    return fcntl_common(REAL(fcntl), fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    fcntl_fn real = REAL(fcntl64);
    return fcntl_common(real ? real : REAL(fcntl), fd, cmd, arg);
}

/* ---- ioctl ------------------------------------------------------------------ */

static const char *fourcc_name(uint32_t f)
{
    switch (f) {
    case V4L2_PIX_FMT_MJPEG:
        return "Motion-JPEG";
    case V4L2_PIX_FMT_YUYV:
        return "YUYV 4:2:2";
    case V4L2_PIX_FMT_NV12:
        return "Y/UV 4:2:0";
    default:
        return "?";
    }
}

static bool offers_format(const struct fc_device *d, uint32_t f)
{
    for (int i = 0; i < d->n_formats; i++)
        if (d->formats[i] == f)
            return true;
    return false;
}

static bool offers_size(const struct fc_device *d, uint32_t w, uint32_t h)
{
    for (int i = 0; i < d->n_sizes; i++)
        if (d->widths[i] == w && d->heights[i] == h)
            return true;
    return false;
}

/* uvcvideo's choice: the offered size whose area differs least. */
static void nearest_size(const struct fc_device *d, uint32_t *w, uint32_t *h)
{
    uint64_t best = UINT64_MAX;
    int bi = 0;
    for (int i = 0; i < d->n_sizes; i++) {
        uint64_t fw = d->widths[i], fh = d->heights[i];
        uint64_t ow = fw < *w ? fw : *w, oh = fh < *h ? fh : *h;
        uint64_t diff = fw * fh + (uint64_t)*w * *h - 2 * ow * oh;
        if (diff < best) {
            best = diff;
            bi = i;
        }
    }
    *w = d->widths[bi];
    *h = d->heights[bi];
}

static uint32_t nearest_rate(const struct fc_device *d, const struct v4l2_fract *tpf)
{
    if (!tpf->numerator || !tpf->denominator)
        return d->rates[0];
    double want = (double)tpf->numerator / tpf->denominator, best = 1e300;
    uint32_t r = d->rates[0];
    for (int i = 0; i < d->n_rates; i++) {
        double diff = 1.0 / d->rates[i] - want;
        diff = diff < 0 ? -diff : diff;
        if (diff < best) {
            best = diff;
            r = d->rates[i];
        }
    }
    return r;
}

static int try_fmt(const struct fc_device *d, struct v4l2_format *f)
{
    if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
        return -EINVAL;
    uint32_t fourcc = f->fmt.pix.pixelformat;
    if (!offers_format(d, fourcc))
        fourcc = d->formats[0];
    uint32_t w = f->fmt.pix.width, h = f->fmt.pix.height;
    nearest_size(d, &w, &h);
    fill_pix(&f->fmt.pix, fourcc, w, h);
    return 0;
}

static int acquire(struct fc_device *d, struct fc_handle *h)
{
    if (d->owner && d->owner != h)
        return -EBUSY;
    d->owner = h;
    return 0;
}

static int ctrl_index(uint32_t id)
{
    for (int i = 0; i < 4; i++)
        if (k_ctrls[i].id == id)
            return i;
    return -1;
}

static uint32_t ctrl_flags(const struct fc_device *d, int i)
{
    if (i == CTRL_EXPOSURE_ABSOLUTE && d->ctrl[CTRL_EXPOSURE_AUTO] != V4L2_EXPOSURE_MANUAL)
        return V4L2_CTRL_FLAG_INACTIVE;
    return 0;
}

/* Index of the control an enumeration asks for, or -1. */
static int ctrl_lookup(uint32_t id)
{
    uint32_t flags = id & (V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
    id &= ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
    if (!(flags & V4L2_CTRL_FLAG_NEXT_CTRL))
        return ctrl_index(id);
    for (int i = 0; i < 4; i++)
        if (k_ctrls[i].id > id)
            return i;
    return -1;
}

static int ctrl_check(int i, int32_t *value)
{
    const struct fc_ctrl_info *c = &k_ctrls[i];
    if (c->type == V4L2_CTRL_TYPE_MENU)
        return *value == V4L2_EXPOSURE_MANUAL || *value == V4L2_EXPOSURE_APERTURE_PRIORITY ? 0
                                                                                            : -EINVAL;
    if (*value < c->min)
        *value = c->min; /* integers are clamped, as uvcvideo does */
    if (*value > c->max)
        *value = c->max;
    return 0;
}

static int ext_ctrls(struct fc_device *d, struct v4l2_ext_controls *ec, unsigned long req)
{
    if (ec->which == V4L2_CTRL_WHICH_REQUEST_VAL)
        return -EINVAL;
    if (ec->count > 64)
        return -E2BIG;
    if (ec->count && !ec->controls)
        return -EFAULT;
    bool def = ec->which == V4L2_CTRL_WHICH_DEF_VAL;
    if (def && req != VIDIOC_G_EXT_CTRLS)
        return -EINVAL;
    for (uint32_t k = 0; k < ec->count; k++) {
        int i = ctrl_index(ec->controls[k].id);
        int32_t v = ec->controls[k].value;
        if (i < 0 || (req != VIDIOC_G_EXT_CTRLS && ctrl_check(i, &v) < 0)) {
            /* For a bad id in S_EXT_CTRLS the kernel reports count (the
             * validation stage), for G and TRY the index itself. */
            ec->error_idx = req == VIDIOC_S_EXT_CTRLS ? ec->count : k;
            return -EINVAL;
        }
    }
    for (uint32_t k = 0; k < ec->count; k++) {
        int i = ctrl_index(ec->controls[k].id);
        if (req == VIDIOC_G_EXT_CTRLS) {
            ec->controls[k].value = def ? k_ctrls[i].def : d->ctrl[i];
        } else {
            int32_t v = ec->controls[k].value;
            ctrl_check(i, &v);
            ec->controls[k].value = v;
            if (req == VIDIOC_S_EXT_CTRLS)
                d->ctrl[i] = v;
        }
    }
    return 0;
}

static void buf_to_user(const struct fc_device *d, uint32_t i, struct v4l2_buffer *b)
{
    const struct fc_buffer *fb = &d->bufs[i];
    memset(b, 0, sizeof *b);
    b->index = i;
    b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b->memory = V4L2_MEMORY_MMAP;
    b->bytesused = fb->state == BUF_QUEUED ? 0 : fb->bytesused;
    b->flags = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_TSTAMP_SRC_SOE | fb->flags;
    if (fb->state == BUF_QUEUED)
        b->flags |= V4L2_BUF_FLAG_QUEUED;
    else if (fb->state == BUF_DONE)
        b->flags |= V4L2_BUF_FLAG_DONE;
    b->field = V4L2_FIELD_NONE;
    b->timestamp.tv_sec = (time_t)(fb->timestamp_ns / FC_NS);
    b->timestamp.tv_usec = (suseconds_t)(fb->timestamp_ns % FC_NS / 1000);
    b->sequence = fb->sequence;
    b->m.offset = (uint32_t)fb->offset;
    b->length = d->fmt.sizeimage;
}

static int reqbufs(struct fc_device *d, struct fc_handle *h, struct v4l2_requestbuffers *rb)
{
    if (rb->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || rb->memory != V4L2_MEMORY_MMAP)
        return -EINVAL;
    int r = acquire(d, h);
    if (r < 0)
        return r;
    if (d->streaming)
        return -EBUSY;
    queue_free(d); /* buffers still mapped by the client live on as orphans */
    rb->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP | V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS;
    rb->flags = 0;
    memset(rb->reserved, 0, sizeof rb->reserved);
    if (rb->count == 0) {
        d->owner = NULL;
        return 0;
    }
    uint32_t count = rb->count > FC_MAX_BUFFERS ? FC_MAX_BUFFERS : rb->count;
    long page = sysconf(_SC_PAGESIZE);
    size_t stride = ((size_t)d->fmt.sizeimage + (size_t)page - 1) & ~((size_t)page - 1);
    int memfd = memfd_create("kestrel-fakecam", MFD_CLOEXEC);
    if (memfd < 0)
        return -ENOMEM;
    if (ftruncate(memfd, (off_t)(stride * count)) < 0) {
        REAL(close)(memfd);
        return -ENOMEM;
    }
    void *mem = REAL(mmap)(NULL, stride * count, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mem == MAP_FAILED) {
        REAL(close)(memfd);
        return -ENOMEM;
    }
    d->memfd = memfd;
    d->mem = mem;
    d->mem_size = stride * count;
    d->stride = stride;
    d->nbufs = count;
    for (uint32_t i = 0; i < count; i++) {
        memset(&d->bufs[i], 0, sizeof d->bufs[i]);
        d->bufs[i].offset = stride * i;
        d->bufs[i].state = BUF_DEQUEUED;
    }
    rb->count = count;
    return 0;
}

static int check_buffer(const struct fc_device *d, const struct fc_handle *h,
                        const struct v4l2_buffer *b)
{
    if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP)
        return -EINVAL;
    if (d->owner != h)
        return d->owner ? -EBUSY : -EINVAL;
    if (b->index >= d->nbufs)
        return -EINVAL;
    return 0;
}

static int dqbuf(struct fc_device *d, struct fc_handle *h, int fd, struct v4l2_buffer *b)
{
    int r = check_buffer(d, h, &(struct v4l2_buffer){.type = b->type, .memory = b->memory});
    if (r < 0 && !(r == -EINVAL && d->owner == h && d->nbufs == 0))
        return r;
    bool nonblock = (REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK) != 0;
    for (;;) {
        uint64_t now = now_ns();
        if (handle_dead(h, now))
            return -ENODEV;
        if (!d->streaming || d->owner != h)
            return -EINVAL;
        pump(d, now);
        int i = oldest(d, BUF_DONE);
        if (i >= 0) {
            d->bufs[i].state = BUF_DEQUEUED;
            buf_to_user(d, (uint32_t)i, b);
            d->frames_since_plug++;
            if (d->unplug_after > 0 && d->frames_since_plug >= d->unplug_after &&
                (d->unplug_cycles <= 0 || d->unplugs < d->unplug_cycles))
                unplug(d, now, true); /* this frame still arrives; the next call fails */
            return 0;
        }
        if (nonblock)
            return -EAGAIN;
        uint64_t wake = oldest(d, BUF_QUEUED) >= 0 ? d->next_due_ns : now + 20000000ull;
        if (d->unplug_file && wake > now + 50000000ull)
            wake = now + 50000000ull;
        struct timespec ts = {(time_t)(wake / FC_NS), (long)(wake % FC_NS)};
        pthread_cond_timedwait(&d->cond, &g_lock, &ts);
    }
}

static int fake_ioctl_locked(struct fc_handle *h, int fd, unsigned long req, void *arg)
{
    struct fc_device *d = h->dev;
    uint64_t now = now_ns();
    if (handle_dead(h, now))
        return -ENODEV;
    if (_IOC_TYPE(req) != 'V') {
        /* FIONBIO, FIOCLEX and friends act on the descriptor itself. */
        return REAL(ioctl)(fd, req, arg) < 0 ? -errno : 0;
    }
    if (!arg && _IOC_SIZE(req))
        return -EFAULT;

    switch (req) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "uvcvideo");
        snprintf((char *)c->card, sizeof c->card, "%s", d->card);
        snprintf((char *)c->bus_info, sizeof c->bus_info, "usb-kestrel-fakecam-%u", d->minor);
        c->version = LINUX_VERSION_CODE;
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || f->index >= (uint32_t)d->n_formats)
            return -EINVAL;
        uint32_t index = f->index, type = f->type;
        memset(f, 0, sizeof *f);
        f->index = index;
        f->type = type;
        f->pixelformat = d->formats[index];
        f->flags = f->pixelformat == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
        snprintf((char *)f->description, sizeof f->description, "%s", fourcc_name(f->pixelformat));
        return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        if (!offers_format(d, s->pixel_format) || s->index >= (uint32_t)d->n_sizes)
            return -EINVAL;
        s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        s->discrete.width = d->widths[s->index];
        s->discrete.height = d->heights[s->index];
        memset(s->reserved, 0, sizeof s->reserved);
        return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *iv = arg;
        if (!offers_format(d, iv->pixel_format) || !offers_size(d, iv->width, iv->height) ||
            iv->index >= (uint32_t)d->n_rates)
            return -EINVAL;
        iv->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        iv->discrete.numerator = 1;
        iv->discrete.denominator = d->rates[iv->index];
        memset(iv->reserved, 0, sizeof iv->reserved);
        return 0;
    }
    case VIDIOC_G_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return -EINVAL;
        f->fmt.pix = d->fmt;
        return 0;
    }
    case VIDIOC_TRY_FMT:
        return try_fmt(d, arg);
    case VIDIOC_S_FMT: {
        struct v4l2_format *f = arg;
        int r = try_fmt(d, f);
        if (r < 0)
            return r;
        if ((r = acquire(d, h)) < 0)
            return r;
        if (d->nbufs || d->streaming)
            return -EBUSY;
        d->fmt = f->fmt.pix;
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return -EINVAL;
        if (req == VIDIOC_S_PARM) {
            int r = acquire(d, h);
            if (r < 0)
                return r;
            if (d->streaming)
                return -EBUSY;
            d->rate = nearest_rate(d, &p->parm.capture.timeperframe);
        }
        memset(&p->parm, 0, sizeof p->parm);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = d->rate;
        return 0;
    }
    case VIDIOC_REQBUFS:
        return reqbufs(d, h, arg);
    case VIDIOC_QUERYBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->index >= d->nbufs)
            return -EINVAL;
        buf_to_user(d, b->index, b);
        return 0;
    }
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        int r = check_buffer(d, h, b);
        if (r < 0)
            return r;
        struct fc_buffer *fb = &d->bufs[b->index];
        if (fb->state != BUF_DEQUEUED)
            return -EINVAL; /* vb2: "buffer still being processed" */
        fb->state = BUF_QUEUED;
        fb->order = ++d->order;
        fb->flags = 0;
        buf_to_user(d, b->index, b);
        pthread_cond_broadcast(&d->cond);
        return 0;
    }
    case VIDIOC_DQBUF:
        return dqbuf(d, h, fd, arg);
    case VIDIOC_STREAMON:
    case VIDIOC_STREAMOFF: {
        const int *type = arg;
        if (*type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return -EINVAL;
        if (d->owner && d->owner != h)
            return -EBUSY;
        if (req == VIDIOC_STREAMON) {
            if (!d->nbufs || d->owner != h)
                return -EINVAL; /* STREAMON before REQBUFS */
            if (d->streaming)
                return 0;
            d->streaming = true;
            d->sequence = 0;
            d->next_due_ns = now + period_ns(d);
        } else {
            d->streaming = false;
            for (uint32_t i = 0; i < d->nbufs; i++)
                d->bufs[i].state = BUF_DEQUEUED;
        }
        pthread_cond_broadcast(&d->cond);
        return 0;
    }
    case VIDIOC_ENUMINPUT: {
        struct v4l2_input *in = arg;
        if (in->index != 0)
            return -EINVAL;
        memset(in, 0, sizeof *in);
        snprintf((char *)in->name, sizeof in->name, "Camera 1");
        in->type = V4L2_INPUT_TYPE_CAMERA;
        return 0;
    }
    case VIDIOC_G_INPUT:
        *(int *)arg = 0;
        return 0;
    case VIDIOC_S_INPUT:
        return *(int *)arg == 0 ? 0 : -EINVAL;
    case VIDIOC_QUERYCTRL: {
        struct v4l2_queryctrl *q = arg;
        int i = ctrl_lookup(q->id);
        if (i < 0)
            return -EINVAL;
        memset(q, 0, sizeof *q);
        q->id = k_ctrls[i].id;
        q->type = k_ctrls[i].type;
        snprintf((char *)q->name, sizeof q->name, "%s", k_ctrls[i].name);
        q->minimum = k_ctrls[i].min;
        q->maximum = k_ctrls[i].max;
        q->step = k_ctrls[i].step;
        q->default_value = k_ctrls[i].def;
        q->flags = ctrl_flags(d, i);
        return 0;
    }
    case VIDIOC_QUERY_EXT_CTRL: {
        struct v4l2_query_ext_ctrl *q = arg;
        int i = ctrl_lookup(q->id);
        if (i < 0)
            return -EINVAL;
        memset(q, 0, sizeof *q);
        q->id = k_ctrls[i].id;
        q->type = k_ctrls[i].type;
        snprintf(q->name, sizeof q->name, "%s", k_ctrls[i].name);
        q->minimum = k_ctrls[i].min;
        q->maximum = k_ctrls[i].max;
        q->step = (uint64_t)k_ctrls[i].step;
        q->default_value = k_ctrls[i].def;
        q->flags = ctrl_flags(d, i);
        q->elem_size = 4;
        q->elems = 1;
        return 0;
    }
    case VIDIOC_QUERYMENU: {
        struct v4l2_querymenu *m = arg;
        if (m->id != V4L2_CID_EXPOSURE_AUTO)
            return -EINVAL;
        const char *name = m->index == V4L2_EXPOSURE_MANUAL              ? "Manual Mode"
                           : m->index == V4L2_EXPOSURE_APERTURE_PRIORITY ? "Aperture Priority Mode"
                                                                          : NULL;
        if (!name)
            return -EINVAL;
        memset(m->name, 0, sizeof m->name);
        snprintf((char *)m->name, sizeof m->name, "%s", name);
        m->reserved = 0;
        return 0;
    }
    case VIDIOC_G_CTRL:
    case VIDIOC_S_CTRL: {
        struct v4l2_control *c = arg;
        int i = ctrl_index(c->id);
        if (i < 0)
            return -EINVAL;
        if (req == VIDIOC_S_CTRL) {
            int32_t v = c->value;
            if (ctrl_check(i, &v) < 0)
                return -EINVAL;
            d->ctrl[i] = v;
        }
        c->value = d->ctrl[i];
        return 0;
    }
    case VIDIOC_G_EXT_CTRLS:
    case VIDIOC_S_EXT_CTRLS:
    case VIDIOC_TRY_EXT_CTRLS:
        return ext_ctrls(d, arg, req);
    case VIDIOC_CROPCAP: {
        struct v4l2_cropcap *c = arg;
        if (c->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return -EINVAL;
        c->bounds = (struct v4l2_rect){0, 0, d->fmt.width, d->fmt.height};
        c->defrect = c->bounds;
        c->pixelaspect = (struct v4l2_fract){1, 1};
        return 0;
    }
    case VIDIOC_G_SELECTION: {
        struct v4l2_selection *s = arg;
        if (s->type != V4L2_BUF_TYPE_VIDEO_CAPTURE ||
            (s->target != V4L2_SEL_TGT_CROP_DEFAULT && s->target != V4L2_SEL_TGT_CROP_BOUNDS))
            return -EINVAL;
        s->r = (struct v4l2_rect){0, 0, d->fmt.width, d->fmt.height};
        return 0;
    }
    case VIDIOC_G_CROP:
        return -EINVAL;
    case VIDIOC_G_PRIORITY:
        *(uint32_t *)arg = V4L2_PRIORITY_DEFAULT;
        return 0;
    case VIDIOC_S_PRIORITY:
        return 0;
    case VIDIOC_SUBSCRIBE_EVENT:
        return -EINVAL; /* no control events in this emulation */
    case VIDIOC_UNSUBSCRIBE_EVENT:
        return 0;
    case VIDIOC_DQEVENT:
        return -ENOENT;
    case VIDIOC_LOG_STATUS:
        return 0;
    default:
        /* ENUMSTD, G_STD, S_STD, QUERYSTD, EXPBUF, CREATE_BUFS, S_SELECTION,
         * S_CROP, ...: not supported, as on a UVC camera (or clean refusal). */
        return -ENOTTY;
    }
}

static const char *ioctl_name(unsigned long req)
{
    switch (req) {
#define N(x)                                                                   \
    case x:                                                                    \
        return #x
        N(VIDIOC_QUERYCAP);
        N(VIDIOC_ENUM_FMT);
        N(VIDIOC_ENUM_FRAMESIZES);
        N(VIDIOC_ENUM_FRAMEINTERVALS);
        N(VIDIOC_G_FMT);
        N(VIDIOC_S_FMT);
        N(VIDIOC_TRY_FMT);
        N(VIDIOC_G_PARM);
        N(VIDIOC_S_PARM);
        N(VIDIOC_REQBUFS);
        N(VIDIOC_QUERYBUF);
        N(VIDIOC_QBUF);
        N(VIDIOC_DQBUF);
        N(VIDIOC_STREAMON);
        N(VIDIOC_STREAMOFF);
        N(VIDIOC_ENUMINPUT);
        N(VIDIOC_G_INPUT);
        N(VIDIOC_S_INPUT);
        N(VIDIOC_QUERYCTRL);
        N(VIDIOC_QUERY_EXT_CTRL);
        N(VIDIOC_G_CTRL);
        N(VIDIOC_S_CTRL);
        N(VIDIOC_G_EXT_CTRLS);
        N(VIDIOC_S_EXT_CTRLS);
        N(VIDIOC_ENUMSTD);
        N(VIDIOC_G_STD);
        N(VIDIOC_CROPCAP);
        N(VIDIOC_G_SELECTION);
        N(VIDIOC_S_SELECTION);
        N(VIDIOC_EXPBUF);
        N(VIDIOC_CREATE_BUFS);
        N(VIDIOC_SUBSCRIBE_EVENT);
#undef N
    default:
        return "ioctl";
    }
}

/* 0, -errno, or 1 when fd is not ours. */
static int fake_ioctl(int fd, unsigned long req, void *arg)
{
    if (!maybe_fake(fd))
        return 1;
    pthread_mutex_lock(&g_lock);
    struct fc_handle *h = fd_handle(fd);
    if (!h) {
        pthread_mutex_unlock(&g_lock);
        return 1;
    }
    h->refs++; /* a close() on another thread must not free it mid-call */
    int r = fake_ioctl_locked(h, fd, req, arg);
    if (g_debug)
        logf_("%s fd %d %s (0x%lx) -> %s", h->dev->path, fd, ioctl_name(req), req,
              r ? strerror(-r) : "ok");
    handle_unref(h);
    pthread_mutex_unlock(&g_lock);
    return r;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = fake_ioctl(fd, req, arg);
    if (r == 1)
        return REAL(ioctl)(fd, req, arg);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

/* ---- mmap, read, write ---------------------------------------------------- */

static void *fake_mmap(int fd, void *addr, size_t len, int prot, int flags, off_t off, bool *ours)
{
    *ours = false;
    if (!maybe_fake(fd))
        return NULL;
    pthread_mutex_lock(&g_lock);
    struct fc_handle *h = fd_handle(fd);
    if (!h) {
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    *ours = true;
    struct fc_device *d = h->dev;
    void *r = MAP_FAILED;
    int err = EINVAL;
    if (handle_dead(h, now_ns())) {
        err = ENODEV;
    } else if (!(flags & MAP_SHARED)) {
        err = EINVAL; /* vb2 refuses private mappings */
    } else if ((prot & PROT_WRITE) && h->accmode == O_RDONLY) {
        err = EACCES;
    } else {
        for (uint32_t i = 0; i < d->nbufs; i++) {
            if ((off_t)d->bufs[i].offset == off && len > 0 && len <= d->stride) {
                r = REAL(mmap)(addr, len, prot, flags, d->memfd, off);
                err = errno;
                break;
            }
        }
    }
    DEBUG("mmap fd %d offset %lld length %zu -> %s", fd, (long long)off, len,
          r == MAP_FAILED ? strerror(err) : "ok");
    pthread_mutex_unlock(&g_lock);
    if (r == MAP_FAILED)
        errno = err;
    return r;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    bool ours;
    void *r = fd >= 0 ? fake_mmap(fd, addr, len, prot, flags, off, &ours) : NULL;
    if (fd >= 0 && ours)
        return r;
    return REAL(mmap)(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    bool ours;
    void *r = fd >= 0 ? fake_mmap(fd, addr, len, prot, flags, off, &ours) : NULL;
    if (fd >= 0 && ours)
        return r;
    return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

/* A UVC device has no read() I/O: EINVAL, or ENODEV once unplugged. */
static int fake_rw(int fd)
{
    if (!maybe_fake(fd))
        return 1;
    pthread_mutex_lock(&g_lock);
    struct fc_handle *h = fd_handle(fd);
    int r = !h ? 1 : handle_dead(h, now_ns()) ? -ENODEV : -EINVAL;
    pthread_mutex_unlock(&g_lock);
    return r;
}

ssize_t read(int fd, void *buf, size_t n)
{
    int r = fake_rw(fd);
    if (r == 1)
        return REAL(read)(fd, buf, n);
    errno = -r;
    return -1;
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    int r = fake_rw(fd);
    if (r == 1)
        return REAL(__read_chk)(fd, buf, n, buflen);
    errno = -r;
    return -1;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    int r = fake_rw(fd);
    if (r == 1)
        return REAL(write)(fd, buf, n);
    errno = -r;
    return -1;
}

/* ---- poll and select ---------------------------------------------------- */

/* Readiness of one fake descriptor, as vb2_poll would report it; sets
 * *wake to when it may change if nothing happens meanwhile. */
static short fake_revents(struct fc_handle *h, short events, uint64_t now, uint64_t *wake)
{
    struct fc_device *d = h->dev;
    if (handle_dead(h, now))
        return (short)(POLLERR | POLLHUP | (events & POLLPRI));
    if (!d->streaming || d->owner != h)
        return POLLERR;
    pump(d, now);
    if (oldest(d, BUF_DONE) >= 0)
        return (short)(events & (POLLIN | POLLRDNORM));
    /* Nothing queued: another thread may queue at any time; look again soon. */
    uint64_t w = oldest(d, BUF_QUEUED) >= 0 ? d->next_due_ns : now + 5000000ull;
    if (d->unplug_file && w > now + 50000000ull)
        w = now + 50000000ull;
    if (w < *wake)
        *wake = w;
    return 0;
}

/* poll/ppoll over a set that may mix fake and real descriptors: the real
 * ones are polled by the kernel, with a timeout cut to the next frame. */
static int poll_common(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                       const sigset_t *sigmask)
{
    struct pollfd local_small[16];
    struct fc_handle *hs_small[16];
    struct pollfd *local = n <= 16 ? local_small : malloc(n * sizeof *local);
    struct fc_handle **hs = n <= 16 ? hs_small : calloc(n, sizeof *hs);
    int result = -1;
    if (!local || !hs) {
        errno = ENOMEM;
        goto out;
    }
    uint64_t start = now_ns();
    uint64_t deadline = timeout ? start + (uint64_t)timeout->tv_sec * FC_NS + (uint64_t)timeout->tv_nsec
                                : UINT64_MAX;
    bool has_fake = false, candidates = false;
    for (nfds_t i = 0; i < n; i++) {
        hs[i] = NULL;
        candidates |= maybe_fake(fds[i].fd);
    }
    if (candidates) {
        pthread_mutex_lock(&g_lock);
        for (nfds_t i = 0; i < n; i++) {
            hs[i] = fds[i].fd >= 0 ? fd_handle(fds[i].fd) : NULL;
            if (hs[i]) {
                hs[i]->refs++;
                has_fake = true;
            }
        }
        pthread_mutex_unlock(&g_lock);
    }
    if (!has_fake) {
        result = REAL(ppoll)(fds, n, timeout, sigmask);
        goto out;
    }
    for (;;) {
        uint64_t now = now_ns(), wake = deadline;
        int ready = 0;
        pthread_mutex_lock(&g_lock);
        for (nfds_t i = 0; i < n; i++) {
            local[i] = fds[i];
            local[i].revents = 0;
            if (hs[i]) {
                local[i].revents = fake_revents(hs[i], fds[i].events, now, &wake);
                local[i].fd = -1; /* the kernel skips it */
                ready += local[i].revents != 0;
            }
        }
        pthread_mutex_unlock(&g_lock);
        struct timespec ts = {0, 0};
        if (!ready) {
            if (now >= deadline) {
                result = 0;
                for (nfds_t i = 0; i < n; i++)
                    fds[i].revents = 0;
                break;
            }
            uint64_t wait = (wake > now ? wake : now) - now;
            ts.tv_sec = (time_t)(wait / FC_NS);
            ts.tv_nsec = (long)(wait % FC_NS);
        }
        int r = REAL(ppoll)(local, n, &ts, sigmask);
        if (r < 0) {
            result = -1;
            break;
        }
        if (r == 0 && !ready)
            continue;
        /* The kernel zeroed revents of the entries it skipped: recompute
         * the fake ones rather than trusting anything set before. */
        result = 0;
        pthread_mutex_lock(&g_lock);
        now = now_ns();
        for (nfds_t i = 0; i < n; i++) {
            fds[i].revents = hs[i] ? fake_revents(hs[i], fds[i].events, now, &wake) : local[i].revents;
            result += fds[i].revents != 0;
        }
        pthread_mutex_unlock(&g_lock);
        break;
    }
    pthread_mutex_lock(&g_lock);
    for (nfds_t i = 0; i < n; i++)
        if (hs[i])
            handle_unref(hs[i]);
    pthread_mutex_unlock(&g_lock);
out:
    if (local != local_small)
        free(local);
    if (hs != hs_small)
        free(hs);
    return result;
}

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (!any_fake())
        return REAL(poll)(fds, n, timeout_ms);
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    return poll_common(fds, n, timeout_ms < 0 ? NULL : &ts, NULL);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout_ms, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        abort(); /* what glibc's checker does */
    return poll(fds, n, timeout_ms);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *sigmask)
{
    if (!any_fake())
        return REAL(ppoll)(fds, n, timeout, sigmask);
    return poll_common(fds, n, timeout, sigmask);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        abort();
    return ppoll(fds, n, timeout, sigmask);
}

static bool sets_have_fake(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
    bool found = false;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_fdmap_len && !found; i++) {
        int fd = g_fdmap[i].fd;
        if (fd < nfds && fd < FD_SETSIZE &&
            ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))))
            found = true;
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

/* select over fake descriptors goes through poll_common. */
static int select_via_poll(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                           const sigset_t *sigmask)
{
    if (nfds > FD_SETSIZE)
        nfds = FD_SETSIZE;
    struct pollfd *p = calloc((size_t)nfds, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) | (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
                           (e && FD_ISSET(fd, e) ? POLLPRI : 0));
        if (ev) {
            p[n].fd = fd;
            p[n].events = ev;
            n++;
        }
    }
    int rc = poll_common(p, n, ts, sigmask);
    if (rc >= 0) {
        if (r)
            FD_ZERO(r);
        if (w)
            FD_ZERO(w);
        if (e)
            FD_ZERO(e);
        rc = 0;
        for (nfds_t i = 0; i < n; i++) {
            short re = p[i].revents;
            if (re & POLLNVAL) {
                errno = EBADF;
                rc = -1;
                break;
            }
            if (r && (p[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) {
                FD_SET(p[i].fd, r);
                rc++;
            }
            if (w && (p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR))) {
                FD_SET(p[i].fd, w);
                rc++;
            }
            if (e && (p[i].events & POLLPRI) && (re & POLLPRI)) {
                FD_SET(p[i].fd, e);
                rc++;
            }
        }
    }
    free(p);
    return rc;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if (!any_fake() || !sets_have_fake(nfds, r, w, e))
        return REAL(select)(nfds, r, w, e, tv);
    struct timespec ts;
    if (tv) {
        ts.tv_sec = tv->tv_sec;
        ts.tv_nsec = tv->tv_usec * 1000;
    }
    uint64_t start = now_ns();
    int rc = select_via_poll(nfds, r, w, e, tv ? &ts : NULL, NULL);
    if (tv) { /* Linux reports the time left */
        uint64_t spent = now_ns() - start, total = (uint64_t)ts.tv_sec * FC_NS + (uint64_t)ts.tv_nsec;
        uint64_t left = spent < total ? total - spent : 0;
        tv->tv_sec = (time_t)(left / FC_NS);
        tv->tv_usec = (suseconds_t)(left % FC_NS / 1000);
    }
    return rc;
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
            const sigset_t *sigmask)
{
    if (!any_fake() || !sets_have_fake(nfds, r, w, e))
        return REAL(pselect)(nfds, r, w, e, ts, sigmask);
    return select_via_poll(nfds, r, w, e, ts, sigmask);
}

/* ---- syscall(2): libv4l2's way in ------------------------------------------ */

long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    static void *slot;
    long (*real)(long, ...) = (long (*)(long, ...))resolve(&slot, "syscall");
    switch (number) {
    case SYS_ioctl: {
        int r = fake_ioctl((int)a[0], (unsigned long)a[1], (void *)a[2]);
        if (r == 1)
            break;
        if (r < 0) {
            errno = -r;
            return -1;
        }
        return 0;
    }
    case SYS_mmap: {
        bool ours;
        void *p = (int)a[4] >= 0 ? fake_mmap((int)a[4], (void *)a[0], (size_t)a[1], (int)a[2],
                                             (int)a[3], (off_t)a[5], &ours)
                                 : NULL;
        if ((int)a[4] >= 0 && ours)
            return p == MAP_FAILED ? -1 : (long)p;
        break;
    }
    case SYS_read:
    case SYS_write: {
        int r = fake_rw((int)a[0]);
        if (r == 1)
            break;
        errno = -r;
        return -1;
    }
    case SYS_close:
        return close((int)a[0]);
    case SYS_dup:
        return dup((int)a[0]);
    case SYS_dup2:
        return dup2((int)a[0], (int)a[1]);
    case SYS_dup3:
        return dup3((int)a[0], (int)a[1], (int)a[2]);
    case SYS_open: {
        struct fc_device *d = device_for_path((const char *)a[0]);
        if (d)
            return fake_open(d, (int)a[1]);
        break;
    }
    case SYS_openat: {
        struct fc_device *d = device_for_path((const char *)a[1]);
        if (d)
            return fake_open(d, (int)a[2]);
        break;
    }
    default:
        break;
    }
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
