/* bench/hop-latency — latency added by each relay of a chain.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   hop-latency ws://127.0.0.1:PORT [DEPTH] [SECONDS] [on|off]
 *
 * The last argument sets the elements' `repair` property (default on):
 * off is the behaviour before per-hop repair, to compare with.
 *
 * A live source (640x360@30, VP8 by peertreesink) and DEPTH viewers in one
 * process, in a chain (k1=1, k=1): viewer N receives from viewer N-1 and
 * relays to viewer N+1, and every viewer also decodes (a real viewer, not
 * a bare relay). All pipelines share the system clock.
 *
 * Pad probes on each node's fan-out tee (the payloader's output at the
 * source; at a viewer, the RTP as it reaches the parent-facing webrtcbin's
 * jitterbuffer, which is what the viewer relays) stamp
 * every RTP packet by sequence number, which stays unchanged end to end.
 * Hop d = arrival at depth d − arrival at depth d−1; "from capture" =
 * arrival at depth d − (base time + PTS) of the captured frame at the source.
 */
#include "bench-util.h"

#define MAX_DEPTH 16

static struct {
  gint recording;               /* atomic */
  gint64 seen[MAX_DEPTH + 1][65536];    /* clock ns, 0 = not seen; depth 0 = source */
  gint64 captured[65536];       /* clock ns of capture, at the source */
  GstClock *clock;
} B;

typedef struct {
  guint depth;
  GstElement *pipeline;
} Node;

static void
stamp (Node *node, GstBuffer *buf, GstClockTime now)
{
  guint8 hdr[4];
  guint seq;

  if (gst_buffer_extract (buf, 0, hdr, 4) != 4 || (hdr[0] >> 6) != 2)
    return;
  seq = (hdr[2] << 8) | hdr[3];
  if (B.seen[node->depth][seq] == 0)
    B.seen[node->depth][seq] = (gint64) now;
  if (node->depth == 0 && B.captured[seq] == 0 && GST_BUFFER_PTS_IS_VALID (buf))
    B.captured[seq] = (gint64) (gst_element_get_base_time (node->pipeline) +
        GST_BUFFER_PTS (buf));
}

static GstPadProbeReturn
on_rtp (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Node *node = data;
  GstClockTime now;

  (void) pad;
  if (!g_atomic_int_get (&B.recording))
    return GST_PAD_PROBE_OK;
  now = gst_clock_get_time (B.clock);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    stamp (node, GST_PAD_PROBE_INFO_BUFFER (info), now);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST (info);

    for (guint i = 0; i < gst_buffer_list_length (list); i++)
      stamp (node, gst_buffer_list_get (list, i), now);
  }
  return GST_PAD_PROBE_OK;
}

/* the elements' fan-out tees are named fanout_* */
static void
on_deep_element_added (GstBin *bin, GstBin *sub, GstElement *element, gpointer data)
{
  (void) bin;
  (void) sub;
  if (g_str_has_prefix (GST_ELEMENT_NAME (element), "fanout_")) {
    g_autoptr (GstPad) pad = gst_element_get_static_pad (element, "sink");

    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        on_rtp, data, NULL);
  }
}

static gint frames[MAX_DEPTH + 1];      /* atomic: decoded frames per viewer */

static GstPadProbeReturn
on_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) info;
  g_atomic_int_inc (&frames[GPOINTER_TO_UINT (data)]);
  return GST_PAD_PROBE_OK;
}

static void
on_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  Node *node = data;

  bench_decode_pad (src, pad, on_frame, GUINT_TO_POINTER (node->depth));
}

static void
use_system_clock (GstElement *pipeline)
{
  gst_pipeline_use_clock (GST_PIPELINE (pipeline), B.clock);
}

