/* peertreesink / peertreesrc with media, all pipelines in this process,
 * ICE over 127.0.0.1, signalling through an in-process PtServer.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-gst-test-util.h"
#include "pt-server-private.h"  /* the server's view of the tree, the reports it keeps */

#define WIDTH 320
#define HEIGHT 240
/* viewers join this long after the source started: its only periodic
 * keyframe (the first) is long gone */
#define LATE_JOIN_MS 3000

static gint source_keyframes;   /* atomic: keyframes out of the source's encoder */

static GstPadProbeReturn
count_keyframes (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

  (void) pad;
  (void) data;
  if (!GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT))
    g_atomic_int_inc (&source_keyframes);
  return GST_PAD_PROBE_OK;
}

static void
watch_keyframes (PtNode *source, const gchar *encoder)
{
  GstElement *enc = gst_bin_get_by_name (GST_BIN (source->pipeline), encoder);
  g_autoptr (GstPad) pad = gst_element_get_static_pad (enc, "src");

  g_atomic_int_set (&source_keyframes, 0);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_keyframes, NULL, NULL);
  gst_object_unref (enc);
}

/* Runs the server's main context for @ms. */
static void
run_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
}

static GstStructure *
wait_joined (PtNode *node)
{
  GstStructure *s = NULL;

  WAIT_UNTIL_MS ((s = pt_node_get_message (node, "peertree-tree-joined", 0)) != NULL,
      PT_WAIT_MS);
  return s;
}

static guint
get_depth (const GstStructure *s)
{
  guint depth = G_MAXUINT;

  fail_unless (gst_structure_get_uint (s, "depth", &depth));
  return depth;
}

static guint
get_stat_uint (GstElement *pipeline, const gchar *element, const gchar *field)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), element);
  g_autoptr (GstStructure) stats = NULL;
  guint v = G_MAXUINT;

  g_object_get (e, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  fail_unless (gst_structure_get_uint (stats, field, &v), "no %s in %" GST_PTR_FORMAT, field,
      stats);
  gst_object_unref (e);
  return v;
}

/* The stats of each child link carry webrtcbin's own statistics. */
static void
check_child_stats (GstElement *pipeline, const gchar *element)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), element);
  g_autoptr (GstStructure) stats = NULL;
  const GValue *children;

  g_object_get (e, "stats", &stats, NULL);
  children = gst_structure_get_value (stats, "children");
  fail_unless (children != NULL && GST_VALUE_HOLDS_LIST (children));
  fail_unless (gst_value_list_get_size (children) > 0);
  for (guint i = 0; i < gst_value_list_get_size (children); i++) {
    const GstStructure *child =
        gst_value_get_structure (gst_value_list_get_value (children, i));

    fail_unless_equals_string (gst_structure_get_string (child, "state"), "connected");
    fail_unless (gst_structure_has_field_typed (child, "webrtc", GST_TYPE_STRUCTURE),
        "no webrtc stats in %" GST_PTR_FORMAT, child);
  }
  gst_object_unref (e);
}

/* Whether @member of @tree_id reported figures of a link that carries video
 * (report-interval's default: every 2 s), with @children child links up. */
static gboolean
reported_flowing (PtServer *server, const gchar *tree_id, const gchar *member,
    gint children)
{
  TreeEntry *t = g_hash_table_lookup (server->trees, tree_id);
  PtLinkStats *st = t && t->link_stats ? g_hash_table_lookup (t->link_stats, member) : NULL;

  return st && st->report.bitrate_kbps > 0 && st->report.frames_per_second > 0 &&
      st->report.loss_percent >= 0 && st->report.child_count == children;
}

/* A source, 2 relays at depth 1 (k1=2) and 4 viewers at depth 2 (k=2).
 * Every viewer decodes frames of the source's size; the relays only forward
 * (their pipelines hold no decoder, and their own output stays encoded). The
 * encoder makes keyframes only on request, and everyone joins late. */
