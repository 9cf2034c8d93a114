/* bench/relay-cost — CPU time of a relay that forwards, against one that
 * decodes and re-encodes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   relay-cost ws://127.0.0.1:PORT [SECONDS]
 *
 * A live source in this process (640x480@30, SMPTE bars scrolling 4 px per
 * frame under a running clock, vp8enc target-bitrate=1500000 deadline=1,
 * then peertreesink k1=1) feeds one relay, which runs in a process of its
 * own (this program again, with --relay) so that its CPU time can be read
 * from /proc/PID/stat alone:
 *
 *   forward:   peertreesrc ! fakesink            (the element forwards the
 *              RTP to its children and outputs video/x-vp8: decodes nothing)
 *   transcode: peertreesrc ! vp8enc … ! peertreesink of a second tree
 *              (the anchor: what a relay costs when it decodes and re-encodes)
 *
 * For each, the relay's utime+stime is read over SECONDS with no child, then
 * over SECONDS with two children (peertreesrc ! fakesink, in this process,
 * counting frames), so the cost of a child is (CPU(2) − CPU(0)) / 2. The
 * figure is void unless the forwarding relay had no decoder and encoder and
 * its output was video/x-vp8, and every child received ≥ 90% of the source's
 * frames during the window.
 */
#include "bench-util.h"

#include <signal.h>
#include <unistd.h>

#include <sys/wait.h>
#include <glib-unix.h>

#define SRC_TREE "bench-relay-cost"
#define OUT_TREE "bench-relay-cost-out"
#define ENCODER "vp8enc target-bitrate=1500000 deadline=1"
#define SOURCE_DESC "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! " \
  "video/x-raw,width=640,height=480,framerate=30/1 ! timeoverlay font-desc=\"Sans 36\" ! " \
  ENCODER " name=enc ! peertreesink server=%s tree-id=" SRC_TREE " k1=1 k=2 " \
  "local-addresses=" BENCH_LOCAL
#define FORWARD_DESC "peertreesrc server=%s tree-id=" SRC_TREE " client-id=%s " \
  "local-addresses=" BENCH_LOCAL " ! fakesink name=out sync=false async=false"
#define TRANSCODE_DESC "peertreesrc server=%s tree-id=" SRC_TREE " client-id=%s " \
  "local-addresses=" BENCH_LOCAL " ! " ENCODER " name=out ! peertreesink server=%s " \
  "tree-id=" OUT_TREE " k1=2 local-addresses=" BENCH_LOCAL
#define N_CHILDREN 2

/* ---------------------------------------------------------------------- */
/* relay mode: a process of its own; reports on stdout every 100 ms */

static struct {
  gint frames;                  /* atomic: buffers into "out" */
  gchar *media;                 /* atomic pointer: caps name into "out", set once */
  gint depth;                   /* atomic: from peertree-tree-joined */
} R;

static GstPadProbeReturn
relay_on_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) info;
  (void) data;
  if (g_atomic_int_add (&R.frames, 1) == 0) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);

    if (caps)
      g_atomic_pointer_set (&R.media,
          g_strdup (gst_structure_get_name (gst_caps_get_structure (caps, 0))));
  }
  return GST_PAD_PROBE_OK;
}

static GstBusSyncReply
relay_on_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  const GstStructure *st = gst_message_get_structure (msg);
  GstElement *src = data;

  (void) bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && st && GST_MESSAGE_SRC (msg) ==
      GST_OBJECT (src) && gst_structure_has_name (st, "peertree-tree-joined")) {
    guint depth = 0;

    gst_structure_get_uint (st, "depth", &depth);
    g_atomic_int_set (&R.depth, (gint) depth);
  }
  return GST_BUS_PASS;
}

/* elements of the pipeline, nested bins included, whose class is
 * Codec/Decoder… or Codec/Encoder… (not DTLS/SRTP "decoders") */
