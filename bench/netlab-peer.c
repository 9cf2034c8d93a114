/* bench/netlab-peer — one peer of a chain in the network lab, counting frames.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   netlab-peer source URL TREE-ID IP [--repair on|off] [--max-seconds N] [--set PROP=VALUE]…
 *   netlab-peer viewer URL TREE-ID IP [--repair on|off] [--max-seconds N] [--name NAME]
 *                                     [--set PROP=VALUE]…
 *   netlab-peer has-repair         exit 0 (and print where) if peertreesrc or
 *                                  peertreesink has a "repair" property, 1 if not
 *
 * Run in a lab host's namespace (tests/netlab/peertree-chain.sh starts one
 * per host), ICE restricted to the host's lab address IP.
 *
 * source: videotestsrc (live, 640x360@30) ! vp8enc (deadline 1, no periodic
 * keyframes, 1 Mbit/s) ! peertreesink k1=1 k=1: counts the frames the
 * encoder hands to peertreesink ("frames sent").
 * viewer: peertreesrc, its video decoded (peertreesrc's own depayloader and
 * decoder, into a fakesink): counts the decoded frames ("frames rendered").
 *
 * Lines on stdout (line-buffered), for the script that drives it:
 *   joined depth=D        (and again, "depth=D", after a re-parenting)
 *   overloaded max-children=N moved=ID
 *                         a relay reported its uplink overloaded (peertreesrc
 *                         shed-overload) and the server moved child ID away
 *   first-frame ms=T      the first frame sent (source) or decoded (viewer), T ms
 *                         after the pipeline was set to PLAYING (the join time)
 *   ice local=T remote=T  (viewer) the candidate types of the upstream link's
 *                         selected pair (host, srflx, prflx, relay)
 *   counting              after SIGUSR1: the counter restarts at 0
 *   nacks asked=A received=R
 *                         after SIGUSR2: the sequence numbers this peer asked
 *                         its parent to repair, and those its children asked
 *                         of it (counted since the start)
 *   frames=N keyframes=K depth=D
 *                         after SIGUSR2: frames counted since SIGUSR1, and of
 *                         those the keyframes (meaningful at the source)
 *   ice-restarts=N        after SIGUSR2: ICE restarts on this peer's links
 *                         (a viewer: the upstream link's; the source: its
 *                         children's), counted since the start
 *   upstream-lost reason=R
 *                         (viewer) the element gave its parent up (peertree-
 *                         upstream-lost) and asks the server for another
 * SIGTERM/SIGINT stop the pipeline and exit 0; an error on the bus exits 1;
 * so does reaching --max-seconds (default 600: every run is bounded).
 * --repair sets the elements' "repair" property when they have one (the
 * per-hop NACK/RTX repair), and is ignored otherwise. --set sets any
 * property of the peertree element (e.g. stun-server=stun://10.77.0.3:3478,
 * or local-addresses= to let ICE use every interface).
 */
#include <unistd.h>

#include <glib-unix.h>

#include "bench-util.h"

static struct {
  gint counting;                /* atomic */
  gint frames;                  /* atomic */
  gint keyframes;               /* atomic: frames without DELTA_UNIT */
  gint first;                   /* atomic */
  gint64 t_playing;             /* monotonic µs: PLAYING asked */
  gint first_ms;                /* atomic: ms from PLAYING to the first frame */
  guint depth;
  GstElement *peer;             /* a viewer's peertreesrc */
  gboolean ice_reported;
  GMainLoop *loop;
  gint exit_code;
  GstClockTime last_pts;        /* streaming thread only */
} P = { .last_pts = GST_CLOCK_TIME_NONE };

static GstPadProbeReturn
on_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

  (void) pad;
  (void) data;
  if (g_atomic_int_compare_and_exchange (&P.first, 0, 1))       /* report_first prints it */
    g_atomic_int_set (&P.first_ms, (gint) ((g_get_monotonic_time () - P.t_playing) / 1000));
  if (g_atomic_int_get (&P.counting)) {
    /* a hole in the timestamps is frames not decoded: when, and how many
     * (the log shows whether losses are spread or one keyframe wait) */
    if (buf && GST_BUFFER_PTS_IS_VALID (buf)) {
      if (GST_CLOCK_TIME_IS_VALID (P.last_pts) && GST_BUFFER_PTS (buf) > P.last_pts +
          GST_MSECOND * 50)
        fprintf (stderr, "netlab-peer: gap at %" G_GINT64_FORMAT " ms: %" G_GUINT64_FORMAT
            " ms without a frame\n", (g_get_monotonic_time () - P.t_playing) / 1000,
            (GST_BUFFER_PTS (buf) - P.last_pts) / GST_MSECOND);
      P.last_pts = GST_BUFFER_PTS (buf);
    }
    g_atomic_int_inc (&P.frames);
    if (buf && !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT))
      g_atomic_int_inc (&P.keyframes);
  }
  return GST_PAD_PROBE_OK;
}