GST_START_TEST (test_tree_two_levels)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=%d,height=%d,framerate=30/1 ! "
      "vp8enc name=enc deadline=1 keyframe-max-dist=10000 ! "
      "peertreesink name=s server=%s tree-id=tree k1=2 k=2 local-addresses=" PT_LOCAL,
      WIDTH, HEIGHT, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *relays[2], *viewers[4];
  g_autoptr (GstStructure) src_joined = NULL;
  const gchar *source_id;
  gint keyframes_before;

  watch_keyframes (source, "enc");
  pt_node_play (source);
  src_joined = wait_joined (source);
  fail_unless_equals_int (get_depth (src_joined), 0);
  source_id = gst_structure_get_string (src_joined, "client-id");
  fail_unless (source_id != NULL);

  run_for (LATE_JOIN_MS);
  keyframes_before = g_atomic_int_get (&source_keyframes);
  fail_unless_equals_int (keyframes_before, 1);
  pt_node_assert_no_error (source);

  /* depth 1: relays (joined first, so breadth-first placement puts them
   * under the source) */
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("relay-%u", i);

    relays[i] = pt_viewer_new (name, url, "tree", FALSE);
    pt_node_play (relays[i]);
  }
  for (guint i = 0; i < 2; i++) {
    g_autoptr (GstStructure) joined = wait_joined (relays[i]);

    fail_unless_equals_int (get_depth (joined), 1);
    fail_unless_equals_string (gst_structure_get_string (joined, "parent-id"), source_id);
  }

  /* depth 2: decoding viewers */
  for (guint i = 0; i < 4; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer-%u", i);

    viewers[i] = pt_viewer_new (name, url, "tree", TRUE);
    pt_node_play (viewers[i]);
  }
  for (guint i = 0; i < 4; i++) {
    g_autoptr (GstStructure) joined = wait_joined (viewers[i]);
    const gchar *parent = gst_structure_get_string (joined, "parent-id");

    fail_unless_equals_int (get_depth (joined), 2);
    fail_unless (g_strcmp0 (parent, "relay-0") == 0 || g_strcmp0 (parent, "relay-1") == 0,
        "viewer-%u under %s", i, parent);
  }

  /* every viewer decodes frames at the source's resolution */
  for (guint i = 0; i < 4; i++) {
    PtNode *v = viewers[i];

    WAIT_UNTIL_MS (g_atomic_int_get (&v->video_frames) > 0 || pt_node_has_error (v),
        PT_WAIT_MS);
    pt_node_assert_no_error (v);
    g_mutex_lock (&v->lock);
    fail_unless_equals_string (v->video_caps_name, "video/x-raw");
    fail_unless_equals_int (v->video_width, WIDTH);
    fail_unless_equals_int (v->video_height, HEIGHT);
    g_print ("%s: first decoded frame %.0f ms after PLAYING\n", v->name,
        (v->first_video_us - v->started_us) / 1000.0);
    g_mutex_unlock (&v->lock);
  }
  /* … and keeps decoding */
  for (guint i = 0; i < 4; i++) {
    gint now = g_atomic_int_get (&viewers[i]->video_frames);

    WAIT_UNTIL_MS (g_atomic_int_get (&viewers[i]->video_frames) >= now + 15, PT_WAIT_MS);
  }
  /* the late joiners were served by keyframes made on request */
  fail_unless (g_atomic_int_get (&source_keyframes) > keyframes_before);

  /* every member reports its parent link to the server (for its dashboard) */
  for (guint i = 0; i < 2; i++)
    WAIT_UNTIL_MS (reported_flowing (server, "tree", relays[i]->name, 2), PT_WAIT_MS);
  for (guint i = 0; i < 4; i++)
    WAIT_UNTIL_MS (reported_flowing (server, "tree", viewers[i]->name, 0), PT_WAIT_MS);

  /* the relays forwarded without decoding: their output is still VP8 and
   * their pipelines hold no decoder */
  for (guint i = 0; i < 2; i++) {
    PtNode *r = relays[i];

    pt_node_assert_no_error (r);
    fail_unless (g_atomic_int_get (&r->video_frames) > 0);
    g_mutex_lock (&r->lock);
    fail_unless_equals_string (r->video_caps_name, "video/x-vp8");
    g_mutex_unlock (&r->lock);
    fail_unless_equals_int (pt_count_elements_of_klass (r->pipeline, "Decoder/Video"), 0);
    fail_unless_equals_int (pt_node_count_messages (r, "peertree-child-added"), 2);
    fail_unless_equals_int (get_stat_uint (r->pipeline, "src", "n-children"), 2);
    fail_unless_equals_int (get_stat_uint (r->pipeline, "src", "depth"), 1);
  }
  fail_unless_equals_int (pt_node_count_messages (source, "peertree-child-added"), 2);
  fail_unless_equals_int (get_stat_uint (source->pipeline, "s", "n-children"), 2);
  check_child_stats (source->pipeline, "s");
  check_child_stats (relays[0]->pipeline, "src");
  pt_node_assert_no_error (source);

  for (guint i = 0; i < 4; i++)
    pt_node_free (viewers[i]);
  /* the relays see their children go */
  for (guint i = 0; i < 2; i++)
    WAIT_UNTIL_MS (pt_node_count_messages (relays[i], "peertree-child-removed") == 2,
        PT_WAIT_MS);
  for (guint i = 0; i < 2; i++)
    pt_node_free (relays[i]);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-child-removed") == 2, PT_WAIT_MS);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;