static void
count_codecs (GstElement *pipeline, guint *decoders, guint *encoders)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;

  *decoders = *encoders = 0;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (e);
    const gchar *klass = f ? gst_element_factory_get_metadata (f,
        GST_ELEMENT_METADATA_KLASS) : NULL;

    if (klass && strstr (klass, "Codec") && strstr (klass, "Decoder"))
      (*decoders)++;
    if (klass && strstr (klass, "Codec") && strstr (klass, "Encoder"))
      (*encoders)++;
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
}

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline;
  gint64 deadline;
} Relay;

static gboolean
relay_report (gpointer data)
{
  Relay *r = data;
  guint dec, enc;
  const gchar *media = g_atomic_pointer_get (&R.media);

  count_codecs (r->pipeline, &dec, &enc);
  printf ("frames=%d depth=%d decoders=%u encoders=%u media=%s\n", g_atomic_int_get (&R.frames),
      g_atomic_int_get (&R.depth), dec, enc, media ? media : "none");
  fflush (stdout);
  if (g_get_monotonic_time () > r->deadline)
    g_main_loop_quit (r->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
relay_on_stdin (gint fd, GIOCondition cond, gpointer data)
{
  Relay *r = data;
  gchar buf[64];

  (void) cond;
  /* the parent closes our stdin (or dies): stop */
  if (read (fd, buf, sizeof buf) <= 0) {
    g_main_loop_quit (r->loop);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
relay_on_signal (gpointer data)
{
  g_main_loop_quit (((Relay *) data)->loop);
  return G_SOURCE_CONTINUE;
}

static int
relay_main (const gchar *url, const gchar *mode)
{
  Relay r = { 0, };
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  GstElement *out, *src = NULL;
  g_autoptr (GstPad) pad = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autofree gchar *id = g_strdup_printf ("relay-%s-%d", mode, (int) getpid ());
  GstIterator *it;
  GValue v = G_VALUE_INIT;

  if (g_str_equal (mode, "forward"))
    desc = g_strdup_printf (FORWARD_DESC, url, id);
  else if (g_str_equal (mode, "transcode"))
    desc = g_strdup_printf (TRANSCODE_DESC, url, id, url);
  else
    bench_die ("relay: unknown mode %s", mode);
  r.pipeline = gst_parse_launch (desc, &error);
  if (r.pipeline == NULL)
    bench_die ("relay: %s", error->message);
  out = gst_bin_get_by_name (GST_BIN (r.pipeline), "out");
  pad = gst_element_get_static_pad (out, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, relay_on_buffer, NULL, NULL);
  gst_object_unref (out);
  it = gst_bin_iterate_elements (GST_BIN (r.pipeline));
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);

    if (g_str_equal (G_OBJECT_TYPE_NAME (e), "GstPeerTreeSrc"))
      src = e;
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  bus = gst_pipeline_get_bus (GST_PIPELINE (r.pipeline));
  gst_bus_set_sync_handler (bus, relay_on_message, src, NULL);

  r.loop = g_main_loop_new (NULL, FALSE);
  r.deadline = g_get_monotonic_time () + 600 * G_USEC_PER_SEC;
  g_timeout_add (100, relay_report, &r);
  g_unix_fd_add (0, G_IO_IN | G_IO_HUP | G_IO_ERR, relay_on_stdin, &r);
  g_unix_signal_add (SIGTERM, relay_on_signal, &r);
  g_unix_signal_add (SIGINT, relay_on_signal, &r);
  if (gst_element_set_state (r.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    bench_die ("relay: cannot start");
  g_main_loop_run (r.loop);
  bench_check_bus (r.pipeline, "relay");
  gst_element_set_state (r.pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (r.pipeline);
  g_main_loop_unref (r.loop);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* the benchmark */

typedef struct {
  GPid pid;
  gint in_fd;                   /* its stdin: closing it stops the relay */
  GIOChannel *out;              /* its stdout: one report a line */
  guint watch;
  gint frames, depth;           /* from its last report */
  guint decoders, encoders;
  gchar media[64];
  gboolean eof;
} RelayProc;

static gboolean
on_report (GIOChannel *ch, GIOCondition cond, gpointer data)
{
  RelayProc *rp = data;

  for (guint i = 0; i < 1000; i++) {
    g_autofree gchar *line = NULL;
    GIOStatus st = g_io_channel_read_line (ch, &line, NULL, NULL, NULL);

    if (st == G_IO_STATUS_AGAIN)
      return G_SOURCE_CONTINUE;
    if (st != G_IO_STATUS_NORMAL) {
      rp->eof = TRUE;
      rp->watch = 0;
      return G_SOURCE_REMOVE;
    }
    sscanf (line, "frames=%d depth=%d decoders=%u encoders=%u media=%63s", &rp->frames,
        &rp->depth, &rp->decoders, &rp->encoders, rp->media);
  }
  (void) cond;
  return G_SOURCE_CONTINUE;
}

static void
relay_start (RelayProc *rp, const gchar *url, const gchar *mode)
{
  g_autoptr (GError) error = NULL;
  gchar *args[] = { (gchar *) "/proc/self/exe", (gchar *) "--relay", (gchar *) url,
    (gchar *) mode, NULL
  };
  gint out_fd;

  memset (rp, 0, sizeof *rp);
  if (!g_spawn_async_with_pipes (NULL, args, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
          &rp->pid, &rp->in_fd, &out_fd, NULL, &error))
    bench_die ("cannot start the relay: %s", error->message);
  rp->out = g_io_channel_unix_new (out_fd);
  g_io_channel_set_close_on_unref (rp->out, TRUE);
  g_io_channel_set_flags (rp->out, G_IO_FLAG_NONBLOCK, NULL);
  rp->watch = g_io_add_watch (rp->out, G_IO_IN | G_IO_HUP | G_IO_ERR, on_report, rp);
}

static void
relay_stop (RelayProc *rp)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  close (rp->in_fd);
  while (!rp->eof && g_get_monotonic_time () < deadline)
    bench_run_for (20);
  if (!rp->eof) {
    fprintf (stderr, "relay %d does not stop: killing it\n", (int) rp->pid);
    kill (rp->pid, SIGKILL);
  }
  waitpid (rp->pid, NULL, 0);
  g_spawn_close_pid (rp->pid);
  if (rp->watch)
    g_source_remove (rp->watch);
  g_io_channel_unref (rp->out);
}

/* utime + stime of process @pid, in seconds */
static gdouble
cpu_seconds (gint pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree gchar *text = NULL;
  const gchar *p;
  unsigned long utime, stime;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (p = strrchr (text, ')')) == NULL)
    bench_die ("cannot read %s", path);
  /* after "pid (comm)": state is field 3, utime 14, stime 15 */
  if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
          &stime) != 2)
    bench_die ("cannot parse %s", path);
  return (gdouble) (utime + stime) / sysconf (_SC_CLK_TCK);
}

static gint child_frames[N_CHILDREN];   /* atomic */
static gint child_depth[N_CHILDREN];    /* atomic */
static gint source_frames;      /* atomic */
static guint64 source_bytes;    /* atomic */

static GstPadProbeReturn
on_child_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) info;
  g_atomic_int_inc (&child_frames[GPOINTER_TO_UINT (data)]);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_source_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) data;
  g_atomic_int_inc (&source_frames);
  __atomic_add_fetch (&source_bytes, gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info)),
      __ATOMIC_SEQ_CST);
  return GST_PAD_PROBE_OK;
}