static gboolean
on_usr1 (gpointer data)
{
  (void) data;
  g_atomic_int_set (&P.frames, 0);
  g_atomic_int_set (&P.keyframes, 0);
  g_atomic_int_set (&P.counting, 1);
  printf ("counting\n");
  return G_SOURCE_CONTINUE;
}

/* the NACKs this peer asked of its parent (its jitterbuffers' rtx-count,
 * one per sequence number) and those its children asked of it (their
 * links' rtprtxsend num-rtx-requests) */
static void
print_nacks (void)
{
  GstStructure *st = NULL;
  const GstStructure *up;
  const GValue *children;
  guint64 asked = 0;
  guint answered = 0;

  if (P.peer == NULL)
    return;
  g_object_get (P.peer, "stats", &st, NULL);
  if (st == NULL)
    return;
  if (gst_structure_has_field_typed (st, "upstream-repair", GST_TYPE_STRUCTURE)) {
    up = gst_value_get_structure (gst_structure_get_value (st, "upstream-repair"));
    gst_structure_get_uint64 (up, "rtx-count", &asked);
  }
  children = gst_structure_get_value (st, "children");
  for (guint i = 0; children && GST_VALUE_HOLDS_LIST (children) &&
      i < gst_value_list_get_size (children); i++) {
    const GValue *c = gst_value_list_get_value (children, i);
    const GstStructure *cs, *rs;
    guint n = 0;

    if (!GST_VALUE_HOLDS_STRUCTURE (c))
      continue;
    cs = gst_value_get_structure (c);
    if (!gst_structure_has_field_typed (cs, "repair", GST_TYPE_STRUCTURE))
      continue;
    rs = gst_value_get_structure (gst_structure_get_value (cs, "repair"));
    if (gst_structure_get_uint (rs, "num-rtx-requests", &n))
      answered += n;
  }
  printf ("nacks asked=%" G_GUINT64_FORMAT " received=%u\n", asked, answered);
  gst_structure_free (st);
}

/* the upstream link's ICE restarts (viewer), or its children's (source) */
static void
print_ice_restarts (void)
{
  GstStructure *st = NULL;
  const GValue *children;
  guint n = 0, c;

  if (P.peer == NULL)
    return;
  g_object_get (P.peer, "stats", &st, NULL);
  if (st == NULL)
    return;
  gst_structure_get_uint (st, "upstream-ice-restarts", &n);
  children = gst_structure_get_value (st, "children");
  for (guint i = 0; children && GST_VALUE_HOLDS_LIST (children) &&
      i < gst_value_list_get_size (children); i++) {
    const GValue *v = gst_value_list_get_value (children, i);

    if (GST_VALUE_HOLDS_STRUCTURE (v) &&
        gst_structure_get_uint (gst_value_get_structure (v), "ice-restarts", &c))
      n += c;
  }
  printf ("ice-restarts=%u\n", n);
  gst_structure_free (st);
}