/* A viewer with max-children=0 (set through its URI) is a leaf: the source
 * takes it and a relay (k1=2), and every later viewer goes under the relay
 * (k=2), none under the leaf, which still plays and relays to nobody. */
GST_START_TEST (test_max_children_zero_gets_no_child)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=%d,height=%d,framerate=30/1 ! "
      "vp8enc deadline=1 keyframe-max-dist=10000 ! "
      "peertreesink name=s server=%s tree-id=tree k1=2 k=2 local-addresses=" PT_LOCAL,
      WIDTH, HEIGHT, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *leaf, *relay, *viewers[2];
  g_autoptr (GstStructure) src_joined = NULL;
  g_autofree gchar *uri = g_strdup_printf ("peertree://127.0.0.1:%u/tree?max-children=0",
      pt_server_get_port (server));
  gint max_children = 7;

  pt_node_play (source);
  src_joined = wait_joined (source);

  leaf = pt_viewer_new ("leaf", url, "tree", FALSE);
  {
    GstElement *src = gst_bin_get_by_name (GST_BIN (leaf->pipeline), "src");

    g_object_set (src, "uri", uri, NULL);
    g_object_get (src, "max-children", &max_children, NULL);
    fail_unless_equals_int (max_children, 0);
    gst_object_unref (src);
  }
  pt_node_play (leaf);
  {
    g_autoptr (GstStructure) joined = wait_joined (leaf);

    fail_unless_equals_int (get_depth (joined), 1);
  }
  relay = pt_viewer_new ("relay", url, "tree", FALSE);
  pt_node_play (relay);
  {
    g_autoptr (GstStructure) joined = wait_joined (relay);

    fail_unless_equals_int (get_depth (joined), 1);
  }
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer-%u", i);

    viewers[i] = pt_viewer_new (name, url, "tree", TRUE);
    pt_node_play (viewers[i]);
  }
  for (guint i = 0; i < 2; i++) {
    g_autoptr (GstStructure) joined = wait_joined (viewers[i]);

    fail_unless_equals_int (get_depth (joined), 2);
    fail_unless_equals_string (gst_structure_get_string (joined, "parent-id"), "relay");
    WAIT_UNTIL_MS (g_atomic_int_get (&viewers[i]->video_frames) > 0 ||
        pt_node_has_error (viewers[i]), PT_WAIT_MS);
    pt_node_assert_no_error (viewers[i]);
  }
  /* the leaf plays, and relays to nobody */
  WAIT_UNTIL_MS (g_atomic_int_get (&leaf->video_frames) > 0 || pt_node_has_error (leaf),
      PT_WAIT_MS);
  pt_node_assert_no_error (leaf);
  fail_unless_equals_int (pt_node_count_messages (leaf, "peertree-child-added"), 0);
  fail_unless_equals_int (get_stat_uint (leaf->pipeline, "src", "n-children"), 0);
  fail_unless_equals_int (get_stat_uint (relay->pipeline, "src", "n-children"), 2);
  {
    TreeEntry *t = g_hash_table_lookup (server->trees, "tree");

    fail_unless (t != NULL);
    fail_unless (pt_tree_is_leaf (t->tree, "leaf"));
    fail_unless_equals_int (pt_tree_get_n_children (t->tree, "leaf"), 0);
  }

  for (guint i = 0; i < 2; i++)
    pt_node_free (viewers[i]);
  pt_node_free (relay);
  pt_node_free (leaf);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;