static GstBusSyncReply
on_child_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  const GstStructure *st = gst_message_get_structure (msg);

  (void) bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && st &&
      gst_structure_has_name (st, "peertree-tree-joined")) {
    guint depth = 0;

    gst_structure_get_uint (st, "depth", &depth);
    g_atomic_int_set (&child_depth[GPOINTER_TO_UINT (data)], (gint) depth);
  }
  return GST_BUS_PASS;
}

static GstElement *
child_start (const gchar *url, const gchar *tree, guint i)
{
  g_autofree gchar *desc = g_strdup_printf ("peertreesrc server=%s tree-id=%s "
      "local-addresses=" BENCH_LOCAL " ! fakesink name=out sync=false async=false", url, tree);
  g_autoptr (GError) error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);
  GstElement *out;
  g_autoptr (GstPad) pad = NULL;
  g_autoptr (GstBus) bus = NULL;

  if (p == NULL)
    bench_die ("child: %s", error->message);
  out = gst_bin_get_by_name (GST_BIN (p), "out");
  pad = gst_element_get_static_pad (out, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_child_frame, GUINT_TO_POINTER (i),
      NULL);
  gst_object_unref (out);
  bus = gst_pipeline_get_bus (GST_PIPELINE (p));
  gst_bus_set_sync_handler (bus, on_child_message, GUINT_TO_POINTER (i), NULL);
  g_atomic_int_set (&child_frames[i], 0);
  g_atomic_int_set (&child_depth[i], 0);
  gst_element_set_state (p, GST_STATE_PLAYING);
  return p;
}

