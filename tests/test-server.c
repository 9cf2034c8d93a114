/* peertree-server with libpeertree clients, in one process over 127.0.0.1. */
#include "pt-test-util.h"

static JsonObject *
status_member (JsonNode *status, const char *tree_id, const char *member)
{
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  for (guint i = 0; i < json_array_get_length (trees); i++) {
    JsonObject *t = json_array_get_object_element (trees, i);
    if (g_strcmp0 (json_object_get_string_member (t, "id"), tree_id) != 0)
      continue;
    JsonArray *members = json_object_get_array_member (t, "members");
    for (guint j = 0; j < json_array_get_length (members); j++) {
      JsonObject *m = json_array_get_object_element (members, j);
      if (g_strcmp0 (json_object_get_string_member (m, "id"), member) == 0)
        return m;
    }
  }
  return NULL;
}

#define N_VIEWERS 30

/* 30 viewers join a k1=4, k=2 tree one after the other. Without churn,
 * breadth-first placement gives viewer i (0-based) the root while i < k1,
 * else viewer (i - k1) / k — checked here by that closed formula. */
GST_START_TEST (test_breadth_first_join_and_status)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "source");
  g_autofree char *tree = pt_test_create (src->client, "cam1", 2, 4, &error);
  fail_unless_equals_string (tree, "cam1");

  PtTestPeer *viewers[N_VIEWERS];
  for (guint i = 0; i < N_VIEWERS; i++) {
    g_autofree char *id = g_strdup_printf ("viewer%02u", i);
    g_autofree char *parent = NULL;
    guint depth = 0;
    viewers[i] = pt_test_peer_new (server, id);
    fail_unless (pt_test_join (viewers[i]->client, "cam1", &parent, &depth, &error),
        "join: %s", error ? error->message : "");
    const char *expected = i < 4 ? "source" : viewers[(i - 4) / 2]->id;
    fail_unless_equals_string (parent, expected);
    fail_unless_equals_string (viewers[i]->parent, expected);
    guint expected_depth = i < 4 ? 1 : viewers[(i - 4) / 2]->depth + 1;
    fail_unless_equals_int (depth, expected_depth);
  }
  /* Every parent was told about each of its children, in order. */
  WAIT_UNTIL (src->children->len == 4);
  for (guint i = 4; i < N_VIEWERS; i++) {
    PtTestPeer *parent = viewers[(i - 4) / 2];
    WAIT_UNTIL (g_ptr_array_find_with_equal_func (parent->children, viewers[i]->id, g_str_equal,
        NULL));
  }

  g_autoptr (JsonNode) status = pt_test_get_status (server);
  fail_unless (status != NULL);
  JsonObject *root = status_member (status, "cam1", "source");
  fail_unless (root != NULL);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (root, "children")), 4);
  for (guint i = 0; i < N_VIEWERS; i++) {
    JsonObject *m = status_member (status, "cam1", viewers[i]->id);
    fail_unless (m != NULL, "%s missing from /status", viewers[i]->id);
    fail_unless_equals_string (json_object_get_string_member (m, "parent"), viewers[i]->parent);
    fail_unless_equals_int (json_object_get_int_member (m, "depth"), viewers[i]->depth);
  }

  for (guint i = 0; i < N_VIEWERS; i++)
    pt_test_peer_free (viewers[i]);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* A mid-tree viewer's connection drops without a leave: within 1 s each of
 * its children has a new parent, which was told, and the tree stays valid. */