/* Audio (raw → Opus in the sink) and H.264 video (openh264) reach a viewer
 * and are decoded there. Falls back to VP8 when no H.264 encoder exists. */
/* The source measures its bitrate and declares it (report-interval): a
 * viewer whose upload budget cannot carry one copy gets no child, the next
 * newcomer goes under the next member with room (breadth-first). */
static guint
declared_bitrate (PtNode *source)
{
  GstElement *s = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");
  GstStructure *stats = NULL;
  guint kbps = 0;

  g_object_get (s, "stats", &stats, NULL);
  gst_object_unref (s);
  if (stats) {
    gst_structure_get_uint (stats, "bitrate-kbps", &kbps);
    gst_structure_free (stats);
  }
  return kbps;
}

GST_START_TEST (test_upload_budget)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=%d,height=%d,framerate=30/1 ! "
      "vp8enc deadline=1 keyframe-max-dist=10000 target-bitrate=400000 ! "
      "peertreesink name=s server=%s tree-id=tree k1=2 k=2 report-interval=1 "
      "local-addresses=" PT_LOCAL, WIDTH, HEIGHT, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *thin, *wide, *late;
  g_autoptr (GstStructure) src_joined = NULL;

  pt_node_play (source);
  src_joined = wait_joined (source);
  thin = pt_viewer_new ("thin", url, "tree", FALSE);
  {
    GstElement *src = gst_bin_get_by_name (GST_BIN (thin->pipeline), "src");

    g_object_set (src, "max-upload-kbps", 50u, NULL);
    gst_object_unref (src);
  }
  pt_node_play (thin);
  {
    g_autoptr (GstStructure) joined = wait_joined (thin);

    fail_unless_equals_int (get_depth (joined), 1);
  }
  wide = pt_viewer_new ("wide", url, "tree", FALSE);
  pt_node_play (wide);
  {
    g_autoptr (GstStructure) joined = wait_joined (wide);

    fail_unless_equals_int (get_depth (joined), 1);
  }
  /* the source has measured its stream and told the server */
  WAIT_UNTIL_MS (declared_bitrate (source) > 50, PT_WAIT_MS);
  gst_print ("declared bitrate: %u kbit/s\n", declared_bitrate (source));
  late = pt_viewer_new ("late", url, "tree", TRUE);
  pt_node_play (late);
  {
    g_autoptr (GstStructure) joined = wait_joined (late);

    fail_unless_equals_int (get_depth (joined), 2);
    fail_unless_equals_string (gst_structure_get_string (joined, "parent-id"), "wide");
  }
  WAIT_UNTIL_MS (g_atomic_int_get (&late->video_frames) > 0 || pt_node_has_error (late),
      PT_WAIT_MS);
  pt_node_assert_no_error (late);
  fail_unless_equals_int (pt_node_count_messages (thin, "peertree-child-added"), 0);

  pt_node_free (late);
  pt_node_free (wide);
  pt_node_free (thin);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;