static void
child_stop (GstElement *p)
{
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (p));

  bench_check_bus (p, "child");
  gst_element_set_state (p, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (p);
}

typedef struct {
  gdouble cpu;                  /* % of one core */
  gint relay_frames;
  gint source_frames;
  gint child_frames[N_CHILDREN];
  guint64 source_bytes;
  gdouble seconds;
} Window;

static void
measure (RelayProc *rp, guint seconds, Window *w)
{
  gint64 t0, t1;
  gdouble c0, c1;
  gint f0, s0, cf0[N_CHILDREN];
  guint64 b0;

  f0 = rp->frames;
  s0 = g_atomic_int_get (&source_frames);
  b0 = __atomic_load_n (&source_bytes, __ATOMIC_SEQ_CST);
  for (guint i = 0; i < N_CHILDREN; i++)
    cf0[i] = g_atomic_int_get (&child_frames[i]);
  t0 = g_get_monotonic_time ();
  c0 = cpu_seconds (rp->pid);
  bench_run_for (seconds * 1000);
  c1 = cpu_seconds (rp->pid);
  t1 = g_get_monotonic_time ();
  for (guint i = 0; i < N_CHILDREN; i++)
    w->child_frames[i] = g_atomic_int_get (&child_frames[i]) - cf0[i];
  w->source_frames = g_atomic_int_get (&source_frames) - s0;
  w->source_bytes = __atomic_load_n (&source_bytes, __ATOMIC_SEQ_CST) - b0;
  w->seconds = (t1 - t0) / 1e6;
  w->cpu = 100.0 * (c1 - c0) / w->seconds;
  /* both ends of the relay's count are as old as its last report */
  w->relay_frames = rp->frames - f0;
}

typedef struct {
  const gchar *mode;
  Window idle, busy;            /* 0 and 2 children */
  gint depth;
  guint decoders, encoders;
  gchar media[64];
  gint child_depth[N_CHILDREN];
  gboolean valid;
} Result;

