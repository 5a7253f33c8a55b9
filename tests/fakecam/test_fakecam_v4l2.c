/* Tests of the fake V4L2 camera at the ioctl level, run with the shim in
 * LD_PRELOAD (see meson.build). Each mode configures the shim through the
 * environment before its first call touches /dev, so one binary covers:
 *
 *   test_fakecam_v4l2 basic      enumeration, formats, controls, refusals, streaming
 *   test_fakecam_v4l2 libv4l2    the same device through libv4l2 (syscall path, conversion)
 *   test_fakecam_v4l2 unplug     unplug after N frames -> ENODEV, node gone, replug, reopen
 *   test_fakecam_v4l2 cycles     many unplug/replug cycles: no leaked fds, no memory growth
 *   test_fakecam_v4l2 unplugfile unplug and replug on demand through a file
 *
 * Exit status 0 when every check passed; each failure prints what was seen.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libv4l2.h>
#include <math.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

static int g_failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            g_failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* The call must fail with exactly this errno. */
#define CHECK_ERRNO(call, want)                                                \
    do {                                                                       \
        errno = 0;                                                             \
        int r_ = (call);                                                       \
        int e_ = errno;                                                        \
        CHECK(r_ == -1 && e_ == (want), "returned %d errno %d (%s), want %s", r_, e_,     \
              strerror(e_), #want);                                            \
    } while (0)

#define CHECK_OK(call)                                                         \
    do {                                                                       \
        errno = 0;                                                             \
        int r_ = (call);                                                       \
        CHECK(r_ >= 0, "returned %d errno %d (%s)", r_, errno, strerror(errno)); \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static const char *cache_dir(void)
{
    static char dir[4096];
    const char *c = getenv("KESTREL_CACHE");
    if (c && *c)
        return c;
    snprintf(dir, sizeof dir, "%s/.cache/kestrel", getenv("HOME") ? getenv("HOME") : "/root");
    return dir;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static bool dev_listed(const char *name)
{
    bool found = false;
    DIR *d = opendir("/dev");
    if (!d)
        return false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        found |= strcmp(e->d_name, name) == 0;
    closedir(d);
    return found;
}

static int set_format(int fd, uint32_t fourcc, uint32_t w, uint32_t h)
{
    struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    f.fmt.pix.pixelformat = fourcc;
    f.fmt.pix.width = w;
    f.fmt.pix.height = h;
    if (ioctl(fd, VIDIOC_S_FMT, &f) < 0)
        return -1;
    if (f.fmt.pix.pixelformat != fourcc || f.fmt.pix.width != w || f.fmt.pix.height != h) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

struct mapping {
    void *addr;
    size_t length;
};

/* REQBUFS + QUERYBUF + mmap + QBUF of every buffer, as v4l2src does. */
static int setup_buffers(int fd, uint32_t count, struct mapping *maps)
{
    struct v4l2_requestbuffers rb = {.count = count, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                     .memory = V4L2_MEMORY_MMAP};
    if (ioctl(fd, VIDIOC_REQBUFS, &rb) < 0 || rb.count != count)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        struct v4l2_buffer b = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                .memory = V4L2_MEMORY_MMAP};
        if (ioctl(fd, VIDIOC_QUERYBUF, &b) < 0)
            return -1;
        maps[i].length = b.length;
        maps[i].addr = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, b.m.offset);
        if (maps[i].addr == MAP_FAILED)
            return -1;
        if (ioctl(fd, VIDIOC_QBUF, &b) < 0)
            return -1;
    }
    return 0;
}

static void unmap_all(struct mapping *maps, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (maps[i].addr && maps[i].addr != MAP_FAILED)
            munmap(maps[i].addr, maps[i].length);
}

static int dqbuf(int fd, struct v4l2_buffer *b)
{
    memset(b, 0, sizeof *b);
    b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b->memory = V4L2_MEMORY_MMAP;
    return ioctl(fd, VIDIOC_DQBUF, b);
}

static int stream_type(int fd, unsigned long req)
{
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    return ioctl(fd, req, &type);
}

/* ---- basic ------------------------------------------------------------- */

static void test_stat_and_listing(void)
{
    struct stat st;
    CHECK_OK(stat("/dev/video7", &st));
    CHECK(S_ISCHR(st.st_mode), "mode %o", st.st_mode);
    CHECK(major(st.st_rdev) == 81 && minor(st.st_rdev) == 7, "rdev %u:%u", major(st.st_rdev),
          minor(st.st_rdev));
    CHECK_OK(lstat("/dev//video7", &st));
    CHECK_OK(fstatat(AT_FDCWD, "/dev/video3", &st, 0));
    CHECK(minor(st.st_rdev) == 3, "minor %u", minor(st.st_rdev));
    struct statx stx;
    CHECK_OK(statx(AT_FDCWD, "/dev/video7", 0, STATX_BASIC_STATS, &stx));
    CHECK(S_ISCHR(stx.stx_mode) && stx.stx_rdev_major == 81, "statx mode %o", stx.stx_mode);
    CHECK_OK(access("/dev/video7", R_OK | W_OK));
    CHECK_ERRNO(stat("/dev/video9", &st), ENOENT); /* not configured: the real (absent) node */
    CHECK_ERRNO(open("/dev/video9", O_RDWR), ENOENT);
    CHECK(dev_listed("video7") && dev_listed("video3"), "fake nodes missing from readdir(/dev)");
    CHECK(!dev_listed("video9"), "video9 listed");
    /* Other paths are untouched. */
    CHECK_OK(stat("/dev/null", &st));
    CHECK(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1, "/dev/null rdev %u", major(st.st_rdev));
}

static void test_enumeration(int fd)
{
    struct stat st;
    CHECK_OK(fstat(fd, &st));
    CHECK(S_ISCHR(st.st_mode) && minor(st.st_rdev) == 7, "fstat mode %o", st.st_mode);

    struct v4l2_capability cap;
    CHECK_OK(ioctl(fd, VIDIOC_QUERYCAP, &cap));
    CHECK((cap.device_caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING)) ==
              (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING),
          "device_caps %08x", cap.device_caps);
    CHECK(!(cap.device_caps & V4L2_CAP_READWRITE), "a UVC camera has no read()");
    CHECK(cap.capabilities & V4L2_CAP_DEVICE_CAPS, "capabilities %08x", cap.capabilities);
    CHECK(strstr((char *)cap.card, "Kestrel Fake Camera") != NULL, "card '%s'", cap.card);

    uint32_t want_fmt[] = {V4L2_PIX_FMT_MJPEG, V4L2_PIX_FMT_YUYV};
    for (uint32_t i = 0; i < 2; i++) {
        struct v4l2_fmtdesc f = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
        CHECK_OK(ioctl(fd, VIDIOC_ENUM_FMT, &f));
        CHECK(f.pixelformat == want_fmt[i], "format %u is %08x", i, f.pixelformat);
        CHECK(!!(f.flags & V4L2_FMT_FLAG_COMPRESSED) == (i == 0), "flags %x", f.flags);
    }
    struct v4l2_fmtdesc fend = {.index = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FMT, &fend), EINVAL);
    struct v4l2_fmtdesc fout = {.index = 0, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FMT, &fout), EINVAL);

    uint32_t ws[] = {640, 1280}, hs[] = {480, 720};
    for (uint32_t i = 0; i < 2; i++) {
        struct v4l2_frmsizeenum s = {.index = i, .pixel_format = V4L2_PIX_FMT_YUYV};
        CHECK_OK(ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &s));
        CHECK(s.type == V4L2_FRMSIZE_TYPE_DISCRETE && s.discrete.width == ws[i] &&
                  s.discrete.height == hs[i],
              "size %u: %ux%u", i, s.discrete.width, s.discrete.height);
        for (uint32_t k = 0; k < 2; k++) {
            struct v4l2_frmivalenum iv = {.index = k, .pixel_format = V4L2_PIX_FMT_MJPEG,
                                          .width = ws[i], .height = hs[i]};
            CHECK_OK(ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iv));
            CHECK(iv.type == V4L2_FRMIVAL_TYPE_DISCRETE && iv.discrete.numerator == 1 &&
                      iv.discrete.denominator == (k ? 15u : 30u),
                  "interval %u/%u", iv.discrete.numerator, iv.discrete.denominator);
        }
        struct v4l2_frmivalenum iend = {.index = 2, .pixel_format = V4L2_PIX_FMT_MJPEG,
                                        .width = ws[i], .height = hs[i]};
        CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iend), EINVAL);
    }
    struct v4l2_frmsizeenum send = {.index = 2, .pixel_format = V4L2_PIX_FMT_YUYV};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &send), EINVAL);
    struct v4l2_frmsizeenum sbad = {.index = 0, .pixel_format = V4L2_PIX_FMT_RGB24};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &sbad), EINVAL);
    struct v4l2_frmivalenum ibad = {.index = 0, .pixel_format = V4L2_PIX_FMT_MJPEG, .width = 800,
                                    .height = 600};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &ibad), EINVAL);

    /* Sizes and formats are rounded, as uvcvideo does; nothing is refused. */
    struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    f.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
    f.fmt.pix.width = 1000;
    f.fmt.pix.height = 700;
    CHECK_OK(ioctl(fd, VIDIOC_TRY_FMT, &f));
    CHECK(f.fmt.pix.width == 1280 && f.fmt.pix.height == 720 &&
              f.fmt.pix.bytesperline == 2560 && f.fmt.pix.sizeimage == 1280 * 720 * 2,
          "TRY_FMT 1000x700 -> %ux%u bpl %u size %u", f.fmt.pix.width, f.fmt.pix.height,
          f.fmt.pix.bytesperline, f.fmt.pix.sizeimage);
    f.fmt.pix.pixelformat = V4L2_PIX_FMT_RGB24;
    f.fmt.pix.width = 10;
    f.fmt.pix.height = 10;
    CHECK_OK(ioctl(fd, VIDIOC_TRY_FMT, &f));
    CHECK(f.fmt.pix.pixelformat == V4L2_PIX_FMT_MJPEG && f.fmt.pix.width == 640,
          "TRY_FMT RGB3 10x10 -> %08x %ux%u", f.fmt.pix.pixelformat, f.fmt.pix.width,
          f.fmt.pix.height);
    f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    CHECK_ERRNO(ioctl(fd, VIDIOC_TRY_FMT, &f), EINVAL);
    struct v4l2_format g = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    CHECK_OK(ioctl(fd, VIDIOC_G_FMT, &g));
    CHECK(g.fmt.pix.pixelformat == V4L2_PIX_FMT_MJPEG && g.fmt.pix.width == 640 &&
              g.fmt.pix.field == V4L2_FIELD_NONE,
          "default format %08x %ux%u", g.fmt.pix.pixelformat, g.fmt.pix.width, g.fmt.pix.height);

    struct v4l2_streamparm p = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    CHECK_OK(ioctl(fd, VIDIOC_G_PARM, &p));
    CHECK(p.parm.capture.capability & V4L2_CAP_TIMEPERFRAME, "no TIMEPERFRAME");
    CHECK(p.parm.capture.timeperframe.denominator == 30, "default rate 1/%u",
          p.parm.capture.timeperframe.denominator);
    p.parm.capture.timeperframe = (struct v4l2_fract){1, 14};
    CHECK_OK(ioctl(fd, VIDIOC_S_PARM, &p));
    CHECK(p.parm.capture.timeperframe.denominator == 15, "S_PARM 1/14 -> 1/%u",
          p.parm.capture.timeperframe.denominator);
    p.parm.capture.timeperframe = (struct v4l2_fract){1, 30};
    CHECK_OK(ioctl(fd, VIDIOC_S_PARM, &p));

    /* Inputs and standards, as a UVC camera answers them. */
    struct v4l2_input in = {.index = 0};
    CHECK_OK(ioctl(fd, VIDIOC_ENUMINPUT, &in));
    CHECK(in.type == V4L2_INPUT_TYPE_CAMERA, "input type %u", in.type);
    in.index = 1;
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUMINPUT, &in), EINVAL);
    int input = 5;
    CHECK_OK(ioctl(fd, VIDIOC_G_INPUT, &input));
    CHECK(input == 0, "input %d", input);
    input = 1;
    CHECK_ERRNO(ioctl(fd, VIDIOC_S_INPUT, &input), EINVAL);
    struct v4l2_standard std = {.index = 0};
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUMSTD, &std), ENOTTY);
    v4l2_std_id id;
    CHECK_ERRNO(ioctl(fd, VIDIOC_G_STD, &id), ENOTTY);
    struct v4l2_cropcap cc = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    CHECK_OK(ioctl(fd, VIDIOC_CROPCAP, &cc));
    CHECK(cc.bounds.width == 640 && cc.pixelaspect.numerator == 1, "cropcap %ux%u",
          cc.bounds.width, cc.bounds.height);
    struct v4l2_selection sel = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                 .target = V4L2_SEL_TGT_CROP_BOUNDS};
    CHECK_OK(ioctl(fd, VIDIOC_G_SELECTION, &sel));
    sel.target = V4L2_SEL_TGT_CROP;
    CHECK_ERRNO(ioctl(fd, VIDIOC_S_SELECTION, &sel), ENOTTY);
}

