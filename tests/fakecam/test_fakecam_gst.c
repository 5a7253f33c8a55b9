/* Runs a GStreamer pipeline ending in `appsink name=sink` on the fake camera
 * (the shim is in LD_PRELOAD) and checks what comes out:
 *
 *   test_fakecam_gst [--env K=V]... --pipeline DESC [--frames N] [--width W]
 *       [--height H] [--format FMT] [--fps F] [--expect-error] [--faces]
 *       [--timeout S]
 *
 * --frames N      exactly N buffers, then EOS (with --expect-error: at most N)
 * --width/height  the sink caps' size; --format its format (I420, YUY2, ...)
 *                 or "jpeg" for image/jpeg
 * --fps F         buffer timestamps advance by 1/F on average (±15%)
 * --expect-error  the pipeline must post an ERROR (an unplugged camera)
 *                 within the timeout and then reach NULL without hanging
 * --faces         kestreldetect's "kestrel-inference" messages must report
 *                 objects on at least half of the frames
 * --env K=V       set before GStreamer starts (the shim reads its settings
 *                 at the first /dev access)
 * A watchdog alarm ends the process if anything hangs past the timeout.
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      g_failures++;                                                            \
      fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
      fprintf (stderr, __VA_ARGS__);                                           \
      fputc ('\n', stderr);                                                    \
    }                                                                          \
  } while (0)

static void
on_alarm (int sig)
{
  static const char msg[] = "FAIL: watchdog: the pipeline hung\n";
  (void) sig;
  if (write (2, msg, sizeof msg - 1) < 0) {
    /* nothing more to do */
  }
  _exit (3);
}

