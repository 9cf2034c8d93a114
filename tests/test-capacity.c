/* Capacity-aware placement and overload shedding through a real server:
 * what members declare at join (maxChildren, maxUploadKbps, leaf), the
 * source's bitrateKbps, the capacity request (a lower room, an overload
 * report and its rate limit), and the refusal of bad values. */
#include "pt-test-util.h"
#include "pt-server-private.h"

static JsonObject *
request_ok (PeerTreeClient *c, const char *type, const char *params_json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = json_from_string (params_json, NULL);
  fail_unless (node != NULL, "bad test JSON: %s", params_json);
  JsonObject *res = pt_test_request (c, type, json_node_get_object (node), &error);
  fail_unless (res != NULL, "%s %s: %s", type, params_json, error ? error->message : "");
  return res;
}

static void
request_fails (PeerTreeClient *c, const char *type, const char *params_json, int code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = json_from_string (params_json, NULL);
  fail_unless (node != NULL, "bad test JSON: %s", params_json);
  g_autoptr (JsonObject) res = pt_test_request (c, type, json_node_get_object (node), &error);
  fail_unless (res == NULL, "%s %s succeeded", type, params_json);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, code), "%s %s: %s (%d), not %d", type,
      params_json, error->message, error->code, code);
}

static PtTree *
tree_of (PtServer *server, const char *tree_id)
{
  TreeEntry *t = g_hash_table_lookup (server->trees, tree_id);
  fail_unless (t != NULL, "no tree %s", tree_id);
  return t->tree;
}

static void
assert_tree_valid (PtServer *server, const char *tree_id)
{
  g_autoptr (GError) error = NULL;
  fail_unless (pt_tree_check (tree_of (server, tree_id), &error), "%s",
      error ? error->message : "");
}

/* Joins through the library's typed call, declaring a capacity. */
static char *
join_with_capacity (PeerTreeClient *c, const char *tree_id, gint max_children, guint upload)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  char *parent = NULL;
  peer_tree_client_join_with_capacity_async (c, tree_id, max_children, upload, NULL,
      pt_test_store_result, &res);
  fail_unless (peer_tree_client_join_finish (c, pt_test_await (&res), &parent, NULL, &error),
      "join: %s", error ? error->message : "");
  return parent;
}

static char *
join (PeerTreeClient *c, const char *tree_id)
{
  g_autoptr (GError) error = NULL;
  char *parent = NULL;
  fail_unless (pt_test_join (c, tree_id, &parent, NULL, &error), "join: %s",
      error ? error->message : "");
  return parent;
}

/* k1 = 2, k = 3: a declares 1 child, b is a leaf (max-children 0 through
 * the library, e through "leaf": true): the others fill breadth-first
 * around them, and neither leaf ever gets a child, also through
 * reconnect-upstream. */
GST_START_TEST (test_declared_children_respected)
{
  g_autoptr (PtServer) server = pt_test_server_new (3, 2);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autofree char *t = pt_test_create (src, "cam1", 0, 0, &error);
  fail_unless (t != NULL);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "a");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "b");
  g_autofree char *pa = join_with_capacity (a, "cam1", 1, 0);
  g_autofree char *pb = join_with_capacity (b, "cam1", 0, 0);
  fail_unless_equals_string (pa, "src");
  fail_unless_equals_string (pb, "src");
  fail_unless (pt_tree_is_leaf (tree_of (server, "cam1"), "b"));
  /* c under a (1 child at most); then b is skipped, a full: c takes 3 */
  const char *ids[] = { "c", "d", "e", "f", "g" };
  const char *expected[] = { "a", "c", "c", "c", "d" };
  PeerTreeClient *v[G_N_ELEMENTS (ids)];
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++) {
    v[i] = pt_test_client_new (server, ids[i]);
    g_autofree char *parent = NULL;
    if (i == 2) {
      g_autoptr (JsonObject) r = request_ok (v[i], "join", "{\"treeId\": \"cam1\", \"leaf\": true}");
      parent = g_strdup (json_object_get_string_member (r, "parent"));
    } else {
      parent = join (v[i], "cam1");
    }
    fail_unless_equals_string (parent, expected[i]);
    assert_tree_valid (server, "cam1");
  }
  /* g went under d: e (a leaf too) was skipped */
  PtTree *tree = tree_of (server, "cam1");
  for (guint round = 0; round < 6; round++) {
    g_autoptr (JsonObject) r = request_ok (v[4], "reconnect-upstream", "{\"treeId\": \"cam1\"}");
    fail_unless_equals_int (pt_tree_get_n_children (tree, "b"), 0);
    fail_unless_equals_int (pt_tree_get_n_children (tree, "e"), 0);
    fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 1);
  }
  fail_unless_equals_int (pt_tree_get_max_children (tree, "a"), 1);
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    g_object_unref (v[i]);
}
GST_END_TEST;