static void test_controls(int fd)
{
    uint32_t ids[4];
    int n = 0;
    struct v4l2_queryctrl q = {.id = V4L2_CTRL_FLAG_NEXT_CTRL};
    while (n < 4 && ioctl(fd, VIDIOC_QUERYCTRL, &q) == 0) {
        ids[n++] = q.id;
        q.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
    }
    CHECK(n == 4 && ids[0] == V4L2_CID_BRIGHTNESS && ids[1] == V4L2_CID_CONTRAST &&
              ids[2] == V4L2_CID_EXPOSURE_AUTO && ids[3] == V4L2_CID_EXPOSURE_ABSOLUTE,
          "enumerated %d controls", n);
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYCTRL, &q), EINVAL);
    q.id = V4L2_CID_SATURATION;
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYCTRL, &q), EINVAL);

    struct v4l2_query_ext_ctrl qe = {.id = V4L2_CID_EXPOSURE_ABSOLUTE};
    CHECK_OK(ioctl(fd, VIDIOC_QUERY_EXT_CTRL, &qe));
    CHECK(qe.type == V4L2_CTRL_TYPE_INTEGER && qe.minimum < qe.maximum && qe.elems == 1,
          "ext ctrl type %u %lld..%lld", qe.type, (long long)qe.minimum, (long long)qe.maximum);
    CHECK(qe.flags & V4L2_CTRL_FLAG_INACTIVE, "exposure is automatic by default");

    struct v4l2_control c = {.id = V4L2_CID_BRIGHTNESS};
    CHECK_OK(ioctl(fd, VIDIOC_G_CTRL, &c));
    CHECK(c.value == 0, "brightness default %d", c.value);
    c.value = 1000;
    CHECK_OK(ioctl(fd, VIDIOC_S_CTRL, &c));
    CHECK(c.value == 64, "brightness 1000 clamped to %d", c.value);
    c = (struct v4l2_control){.id = V4L2_CID_EXPOSURE_AUTO, .value = 2};
    CHECK_ERRNO(ioctl(fd, VIDIOC_S_CTRL, &c), EINVAL);
    c.value = V4L2_EXPOSURE_MANUAL;
    CHECK_OK(ioctl(fd, VIDIOC_S_CTRL, &c));
    qe = (struct v4l2_query_ext_ctrl){.id = V4L2_CID_EXPOSURE_ABSOLUTE};
    CHECK_OK(ioctl(fd, VIDIOC_QUERY_EXT_CTRL, &qe));
    CHECK(!(qe.flags & V4L2_CTRL_FLAG_INACTIVE), "manual exposure leaves it inactive");
    struct v4l2_querymenu m = {.id = V4L2_CID_EXPOSURE_AUTO, .index = V4L2_EXPOSURE_MANUAL};
    CHECK_OK(ioctl(fd, VIDIOC_QUERYMENU, &m));
    m.index = 0;
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYMENU, &m), EINVAL);
    c = (struct v4l2_control){.id = V4L2_CID_HUE};
    CHECK_ERRNO(ioctl(fd, VIDIOC_G_CTRL, &c), EINVAL);

    struct v4l2_ext_control ec[2] = {{.id = V4L2_CID_EXPOSURE_ABSOLUTE, .value = 500},
                                     {.id = V4L2_CID_CONTRAST, .value = 40}};
    struct v4l2_ext_controls ecs = {.which = V4L2_CTRL_WHICH_CUR_VAL, .count = 2, .controls = ec};
    CHECK_OK(ioctl(fd, VIDIOC_S_EXT_CTRLS, &ecs));
    ec[0].value = ec[1].value = 0;
    CHECK_OK(ioctl(fd, VIDIOC_G_EXT_CTRLS, &ecs));
    CHECK(ec[0].value == 500 && ec[1].value == 40, "ext ctrls read %d %d", ec[0].value,
          ec[1].value);
    ec[1].id = V4L2_CID_GAMMA;
    CHECK_ERRNO(ioctl(fd, VIDIOC_G_EXT_CTRLS, &ecs), EINVAL);
    CHECK(ecs.error_idx == 1, "error_idx %u", ecs.error_idx);
}