int
main (int argc, char **argv)
{
  const char *desc = NULL, *format = NULL;
  int frames_expected = -1, width = 0, height = 0, timeout = 60;
  double fps = 0;
  gboolean expect_error = FALSE, faces = FALSE;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp (a, "--env") && v) {
      char *kv = g_strdup (v), *eq = strchr (kv, '=');
      if (eq) {
        *eq = 0;
        g_setenv (kv, eq + 1, TRUE);
      }
      g_free (kv);
      i++;
    } else if (!strcmp (a, "--pipeline") && v) {
      desc = v;
      i++;
    } else if (!strcmp (a, "--frames") && v) {
      frames_expected = atoi (v);
      i++;
    } else if (!strcmp (a, "--width") && v) {
      width = atoi (v);
      i++;
    } else if (!strcmp (a, "--height") && v) {
      height = atoi (v);
      i++;
    } else if (!strcmp (a, "--format") && v) {
      format = v;
      i++;
    } else if (!strcmp (a, "--fps") && v) {
      fps = g_ascii_strtod (v, NULL);
      i++;
    } else if (!strcmp (a, "--timeout") && v) {
      timeout = atoi (v);
      i++;
    } else if (!strcmp (a, "--expect-error")) {
      expect_error = TRUE;
    } else if (!strcmp (a, "--faces")) {
      faces = TRUE;
    } else {
      fprintf (stderr, "unknown argument %s\n", a);
      return 2;
    }
  }
  if (!desc) {
    fprintf (stderr, "--pipeline is required\n");
    return 2;
  }
  if (!g_getenv ("LD_PRELOAD") || !strstr (g_getenv ("LD_PRELOAD"), "fakecam")) {
    fprintf (stderr, "run with LD_PRELOAD=.../libkestrel-fakecam.so\n");
    return 1;
  }
  signal (SIGALRM, on_alarm);
  alarm ((unsigned) timeout + 15);      /* the checks below give up first */

  gst_init (NULL, NULL);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);
  if (!pipeline || err) {
    fprintf (stderr, "FAIL: cannot build '%s': %s\n", desc,
        err ? err->message : "?");
    return 1;
  }
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  if (!sink) {
    fprintf (stderr, "FAIL: the pipeline needs an appsink name=sink\n");
    return 1;
  }
  g_object_set (sink, "sync", FALSE, "max-buffers", 4, "drop", FALSE, NULL);
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 t0 = g_get_monotonic_time ();
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  int frames = 0, frames_with_faces = 0, inference_messages = 0;
  gboolean eos = FALSE, error = FALSE;
  GstClockTime first_pts = GST_CLOCK_TIME_NONE, last_pts = GST_CLOCK_TIME_NONE;
  gint64 error_at = 0;
  while (!eos && !error) {
    if (g_get_monotonic_time () - t0 > (gint64) timeout * G_USEC_PER_SEC) {
      CHECK (0, "no EOS or error after %d s (%d frames)", timeout, frames);
      break;
    }
    GstSample *sample =
        gst_app_sink_try_pull_sample (GST_APP_SINK (sink), GST_MSECOND * 50);
    if (sample) {
      GstBuffer *buf = gst_sample_get_buffer (sample);
      GstCaps *caps = gst_sample_get_caps (sample);
      GstStructure *s = gst_caps_get_structure (caps, 0);
      int w = 0, h = 0;
      gst_structure_get_int (s, "width", &w);
      gst_structure_get_int (s, "height", &h);
      if (frames == 0) {
        gchar *str = gst_caps_to_string (caps);
        printf ("caps: %s\n", str);
        g_free (str);
      }
      CHECK ((!width || w == width) && (!height || h == height),
          "frame %d is %dx%d", frames, w, h);
      if (format && !strcmp (format, "jpeg")) {
        CHECK (gst_structure_has_name (s, "image/jpeg"), "caps %s",
            gst_structure_get_name (s));
      } else if (format) {
        const char *f = gst_structure_get_string (s, "format");
        CHECK (f && !strcmp (f, format), "format %s, want %s", f ? f : "?",
            format);
      }
      CHECK (gst_buffer_get_size (buf) > 0, "empty buffer");
      GstClockTime pts = GST_BUFFER_PTS (buf);
      if (GST_CLOCK_TIME_IS_VALID (pts)) {
        if (!GST_CLOCK_TIME_IS_VALID (first_pts))
          first_pts = pts;
        else
          CHECK (pts > last_pts, "PTS went back at frame %d", frames);
        last_pts = pts;
      }
      frames++;
      gst_sample_unref (sample);
    } else if (gst_app_sink_is_eos (GST_APP_SINK (sink))) {
      eos = TRUE;
    }
    GstMessage *msg;
    while ((msg = gst_bus_pop (bus)) != NULL) {
      switch (GST_MESSAGE_TYPE (msg)) {
        case GST_MESSAGE_ERROR:{
          GError *e = NULL;
          gchar *dbg = NULL;
          gst_message_parse_error (msg, &e, &dbg);
          printf ("error from %s: %s (%s)\n", GST_OBJECT_NAME (msg->src),
              e->message, dbg ? dbg : "");
          g_clear_error (&e);
          g_free (dbg);
          error = TRUE;
          error_at = g_get_monotonic_time ();
          break;
        }
        case GST_MESSAGE_EOS:
          eos = TRUE;
          break;
        case GST_MESSAGE_ELEMENT:{
          const GstStructure *s = gst_message_get_structure (msg);
          if (s && gst_structure_has_name (s, "kestrel-inference")) {
            const GValue *objects = gst_structure_get_value (s, "objects");
            inference_messages++;
            if (objects && GST_VALUE_HOLDS_ARRAY (objects)
                && gst_value_array_get_size (objects) > 0)
              frames_with_faces++;
          }
          break;
        }
        default:
          break;
      }
      gst_message_unref (msg);
    }
  }
  /* Drain what the sink still holds (an EOS found before the last pulls). */
  GstSample *rest;
  while (!error
      && (rest = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 0))) {
    frames++;
    gst_sample_unref (rest);
  }

  gint64 stop_start = g_get_monotonic_time ();
  gst_element_set_state (pipeline, GST_STATE_NULL);
  double stop_s = (g_get_monotonic_time () - stop_start) / 1e6;
  double elapsed = (stop_start - t0) / 1e6;
  printf ("%d frames in %.2f s, %s, stopped in %.3f s\n", frames, elapsed,
      error ? "error" : eos ? "EOS" : "neither EOS nor error", stop_s);
  CHECK (stop_s < 5, "going to NULL took %.1f s", stop_s);

  if (expect_error) {
    CHECK (error, "the pipeline did not fail");
    CHECK (frames_expected < 0 || frames <= frames_expected,
        "%d frames, at most %d", frames, frames_expected);
    CHECK (frames > 0, "no frame before the error");
    if (error)
      printf ("error %.2f s after start\n", (error_at - t0) / 1e6);
  } else {
    CHECK (!error, "the pipeline failed");
    CHECK (eos, "no EOS");
    CHECK (frames_expected < 0 || frames == frames_expected,
        "%d frames, want %d", frames, frames_expected);
  }
  if (fps > 0 && frames > 2 && GST_CLOCK_TIME_IS_VALID (first_pts)) {
    double interval = (double) (last_pts - first_pts) / GST_SECOND / (frames - 1);
    printf ("mean PTS interval %.2f ms\n", interval * 1000);
    CHECK (interval > 0.85 / fps && interval < 1.15 / fps,
        "mean PTS interval %.4f s, want %.4f", interval, 1 / fps);
  }
  if (faces) {
    printf ("%d inference messages, %d with objects\n", inference_messages,
        frames_with_faces);
    CHECK (inference_messages >= frames / 2,
        "only %d inference messages for %d frames", inference_messages, frames);
    CHECK (frames_with_faces * 2 >= inference_messages && frames_with_faces > 0,
        "faces found on %d of %d frames", frames_with_faces,
        inference_messages);
  }

  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  printf ("%s\n", g_failures ? "FAIL" : "ok");
  return g_failures != 0;
}