GST_START_TEST (test_dropped_relay_children_reparented)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, NULL, 2, 2, &error);
  fail_unless (tree != NULL);
  PtTestPeer *v[7];
  for (guint i = 0; i < 7; i++) {
    g_autofree char *id = g_strdup_printf ("v%u", i);
    v[i] = pt_test_peer_new (server, id);
    fail_unless (pt_test_join (v[i]->client, tree, NULL, NULL, &error));
  }
  /* v0 has v2 and v3; v2 has v6. */
  fail_unless_equals_string (v[2]->parent, "v0");
  fail_unless_equals_string (v[3]->parent, "v0");
  fail_unless_equals_string (v[6]->parent, "v2");

  gint64 start = g_get_monotonic_time ();
  /* Drop the connection: no leave message is sent. */
  peer_tree_client_close (v[0]->client);
  WAIT_UNTIL_MS (v[2]->upstream_changes == 2 && v[3]->upstream_changes == 2, 1000);
  gint64 elapsed = g_get_monotonic_time () - start;
  GST_INFO ("children re-parented %" G_GINT64_FORMAT " us after the drop", elapsed);
  fail_if (g_strcmp0 (v[2]->parent, "v0") == 0 || g_strcmp0 (v[3]->parent, "v0") == 0);
  /* The new parents are told; src lost v0 and has a slot for v2. */
  WAIT_UNTIL (!g_ptr_array_find_with_equal_func (src->children, "v0", g_str_equal, NULL));
  fail_unless_equals_string (v[2]->parent, "src");
  fail_unless_equals_int (v[2]->depth, 1);
  PtTestPeer *p3 = NULL;
  for (guint i = 1; i < 7; i++)
    if (g_strcmp0 (v[i]->id, v[3]->parent) == 0)
      p3 = v[i];
  fail_unless (p3 != NULL, "v3's new parent %s is not a viewer", v[3]->parent);
  WAIT_UNTIL (g_ptr_array_find_with_equal_func (p3->children, "v3", g_str_equal, NULL));
  /* v2 kept its own child. */
  fail_unless_equals_string (v[6]->parent, "v2");
  fail_unless_equals_int (v[6]->upstream_changes, 1);

  g_autoptr (JsonNode) status = pt_test_get_status (server);
  fail_unless (status_member (status, tree, "v0") == NULL);
  fail_unless_equals_string (json_object_get_string_member (status_member (status, tree, "v3"),
      "parent"), v[3]->parent);
  for (guint i = 0; i < 7; i++)
    pt_test_peer_free (v[i]);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* A member that gives its link up (reconnect-upstream) and lands under the
 * same parent again (the only one with room): the parent is told, as for
 * any move (the child left, a child came), so that it offers a new link
 * (else both waited: the member for an offer, the parent for nothing, its
 * old link still "up"). */
GST_START_TEST (test_reconnect_to_the_same_parent_renews_the_link)
{
  g_autoptr (PtServer) server = pt_test_server_new (1, 1);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, NULL, 1, 1, &error);
  fail_unless (tree != NULL);
  PtTestPeer *v = pt_test_peer_new (server, "v");
  fail_unless (pt_test_join (v->client, tree, NULL, NULL, &error));
  WAIT_UNTIL (src->children_added == 1);

  JsonObject *params = json_object_new ();
  json_object_set_string_member (params, "treeId", tree);
  g_autoptr (JsonObject) r = pt_test_request (v->client, "reconnect-upstream", params, &error);
  fail_unless (r != NULL, "%s", error ? error->message : "");
  fail_unless_equals_string (json_object_get_string_member (r, "parent"), "src");
  /* told that the child left and came again */
  WAIT_UNTIL (src->children_added == 2);
  fail_unless_equals_int (src->children->len, 1);
  fail_unless_equals_string (g_ptr_array_index (src->children, 0), "v");
  pt_test_peer_free (v);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_root_leave_closes_tree)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "t", 0, 0, &error);
  PtTestPeer *a = pt_test_peer_new (server, "a"), *b = pt_test_peer_new (server, "b");
  fail_unless (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error));

  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "treeId", "t");
  g_autoptr (JsonObject) res = pt_test_request (src->client, "leave", params, &error);
  fail_unless (res != NULL);
  WAIT_UNTIL (a->closed_reason && b->closed_reason);
  fail_unless_equals_string (a->closed_reason, "source-left");
  /* The tree is gone: joining it again fails. */
  fail_if (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TREE_NOT_FOUND));
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (
      json_node_get_object (status), "trees")), 0);
  pt_test_peer_free (a);
  pt_test_peer_free (b);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_source_disconnect_closes_tree)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "source-grace", 0, NULL);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, NULL, 0, 0, &error);
  PtTestPeer *a = pt_test_peer_new (server, "a");
  fail_unless (pt_test_join (a->client, tree, NULL, NULL, &error));
  peer_tree_client_close (src->client);
  WAIT_UNTIL (a->closed_reason != NULL);
  fail_unless_equals_string (a->closed_reason, "source-disconnected");
  pt_test_peer_free (a);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_refusals)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "t", 0, 0, &error);
  fail_unless (tree != NULL);

  /* Unknown tree. */
  PtTestPeer *a = pt_test_peer_new (server, "a");
  fail_if (pt_test_join (a->client, "nope", NULL, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TREE_NOT_FOUND),
      "%s", error->message);
  fail_unless (strstr (error->message, "nope") != NULL);
  g_clear_error (&error);

  /* Existing tree id. */
  g_autofree char *again = pt_test_create (a->client, "t", 0, 0, &error);
  fail_unless (again == NULL);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TREE_EXISTS));
  g_clear_error (&error);

  /* k above the server's maximum. */
  g_autofree char *big = pt_test_create (a->client, "t2", 5, 0, &error);
  fail_unless (big == NULL);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_BAD_REQUEST));
  g_clear_error (&error);

  /* Duplicate clientId: refused, and the first connection is untouched. */
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (PeerTreeClient) dup = peer_tree_client_new (url, "a");
  fail_if (pt_test_connect (dup, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_DUPLICATE_CLIENT_ID),
      "%s", error->message);
  g_clear_error (&error);
  fail_unless (peer_tree_client_is_connected (a->client));

  /* The source may not join its own tree; a non-member may not leave. */
  fail_if (pt_test_join (src->client, "t", NULL, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_IS_ROOT));
  g_clear_error (&error);

  /* Relay to a peer that is not the sender's parent or child. */
  PtTestPeer *b = pt_test_peer_new (server, "b");
  fail_unless (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error));
  g_autoptr (JsonObject) params = json_object_new ();
  JsonObject *data = json_object_new (), *sdp = json_object_new ();
  json_object_set_string_member (sdp, "type", "offer");
  json_object_set_string_member (sdp, "sdp", "v=0");
  json_object_set_object_member (data, "sdp", sdp);
  json_object_set_string_member (params, "treeId", "t");
  json_object_set_string_member (params, "to", "b");
  json_object_set_object_member (params, "data", data);
  g_autoptr (JsonObject) res = pt_test_request (a->client, "signal", params, &error);
  fail_unless (res == NULL);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_RELAY_REFUSED),
      "%s", error->message);
  g_clear_error (&error);
  fail_unless (b->last_sdp == NULL);

  /* Between parent and child it is relayed both ways, with the sender named. */
  peer_tree_client_send_sdp (src->client, "t", "a", "offer", "v=0 offer");
  WAIT_UNTIL (a->last_sdp != NULL);
  fail_unless_equals_string (a->last_sdp_from, "src");
  fail_unless_equals_string (a->last_sdp, "offer:v=0 offer");
  peer_tree_client_send_sdp (a->client, "t", "src", "answer", "v=0 answer");
  peer_tree_client_send_ice (a->client, "t", "src", 0, "candidate:1 1 UDP 1 127.0.0.1 9 typ host");
  WAIT_UNTIL (src->last_sdp != NULL && src->n_ice == 1);
  fail_unless_equals_string (src->last_sdp, "answer:v=0 answer");

  pt_test_peer_free (a);
  pt_test_peer_free (b);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_takeover_with_secret)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autofree char *url = pt_server_get_url (server);
  g_object_set (server, "allow-takeover", TRUE, NULL);

  g_autoptr (PeerTreeClient) first = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url,
      "client-id", "me", "secret", "s3cret", "auto-reconnect", FALSE, NULL);
  fail_unless (pt_test_connect (first, &error));
  g_autoptr (PeerTreeClient) wrong = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url,
      "client-id", "me", "secret", "guess", NULL);
  fail_if (pt_test_connect (wrong, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_DUPLICATE_CLIENT_ID));
  g_clear_error (&error);
  g_autoptr (PeerTreeClient) second = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url,
      "client-id", "me", "secret", "s3cret", NULL);
  fail_unless (pt_test_connect (second, &error), "%s", error ? error->message : "");
  WAIT_UNTIL (!peer_tree_client_is_connected (first));
  fail_unless_equals_int (pt_server_get_n_clients (server), 1);
}
GST_END_TEST;