/* What a client may get wrong, refused as the kernel refuses it. */
static void test_refusals(int fd, int other)
{
    struct v4l2_buffer b = {.index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                            .memory = V4L2_MEMORY_MMAP};
    CHECK_ERRNO(stream_type(fd, VIDIOC_STREAMON), EINVAL); /* before REQBUFS */
    CHECK_ERRNO(ioctl(fd, VIDIOC_QBUF, &b), EINVAL);
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYBUF, &b), EINVAL);
    CHECK_ERRNO(dqbuf(fd, &b), EINVAL);
    struct v4l2_requestbuffers rb = {.count = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                     .memory = V4L2_MEMORY_USERPTR};
    CHECK_ERRNO(ioctl(fd, VIDIOC_REQBUFS, &rb), EINVAL);
    rb.memory = V4L2_MEMORY_MMAP;
    rb.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    CHECK_ERRNO(ioctl(fd, VIDIOC_REQBUFS, &rb), EINVAL);
    char byte;
    CHECK_ERRNO((int)read(fd, &byte, 1), EINVAL);
    CHECK_ERRNO(ioctl(fd, _IOWR('V', 250, int), &byte), ENOTTY);

    /* The first handle to allocate owns the stream. */
    CHECK_OK(set_format(fd, V4L2_PIX_FMT_MJPEG, 1280, 720));
    rb = (struct v4l2_requestbuffers){.count = 4, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                      .memory = V4L2_MEMORY_MMAP};
    CHECK_OK(ioctl(fd, VIDIOC_REQBUFS, &rb));
    CHECK(rb.count == 4 && (rb.capabilities & V4L2_BUF_CAP_SUPPORTS_MMAP), "count %u caps %x",
          rb.count, rb.capabilities);
    CHECK_ERRNO(ioctl(other, VIDIOC_REQBUFS, &rb), EBUSY);
    CHECK_ERRNO(set_format(other, V4L2_PIX_FMT_YUYV, 640, 480), EBUSY);
    CHECK_ERRNO(set_format(fd, V4L2_PIX_FMT_YUYV, 640, 480), EBUSY); /* buffers allocated */
    struct v4l2_capability cap;
    CHECK_OK(ioctl(other, VIDIOC_QUERYCAP, &cap));
    b.index = 4;
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYBUF, &b), EINVAL);
    CHECK_ERRNO(ioctl(fd, VIDIOC_QBUF, &b), EINVAL);
    b.index = 0;
    CHECK_ERRNO(ioctl(other, VIDIOC_QBUF, &b), EBUSY);
    CHECK_OK(ioctl(fd, VIDIOC_QUERYBUF, &b));
    CHECK(b.length == 1280 * 720 * 2, "buffer length %u", b.length);
    errno = 0;
    CHECK(mmap(NULL, b.length, PROT_READ, MAP_SHARED, fd, 12345 * 4096) == MAP_FAILED &&
              errno == EINVAL,
          "mmap at a bad offset: errno %d", errno);
    errno = 0;
    CHECK(mmap(NULL, b.length, PROT_READ, MAP_PRIVATE, fd, b.m.offset) == MAP_FAILED &&
              errno == EINVAL,
          "private mmap: errno %d", errno);
    struct v4l2_exportbuffer eb = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .index = 0};
    errno = 0;
    CHECK(ioctl(fd, VIDIOC_EXPBUF, &eb) == -1 && errno != 0, "EXPBUF must fail cleanly");
    rb.count = 0;
    CHECK_OK(ioctl(fd, VIDIOC_REQBUFS, &rb));
    CHECK_OK(set_format(other, V4L2_PIX_FMT_MJPEG, 640, 480)); /* free again */
    rb.count = 0;
    CHECK_OK(ioctl(other, VIDIOC_REQBUFS, &rb));
}