int
main (int argc, char **argv)
{
  const gchar *url;
  guint depth, seconds;
  gboolean repair;
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  Node nodes[MAX_DEPTH + 1] = { {0,}, };

  bench_init (&argc, &argv);
  url = argv[1];
  depth = argc > 2 ? (guint) atoi (argv[2]) : 6;
  depth = CLAMP (depth, 1, MAX_DEPTH);
  seconds = argc > 3 ? (guint) atoi (argv[3]) : 10;
  seconds = CLAMP (seconds, 1, 600);
  repair = !(argc > 4 && g_str_equal (argv[4], "off"));
  B.clock = gst_system_clock_obtain ();

  desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=640,height=360,framerate=30/1 ! peertreesink server=%s "
      "tree-id=bench-chain-%s k1=1 k=1 repair=%s local-addresses=" BENCH_LOCAL, url,
      repair ? "on" : "off", repair ? "true" : "false");
  nodes[0].pipeline = gst_parse_launch (desc, &error);
  if (nodes[0].pipeline == NULL)
    bench_die ("source: %s", error->message);
  use_system_clock (nodes[0].pipeline);
  g_signal_connect (nodes[0].pipeline, "deep-element-added",
      G_CALLBACK (on_deep_element_added), &nodes[0]);
  gst_element_set_state (nodes[0].pipeline, GST_STATE_PLAYING);
  bench_run_for (1000);

  /* breadth-first placement with k1 = k = 1 makes a chain in join order */
  for (guint d = 1; d <= depth; d++) {
    GstElement *src = gst_element_factory_make ("peertreesrc", NULL);
    /* names of their own per mode: bench/run runs both against one server,
     * which keeps a departed client's id (and tree id) for a while */
    g_autofree gchar *name = g_strdup_printf ("viewer-%u-%s", d, repair ? "on" : "off");
    g_autofree gchar *tree = g_strdup_printf ("bench-chain-%s", repair ? "on" : "off");
    gint64 deadline;

    nodes[d].depth = d;
    nodes[d].pipeline = gst_pipeline_new (name);
    use_system_clock (nodes[d].pipeline);
    g_object_set (src, "server", url, "tree-id", tree, "client-id", name,
        "local-addresses", BENCH_LOCAL, "repair", repair, NULL);
    gst_bin_add (GST_BIN (nodes[d].pipeline), src);
    g_signal_connect (src, "pad-added", G_CALLBACK (on_pad_added), &nodes[d]);
    g_signal_connect (nodes[d].pipeline, "deep-element-added",
        G_CALLBACK (on_deep_element_added), &nodes[d]);
    gst_element_set_state (nodes[d].pipeline, GST_STATE_PLAYING);
    deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
    while (g_atomic_int_get (&frames[d]) == 0 && g_get_monotonic_time () < deadline)
      bench_run_for (10);
    bench_check_bus (nodes[d].pipeline, name);
    if (g_atomic_int_get (&frames[d]) == 0)
      bench_die ("%s decoded nothing within 15 s", name);
    fprintf (stderr, "%s decodes\n", name);
  }

  bench_run_for (1000);         /* settle */
  fprintf (stderr, "measuring for %u s\n", seconds);
  g_atomic_int_set (&B.recording, 1);
  bench_run_for (seconds * 1000);
  g_atomic_int_set (&B.recording, 0);
  bench_run_for (200);          /* probes in flight */
  for (guint d = 0; d <= depth; d++)
    bench_check_bus (nodes[d].pipeline, d ? "viewer" : "source");

  printf ("## Added latency per hop (repair %s)\n\n", repair ? "on" : "off: before repair");
  printf ("A chain (k1=1, k=1) of a live 640x360@30 VP8 source and %u viewers, each viewer "
      "decoding and relaying to the next, all in one process on one clock; RTP packets "
      "stamped by sequence number at each node's fan-out tee for %u s. *Hop* is the time "
      "from the previous node's tee to this node's tee (sender queue, SRTP, ICE over "
      "loopback, up to the receiver's jitterbuffer, before which a viewer relays; nothing "
      "lost; repair (NACK/RTX, the default) %s); *from capture* adds the source's "
      "encoding.\n\n",
      depth, seconds, repair ? "on" : "off on every element, the behaviour before it");
  printf ("| depth | packets | hop p50 (ms) | hop p99 (ms) | from capture p50 (ms) | "
      "from capture p99 (ms) |\n");
  printf ("|---:|---:|---:|---:|---:|---:|\n");
  {
    g_autoptr (GArray) pay = g_array_new (FALSE, FALSE, sizeof (gdouble));

    for (guint s = 0; s < 65536; s++)
      if (B.seen[0][s] && B.captured[s]) {
        gdouble v = (B.seen[0][s] - B.captured[s]) / 1e6;

        g_array_append_val (pay, v);
      }
    printf ("| 0 (source, payloader out) | %u | – | – | %.2f | %.2f |\n", pay->len,
        bench_percentile (pay, 50), bench_percentile (pay, 99));
  }
  for (guint d = 1; d <= depth; d++) {
    g_autoptr (GArray) hop = g_array_new (FALSE, FALSE, sizeof (gdouble));
    g_autoptr (GArray) total = g_array_new (FALSE, FALSE, sizeof (gdouble));

    for (guint s = 0; s < 65536; s++) {
      if (B.seen[d][s] && B.seen[d - 1][s]) {
        gdouble v = (B.seen[d][s] - B.seen[d - 1][s]) / 1e6;

        g_array_append_val (hop, v);
      }
      if (B.seen[d][s] && B.captured[s]) {
        gdouble v = (B.seen[d][s] - B.captured[s]) / 1e6;

        g_array_append_val (total, v);
      }
    }
    printf ("| %u | %u | %.2f | %.2f | %.2f | %.2f |\n", d, hop->len,
        bench_percentile (hop, 50), bench_percentile (hop, 99),
        bench_percentile (total, 50), bench_percentile (total, 99));
  }
  printf ("\n");

  for (guint d = depth + 1; d > 0; d--) {
    gst_element_set_state (nodes[d - 1].pipeline, GST_STATE_NULL);
    gst_object_unref (nodes[d - 1].pipeline);
  }
  gst_object_unref (B.clock);
  return 0;
}
