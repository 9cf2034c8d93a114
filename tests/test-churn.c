/* Churn at the signalling level: the source's grace period and reclaim, and
 * rebuilding trees from what members report after a server restart. */
#include <signal.h>
#include <sys/prctl.h>

#include "pt-test-util.h"

static const char *
status_parent (PtServer *server, const char *tree, const char *member, gboolean *found)
{
  static char parent[128];
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  *found = FALSE;
  for (guint i = 0; i < json_array_get_length (trees); i++) {
    JsonObject *t = json_array_get_object_element (trees, i);
    if (g_strcmp0 (json_object_get_string_member (t, "id"), tree) != 0)
      continue;
    JsonArray *members = json_object_get_array_member (t, "members");
    for (guint j = 0; j < json_array_get_length (members); j++) {
      JsonObject *m = json_array_get_object_element (members, j);
      if (g_strcmp0 (json_object_get_string_member (m, "id"), member) == 0) {
        *found = TRUE;
        g_strlcpy (parent, json_object_get_string_member (m, "parent") ?
            json_object_get_string_member (m, "parent") : "", sizeof parent);
        return parent;
      }
    }
  }
  return NULL;
}

GST_START_TEST (test_source_grace_and_reclaim)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "source-grace", 2, NULL);
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (url, "cam", "tree-secret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *v[4];
  for (guint i = 0; i < 4; i++) {
    g_autofree char *id = g_strdup_printf ("v%u", i);
    v[i] = pt_test_peer_new_full (url, id, NULL);
    fail_unless (pt_test_join (v[i]->client, "t", NULL, NULL, &error));
  }
  /* The source vanishes: the tree stays, its members are told. */
  peer_tree_client_close (src->client);
  WAIT_UNTIL (v[0]->source_lost == 1 && v[3]->source_lost == 1);
  gboolean found;
  fail_unless_equals_string (status_parent (server, "t", "v2", &found), "v0");
  fail_unless (found);
  fail_unless (v[0]->closed_reason == NULL);

  /* A connection that says hello with the departed source's clientId and
   * another secret is refused: the id stays the source's during its grace
   * period (issue 14, V7). */
  g_autoptr (PeerTreeClient) impostor = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url,
      "client-id", "cam", "secret", "not-the-secret", NULL);
  fail_if (pt_test_connect (impostor, &error));
  fail_unless (strstr (error->message, "reserved") != NULL, "%s", error->message);
  g_clear_error (&error);

  /* Someone else cannot take it; a new process with the secret can. */
  PtTestPeer *thief = pt_test_peer_new_full (url, "thief", "guess");
  g_autofree char *stolen = pt_test_create (thief->client, "t", 0, 0, &error);
  fail_unless (stolen == NULL);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TREE_EXISTS));
  g_clear_error (&error);
  PtTestPeer *src2 = pt_test_peer_new_full (url, "cam-restarted", "tree-secret");
  g_autofree char *back = pt_test_create (src2->client, "t", 0, 0, &error);
  fail_unless_equals_string (back, "t");
  /* New root id: its children expect new offers from it; the rest is untouched. */
  WAIT_UNTIL (src2->children_added == 2);
  WAIT_UNTIL (v[0]->upstream_changes == 2 && v[1]->upstream_changes == 2);
  fail_unless_equals_string (v[0]->parent, "cam-restarted");
  fail_unless_equals_int (v[2]->upstream_changes, 1);
  fail_unless_equals_string (status_parent (server, "t", "v2", &found), "v0");

  /* Gone again, and not back within the grace period: the tree closes. */
  peer_tree_client_close (src2->client);
  WAIT_UNTIL_MS (v[0]->closed_reason && v[3]->closed_reason, 5000);
  fail_unless_equals_string (v[0]->closed_reason, "source-timeout");
  status_parent (server, "t", "v0", &found);
  fail_if (found);
  for (guint i = 0; i < 4; i++)
    pt_test_peer_free (v[i]);
  pt_test_peer_free (src);
  pt_test_peer_free (src2);
  pt_test_peer_free (thief);
}
GST_END_TEST;

/* The server restarts on the same port: every client reconnects by itself and
 * re-registers; the tree comes back with the same shape and nobody is told to
 * change parent (the media links never stopped); joins work again. */