/* 30 MJPEG frames at 1280x720, through dup'd descriptors as v4l2src reads. */
static void test_stream_mjpeg(int fd)
{
    struct mapping maps[4] = {0};
    CHECK_OK(set_format(fd, V4L2_PIX_FMT_MJPEG, 1280, 720));
    CHECK_OK(setup_buffers(fd, 4, maps));
    struct v4l2_buffer b = {.index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                            .memory = V4L2_MEMORY_MMAP};
    CHECK_ERRNO(ioctl(fd, VIDIOC_QBUF, &b), EINVAL); /* already queued */

    int dup1 = dup(fd);
    int dup2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    CHECK(dup1 >= 0 && dup2 >= 100, "dup %d fcntl %d", dup1, dup2);
    struct pollfd p = {.fd = dup1, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLERR), "poll before STREAMON: revents %x",
          p.revents);
    double t0 = now_s();
    CHECK_OK(stream_type(dup2, VIDIOC_STREAMON));
    CHECK(poll(&p, 1, 0) == 0, "a frame ready at once: revents %x", p.revents);
    CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLIN), "no frame within 1 s");
    double first = now_s() - t0;
    CHECK(first > 0.02 && first < 0.5, "first frame after %.3f s", first);

    tjhandle tj = tjInitDecompress();
    uint32_t last_seq = 0;
    double last_ts = 0, first_ts = 0;
    int frames = 0;
    for (int i = 0; i < 30; i++) {
        int use = i % 3 == 0 ? fd : i % 3 == 1 ? dup1 : dup2;
        if (dqbuf(use, &b) < 0) {
            CHECK(0, "DQBUF %d: %s", i, strerror(errno));
            break;
        }
        frames++;
        int w = 0, h = 0, ss, cs;
        CHECK(b.bytesused > 1000 && b.bytesused <= b.length, "bytesused %u", b.bytesused);
        CHECK(tjDecompressHeader3(tj, maps[b.index].addr, b.bytesused, &w, &h, &ss, &cs) == 0 &&
                  w == 1280 && h == 720,
              "frame %d: JPEG header %dx%d", i, w, h);
        CHECK(b.flags & V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC, "flags %x", b.flags);
        double ts = b.timestamp.tv_sec + b.timestamp.tv_usec / 1e6;
        CHECK(fabs(ts - now_s()) < 0.5, "timestamp %.3f is not CLOCK_MONOTONIC now %.3f", ts,
              now_s());
        if (i > 0) {
            CHECK(b.sequence > last_seq, "sequence %u after %u", b.sequence, last_seq);
            CHECK(ts > last_ts, "timestamp went back");
        } else {
            first_ts = ts;
        }
        last_seq = b.sequence;
        last_ts = ts;
        CHECK_OK(ioctl(use, VIDIOC_QBUF, &b));
    }
    double elapsed = now_s() - t0;
    double mean = frames > 1 ? (last_ts - first_ts) / (frames - 1) : 0;
    CHECK(frames == 30, "%d frames", frames);
    CHECK(mean > 0.030 && mean < 0.037, "mean frame interval %.4f s, want 1/30", mean);
    CHECK(elapsed > 0.9 && elapsed < 2.0, "30 frames at 30 fps took %.2f s", elapsed);
    printf("mjpeg 1280x720: %d frames in %.3f s, mean interval %.2f ms, last sequence %u\n",
           frames, elapsed, mean * 1000, last_seq);

    /* select() sees the same readiness. */
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    struct timeval tv = {1, 0};
    CHECK(select(fd + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(fd, &rs), "select");

    /* Non-blocking DQBUF with nothing due. */
    int fl = fcntl(fd, F_GETFL);
    CHECK_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
    while (dqbuf(fd, &b) == 0)
        CHECK_OK(ioctl(fd, VIDIOC_QBUF, &b));
    CHECK(errno == EAGAIN, "non-blocking DQBUF: %s", strerror(errno));
    CHECK_OK(fcntl(fd, F_SETFL, fl));

    CHECK_OK(stream_type(fd, VIDIOC_STREAMOFF));
    CHECK_ERRNO(dqbuf(fd, &b), EINVAL);
    close(dup1);
    close(dup2);
    struct v4l2_capability cap;
    CHECK_OK(ioctl(fd, VIDIOC_QUERYCAP, &cap)); /* the original still works */
    /* REQBUFS(0) with buffers mapped orphans them: still readable. */
    struct v4l2_requestbuffers rb = {.count = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                     .memory = V4L2_MEMORY_MMAP};
    CHECK_OK(ioctl(fd, VIDIOC_REQBUFS, &rb));
    volatile unsigned char *first_byte = maps[0].addr;
    CHECK(first_byte[0] == 0xFF, "orphaned buffer lost its data");
    unmap_all(maps, 4);
    tjDestroy(tj);
}

