/* peertreesink and peertreesrc on three peertree-server processes sharing a
 * throw-away redis-server (--redis): a tree whose source is on server A and
 * viewers on B and C gets frames; B is killed: its viewer moves to C (its
 * server property lists both), keeps its place and its frames, and a new
 * viewer joins through C. Skipped (77) without redis-server. */
#include "pt-gst-test-util.h"
#include "../pt-test-cluster.h"

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

static void
wait_frames (PtNode *v, gint more_than)
{
  WAIT_UNTIL_MS (g_atomic_int_get (&v->video_frames) > more_than || pt_node_has_error (v),
      PT_WAIT_MS);
  pt_node_assert_no_error (v);
}

GST_START_TEST (test_tree_on_three_servers)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 2, 1), *b = server_spawn (redis, 2, 1),
      *c = server_spawn (redis, 2, 1);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,width=160,height=120,framerate=30/1 ! vp8enc deadline=1 ! "
      "peertreesink server=%s tree-id=t k1=1 k=2 local-addresses=" PT_LOCAL, a->url);
  PtNode *source = pt_node_new_launch ("source", desc);
  pt_node_play (source);
  g_autoptr (GstStructure) sj = wait_joined (source);
  const gchar *source_id = gst_structure_get_string (sj, "client-id");

  /* vb on B (then C), under the source; vc on C (then A), under vb */
  g_autofree gchar *urls_b = g_strdup_printf ("%s,%s", b->url, c->url);
  g_autofree gchar *urls_c = g_strdup_printf ("%s,%s", c->url, a->url);
  PtNode *vb = pt_viewer_new ("vb", urls_b, "t", TRUE);
  pt_node_play (vb);
  g_autoptr (GstStructure) jb = wait_joined (vb);
  PtNode *vc = pt_viewer_new ("vc", urls_c, "t", TRUE);
  pt_node_play (vc);
  g_autoptr (GstStructure) jc = wait_joined (vc);
  fail_unless_equals_string (gst_structure_get_string (jc, "parent-id"), "vb");
  wait_frames (vb, 0);
  wait_frames (vc, 0);

  /* B dies: vb reconnects to C and rejoins; both keep getting frames */
  server_kill (b);
  WAIT_UNTIL_MS (pt_node_count_messages (vb, "peertree-server-reconnected") >= 1, PT_WAIT_MS);
  WAIT_UNTIL_MS (has_parent (a, "t", "vb", source_id) && has_parent (a, "t", "vc", "vb"),
      PT_WAIT_MS);
  gint fb = g_atomic_int_get (&vb->video_frames), fc = g_atomic_int_get (&vc->video_frames);
  wait_frames (vb, fb + 10);
  wait_frames (vc, fc + 10);

  /* a new viewer through C (then A) gets frames */
  PtNode *vn = pt_viewer_new ("vn", urls_c, "t", TRUE);
  pt_node_play (vn);
  g_autoptr (GstStructure) jn = wait_joined (vn);
  wait_frames (vn, 0);
  run_for (200);

  pt_node_free (vn);
  pt_node_free (vc);
  pt_node_free (vb);
  pt_node_free (source);
  server_free (c);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

static Suite *
gst_cluster_suite (void)
{
  pt_test_redis_require ();
  Suite *s = suite_create ("gst-cluster");
  TCase *tc = tcase_create ("general");

  pt_gst_tolerate_rtpsession_race ();
  tcase_set_timeout (tc, 180);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_tree_on_three_servers);
  return s;
}

GST_CHECK_MAIN (gst_cluster);