GST_START_TEST (test_server_restart_rebuilds_tree)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = pt_test_server_new (4, 10);
  guint port = pt_server_get_port (server);
  g_autofree char *url = pt_server_get_url (server);
  PtTestPeer *src = pt_test_peer_new_full (url, "cam", NULL);
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *v[8];
  for (guint i = 0; i < 8; i++) {
    g_autofree char *id = g_strdup_printf ("v%u", i);
    v[i] = pt_test_peer_new_full (url, id, NULL);
    fail_unless (pt_test_join (v[i]->client, "t", NULL, NULL, &error));
  }
  char *before[8];
  for (guint i = 0; i < 8; i++)
    before[i] = g_strdup (v[i]->parent);
  /* v7 (a leaf under v2) dies while the server is down. */
  g_object_unref (server);
  peer_tree_client_close (v[7]->client);
  g_usleep (200 * 1000);
  PtServer *server2 = g_object_new (PT_TYPE_SERVER, "port", port, "source-grace", 8, NULL);
  fail_unless (pt_server_listen (server2, &error), "%s", error ? error->message : "");

  /* Everyone but v7 is back where it was. */
  gboolean found = FALSE;
  for (guint i = 0; i < 7; i++) {
    WAIT_UNTIL_MS ((status_parent (server2, "t", v[i]->id, &found), found), 10000);
    fail_unless_equals_string (status_parent (server2, "t", v[i]->id, &found), before[i]);
    fail_unless_equals_int (v[i]->upstream_changes, 1); /* only the original join */
  }
  status_parent (server2, "t", "v7", &found);
  fail_if (found);
  /* A new viewer joins the rebuilt tree at the shallowest free slot, as deep
   * as v7 was (the order of children may differ from before the restart). */
  PtTestPeer *late = pt_test_peer_new_full (url, "late", NULL);
  guint depth = 0;
  fail_unless (pt_test_join (late->client, "t", NULL, &depth, &error), "%s",
      error ? error->message : "");
  fail_unless_equals_int (depth, 3);
  for (guint i = 0; i < 8; i++) {
    g_free (before[i]);
    pt_test_peer_free (v[i]);
  }
  pt_test_peer_free (late);
  pt_test_peer_free (src);
  g_object_unref (server2);
}
GST_END_TEST;

/* Issue 14 V6: after a restart, a client that reports a place under a
 * parent which does not list it as a child is not attached there in silence
 * (it could squat slots and talk to that parent unannounced): it is placed
 * like a join and its parent is told. The real children, which the parent
 * lists, are re-attached silently. */
GST_START_TEST (test_rejoin_needs_parent_confirmation)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = pt_test_server_new (4, 10);
  guint port = pt_server_get_port (server);
  g_autofree char *url = pt_server_get_url (server);
  PtTestPeer *src = pt_test_peer_new_full (url, "studio", NULL);
  g_autofree char *tree = pt_test_create (src->client, "t", 4, 4, &error);
  PtTestPeer *a = pt_test_peer_new_full (url, "a", NULL);
  PtTestPeer *b = pt_test_peer_new_full (url, "b", NULL);
  fail_unless (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error));
  WAIT_UNTIL (src->children_added == 2);

  g_object_unref (server);
  PtServer *server2 = g_object_new (PT_TYPE_SERVER, "port", port, "source-grace", 8, NULL);
  fail_unless (pt_server_listen (server2, &error), "%s", error ? error->message : "");
  /* the squatter claims a place under the source, which never had it */
  g_autoptr (PeerTreeClient) x = pt_test_client_new (server2, "x");
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "treeId", "t");
  json_object_set_string_member (params, "parent", "studio");
  g_autoptr (JsonObject) res = pt_test_request (x, "rejoin", params, &error);
  fail_unless (res != NULL, "%s", error ? error->message : "");

  gboolean found = FALSE;
  WAIT_UNTIL_MS ((status_parent (server2, "t", "x", &found), found), 10000);
  /* the source was told of its new child... */
  WAIT_UNTIL_MS (src->children_added == 3, 10000);
  fail_unless (g_ptr_array_find_with_equal_func (src->children, "x", g_str_equal, NULL));
  /* ...while its real children came back in silence */
  WAIT_UNTIL_MS ((status_parent (server2, "t", "a", &found), found) &&
      (status_parent (server2, "t", "b", &found), found), 10000);
  fail_unless_equals_string (status_parent (server2, "t", "a", &found), "studio");
  fail_unless_equals_string (status_parent (server2, "t", "b", &found), "studio");
  fail_unless_equals_int (a->upstream_changes, 1);
  fail_unless_equals_int (b->upstream_changes, 1);
  pt_test_peer_free (a);
  pt_test_peer_free (b);
  pt_test_peer_free (src);
  g_object_unref (server2);
}
GST_END_TEST;

/* After a restart, a member whose parent does not come back is placed
 * elsewhere once the grace period ends, and told to reconnect. */
GST_START_TEST (test_server_restart_orphan_replaced)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = pt_test_server_new (4, 10);
  guint port = pt_server_get_port (server);
  g_autofree char *url = pt_server_get_url (server);
  PtTestPeer *src = pt_test_peer_new_full (url, "cam", NULL);
  g_autofree char *tree = pt_test_create (src->client, "t", 1, 1, &error);
  PtTestPeer *a = pt_test_peer_new_full (url, "a", NULL);
  PtTestPeer *b = pt_test_peer_new_full (url, "b", NULL);
  fail_unless (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error));
  fail_unless_equals_string (b->parent, "a");
  g_object_unref (server);
  peer_tree_client_close (a->client); /* b's parent dies with the server */
  PtServer *server2 = g_object_new (PT_TYPE_SERVER, "port", port, "source-grace", 1, NULL);
  fail_unless (pt_server_listen (server2, &error));
  WAIT_UNTIL_MS (b->upstream_changes == 2, 8000);
  fail_unless_equals_string (b->parent, "cam");
  WAIT_UNTIL (src->children_added == 2); /* a before the restart, b after */
  pt_test_peer_free (a);
  pt_test_peer_free (b);
  pt_test_peer_free (src);
  g_object_unref (server2);
}
GST_END_TEST;