static void test_stream_yuyv(int fd)
{
    struct mapping maps[2] = {0};
    CHECK_OK(set_format(fd, V4L2_PIX_FMT_YUYV, 640, 480));
    struct v4l2_streamparm p = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    p.parm.capture.timeperframe = (struct v4l2_fract){1, 15};
    CHECK_OK(ioctl(fd, VIDIOC_S_PARM, &p));
    CHECK_OK(setup_buffers(fd, 2, maps));
    double t0 = now_s();
    CHECK_OK(stream_type(fd, VIDIOC_STREAMON));
    CHECK_ERRNO(ioctl(fd, VIDIOC_S_PARM, &p), EBUSY);
    struct v4l2_buffer b;
    for (int i = 0; i < 8; i++) {
        if (dqbuf(fd, &b) < 0) {
            CHECK(0, "DQBUF: %s", strerror(errno));
            break;
        }
        CHECK(b.bytesused == 640 * 480 * 2, "bytesused %u", b.bytesused);
        const unsigned char *px = maps[b.index].addr;
        double sum = 0, sum2 = 0;
        for (size_t k = 0; k < 640 * 480 * 2; k += 2) {
            sum += px[k];
            sum2 += (double)px[k] * px[k];
        }
        double n = 640 * 480, mean = sum / n, var = sum2 / n - mean * mean;
        CHECK(mean > 30 && mean < 220 && var > 100, "luma mean %.1f variance %.1f", mean, var);
        CHECK_OK(ioctl(fd, VIDIOC_QBUF, &b));
    }
    double elapsed = now_s() - t0;
    CHECK(elapsed > 0.45 && elapsed < 1.2, "8 frames at 15 fps took %.2f s", elapsed);
    CHECK_OK(stream_type(fd, VIDIOC_STREAMOFF));
    unmap_all(maps, 2);
    struct v4l2_requestbuffers rb = {.count = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                     .memory = V4L2_MEMORY_MMAP};
    CHECK_OK(ioctl(fd, VIDIOC_REQBUFS, &rb));
}