/* The source declares its bitrate at create: a budget of 1 200 kbit/s at
 * 500 kbit/s carries two children, at 300 (a new bitrate) three (k). */
GST_START_TEST (test_upload_budget_respected)
{
  g_autoptr (PtServer) server = pt_test_server_new (3, 1);
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autoptr (JsonObject) created = request_ok (src, "create",
      "{\"treeId\": \"cam1\", \"bitrateKbps\": 500}");
  PtTree *tree = tree_of (server, "cam1");
  fail_unless_equals_int (pt_tree_get_bitrate_kbps (tree), 500);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "a");
  g_autofree char *pa = join_with_capacity (a, "cam1", -1, 1200);
  fail_unless_equals_string (pa, "src");
  fail_unless_equals_int (pt_tree_get_capacity (tree, "a"), 2);
  const char *ids[] = { "b", "c", "d", "e" };
  const char *expected[] = { "a", "a", "b", "a" };
  PeerTreeClient *v[G_N_ELEMENTS (ids)];
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++) {
    if (i == 3) {
      /* only the source declares the bitrate */
      request_fails (a, "capacity", "{\"treeId\": \"cam1\", \"bitrateKbps\": 300}",
          PEER_TREE_ERROR_BAD_REQUEST);
      g_autoptr (JsonObject) r = request_ok (src, "capacity",
          "{\"treeId\": \"cam1\", \"bitrateKbps\": 300}");
      fail_unless_equals_int (pt_tree_get_capacity (tree, "a"), 3);
    }
    v[i] = pt_test_client_new (server, ids[i]);
    g_autofree char *parent = join (v[i], "cam1");
    fail_unless_equals_string (parent, expected[i]);
    assert_tree_valid (server, "cam1");
  }
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    g_object_unref (v[i]);
}
GST_END_TEST;

/* Every new field is checked like the existing ones: type, sign, range,
 * contradiction; a refused join leaves no trace in the tree. */