static void
on_reconnected (PeerTreeClient *c, gboolean *flag)
{
  *flag = TRUE;
}

/* The client reconnects by itself under the same clientId after the server
 * comes back on the same port. */
GST_START_TEST (test_client_reconnects)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = pt_test_server_new (4, 10);
  guint port = pt_server_get_port (server);
  g_autoptr (PeerTreeClient) c = pt_test_client_new (server, "again");
  gboolean reconnected = FALSE;
  g_signal_connect (c, "reconnected", G_CALLBACK (on_reconnected), &reconnected);
  g_object_unref (server);
  WAIT_UNTIL (!peer_tree_client_is_connected (c));
  g_autoptr (PtServer) server2 = g_object_new (PT_TYPE_SERVER, "port", port, NULL);
  fail_unless (pt_server_listen (server2, &error), "%s", error ? error->message : "");
  WAIT_UNTIL (reconnected);
  fail_unless (peer_tree_client_is_connected (c));
  fail_unless_equals_string (peer_tree_client_get_client_id (c), "again");
  fail_unless_equals_int (pt_server_get_n_clients (server2), 1);
}
GST_END_TEST;


#define DATA_KEY "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

/* The source's data key registered at create reaches every member with its
 * placement; a malformed one is refused. A member that reports its parent
 * (report-relay) gets a new parent; so do its siblings; the relay keeps its
 * place as a leaf and is given no child afterwards. */