static void
run_mode (const gchar *url, const gchar *mode, guint seconds, Result *res)
{
  RelayProc rp;
  GstElement *children[N_CHILDREN];
  gint64 deadline;
  gboolean fwd = g_str_equal (mode, "forward");

  res->mode = mode;
  fprintf (stderr, "%s: starting the relay\n", mode);
  relay_start (&rp, url, mode);
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (rp.frames == 0 && !rp.eof && g_get_monotonic_time () < deadline)
    bench_run_for (50);
  if (rp.frames == 0)
    bench_die ("%s relay got no frame within 20 s", mode);
  bench_run_for (2000);         /* settle */
  fprintf (stderr, "%s: measuring the relay with no child for %u s\n", mode, seconds);
  measure (&rp, seconds, &res->idle);

  for (guint i = 0; i < N_CHILDREN; i++)
    children[i] = child_start (url, fwd ? SRC_TREE : OUT_TREE, i);
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  for (guint i = 0; i < N_CHILDREN; i++)
    while (g_atomic_int_get (&child_frames[i]) == 0 && g_get_monotonic_time () < deadline)
      bench_run_for (50);
  for (guint i = 0; i < N_CHILDREN; i++) {
    bench_check_bus (children[i], "child");
    if (g_atomic_int_get (&child_frames[i]) == 0)
      bench_die ("%s: child %u got no frame within 20 s", mode, i);
  }
  bench_run_for (2000);         /* settle */
  fprintf (stderr, "%s: measuring the relay with %d children for %u s\n", mode, N_CHILDREN,
      seconds);
  measure (&rp, seconds, &res->busy);
  res->depth = rp.depth;
  res->decoders = rp.decoders;
  res->encoders = rp.encoders;
  g_strlcpy (res->media, rp.media, sizeof res->media);
  for (guint i = 0; i < N_CHILDREN; i++)
    res->child_depth[i] = g_atomic_int_get (&child_depth[i]);

  for (guint i = N_CHILDREN; i > 0; i--)
    child_stop (children[i - 1]);
  relay_stop (&rp);

  /* valid: the relay hangs under the source; the children under the relay
   * (forward) or under the relay's own source (transcode); every child got
   * ≥ 90% of the source's frames; the forwarding relay decoded nothing */
  res->valid = res->depth == 1;
  for (guint i = 0; i < N_CHILDREN; i++)
    res->valid &= res->child_depth[i] == (fwd ? 2 : 1) &&
        res->busy.child_frames[i] >= 0.9 * res->busy.source_frames;
  if (fwd)
    res->valid &= res->decoders == 0 && res->encoders == 0 &&
        g_str_equal (res->media, "video/x-vp8");
  else
    res->valid &= res->decoders == 1 && res->encoders == 1;
  fprintf (stderr, "%s: relay %.1f%% (no child), %.1f%% (%d children); relay depth %d, "
      "%u decoder(s), %u encoder(s), output %s; source %d frames, children %d and %d "
      "frames at depth %d and %d%s\n", mode, res->idle.cpu, res->busy.cpu, N_CHILDREN,
      res->depth, res->decoders, res->encoders, res->media, res->busy.source_frames,
      res->busy.child_frames[0], res->busy.child_frames[1], res->child_depth[0],
      res->child_depth[1], res->valid ? "" : " — VOID");
}