static gboolean
on_usr2 (gpointer data)
{
  (void) data;
  g_atomic_int_set (&P.counting, 0);
  print_nacks ();
  print_ice_restarts ();
  printf ("frames=%d keyframes=%d depth=%u\n", g_atomic_int_get (&P.frames),
      g_atomic_int_get (&P.keyframes), P.depth);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_stop (gpointer data)
{
  (void) data;
  /* the element's statistics (repair counters of every link) go to the
   * log, for a look at what each hop did */
  if (P.peer) {
    GstStructure *st = NULL;

    g_object_get (P.peer, "stats", &st, NULL);
    if (st) {
      g_autofree gchar *text = gst_structure_to_string (st);

      fprintf (stderr, "netlab-peer: stats %s\n", text);
      gst_structure_free (st);
    }
  }
  g_main_loop_quit (P.loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_max_time (gpointer data)
{
  (void) data;
  fprintf (stderr, "netlab-peer: --max-seconds reached\n");
  P.exit_code = 1;
  g_main_loop_quit (P.loop);
  return G_SOURCE_REMOVE;
}

static gboolean
report_first (gpointer data)
{
  (void) data;
  if (g_atomic_int_get (&P.first) == 1) {
    g_atomic_int_set (&P.first, 2);
    printf ("first-frame ms=%d\n", g_atomic_int_get (&P.first_ms));
  }
  /* a viewer: the candidate types of its upstream link's selected pair, once */
  if (g_atomic_int_get (&P.first) == 2 && P.peer && !P.ice_reported) {
    GstStructure *st = NULL;
    const gchar *local, *remote;

    g_object_get (P.peer, "stats", &st, NULL);
    local = st ? gst_structure_get_string (st, "upstream-local-candidate-type") : NULL;
    remote = st ? gst_structure_get_string (st, "upstream-remote-candidate-type") : NULL;
    if (local && remote) {
      printf ("ice local=%s remote=%s\n", local, remote);
      P.ice_reported = TRUE;
    }
    if (st)
      gst_structure_free (st);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  (void) bus;
  (void) data;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fprintf (stderr, "netlab-peer: error from %s: %s (%s)\n", GST_OBJECT_NAME (msg->src),
        err->message, dbg ? dbg : "");
    P.exit_code = 1;
    g_main_loop_quit (P.loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    fprintf (stderr, "netlab-peer: EOS\n");
    P.exit_code = 1;
    g_main_loop_quit (P.loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT) {
    const GstStructure *s = gst_message_get_structure (msg);
    const gchar *name = gst_structure_get_name (s);
    guint depth;

    if ((g_str_equal (name, "peertree-tree-joined") ||
            g_str_equal (name, "peertree-upstream-changed")) &&
        gst_structure_get_uint (s, "depth", &depth)) {
      P.depth = depth;
      printf ("%sdepth=%u\n", g_str_equal (name, "peertree-tree-joined") ? "joined " : "",
          depth);
    } else if (g_str_equal (name, "peertree-overloaded")) {
      guint max_children = 0;

      gst_structure_get_uint (s, "max-children", &max_children);
      printf ("overloaded max-children=%u moved=%s\n", max_children,
          gst_structure_get_string (s, "moved-child") ?
          gst_structure_get_string (s, "moved-child") : "-");
    } else if (g_str_equal (name, "peertree-upstream-lost")) {
      const gchar *reason = gst_structure_get_string (s, "reason");

      printf ("upstream-lost reason=%s\n", reason ? reason : "?");
    }
  }
  return G_SOURCE_CONTINUE;
}

static void
on_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  (void) data;
  /* video only (peertreesrc's pads are video_%u, audio_%u) */
  if (g_str_has_prefix (GST_PAD_NAME (pad), "audio"))
    return;
  bench_decode_pad (src, pad, on_frame, NULL);
}

static gboolean
has_repair (const gchar *factory)
{
  g_autoptr (GstElement) e = gst_element_factory_make (factory, NULL);

  return e && g_object_class_find_property (G_OBJECT_GET_CLASS (e), "repair") != NULL;
}

static void
set_repair (GstElement *e, const gchar *repair)
{
  if (repair == NULL)
    return;
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), "repair") == NULL) {
    fprintf (stderr, "netlab-peer: %s has no \"repair\" property: --repair ignored\n",
        GST_OBJECT_NAME (e));
    return;
  }
  gst_util_set_object_arg (G_OBJECT (e), "repair",
      g_str_equal (repair, "on") ? "true" : "false");
}

/* --set PROP=VALUE… */
static void
set_props (GstElement *e, GPtrArray *sets)
{
  for (guint i = 0; i < sets->len; i++) {
    g_auto (GStrv) kv = g_strsplit (g_ptr_array_index (sets, i), "=", 2);

    if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), kv[0]) == NULL)
      bench_die ("%s has no property \"%s\"", GST_OBJECT_NAME (e), kv[0]);
    gst_util_set_object_arg (G_OBJECT (e), kv[0], kv[1]);
  }
}

