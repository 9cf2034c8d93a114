/* bench/recovery — how long a viewer goes without picture when its parent dies.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   recovery ws://127.0.0.1:PORT [TRIALS]
 *
 * A live source (640x360@30, VP8 made by peertreesink, keyframes on request
 * only) sends to one child (k1=1, k=1: a chain). Each trial starts a relay in
 * a process of its own (this program again, with --relay), under the source,
 * and a viewer (peertreesrc ! decoder ! fakesink, in this process) under the
 * relay; once the viewer has decoded frames for a second, the relay gets
 * SIGKILL. The server re-parents the viewer under the source; timed from the
 * kill to the viewer's upstream-changed message (signalling) and to its first
 * decoded frame after the kill (new link: ICE, DTLS, keyframe request up to
 * the encoder). Frames lost: the frame periods in the gap between the last
 * frame before the kill and the first one after, minus one.
 */
#include <signal.h>
#include <sys/prctl.h>

#include <gio/gio.h>

#include "bench-util.h"

#define TREE "bench-recovery"
#define FPS 30

/* ---- the relay process ---- */

static gboolean
relay_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  (void) bus;
  (void) data;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    printf ("error: %s\n", err->message);
    fflush (stdout);
    exit (1);
  }
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT &&
      gst_structure_has_name (gst_message_get_structure (msg), "peertree-tree-joined")) {
    printf ("joined %s\n", gst_structure_get_string (gst_message_get_structure (msg),
            "parent-id"));
    fflush (stdout);
  }
  return G_SOURCE_CONTINUE;
}

static int
relay_main (const gchar *url, const gchar *client_id)
{
  g_autofree gchar *desc = g_strdup_printf ("peertreesrc server=%s tree-id=" TREE
      " client-id=%s local-addresses=" BENCH_LOCAL " ! fakesink", url, client_id);
  g_autoptr (GError) error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);
  GMainLoop *loop = g_main_loop_new (NULL, FALSE);
  GstBus *bus;

  if (pipeline == NULL)
    bench_die ("relay: %s", error->message);
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, relay_bus, NULL);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_main_loop_run (loop);       /* until SIGKILL */
  return 0;
}

/* ---- the viewer ---- */

typedef struct {
  GMutex lock;
  GArray *frames;               /* gint64 arrival times (monotonic µs) */
  gint64 upstream_changed_us;
  gchar *parent;
} Viewer;

static GstPadProbeReturn
on_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Viewer *v = data;
  gint64 now = g_get_monotonic_time ();

  (void) pad;
  (void) info;
  g_mutex_lock (&v->lock);
  g_array_append_val (v->frames, now);
  g_mutex_unlock (&v->lock);
  return GST_PAD_PROBE_OK;
}

static GstBusSyncReply
on_viewer_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  Viewer *v = data;
  const GstStructure *s = gst_message_get_structure (msg);

  (void) bus;
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT || s == NULL)
    return GST_BUS_PASS;
  g_mutex_lock (&v->lock);
  if (gst_structure_has_name (s, "peertree-tree-joined")) {
    g_free (v->parent);
    v->parent = g_strdup (gst_structure_get_string (s, "parent-id"));
  } else if (gst_structure_has_name (s, "peertree-upstream-changed") &&
      v->upstream_changed_us == 0) {
    v->upstream_changed_us = g_get_monotonic_time ();
  }
  g_mutex_unlock (&v->lock);
  return GST_BUS_PASS;
}

static void
on_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  bench_decode_pad (src, pad, on_frame, data);
}

static guint
n_frames (Viewer *v)
{
  guint n;

  g_mutex_lock (&v->lock);
  n = v->frames->len;
  g_mutex_unlock (&v->lock);
  return n;
}