/* The signals a reply causes (tree-joined) come before the events the server
 * sent after that reply (downstream-added), even when both are read at once
 * in the main loop iteration that sent the request, where GTask defers
 * completing it. A restarted source reclaiming its tree hears of its
 * children right after the reply, and must know its tree by then. The server
 * runs in a process of its own, so it answers while this process is still
 * inside the read callback that sent the request. */
typedef struct {
  PeerTreeClient *client;
  GString *order;
  GAsyncResult *res;
  gboolean child_before_callback;       /* the case under test did happen */
} Reclaimer;

static void
order_joined (PeerTreeClient *c, const char *tree, guint depth, Reclaimer *r)
{
  g_string_append_printf (r->order, "joined:%s ", tree);
}

static void
order_child (PeerTreeClient *c, const char *tree, const char *child, Reclaimer *r)
{
  g_string_append_printf (r->order, "child:%s ", child);
  r->child_before_callback = r->res == NULL;
}

static void
reclaim_now (PeerTreeClient *c, PeerTreeMessage *msg, Reclaimer *r)
{
  peer_tree_client_create_async (r->client, "t", 0, 0, NULL, pt_test_store_result, &r->res);
  /* still in the read callback: the server's reply and the event after it
   * arrive before this one returns */
  g_usleep (500 * G_TIME_SPAN_MILLISECOND);
}

/* in the server's process, before exec: die with the test, whatever happens
 * to it */
static void
die_with_parent (gpointer data)
{
  (void) data;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static GSubprocess *
spawn_server (char **url)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  GSubprocess *proc = g_subprocess_launcher_spawn (launcher, &error, PEERTREE_SERVER,
      "--port", "0", "--source-grace", "30", NULL);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  const char *at = line ? strstr (line, "ws://") : NULL;
  fail_unless (at != NULL, "no URL in \"%s\"", line ? line : "");
  *url = g_strndup (at, strcspn (at, " "));
  return proc;
}

GST_START_TEST (test_reply_signals_before_later_events)
{
  g_autofree char *url = NULL;
  g_autoptr (GSubprocess) server = spawn_server (&url);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (url, "cam", "tree-secret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *viewer = pt_test_peer_new_full (url, "viewer", NULL);
  fail_unless (pt_test_join (viewer->client, "t", NULL, NULL, &error));
  peer_tree_client_close (src->client);
  WAIT_UNTIL (viewer->source_lost == 1);

  /* the restarted source reclaims its tree from inside a message callback */
  Reclaimer r = { NULL, g_string_new (NULL), NULL, FALSE };
  r.client = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", "cam", "secret",
      "tree-secret", NULL);
  fail_unless (pt_test_connect (r.client, &error), "%s", error ? error->message : "");
  g_signal_connect (r.client, "tree-joined", G_CALLBACK (order_joined), &r);
  g_signal_connect (r.client, "downstream-added", G_CALLBACK (order_child), &r);
  g_signal_connect (r.client, "message::reclaim", G_CALLBACK (reclaim_now), &r);
  fail_unless (peer_tree_client_emit (viewer->client, "cam", "reclaim", NULL));
  g_autofree char *reclaimed = peer_tree_client_create_finish (r.client, pt_test_await (&r.res),
      &error);
  fail_unless_equals_string (reclaimed, "t");
  WAIT_UNTIL (strstr (r.order->str, "child:") != NULL);
  fail_unless_equals_string (r.order->str, "joined:t child:viewer ");
  /* otherwise the reply came in a later iteration and nothing was tested */
  fail_unless (r.child_before_callback,
      "the reply was not read while the request's callback ran (server too slow?)");

  g_clear_object (&r.res);
  g_string_free (r.order, TRUE);
  g_object_unref (r.client);
  pt_test_peer_free (viewer);
  pt_test_peer_free (src);
  g_subprocess_send_signal (server, SIGTERM);
  fail_unless (g_subprocess_wait (server, NULL, NULL));
}

GST_END_TEST;

static Suite *
churn_suite (void)
{
  Suite *s = suite_create ("churn");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_source_grace_and_reclaim);
  tcase_add_test (tc, test_reply_signals_before_later_events);
  tcase_add_test (tc, test_server_restart_rebuilds_tree);
  tcase_add_test (tc, test_server_restart_orphan_replaced);
  tcase_add_test (tc, test_rejoin_needs_parent_confirmation);
  return s;
}

GST_CHECK_MAIN (churn);