int
main (int argc, char **argv)
{
  const gchar *url;
  guint seconds;
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  GstElement *source, *enc;
  g_autoptr (GstPad) encpad = NULL;
  Result fwd = { 0, }, tc = { 0, };
  gdouble per_fwd, per_tc, kbps;

  if (argc >= 4 && g_str_equal (argv[1], "--relay")) {
    gst_init (&argc, &argv);
    return relay_main (argv[2], argv[3]);
  }
  bench_init (&argc, &argv);
  url = argv[1];
  seconds = argc > 2 ? (guint) atoi (argv[2]) : 15;
  seconds = CLAMP (seconds, 2, 120);

  desc = g_strdup_printf (SOURCE_DESC, url);
  source = gst_parse_launch (desc, &error);
  if (source == NULL)
    bench_die ("source: %s", error->message);
  enc = gst_bin_get_by_name (GST_BIN (source), "enc");
  encpad = gst_element_get_static_pad (enc, "src");
  gst_pad_add_probe (encpad, GST_PAD_PROBE_TYPE_BUFFER, on_source_frame, NULL, NULL);
  gst_object_unref (enc);
  gst_element_set_state (source, GST_STATE_PLAYING);
  bench_run_for (1000);
  bench_check_bus (source, "source");

  run_mode (url, "forward", seconds, &fwd);
  bench_check_bus (source, "source");
  bench_run_for (1000);         /* the server drops the first relay */
  run_mode (url, "transcode", seconds, &tc);
  bench_check_bus (source, "source");
  gst_element_set_state (source, GST_STATE_NULL);
  gst_object_unref (source);

  per_fwd = (fwd.busy.cpu - fwd.idle.cpu) / N_CHILDREN;
  per_tc = (tc.busy.cpu - tc.idle.cpu) / N_CHILDREN;
  kbps = (fwd.busy.source_bytes + tc.busy.source_bytes) * 8.0 / 1000.0 /
      (fwd.busy.seconds + tc.busy.seconds);

  printf ("## Relay cost: forwarding against decoding and re-encoding\n\n");
  printf ("A relay receives one live 640x480@30 VP8 stream (SMPTE bars scrolling 4 px per "
      "frame under a running clock; `" ENCODER "`: %.0f kbit/s of VP8 frames at the "
      "encoder's output) and sends it to %d children. The relay runs in a process of its own "
      "and its CPU time (utime + stime from /proc/PID/stat) is read over %u s with no child, "
      "then over %u s with %d children, after every link is up; the source and the children "
      "run in the benchmark's process. *Forward* is peertree's relay (`peertreesrc ! "
      "fakesink`: it relays the RTP as received and outputs the encoded frames); the anchor, "
      "*decode + re-encode*, is the relay a tree without forwarding needs (`peertreesrc ! "
      ENCODER " ! peertreesink` of a second tree with the children). CPU is in %% of one "
      "core; a child's cost is (CPU with %d − CPU with 0) / %d. The figure counts only if the "
      "forwarding relay holds no decoder or encoder and outputs video/x-vp8, and every child "
      "gets ≥ 90%% of the source's frames.\n\n", kbps, N_CHILDREN, seconds, seconds, N_CHILDREN,
      N_CHILDREN, N_CHILDREN);
  printf ("| relay | CPU, no child (%% core) | CPU, %d children (%% core) | per child (%% core) | "
      "decoders / encoders in the relay | relay's local output | frames in %u s: source / "
      "relay / children |\n", N_CHILDREN, seconds);
  printf ("|---|---:|---:|---:|---|---|---|\n");
#define ROW(name, r, per) \
  printf ("| %s | %.1f | %.1f | %.2f | %u / %u | %s | %d / %d / %d, %d |\n", name, \
    (r).idle.cpu, (r).busy.cpu, per, (r).decoders, (r).encoders, (r).media, \
    (r).busy.source_frames, (r).busy.relay_frames, (r).busy.child_frames[0], \
    (r).busy.child_frames[1])
  ROW ("forward (peertreesrc)", fwd, per_fwd);
  ROW ("decode + re-encode (anchor)", tc, per_tc);
#undef ROW
  printf ("\nWith %d children the forwarding relay uses **%.1f%%** of a core against "
      "**%.1f%%** for the anchor: the anchor costs **%.1f×** as much (%.1f×" " with no child). "
      "Each child adds %.2f%% of a core to the forwarding relay (%.2f%% to the anchor's "
      "peertreesink: a small difference of two large numbers, the noisier figure). The "
      "relay's frames come from its own reports every 100 ms (± 3 frames).\n\n", N_CHILDREN,
      fwd.busy.cpu, tc.busy.cpu, tc.busy.cpu / fwd.busy.cpu, tc.idle.cpu / fwd.idle.cpu,
      per_fwd, per_tc);
  if (!fwd.valid || !tc.valid)
    printf ("**Void:** a relay was not where it should be, the forwarding relay decoded or "
        "did not output VP8, or a child received less than 90%% of the source's frames "
        "(see the table).\n\n");
  printf ("Reproduce: `bench/run relay-cost` (it runs `build/bench/relay-cost "
      "ws://127.0.0.1:PORT %u` against a fresh `peertree-server --port 0`).\n\n", seconds);
  return fwd.valid && tc.valid ? 0 : 1;
}