static void test_second_device(void)
{
    int fd = open("/dev/video3", O_RDWR);
    CHECK(fd >= 0, "open /dev/video3: %s", strerror(errno));
    if (fd < 0)
        return;
    struct v4l2_fmtdesc f = {.index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    CHECK_OK(ioctl(fd, VIDIOC_ENUM_FMT, &f));
    CHECK(f.pixelformat == V4L2_PIX_FMT_YUYV, "video3 format %08x", f.pixelformat);
    f.index = 1;
    CHECK_ERRNO(ioctl(fd, VIDIOC_ENUM_FMT, &f), EINVAL);
    struct v4l2_frmsizeenum s = {.index = 0, .pixel_format = V4L2_PIX_FMT_YUYV};
    CHECK_OK(ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &s));
    CHECK(s.discrete.width == 320 && s.discrete.height == 240, "video3 size %ux%u",
          s.discrete.width, s.discrete.height);
    close(fd);
}

static int mode_basic(void)
{
    char photos[4200];
    snprintf(photos, sizeof photos, "%s/photos", cache_dir());
    setenv("KESTREL_FAKECAM_DEVICES", "/dev/video7,3", 1);
    setenv("KESTREL_FAKECAM_SOURCE", photos, 1);
    setenv("KESTREL_FAKECAM_FPS", "30,15", 1);
    setenv("KESTREL_FAKECAM_VIDEO3_FORMATS", "YUYV", 1);
    setenv("KESTREL_FAKECAM_VIDEO3_SIZES", "320x240", 1);

    int fds_before = count_fds();
    test_stat_and_listing();
    int fd = open("/dev/video7", O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0, "open /dev/video7: %s", strerror(errno));
    if (fd < 0)
        return 1;
    int other = open("/dev/video7", O_RDWR);
    CHECK(other >= 0, "second open: %s", strerror(errno));
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC lost");
    test_enumeration(fd);
    test_controls(fd);
    test_refusals(fd, other);
    close(other);
    test_stream_mjpeg(fd);
    test_stream_yuyv(fd);
    close(fd);
    test_second_device();
    int fds_after = count_fds();
    CHECK(fds_after == fds_before, "descriptors: %d before, %d after", fds_before, fds_after);
    return g_failures != 0;
}

/* ---- libv4l2 ------------------------------------------------------------ */

/* libv4l2 reaches the device through syscall(2) and converts MJPEG to RGB
 * itself: both must work for GST_V4L2_USE_LIBV4L2=1 and for the kiosk. */
static int mode_libv4l2(void)
{
    char photos[4200];
    snprintf(photos, sizeof photos, "%s/photos", cache_dir());
    setenv("KESTREL_FAKECAM_DEVICES", "/dev/video5", 1);
    setenv("KESTREL_FAKECAM_SOURCE", photos, 1);
    setenv("KESTREL_FAKECAM_FORMATS", "MJPG", 1);
    int fds_before = count_fds();
    int fd = v4l2_open("/dev/video5", O_RDWR);
    CHECK(fd >= 0, "v4l2_open: %s", strerror(errno));
    if (fd < 0)
        return 1;
    /* libv4lconvert adds RGB/BGR/YUV formats it decodes the MJPEG into. */
    bool has_rgb = false;
    for (uint32_t i = 0; i < 16; i++) {
        struct v4l2_fmtdesc f = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
        if (v4l2_ioctl(fd, VIDIOC_ENUM_FMT, &f) < 0)
            break;
        has_rgb |= f.pixelformat == V4L2_PIX_FMT_RGB24;
    }
    CHECK(has_rgb, "libv4l2 offers no emulated RGB24");
    struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    f.fmt.pix.pixelformat = V4L2_PIX_FMT_RGB24;
    f.fmt.pix.width = 640;
    f.fmt.pix.height = 480;
    CHECK_OK(v4l2_ioctl(fd, VIDIOC_S_FMT, &f));
    CHECK(f.fmt.pix.pixelformat == V4L2_PIX_FMT_RGB24 && f.fmt.pix.width == 640,
          "S_FMT RGB3 -> %08x %ux%u", f.fmt.pix.pixelformat, f.fmt.pix.width, f.fmt.pix.height);
    size_t size = 640 * 480 * 3;
    unsigned char *rgb = malloc(size);
    for (int i = 0; i < 3 && rgb; i++) {
        ssize_t n = v4l2_read(fd, rgb, size);
        CHECK(n == (ssize_t)size, "v4l2_read: %zd (%s)", n, strerror(errno));
        if (n != (ssize_t)size)
            break;
        double sum = 0;
        for (size_t k = 0; k < size; k++)
            sum += rgb[k];
        CHECK(sum / size > 20 && sum / size < 235, "converted frame mean %.1f", sum / size);
    }
    free(rgb);
    v4l2_close(fd);

    /* Native MJPEG through libv4l2's mmap and DQBUF. */
    fd = v4l2_open("/dev/video5", O_RDWR);
    CHECK(fd >= 0, "v4l2_open again: %s", strerror(errno));
    if (fd >= 0) {
        f.fmt.pix.pixelformat = V4L2_PIX_FMT_MJPEG;
        CHECK_OK(v4l2_ioctl(fd, VIDIOC_S_FMT, &f));
        struct v4l2_requestbuffers rb = {.count = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                         .memory = V4L2_MEMORY_MMAP};
        CHECK_OK(v4l2_ioctl(fd, VIDIOC_REQBUFS, &rb));
        void *addr[2] = {0};
        size_t len[2] = {0};
        for (uint32_t i = 0; i < rb.count && i < 2; i++) {
            struct v4l2_buffer b = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                    .memory = V4L2_MEMORY_MMAP};
            CHECK_OK(v4l2_ioctl(fd, VIDIOC_QUERYBUF, &b));
            len[i] = b.length;
            addr[i] = v4l2_mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, b.m.offset);
            CHECK(addr[i] != MAP_FAILED, "v4l2_mmap: %s", strerror(errno));
            CHECK_OK(v4l2_ioctl(fd, VIDIOC_QBUF, &b));
        }
        int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        CHECK_OK(v4l2_ioctl(fd, VIDIOC_STREAMON, &type));
        for (int i = 0; i < 5; i++) {
            struct v4l2_buffer b = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                    .memory = V4L2_MEMORY_MMAP};
            if (v4l2_ioctl(fd, VIDIOC_DQBUF, &b) < 0) {
                CHECK(0, "DQBUF via libv4l2: %s", strerror(errno));
                break;
            }
            const unsigned char *p = addr[b.index];
            CHECK(p != MAP_FAILED && p[0] == 0xFF && p[1] == 0xD8, "no JPEG SOI in the buffer");
            CHECK_OK(v4l2_ioctl(fd, VIDIOC_QBUF, &b));
        }
        CHECK_OK(v4l2_ioctl(fd, VIDIOC_STREAMOFF, &type));
        for (int i = 0; i < 2; i++)
            if (addr[i] && addr[i] != MAP_FAILED)
                v4l2_munmap(addr[i], len[i]);
        v4l2_close(fd);
    }
    int fds_after = count_fds();
    CHECK(fds_after == fds_before, "descriptors: %d before, %d after", fds_before, fds_after);
    return g_failures != 0;
}