int
main (int argc, char **argv)
{
  const gchar *mode, *url, *tree, *ip, *repair = NULL, *name = NULL;
  g_autoptr (GPtrArray) sets = g_ptr_array_new ();
  guint max_seconds = 600;
  GstElement *pipeline, *peer;
  g_autoptr (GstBus) bus = NULL;

  gst_init (&argc, &argv);
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc >= 2 && g_str_equal (argv[1], "has-repair")) {
    gboolean src = has_repair ("peertreesrc"), sink = has_repair ("peertreesink");

    if (gst_element_factory_find ("peertreesrc") == NULL)
      bench_die ("the peertree plugin is not found: set GST_PLUGIN_PATH to build/gst");
    printf ("peertreesrc: %s, peertreesink: %s\n", src ? "repair" : "no repair",
        sink ? "repair" : "no repair");
    return src || sink ? 0 : 1;
  }
  if (argc < 5 || !(g_str_equal (argv[1], "source") || g_str_equal (argv[1], "viewer")))
    bench_die ("usage: %s source|viewer URL TREE-ID IP [--repair on|off] [--max-seconds N] "
        "[--name NAME]", argv[0]);
  mode = argv[1];
  url = argv[2];
  tree = argv[3];
  ip = argv[4];
  for (int i = 5; i + 1 < argc; i += 2) {
    if (g_str_equal (argv[i], "--repair"))
      repair = argv[i + 1];
    else if (g_str_equal (argv[i], "--max-seconds"))
      max_seconds = CLAMP ((guint) atoi (argv[i + 1]), 1, 3600);
    else if (g_str_equal (argv[i], "--name"))
      name = argv[i + 1];
    else if (g_str_equal (argv[i], "--set") && strchr (argv[i + 1], '='))
      g_ptr_array_add (sets, argv[i + 1]);
    else
      bench_die ("unknown option %s", argv[i]);
  }
  if (gst_element_factory_find ("peertreesrc") == NULL)
    bench_die ("the peertree plugin is not found: set GST_PLUGIN_PATH to build/gst");

  if (g_str_equal (mode, "source")) {
    g_autofree gchar *desc = NULL;
    g_autoptr (GError) error = NULL;
    g_autoptr (GstElement) enc = NULL;
    g_autoptr (GstPad) pad = NULL;

    desc = g_strdup_printf ("videotestsrc is-live=true ! "
        "video/x-raw,width=640,height=360,framerate=30/1 ! "
        "vp8enc name=enc deadline=1 keyframe-max-dist=100000 target-bitrate=1000000 ! "
        "peertreesink name=peer server=%s tree-id=%s k1=1 k=1 local-addresses=%s",
        url, tree, ip);
    pipeline = gst_parse_launch (desc, &error);
    if (pipeline == NULL)
      bench_die ("source: %s", error->message);
    enc = gst_bin_get_by_name (GST_BIN (pipeline), "enc");
    pad = gst_element_get_static_pad (enc, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_frame, NULL, NULL);
    peer = gst_bin_get_by_name (GST_BIN (pipeline), "peer");
    set_repair (peer, repair);
    set_props (peer, sets);
    P.peer = peer;              /* the pipeline holds it */
    gst_object_unref (peer);
  } else {
    pipeline = gst_pipeline_new (name ? name : "viewer");
    peer = gst_element_factory_make ("peertreesrc", "peer");
    if (peer == NULL)
      bench_die ("no peertreesrc");
    g_object_set (peer, "server", url, "tree-id", tree, "local-addresses", ip, NULL);
    if (name)
      g_object_set (peer, "client-id", name, NULL);
    set_repair (peer, repair);
    set_props (peer, sets);
    gst_bin_add (GST_BIN (pipeline), peer);
    P.peer = peer;
    g_signal_connect (peer, "pad-added", G_CALLBACK (on_pad_added), NULL);
  }

  P.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  gst_bus_add_watch (bus, on_bus, NULL);
  g_unix_signal_add (SIGUSR1, on_usr1, NULL);
  g_unix_signal_add (SIGUSR2, on_usr2, NULL);
  g_unix_signal_add (SIGTERM, on_stop, NULL);
  g_unix_signal_add (SIGINT, on_stop, NULL);
  g_timeout_add_seconds (max_seconds, on_max_time, NULL);
  g_timeout_add (50, report_first, NULL);
  P.t_playing = g_get_monotonic_time ();
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    bench_die ("%s: cannot start", mode);
  g_main_loop_run (P.loop);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_bus_remove_watch (bus);
  gst_object_unref (pipeline);
  g_main_loop_unref (P.loop);
  /* _exit: OpenSSL's atexit cleanup races GLib's pooled threads that used
   * it (see tests/gst/pt-gst-process.h); nothing is left to flush */
  fflush (stdout);
  _exit (P.exit_code);
}
