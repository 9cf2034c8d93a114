/* bench/join-time — how long a viewer waits for its first picture.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   join-time ws://127.0.0.1:PORT [SAMPLES]
 *
 * A live source (640x360@30, VP8 made by peertreesink with keyframes on
 * request only) runs for a while; then, SAMPLES times in a row, a viewer
 * (peertreesrc ! decoder ! fakesink, in the same process) is set to PLAYING
 * and timed until its first decoded frame, then stopped. Also split into
 * PLAYING → tree-joined (signalling) and tree-joined → first frame (ICE,
 * DTLS, keyframe request, decoding).
 */
#include "bench-util.h"

typedef struct {
  gint64 joined_us;             /* __atomic: written once from another thread */
  gint64 frame_us;              /* __atomic */
} Sample;

static GstBusSyncReply
on_sync_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  Sample *s = data;
  const GstStructure *st = gst_message_get_structure (msg);

  (void) bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && st &&
      gst_structure_has_name (st, "peertree-tree-joined") && s->joined_us == 0)
    __atomic_store_n (&s->joined_us, g_get_monotonic_time (), __ATOMIC_SEQ_CST);
  return GST_BUS_PASS;
}

static GstPadProbeReturn
on_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Sample *s = data;

  (void) pad;
  (void) info;
  if (s->frame_us == 0)
    __atomic_store_n (&s->frame_us, g_get_monotonic_time (), __ATOMIC_SEQ_CST);
  return GST_PAD_PROBE_OK;
}

static void
on_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  bench_decode_pad (src, pad, on_frame, data);
}

int
main (int argc, char **argv)
{
  const gchar *url;
  guint samples;
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  GstElement *source;
  g_autoptr (GArray) total = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr (GArray) signalling = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr (GArray) media = g_array_new (FALSE, FALSE, sizeof (gdouble));
  guint failures = 0;

  bench_init (&argc, &argv);
  url = argv[1];
  samples = argc > 2 ? (guint) atoi (argv[2]) : 20;
  samples = CLAMP (samples, 1, 1000);

  desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=640,height=360,framerate=30/1 ! peertreesink server=%s "
      "tree-id=bench-join k1=4 local-addresses=" BENCH_LOCAL, url);
  source = gst_parse_launch (desc, &error);
  if (source == NULL)
    bench_die ("source: %s", error->message);
  gst_element_set_state (source, GST_STATE_PLAYING);
  /* the source's first (and only periodic) keyframe is long gone when the
   * viewers join */
  bench_run_for (2000);
  bench_check_bus (source, "source");

  for (guint i = 0; i < samples; i++) {
    Sample s = { 0, };
    GstElement *pipeline = gst_pipeline_new (NULL);
    GstElement *src = gst_element_factory_make ("peertreesrc", NULL);
    g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
    gint64 start, deadline;

    g_object_set (src, "server", url, "tree-id", "bench-join", "local-addresses", BENCH_LOCAL,
        NULL);
    gst_bin_add (GST_BIN (pipeline), src);
    g_signal_connect (src, "pad-added", G_CALLBACK (on_pad_added), &s);
    gst_bus_set_sync_handler (bus, on_sync_message, &s, NULL);

    start = g_get_monotonic_time ();
    gst_element_set_state (pipeline, GST_STATE_PLAYING);
    deadline = start + 10 * G_USEC_PER_SEC;
    while (__atomic_load_n (&s.frame_us, __ATOMIC_SEQ_CST) == 0 && g_get_monotonic_time () < deadline)
      bench_run_for (2);
    bench_check_bus (pipeline, "viewer");
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
    gst_object_unref (pipeline);

    if (s.frame_us == 0) {
      fprintf (stderr, "join %u: no frame within 10 s\n", i);
      failures++;
    } else {
      gdouble t = (s.frame_us - start) / 1000.0;
      gdouble j = s.joined_us ? (s.joined_us - start) / 1000.0 : NAN;
      gdouble m = s.joined_us ? (s.frame_us - s.joined_us) / 1000.0 : NAN;

      g_array_append_val (total, t);
      if (s.joined_us) {
        g_array_append_val (signalling, j);
        g_array_append_val (media, m);
      }
      fprintf (stderr, "join %2u: first frame after %6.1f ms (joined after %5.1f ms)\n", i, t,
          j);
    }
    /* let the source drop the child before the next one comes; then a
     * random part of a frame period (33 ms at 30 fps), so that the joins
     * do not all meet the source's frames at the same phase (the first
     * keyframe is the source's next frame after the request: 0-33 ms) */
    bench_run_for (300 + (guint) g_random_int_range (0, 34));
    bench_check_bus (source, "source");
  }
  gst_element_set_state (source, GST_STATE_NULL);
  gst_object_unref (source);

  printf ("## Join time\n\n");
  printf ("A viewer (peertreesrc, decoding, in the same process as the source) is set to "
      "PLAYING while a live 640x360@30 VP8 source has been running for 2 s with no periodic "
      "keyframes; timed until its first decoded frame, then stopped; %u joins in a row "
      "at depth 1, 300-333 ms apart (a random part of a frame period, so that the joins "
      "meet the source's frame clock at every phase: the first keyframe is the source's "
      "next frame after the request).\n\n", samples);
  printf ("| phase | samples | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n");
  printf ("|---|---:|---:|---:|---:|---:|\n");
#define ROW(name, a) printf ("| %s | %u | %.1f | %.1f | %.1f | %.1f |\n", name, (a)->len, \
    bench_percentile (a, 50), bench_percentile (a, 90), bench_percentile (a, 99), \
    bench_percentile (a, 100))
  ROW ("PLAYING → first decoded frame", total);
  ROW ("PLAYING → tree joined (signalling)", signalling);
  ROW ("tree joined → first decoded frame", media);
#undef ROW
  printf ("\nNot included: a viewer in a process of its own first generates the process's "
      "DTLS certificate (an RSA key, about 250 ms on this machine). The elements start that "
      "in a background thread at NULL→READY, so it overlaps the connection to the server "
      "but is mostly still paid by a single gst-launch viewer.\n");
  if (failures)
    printf ("\n%u of %u joins got no frame within 10 s.\n", failures, samples);
  printf ("\n");
  return failures ? 1 : 0;
}