GST_START_TEST (test_bad_capacity_values_refused)
{
  g_autoptr (PtServer) server = pt_test_server_new (3, 2);
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autoptr (PeerTreeClient) v = pt_test_client_new (server, "v");
  g_autoptr (PeerTreeClient) outsider = pt_test_client_new (server, "outsider");
  const char *bad_joins[] = {
    "{\"treeId\": \"cam1\", \"maxChildren\": -1}",
    "{\"treeId\": \"cam1\", \"maxChildren\": \"2\"}",
    "{\"treeId\": \"cam1\", \"maxChildren\": 1.5}",
    "{\"treeId\": \"cam1\", \"maxChildren\": true}",
    "{\"treeId\": \"cam1\", \"maxChildren\": 1001}",
    "{\"treeId\": \"cam1\", \"maxChildren\": [1]}",
    "{\"treeId\": \"cam1\", \"maxUploadKbps\": -5}",
    "{\"treeId\": \"cam1\", \"maxUploadKbps\": \"fast\"}",
    "{\"treeId\": \"cam1\", \"maxUploadKbps\": 100000001}",
    "{\"treeId\": \"cam1\", \"leaf\": true, \"maxChildren\": 2}",
  };
  const char *bad_creates[] = {
    "{\"treeId\": \"cam2\", \"bitrateKbps\": -1}",
    "{\"treeId\": \"cam2\", \"bitrateKbps\": 10000001}",
    "{\"treeId\": \"cam2\", \"bitrateKbps\": \"600\"}",
  };
  const char *bad_capacity[] = {
    "{\"treeId\": \"cam1\", \"maxChildren\": -1}",
    "{\"treeId\": \"cam1\", \"maxUploadKbps\": 1e12}",
    "{\"treeId\": \"cam1\", \"overloaded\": \"yes\"}",
    "{\"treeId\": \"cam1\", \"bitrateKbps\": 100}",     /* not the source */
  };

  g_autoptr (JsonObject) created = request_ok (src, "create", "{\"treeId\": \"cam1\"}");
  for (guint i = 0; i < G_N_ELEMENTS (bad_joins); i++) {
    request_fails (v, "join", bad_joins[i], PEER_TREE_ERROR_BAD_REQUEST);
    fail_if (pt_tree_contains (tree_of (server, "cam1"), "v"), "%s placed it", bad_joins[i]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad_creates); i++) {
    request_fails (v, "create", bad_creates[i], PEER_TREE_ERROR_BAD_REQUEST);
    fail_if (g_hash_table_contains (server->trees, "cam2"), "%s made the tree", bad_creates[i]);
  }
  request_fails (v, "rejoin", "{\"treeId\": \"cam1\", \"parent\": \"src\", \"maxChildren\": -3}",
      PEER_TREE_ERROR_BAD_REQUEST);
  fail_if (pt_tree_contains (tree_of (server, "cam1"), "v"));
  /* capacity: members only, about themselves */
  request_fails (outsider, "capacity", "{\"treeId\": \"cam1\", \"maxChildren\": 1}",
      PEER_TREE_ERROR_NOT_MEMBER);
  request_fails (outsider, "capacity", "{\"treeId\": \"nope\", \"overloaded\": true}",
      PEER_TREE_ERROR_TREE_NOT_FOUND);
  g_autofree char *parent = join_with_capacity (v, "cam1", 2, 0);
  for (guint i = 0; i < G_N_ELEMENTS (bad_capacity); i++) {
    request_fails (v, "capacity", bad_capacity[i], PEER_TREE_ERROR_BAD_REQUEST);
    fail_unless_equals_int (pt_tree_get_max_children (tree_of (server, "cam1"), "v"), 2);
  }
  /* the upper bounds themselves are fine */
  g_autoptr (JsonObject) r = request_ok (v, "capacity",
      "{\"treeId\": \"cam1\", \"maxChildren\": 1000, \"maxUploadKbps\": 100000000}");
  fail_unless_equals_int (pt_tree_get_capacity (tree_of (server, "cam1"), "v"), 3);
}
GST_END_TEST;

static gboolean
has (GPtrArray *ids, const char *id)
{
  return g_ptr_array_find_with_equal_func (ids, id, g_str_equal, NULL);
}

/* An overloaded relay: its newest child moves (and is told so, as are both
 * parents), its room drops to what it keeps, a second report within the
 * interval is refused, and newcomers go elsewhere. Declaring a lower room
 * then moves the extras that can go somewhere. */