/* ---- unplug ------------------------------------------------------------- */

/* Opens, streams until the camera goes away; returns frames received
 * (-1 when the set-up itself failed). The caller closes *fd_out. */
static int stream_until_gone(const char *node, int max_frames, int *fd_out)
{
    int fd = open(node, O_RDWR);
    if (fd < 0)
        return -1;
    *fd_out = fd;
    struct mapping maps[4] = {0};
    int frames = -1;
    int extra = dup(fd); /* as v4l2src's pool does */
    if (set_format(fd, V4L2_PIX_FMT_MJPEG, 640, 480) == 0 && setup_buffers(fd, 4, maps) == 0 &&
        stream_type(extra, VIDIOC_STREAMON) == 0) {
        frames = 0;
        struct v4l2_buffer b;
        while (frames < max_frames) {
            struct pollfd p = {.fd = extra, .events = POLLIN};
            int pr = poll(&p, 1, 2000);
            if (pr != 1) {
                CHECK(0, "poll returned %d revents %x", pr, p.revents);
                break;
            }
            if (p.revents & POLLERR) {
                CHECK(p.revents & POLLHUP, "unplugged poll revents %x", p.revents);
                break;
            }
            if (dqbuf(extra, &b) < 0)
                break;
            frames++;
            if (ioctl(fd, VIDIOC_QBUF, &b) < 0)
                break;
        }
        errno = 0;
        CHECK(dqbuf(fd, &b) < 0 && errno == ENODEV, "DQBUF after unplug: errno %d", errno);
    }
    unmap_all(maps, 4);
    close(extra);
    return frames;
}

static double wait_for_node(const char *node, double limit)
{
    double t0 = now_s();
    struct stat st;
    while (stat(node, &st) != 0) {
        if (now_s() - t0 > limit)
            return -1;
        sleep_s(0.005);
    }
    return now_s() - t0;
}

static int mode_unplug(void)
{
    char photos[4200];
    snprintf(photos, sizeof photos, "%s/photos", cache_dir());
    setenv("KESTREL_FAKECAM_DEVICES", "/dev/video7", 1);
    setenv("KESTREL_FAKECAM_SOURCE", photos, 1);
    setenv("KESTREL_FAKECAM_UNPLUG_AFTER", "5", 1);
    setenv("KESTREL_FAKECAM_REPLUG_AFTER", "0.5", 1);
    int fds_before = count_fds();

    int fd = -1;
    int frames = stream_until_gone("/dev/video7", 100, &fd);
    CHECK(frames == 5, "%d frames before the unplug, want 5", frames);
    double gone_at = now_s();
    /* Everything on the old descriptor fails; the node is gone. */
    struct v4l2_capability cap;
    CHECK_ERRNO(ioctl(fd, VIDIOC_QUERYCAP, &cap), ENODEV);
    struct v4l2_buffer b = {.index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                            .memory = V4L2_MEMORY_MMAP};
    CHECK_ERRNO(ioctl(fd, VIDIOC_QBUF, &b), ENODEV);
    errno = 0;
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED && errno == ENODEV,
          "mmap after unplug: errno %d", errno);
    char byte;
    CHECK_ERRNO((int)read(fd, &byte, 1), ENODEV);
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLPRI};
    CHECK(poll(&p, 1, 100) == 1 && (p.revents & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP),
          "poll after unplug: revents %x", p.revents);
    struct stat st;
    CHECK_ERRNO(stat("/dev/video7", &st), ENOENT);
    CHECK_ERRNO(access("/dev/video7", F_OK), ENOENT);
    CHECK_ERRNO(open("/dev/video7", O_RDWR), ENOENT);
    CHECK(!dev_listed("video7"), "an unplugged node is still listed");
    CHECK_OK(close(fd));

    double back = wait_for_node("/dev/video7", 3.0);
    double since = now_s() - gone_at;
    CHECK(back >= 0 && since > 0.4 && since < 2.0, "node back after %.3f s (REPLUG_AFTER=0.5)",
          since);
    printf("unplug after 5 frames; node back after %.3f s\n", since);
    CHECK(dev_listed("video7"), "replugged node not listed");
    fd = open("/dev/video7", O_RDWR);
    CHECK(fd >= 0, "reopen after replug: %s", strerror(errno));
    if (fd >= 0) {
        CHECK_OK(ioctl(fd, VIDIOC_QUERYCAP, &cap));
        struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
        CHECK_OK(ioctl(fd, VIDIOC_G_FMT, &f));
        close(fd);
    }
    /* It unplugs again after another 5 frames. */
    frames = stream_until_gone("/dev/video7", 100, &fd);
    CHECK(frames == 5, "%d frames in the second plug cycle", frames);
    if (fd >= 0)
        close(fd);
    CHECK(wait_for_node("/dev/video7", 3.0) >= 0, "not back the second time");
    int fds_after = count_fds();
    CHECK(fds_after == fds_before, "descriptors: %d before, %d after", fds_before, fds_after);
    return g_failures != 0;
}