GST_START_TEST (test_data_key_and_report_relay)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "source");
  g_autoptr (GAsyncResult) res = NULL;

  peer_tree_client_create_with_data_key_async (src->client, "bad", 2, 2, "c2hvcnQ=", NULL,
      pt_test_store_result, &res);
  g_autofree char *none = peer_tree_client_create_finish (src->client, pt_test_await (&res),
      &error);
  fail_unless (none == NULL && g_error_matches (error, PEER_TREE_ERROR,
          PEER_TREE_ERROR_BAD_REQUEST), "a 5-byte key was accepted");
  g_clear_error (&error);
  g_clear_object (&res);

  peer_tree_client_create_with_data_key_async (src->client, "cam1", 2, 2, DATA_KEY, NULL,
      pt_test_store_result, &res);
  g_autofree char *tree = peer_tree_client_create_finish (src->client, pt_test_await (&res),
      &error);
  fail_unless_equals_string (tree, "cam1");
  g_autofree char *own = peer_tree_client_dup_data_key (src->client, "cam1");
  fail_unless_equals_string (own, DATA_KEY);

  /* source → {a, b}; a → {c, d}; b → {e} */
  PtTestPeer *v[5];
  for (guint i = 0; i < 5; i++) {
    g_autofree char *id = g_strdup_printf ("%c", 'a' + i);
    v[i] = pt_test_peer_new (server, id);
    fail_unless (pt_test_join (v[i]->client, "cam1", NULL, NULL, &error), "join: %s",
        error ? error->message : "");
    g_autofree char *key = peer_tree_client_dup_data_key (v[i]->client, "cam1");
    fail_unless_equals_string (key, DATA_KEY);
  }
  fail_unless_equals_string (v[2]->parent, "a");
  fail_unless_equals_string (v[3]->parent, "a");
  fail_unless_equals_string (v[4]->parent, "b");

  /* only one's own parent can be reported */
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "treeId", "cam1");
  json_object_set_string_member (params, "relay", "a");
  json_object_set_string_member (params, "reason", "forged");
  g_autoptr (JsonObject) refused = pt_test_request (v[4]->client, "report-relay", params, &error);
  fail_unless (refused == NULL && g_error_matches (error, PEER_TREE_ERROR,
          PEER_TREE_ERROR_RELAY_REFUSED));
  g_clear_error (&error);

  g_autoptr (JsonObject) ok = pt_test_request (v[2]->client, "report-relay", params, &error);
  fail_unless (ok != NULL, "report-relay: %s", error ? error->message : "");
  /* a's children c and d are placed elsewhere */
  WAIT_UNTIL (g_strcmp0 (v[2]->parent, "a") != 0 && g_strcmp0 (v[3]->parent, "a") != 0);
  fail_unless_equals_string (v[4]->parent, "b");
  WAIT_UNTIL (v[0]->children->len == 0);
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  JsonObject *a = status_member (status, "cam1", "a");
  fail_unless (a != NULL, "the reported relay keeps its place");
  fail_unless_equals_string (json_object_get_string_member (a, "parent"), "source");
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (a, "children")), 0);

  /* a newcomer is not placed under the demoted relay */
  PtTestPeer *e = pt_test_peer_new (server, "f");
  g_autofree char *parent = NULL;
  fail_unless (pt_test_join (e->client, "cam1", &parent, NULL, &error));
  fail_if (g_strcmp0 (parent, "a") == 0);

  pt_test_peer_free (e);
  for (guint i = 0; i < 5; i++)
    pt_test_peer_free (v[i]);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_unreachable_server)
{
  g_autoptr (GError) error = NULL;
  /* Bind then free a port so that nothing listens on it. */
  PtServer *server = pt_test_server_new (4, 10);
  g_autofree char *url = pt_server_get_url (server);
  g_object_unref (server);
  g_autoptr (PeerTreeClient) c = peer_tree_client_new (url, NULL);
  fail_if (pt_test_connect (c, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED), "%s",
      error->message);
  fail_unless (strstr (error->message, url) != NULL, "%s", error->message);
  g_clear_error (&error);
  g_autoptr (PeerTreeClient) bad = peer_tree_client_new ("http://127.0.0.1:1", NULL);
  fail_if (pt_test_connect (bad, &error));
  g_clear_error (&error);
}
GST_END_TEST;

static Suite *
server_suite (void)
{
  Suite *s = suite_create ("server");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_breadth_first_join_and_status);
  tcase_add_test (tc, test_dropped_relay_children_reparented);
  tcase_add_test (tc, test_root_leave_closes_tree);
  tcase_add_test (tc, test_source_disconnect_closes_tree);
  tcase_add_test (tc, test_refusals);
  tcase_add_test (tc, test_takeover_with_secret);
  tcase_add_test (tc, test_client_reconnects);
  tcase_add_test (tc, test_reconnect_to_the_same_parent_renews_the_link);
  tcase_add_test (tc, test_unreachable_server);
  tcase_add_test (tc, test_data_key_and_report_relay);
  return s;
}

GST_CHECK_MAIN (server);