GST_START_TEST (test_audio_and_h264)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  GstElementFactory *h264 = gst_element_factory_find ("openh264enc");
  GstElementFactory *h264dec = gst_element_factory_find ("openh264dec");
  gboolean use_h264 = h264 != NULL && h264dec != NULL;
  g_autofree gchar *desc = g_strdup_printf (
      "peertreesink name=s server=%s tree-id=av video-codec=%s local-addresses=" PT_LOCAL
      " audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! s.audio_0 "
      " videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! s.video_0",
      url, use_h264 ? "h264" : "vp8");
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *viewer = pt_viewer_new ("viewer", url, "av", TRUE);
  g_autoptr (GstStructure) joined = NULL;

  if (!use_h264)
    GST_WARNING ("openh264 missing: testing VP8 instead of H.264");
  gst_clear_object (&h264);
  gst_clear_object (&h264dec);

  pt_node_play (source);
  joined = wait_joined (source);
  pt_node_play (viewer);
  g_clear_pointer (&joined, gst_structure_free);
  joined = wait_joined (viewer);
  fail_unless_equals_int (get_depth (joined), 1);

  WAIT_UNTIL_MS ((g_atomic_int_get (&viewer->audio_buffers) > 10 &&
          g_atomic_int_get (&viewer->video_frames) > 10) || pt_node_has_error (viewer)
      || pt_node_has_error (source), PT_WAIT_MS);
  pt_node_assert_no_error (source);
  pt_node_assert_no_error (viewer);
  g_mutex_lock (&viewer->lock);
  fail_unless_equals_string (viewer->audio_caps_name, "audio/x-raw");
  fail_unless_equals_string (viewer->video_caps_name, "video/x-raw");
  fail_unless_equals_int (viewer->video_width, 160);
  fail_unless_equals_int (viewer->video_height, 120);
  g_mutex_unlock (&viewer->lock);
  fail_unless_equals_int (get_stat_uint (viewer->pipeline, "src", "n-streams"), 2);
  fail_unless_equals_int (pt_count_elements_of_klass (viewer->pipeline, "Decoder/Audio"), 1);

  pt_node_free (viewer);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;

/* EOS into peertreesink ends the pipeline (gst-launch -e, file sources),
 * also after a child came and went (GstBin then drops the SINK flag). */
GST_START_TEST (test_sink_eos)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=64,height=48,framerate=30/1 ! peertreesink name=s server=%s tree-id=eos "
      "local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *viewer = pt_viewer_new ("viewer", url, "eos", FALSE);

  pt_node_play (source);
  gst_structure_free (wait_joined (source));
  pt_node_play (viewer);
  WAIT_UNTIL_MS (g_atomic_int_get (&viewer->video_frames) > 0, PT_WAIT_MS);
  pt_node_free (viewer);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-child-removed") == 1, PT_WAIT_MS);
  {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");

    fail_unless (GST_OBJECT_FLAG_IS_SET (sink, GST_ELEMENT_FLAG_SINK));
    gst_object_unref (sink);
  }

  fail_unless (gst_element_send_event (source->pipeline, gst_event_new_eos ()));
  WAIT_UNTIL_MS (pt_node_got_eos (source) || pt_node_has_error (source), PT_WAIT_MS);
  pt_node_assert_no_error (source);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;

static Suite *
peertree_tree_suite (void)
{
  Suite *s = suite_create ("peertree-tree");
  TCase *tc = tcase_create ("media");

  pt_gst_tolerate_rtpsession_race ();

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_tree_two_levels);
  tcase_add_test (tc, test_max_children_zero_gets_no_child);
  tcase_add_test (tc, test_upload_budget);
  tcase_add_test (tc, test_audio_and_h264);
  tcase_add_test (tc, test_sink_eos);
  return s;
}

GST_CHECK_MAIN (peertree_tree);