/* in the child, before exec: never outlive the benchmark */
static void
child_setup (gpointer data)
{
  (void) data;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* ---- a trial ---- */

typedef struct {
  gdouble signalling_ms;        /* kill → upstream-changed */
  gdouble recovery_ms;          /* kill → first frame */
  gdouble lost;                 /* frames lost */
} Trial;

static gboolean
run_trial (const gchar *self_exe, const gchar *url, guint index, Trial *t)
{
  g_autofree gchar *relay_id = g_strdup_printf ("relay-%u", index);
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GSubprocess) relay = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autofree gchar *line = NULL;
  g_autoptr (GError) error = NULL;
  Viewer v = { 0, };
  GstElement *pipeline, *src;
  g_autoptr (GstBus) bus = NULL;
  gint64 deadline, kill_us, last_before = 0, first_after = 0;
  gboolean ok = FALSE;

  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  relay = g_subprocess_launcher_spawn (launcher, &error, self_exe, "--relay", url, relay_id,
      NULL);
  if (relay == NULL)
    bench_die ("relay: %s", error->message);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (relay));
  /* blocks until the relay is placed (it prints "joined PARENT") */
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, NULL);
  if (line == NULL || !g_str_has_prefix (line, "joined ")) {
    fprintf (stderr, "trial %u: the relay did not join (%s)\n", index, line ? line : "EOF");
    g_subprocess_force_exit (relay);
    return FALSE;
  }

  g_mutex_init (&v.lock);
  v.frames = g_array_new (FALSE, FALSE, sizeof (gint64));
  pipeline = gst_pipeline_new (NULL);
  src = gst_element_factory_make ("peertreesrc", NULL);
  g_object_set (src, "server", url, "tree-id", TREE, "local-addresses", BENCH_LOCAL, NULL);
  gst_bin_add (GST_BIN (pipeline), src);
  g_signal_connect (src, "pad-added", G_CALLBACK (on_pad_added), &v);
  bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  gst_bus_set_sync_handler (bus, on_viewer_message, &v, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  /* a second of pictures through the relay */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (n_frames (&v) < FPS && g_get_monotonic_time () < deadline)
    bench_run_for (10);
  bench_check_bus (pipeline, "viewer");
  g_mutex_lock (&v.lock);
  if (g_strcmp0 (v.parent, relay_id) != 0) {
    fprintf (stderr, "trial %u: the viewer is under %s, not %s\n", index, v.parent, relay_id);
    g_mutex_unlock (&v.lock);
    goto out;
  }
  g_mutex_unlock (&v.lock);
  if (n_frames (&v) < FPS) {
    fprintf (stderr, "trial %u: no steady picture through the relay\n", index);
    goto out;
  }

  kill_us = g_get_monotonic_time ();
  g_subprocess_send_signal (relay, SIGKILL);
  deadline = kill_us + 10 * G_USEC_PER_SEC;
  while (first_after == 0 && g_get_monotonic_time () < deadline) {
    bench_run_for (2);
    g_mutex_lock (&v.lock);
    for (guint i = 0; i < v.frames->len; i++) {
      gint64 f = g_array_index (v.frames, gint64, i);

      if (f <= kill_us)
        last_before = f;
      else if (first_after == 0)
        first_after = f;
    }
    g_mutex_unlock (&v.lock);
  }
  bench_check_bus (pipeline, "viewer");
  g_subprocess_wait (relay, NULL, NULL);
  if (first_after == 0) {
    fprintf (stderr, "trial %u: no picture within 10 s after the kill\n", index);
    goto out;
  }
  t->recovery_ms = (first_after - kill_us) / 1000.0;
  t->signalling_ms = v.upstream_changed_us ? (v.upstream_changed_us - kill_us) / 1000.0 : NAN;
  t->lost = MAX (0, (gint) ((first_after - last_before) / (1e6 / FPS) + 0.5) - 1);
  fprintf (stderr, "trial %2u: new parent after %6.1f ms, picture after %6.1f ms, "
      "%3.0f frames lost\n", index, t->signalling_ms, t->recovery_ms, t->lost);
  ok = TRUE;

out:
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (pipeline);
  g_array_unref (v.frames);
  g_free (v.parent);
  g_mutex_clear (&v.lock);
  g_subprocess_force_exit (relay);
  g_subprocess_wait (relay, NULL, NULL);
  /* let the source drop the viewer before the next relay comes */
  bench_run_for (300);
  return ok;
}

int
main (int argc, char **argv)
{
  g_autofree gchar *self_exe = NULL;
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) signalling = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr (GArray) recovery = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr (GArray) lost = g_array_new (FALSE, FALSE, sizeof (gdouble));
  const gchar *url;
  guint trials, failures = 0;
  GstElement *source;

  if (argc == 4 && g_str_equal (argv[1], "--relay")) {
    gst_init (&argc, &argv);
    return relay_main (argv[2], argv[3]);
  }
  bench_init (&argc, &argv);
  url = argv[1];
  trials = argc > 2 ? (guint) atoi (argv[2]) : 12;
  trials = CLAMP (trials, 1, 1000);
  self_exe = g_file_read_link ("/proc/self/exe", &error);
  if (self_exe == NULL)
    bench_die ("/proc/self/exe: %s", error->message);

  desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=640,height=360,framerate=%d/1 ! peertreesink server=%s "
      "tree-id=" TREE " k1=1 k=1 local-addresses=" BENCH_LOCAL, FPS, url);
  source = gst_parse_launch (desc, &error);
  if (source == NULL)
    bench_die ("source: %s", error->message);
  gst_element_set_state (source, GST_STATE_PLAYING);
  bench_run_for (1000);
  bench_check_bus (source, "source");

  for (guint i = 0; i < trials; i++) {
    Trial t = { 0, };

    if (!run_trial (self_exe, url, i, &t)) {
      failures++;
      continue;
    }
    g_array_append_val (recovery, t.recovery_ms);
    g_array_append_val (lost, t.lost);
    if (!isnan (t.signalling_ms))
      g_array_append_val (signalling, t.signalling_ms);
    bench_check_bus (source, "source");
  }
  gst_element_set_state (source, GST_STATE_NULL);
  gst_object_unref (source);

  printf ("## Recovery after a relay dies\n\n");
  printf ("A chain (k1=1, k=1) of a live 640x360@%d VP8 source, a relay in a process of its "
      "own and a decoding viewer under it; once the viewer has decoded a second of frames, the "
      "relay gets SIGKILL (no leave: the server sees its socket close) and the server moves the "
      "viewer under the source. The viewer keeps its pipeline and pads; its depayloader "
      "asks for the keyframe it needs through the new parent. %u trials; *frames lost* counts the frame "
      "periods between the last frame before the kill and the first one after, minus one.\n\n",
      FPS, trials);
  printf ("| measure | trials | p50 | p95 | max |\n");
  printf ("|---|---:|---:|---:|---:|\n");
#define ROW(name, a, fmt) printf ("| %s | %u | " fmt " | " fmt " | " fmt " |\n", name, (a)->len, \
    bench_percentile (a, 50), bench_percentile (a, 95), bench_percentile (a, 100))
  ROW ("kill → new parent assigned (ms)", signalling, "%.1f");
  ROW ("kill → first decoded frame (ms)", recovery, "%.1f");
  ROW ("frames lost per recovery", lost, "%.0f");
#undef ROW
  printf ("\nA relay that vanishes without closing its socket is found by the server's "
      "keepalive instead (keepalive-interval + dead-timeout, a few seconds by default), "
      "which then dominates the recovery time.\n");
  if (failures)
    printf ("\n%u of %u trials failed (see the log).\n", failures, trials);
  printf ("\n");
  return failures ? 1 : 0;
}