GST_START_TEST (test_overload_sheds_newest_child)
{
  g_autoptr (PtServer) server = pt_test_server_new (3, 1);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *t = pt_test_create (src->client, "cam1", 0, 0, &error);
  fail_unless (t != NULL);
  PtTestPeer *r = pt_test_peer_new (server, "r");
  g_autofree char *pr = join (r->client, "cam1");
  fail_unless_equals_string (pr, "src");
  const char *ids[] = { "a", "b", "c" };
  PtTestPeer *v[3];
  for (guint i = 0; i < 3; i++) {
    v[i] = pt_test_peer_new (server, ids[i]);
    g_autofree char *parent = join (v[i]->client, "cam1");
    fail_unless_equals_string (parent, "r");
  }
  WAIT_UNTIL (r->children->len == 3);

  g_autoptr (GAsyncResult) res = NULL;
  guint max_children = 99;
  g_auto (GStrv) moved = NULL;
  peer_tree_client_report_overload_async (r->client, "cam1", NULL, pt_test_store_result, &res);
  fail_unless (peer_tree_client_capacity_finish (r->client, pt_test_await (&res), &max_children,
      &moved, &error), "overload: %s", error ? error->message : "");
  fail_unless_equals_int (max_children, 2);
  fail_unless_equals_int (g_strv_length (moved), 1);
  fail_unless_equals_string (moved[0], "c");
  /* c went under a, the first member with room in breadth-first order */
  PtTree *tree = tree_of (server, "cam1");
  fail_unless_equals_string (pt_tree_get_parent (tree, "c"), "a");
  fail_unless_equals_int (pt_tree_get_max_children (tree, "r"), 2);
  assert_tree_valid (server, "cam1");
  WAIT_UNTIL (v[2]->parent && g_str_equal (v[2]->parent, "a"));
  WAIT_UNTIL (has (v[0]->children, "c"));
  WAIT_UNTIL (!has (r->children, "c") && r->children->len == 2);
  fail_unless_equals_int (v[2]->depth, 3);

  /* rate limited */
  g_clear_object (&res);
  peer_tree_client_report_overload_async (r->client, "cam1", NULL, pt_test_store_result, &res);
  fail_if (peer_tree_client_capacity_finish (r->client, pt_test_await (&res), NULL, NULL,
      &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_LIMIT), "%s",
      error->message);
  g_clear_error (&error);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "r"), 2);

  /* r takes no third child any more */
  PtTestPeer *d = pt_test_peer_new (server, "d");
  g_autofree char *pd = join (d->client, "cam1");
  fail_unless_equals_string (pd, "a");

  /* declaring a lower room moves the extras, newest first */
  g_clear_object (&res);
  g_clear_pointer (&moved, g_strfreev);
  peer_tree_client_set_capacity_async (r->client, "cam1", 0, 0, NULL, pt_test_store_result, &res);
  fail_unless (peer_tree_client_capacity_finish (r->client, pt_test_await (&res), &max_children,
      &moved, &error), "set capacity: %s", error ? error->message : "");
  fail_unless_equals_int (max_children, 0);
  /* b goes under a; a itself has nowhere to go (everyone else is in its
   * subtree or full): it stays, the only child r keeps */
  fail_unless_equals_int (g_strv_length (moved), 1);
  fail_unless_equals_string (moved[0], "b");
  fail_unless_equals_string (pt_tree_get_parent (tree, "b"), "a");
  fail_unless_equals_string (pt_tree_get_parent (tree, "a"), "r");
  fail_unless (pt_tree_is_leaf (tree, "r"));
  assert_tree_valid (server, "cam1");
  WAIT_UNTIL (r->children->len == 1 && has (v[0]->children, "b"));
  WAIT_UNTIL (v[1]->parent && g_str_equal (v[1]->parent, "a"));

  pt_test_peer_free (d);
  for (guint i = 0; i < 3; i++)
    pt_test_peer_free (v[i]);
  pt_test_peer_free (r);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* With no other member that has room the child stays; the relay just takes
 * no more. */
GST_START_TEST (test_overload_with_nowhere_to_go)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autofree char *t = pt_test_create (src, "cam1", 0, 0, &error);
  g_autoptr (PeerTreeClient) r = pt_test_client_new (server, "r");
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "a");
  g_autofree char *pr = join (r, "cam1");
  g_autofree char *pa = join_with_capacity (a, "cam1", 0, 0);
  fail_unless_equals_string (pa, "r");
  g_autoptr (JsonObject) res = request_ok (r, "capacity",
      "{\"treeId\": \"cam1\", \"overloaded\": true}");
  fail_unless_equals_int (json_object_get_int_member (res, "maxChildren"), 1);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (res, "moved")), 0);
  fail_unless_equals_string (pt_tree_get_parent (tree_of (server, "cam1"), "a"), "r");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "b");
  request_fails (b, "join", "{\"treeId\": \"cam1\"}", PEER_TREE_ERROR_LIMIT);
}
GST_END_TEST;

static Suite *
capacity_suite (void)
{
  Suite *s = suite_create ("capacity");
  TCase *tc = tcase_create ("capacity");
  tcase_add_test (tc, test_declared_children_respected);
  tcase_add_test (tc, test_upload_budget_respected);
  tcase_add_test (tc, test_bad_capacity_values_refused);
  tcase_add_test (tc, test_overload_sheds_newest_child);
  tcase_add_test (tc, test_overload_with_nowhere_to_go);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (capacity);