static int mode_cycles(void)
{
    char photos[4200];
    snprintf(photos, sizeof photos, "%s/photos", cache_dir());
    setenv("KESTREL_FAKECAM_DEVICES", "/dev/video7", 1);
    setenv("KESTREL_FAKECAM_SOURCE", photos, 1);
    setenv("KESTREL_FAKECAM_UNPLUG_AFTER", "3", 1);
    setenv("KESTREL_FAKECAM_REPLUG_AFTER", "0.02", 1);
    setenv("KESTREL_FAKECAM_FPS", "60,30", 1);
    const int warmup = 5, cycles = 100;
    int fds_base = -1;
    long rss_base = 0;
    double worst_back = 0;
    for (int c = 0; c < warmup + cycles; c++) {
        int fd = -1;
        int frames = stream_until_gone("/dev/video7", 100, &fd);
        if (fd >= 0)
            close(fd);
        if (frames != 3) {
            CHECK(0, "cycle %d: %d frames", c, frames);
            break;
        }
        double back = wait_for_node("/dev/video7", 2.0);
        if (back < 0) {
            CHECK(0, "cycle %d: node did not come back", c);
            break;
        }
        if (back > worst_back)
            worst_back = back;
        int fds = count_fds();
        if (c == warmup - 1) {
            fds_base = fds;
            rss_base = rss_kb();
        } else if (c >= warmup && fds != fds_base) {
            CHECK(0, "cycle %d: %d descriptors open, %d after warm-up", c, fds, fds_base);
            break;
        }
    }
    long rss_end = rss_kb();
    printf("%d unplug/replug cycles: descriptors %d -> %d, RSS %ld -> %ld KiB, slowest replug "
           "%.3f s\n",
           cycles, fds_base, count_fds(), rss_base, rss_end, worst_back);
    CHECK(rss_end - rss_base < 2048, "RSS grew by %ld KiB over %d cycles", rss_end - rss_base,
          cycles);
    return g_failures != 0;
}

static int mode_unplugfile(void)
{
    char photos[4200], flag[4200];
    snprintf(photos, sizeof photos, "%s/photos", cache_dir());
    const char *tmp_base = getenv("TMPDIR");
    snprintf(flag, sizeof flag, "%s/kestrel-fakecam-unplug.%d",
             tmp_base && *tmp_base ? tmp_base : "/tmp", (int)getpid());
    unlink(flag);
    setenv("KESTREL_FAKECAM_DEVICES", "/dev/video2", 1);
    setenv("KESTREL_FAKECAM_SOURCE", photos, 1);
    setenv("KESTREL_FAKECAM_UNPLUG_FILE", flag, 1);
    int fd = open("/dev/video2", O_RDWR);
    CHECK(fd >= 0, "open: %s", strerror(errno));
    if (fd < 0)
        return 1;
    struct mapping maps[2] = {0};
    CHECK_OK(setup_buffers(fd, 2, maps));
    CHECK_OK(stream_type(fd, VIDIOC_STREAMON));
    struct v4l2_buffer b;
    CHECK_OK(dqbuf(fd, &b));
    CHECK_OK(ioctl(fd, VIDIOC_QBUF, &b));
    FILE *f = fopen(flag, "w");
    CHECK(f != NULL, "cannot create %s", flag);
    if (f)
        fclose(f);
    double t0 = now_s();
    errno = 0;
    CHECK(dqbuf(fd, &b) < 0 && errno == ENODEV, "DQBUF while unplugged: errno %d", errno);
    CHECK(now_s() - t0 < 0.2, "unplug noticed after %.3f s", now_s() - t0);
    struct stat st;
    CHECK_ERRNO(stat("/dev/video2", &st), ENOENT);
    unmap_all(maps, 2);
    close(fd);
    unlink(flag);
    CHECK_OK(stat("/dev/video2", &st));
    fd = open("/dev/video2", O_RDWR);
    CHECK(fd >= 0, "reopen: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return g_failures != 0;
}

int main(int argc, char **argv)
{
    if (!getenv("LD_PRELOAD") || !strstr(getenv("LD_PRELOAD"), "fakecam")) {
        fprintf(stderr, "run with LD_PRELOAD=.../libkestrel-fakecam.so\n");
        return 1;
    }
    const char *mode = argc > 1 ? argv[1] : "basic";
    int rc;
    if (!strcmp(mode, "basic"))
        rc = mode_basic();
    else if (!strcmp(mode, "libv4l2"))
        rc = mode_libv4l2();
    else if (!strcmp(mode, "unplug"))
        rc = mode_unplug();
    else if (!strcmp(mode, "cycles"))
        rc = mode_cycles();
    else if (!strcmp(mode, "unplugfile"))
        rc = mode_unplugfile();
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("%s: %s (%d failed checks)\n", mode, rc ? "FAIL" : "ok", g_failures);
    return rc;
}
