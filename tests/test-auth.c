/* Tokens, rights and per-IP limits (issue 14): a server with --auth-key
 * refuses a hello without a valid token, holds every request against the
 * token's rights, places relay-less viewers as leaves, keeps /status and the
 * peertree service for admins; the per-IP caps refuse at accept. Only
 * 127.0.0.1 is used. */
#include "pt-test-util.h"
#include "pt-server-private.h" /* the refusal log's counters */

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib/gstdio.h>

static char *key_path;
static GBytes *key;

static void
setup (void)
{
  g_autoptr (GError) error = NULL;
  int fd = g_file_open_tmp ("peertree-key-XXXXXX", &key_path, &error);
  fail_unless (fd >= 0, "%s", error ? error->message : "");
  close (fd);
  fail_unless (g_file_set_contents (key_path, "0123456789abcdef0123456789abcdef-test-key\n", -1,
      &error));
  key = pt_auth_load_key (key_path, &error);
  fail_unless (key != NULL, "%s", error ? error->message : "");
}

static void
teardown (void)
{
  g_unlink (key_path);
  g_clear_pointer (&key_path, g_free);
  g_clear_pointer (&key, g_bytes_unref);
}

/* A token for @sub, expiring @exp_in s from now, with @rights (a JSON object
 * text merged into the claims, or NULL), signed with @with (NULL: the
 * server's key). */
static char *
mint_with (GBytes *with, const char *sub, gint64 exp_in, const char *rights)
{
  g_autoptr (JsonNode) node = json_from_string (rights ? rights : "{}", NULL);
  fail_unless (node && JSON_NODE_HOLDS_OBJECT (node), "bad rights %s", rights);
  JsonObject *claims = json_node_get_object (node);
  json_object_set_string_member (claims, "sub", sub);
  json_object_set_int_member (claims, "exp", g_get_real_time () / G_USEC_PER_SEC + exp_in);
  return pt_auth_sign (with ? with : key, claims);
}

static char *
mint (const char *sub, const char *rights)
{
  return mint_with (NULL, sub, 3600, rights);
}

static PtServer *
auth_server_new (guint k, guint k1)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0, "k", k,
      "k1", k1, "auth-key", key_path, NULL);
  fail_unless (pt_server_listen (server, &error), "listen: %s", error ? error->message : "");
  return server;
}

/* Connects as @id (NULL: none asked) with @token; NULL with @error if refused. */
static PeerTreeClient *
connect_with (PtServer *server, const char *id, const char *token, GError **error)
{
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (PeerTreeClient) c = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", id,
      "token", token, "auto-reconnect", FALSE, NULL);
  if (!pt_test_connect (c, error))
    return NULL;
  return g_steal_pointer (&c);
}

static PeerTreeClient *
connect_ok (PtServer *server, const char *id, const char *rights)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *token = mint (id, rights);
  PeerTreeClient *c = connect_with (server, id, token, &error);
  fail_unless (c != NULL, "connect %s: %s", id, error ? error->message : "");
  return c;
}

static void
assert_refused (PtServer *server, const char *id, const char *token, int code, const char *what)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) c = connect_with (server, id, token, &error);
  fail_unless (c == NULL, "%s: hello accepted", what);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, code), "%s: got %s (%d)", what,
      error->message, error->code);
}

/* A request that must fail with @code. */
static void
request_fails (PeerTreeClient *c, const char *type, const char *params_json, int code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = json_from_string (params_json, NULL);
  g_autoptr (JsonObject) res = pt_test_request (c, type, json_node_get_object (node), &error);
  fail_unless (res == NULL, "%s %s succeeded", type, params_json);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, code), "%s %s: %s (%d), not %d", type,
      params_json, error->message, error->code, code);
}

static JsonObject *
request_ok (PeerTreeClient *c, const char *type, const char *params_json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = json_from_string (params_json, NULL);
  JsonObject *res = pt_test_request (c, type, json_node_get_object (node), &error);
  fail_unless (res != NULL, "%s %s: %s", type, params_json, error ? error->message : "");
  return res;
}

/* ---- hello ---------------------------------------------------------------- */

GST_START_TEST (test_hello_needs_a_valid_token)
{
  g_autoptr (PtServer) server = auth_server_new (4, 10);
  g_autoptr (GBytes) other_key = g_bytes_new_static ("another key, 32 bytes or more......", 35);
  g_autofree char *good = mint ("v1", "{\"trees\": {\"view\": [\"*\"]}}");
  g_autofree char *expired = mint_with (NULL, "v1", -5, NULL);
  g_autofree char *foreign = mint_with (other_key, "v1", 3600, NULL);
  g_autofree char *not_yet = mint ("v1", "{\"nbf\": 99999999999}");
  g_autofree char *no_exp = NULL;

  assert_refused (server, "v1", NULL, PEER_TREE_ERROR_UNAUTHORIZED, "no token");
  assert_refused (server, "v1", "", PEER_TREE_ERROR_UNAUTHORIZED, "empty token");
  assert_refused (server, "v1", "not.a.token", PEER_TREE_ERROR_UNAUTHORIZED, "garbage");
  assert_refused (server, "v1", expired, PEER_TREE_ERROR_UNAUTHORIZED, "expired");
  assert_refused (server, "v1", foreign, PEER_TREE_ERROR_UNAUTHORIZED, "wrong signature");
  assert_refused (server, "v1", not_yet, PEER_TREE_ERROR_UNAUTHORIZED, "nbf to come");
  /* the token binds its clientId */
  assert_refused (server, "v2", good, PEER_TREE_ERROR_FORBIDDEN, "sub mismatch");

  /* altered claims: the signature no longer holds */
  {
    g_auto (GStrv) parts = g_strsplit (good, ".", 3);
    const char *text = "{\"sub\":\"v1\",\"exp\":99999999999,\"admin\":true}";
    g_autofree char *admin_claims = g_base64_encode ((const guchar *) text, strlen (text));
    for (char *p = admin_claims; *p; p++)
      *p = *p == '+' ? '-' : *p == '/' ? '_' : *p == '=' ? '\0' : *p;
    g_autofree char *forged = g_strjoin (".", parts[0], admin_claims, parts[2], NULL);
    assert_refused (server, "v1", forged, PEER_TREE_ERROR_UNAUTHORIZED, "altered claims");
    /* alg none, no signature */
    g_autofree char *none = g_strjoin (".", "eyJhbGciOiJub25lIn0", admin_claims, "", NULL);
    assert_refused (server, "v1", none, PEER_TREE_ERROR_UNAUTHORIZED, "alg none");
  }
  /* exp is required */
  {
    g_autoptr (JsonObject) claims = json_object_new ();
    json_object_set_string_member (claims, "sub", "v1");
    no_exp = pt_auth_sign (key, claims);
    assert_refused (server, "v1", no_exp, PEER_TREE_ERROR_UNAUTHORIZED, "no exp");
  }

  /* the good one, with the clientId or without (then the token's is taken) */
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) a = connect_with (server, "v1", good, &error);
  fail_unless (a != NULL, "%s", error ? error->message : "");
  g_autofree char *other = mint ("v3", NULL);
  g_autoptr (PeerTreeClient) b = connect_with (server, NULL, other, &error);
  fail_unless (b != NULL, "%s", error ? error->message : "");
  fail_unless_equals_string (peer_tree_client_get_client_id (b), "v3");
}
GST_END_TEST;

/* ---- trees ---------------------------------------------------------------- */

GST_START_TEST (test_publish_and_view_by_pattern)
{
  g_autoptr (PtServer) server = auth_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = connect_ok (server, "src",
      "{\"trees\": {\"publish\": [\"cam*\"]}}");
  g_autoptr (PeerTreeClient) viewer = connect_ok (server, "viewer",
      "{\"trees\": {\"view\": [\"cam1\"], \"relay\": [\"*\"]}}");
  g_autoptr (PeerTreeClient) other = connect_ok (server, "other",
      "{\"trees\": {\"view\": [\"studio*\"]}}");

  g_autofree char *t = pt_test_create (src, "cam1", 0, 0, &error);
  fail_unless (t != NULL, "%s", error ? error->message : "");
  g_autofree char *t2 = pt_test_create (src, "cam2", 0, 0, &error);
  fail_unless (t2 != NULL, "%s", error ? error->message : "");
  request_fails (src, "create", "{\"treeId\": \"studio\"}", PEER_TREE_ERROR_FORBIDDEN);
  /* the server's own ids (t-…) are not cam* */
  request_fails (src, "create", "{}", PEER_TREE_ERROR_FORBIDDEN);
  /* a viewer cannot publish, nor claim to be a source at rejoin */
  request_fails (viewer, "create", "{\"treeId\": \"cam9\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (viewer, "rejoin", "{\"treeId\": \"cam1\", \"source\": true}",
      PEER_TREE_ERROR_FORBIDDEN);
  /* view by pattern */
  fail_unless (pt_test_join (viewer, "cam1", NULL, NULL, &error), "%s",
      error ? error->message : "");
  request_fails (viewer, "join", "{\"treeId\": \"cam2\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (other, "join", "{\"treeId\": \"cam1\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (other, "rejoin", "{\"treeId\": \"cam1\", \"parent\": \"src\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r = request_ok (viewer, "reconnect-upstream", "{\"treeId\": \"cam1\"}");
  request_fails (other, "reconnect-upstream", "{\"treeId\": \"cam1\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  fail_unless_equals_int (pt_tree_size (((TreeEntry *) g_hash_table_lookup (server->trees,
      "cam1"))->tree), 2);
}
GST_END_TEST;

static const char *
parent_of (PtServer *server, const char *tree, const char *peer)
{
  TreeEntry *t = g_hash_table_lookup (server->trees, tree);
  return t ? pt_tree_get_parent (t->tree, peer) : NULL;
}

static guint
children_of (PtServer *server, const char *tree, const char *peer)
{
  TreeEntry *t = g_hash_table_lookup (server->trees, tree);
  return t ? pt_tree_get_n_children (t->tree, peer) : 0;
}

#define RELAY "{\"trees\": {\"view\": [\"*\"], \"relay\": [\"cam*\"]}}"
#define NO_RELAY "{\"trees\": {\"view\": [\"*\"]}}"

/* k1 = 1, k = 2: a viewer without relay right never gets a child. */
GST_START_TEST (test_viewer_without_relay_is_a_leaf)
{
  g_autoptr (PtServer) server = auth_server_new (2, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = connect_ok (server, "src",
      "{\"trees\": {\"publish\": [\"cam*\"]}}");
  g_autofree char *t = pt_test_create (src, "cam1", 0, 0, &error);
  fail_unless (t != NULL);
  const char *ids[] = { "a", "b", "c", "d", "e", "f" };
  const char *rights[] = { RELAY, NO_RELAY, RELAY, RELAY, RELAY, RELAY };
  PeerTreeClient *v[6];
  for (guint i = 0; i < 6; i++) {
    v[i] = connect_ok (server, ids[i], rights[i]);
    if (i == 4) {
      /* e asks to be a leaf itself */
      g_autoptr (JsonObject) r = request_ok (v[i], "join",
          "{\"treeId\": \"cam1\", \"leaf\": true}");
    } else {
      fail_unless (pt_test_join (v[i], "cam1", NULL, NULL, &error), "%s: %s", ids[i],
          error ? error->message : "");
    }
  }
  /* a under src (k1 = 1); b and c under a; b may not relay: d under c, e
   * under c, f (e is a leaf too) under d */
  fail_unless_equals_string (parent_of (server, "cam1", "a"), "src");
  fail_unless_equals_string (parent_of (server, "cam1", "b"), "a");
  fail_unless_equals_string (parent_of (server, "cam1", "c"), "a");
  fail_unless_equals_string (parent_of (server, "cam1", "d"), "c");
  fail_unless_equals_string (parent_of (server, "cam1", "e"), "c");
  fail_unless_equals_string (parent_of (server, "cam1", "f"), "d");
  fail_unless_equals_int (children_of (server, "cam1", "b"), 0);
  fail_unless_equals_int (children_of (server, "cam1", "e"), 0);
  /* reconnect-upstream never lands under a leaf either */
  for (guint round = 0; round < 5; round++) {
    g_autoptr (JsonObject) r = request_ok (v[5], "reconnect-upstream", "{\"treeId\": \"cam1\"}");
    fail_unless_equals_int (children_of (server, "cam1", "b"), 0);
    fail_unless_equals_int (children_of (server, "cam1", "e"), 0);
  }
  for (guint i = 0; i < 6; i++)
    g_object_unref (v[i]);
}
GST_END_TEST;

static void
on_tree_closed (PeerTreeClient *c, const char *tree, const char *reason, char **out)
{
  g_free (*out);
  *out = g_strdup (reason);
}

/* Leaves can fill a tree: a join with no slot is refused, an orphan with no
 * slot leaves with tree-closed (no-slot). */
GST_START_TEST (test_leaves_fill_a_tree)
{
  g_autoptr (PtServer) server = auth_server_new (2, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = connect_ok (server, "src",
      "{\"trees\": {\"publish\": [\"cam*\"]}}");
  g_autofree char *t = pt_test_create (src, "cam1", 0, 0, &error);
  fail_unless (t != NULL);
  g_autoptr (PeerTreeClient) a = connect_ok (server, "a", RELAY);
  fail_unless (pt_test_join (a, "cam1", NULL, NULL, &error));
  g_autofree char *tb = mint ("b", NO_RELAY), *tc = mint ("c", NO_RELAY), *td = mint ("d",
      NO_RELAY);
  g_autoptr (PeerTreeClient) cb = connect_with (server, "b", tb, &error);
  g_autoptr (PeerTreeClient) cc = connect_with (server, "c", tc, &error);
  g_autoptr (PeerTreeClient) cd = connect_with (server, "d", td, &error);
  fail_unless (cb && cc && cd);
  fail_unless (pt_test_join (cb, "cam1", NULL, NULL, &error));
  fail_unless (pt_test_join (cc, "cam1", NULL, NULL, &error));
  /* src (k1 = 1) holds a, a (k = 2) holds two leaves: full */
  request_fails (cd, "join", "{\"treeId\": \"cam1\"}", PEER_TREE_ERROR_LIMIT);
  g_autofree char *closed = NULL;
  g_signal_connect (cc, "tree-closed", G_CALLBACK (on_tree_closed), &closed);
  g_signal_connect (cb, "tree-closed", G_CALLBACK (on_tree_closed), &closed);
  /* a goes: one of b, c takes its place under src, the other has none */
  peer_tree_client_close (a);
  WAIT_UNTIL (closed != NULL);
  fail_unless_equals_string (closed, "no-slot");
  TreeEntry *te = g_hash_table_lookup (server->trees, "cam1");
  fail_unless_equals_int (pt_tree_size (te->tree), 2);
  fail_unless (pt_tree_check (te->tree, NULL));
}
GST_END_TEST;

/* ---- admin ---------------------------------------------------------------- */

static guint
status_code (PtServer *server, const char *token)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/status", pt_server_get_port (server));
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  if (token) {
    g_autofree char *h = g_strconcat ("Bearer ", token, NULL);
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", h);
  }
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, pt_test_store_result,
      &res);
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
      NULL);
  return soup_message_get_status (msg);
}

GST_START_TEST (test_admin_rights)
{
  g_autoptr (PtServer) server = auth_server_new (4, 10);
  g_autofree char *admin = mint ("ops", "{\"admin\": true}");
  g_autofree char *user = mint ("user", "{\"trees\": {\"view\": [\"*\"]}, \"services\": "
      "{\"call\": [\"*\"]}, \"clients\": [\"*\"]}");
  g_autoptr (GBytes) other_key = g_bytes_new_static ("another key, 32 bytes or more......", 35);
  g_autofree char *foreign_admin = mint_with (other_key, "ops", 3600, "{\"admin\": true}");

  fail_unless_equals_int (status_code (server, NULL), 401);
  fail_unless_equals_int (status_code (server, "garbage"), 401);
  fail_unless_equals_int (status_code (server, foreign_admin), 401);
  fail_unless_equals_int (status_code (server, user), 403);
  fail_unless_equals_int (status_code (server, admin), 200);

  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) u = connect_with (server, "user", user, &error);
  g_autoptr (PeerTreeClient) o = connect_with (server, "ops", admin, &error);
  fail_unless (u && o);
  request_fails (u, "service-call", "{\"service\": \"peertree\", \"method\": \"list-trees\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  request_fails (u, "list-clients", "{}", PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r1 = request_ok (o, "service-call",
      "{\"service\": \"peertree\", \"method\": \"list-trees\"}");
  g_autoptr (JsonObject) r2 = request_ok (o, "list-clients", "{}");
  /* admin is every right */
  g_autofree char *t = pt_test_create (o, "anything", 0, 0, &error);
  fail_unless (t != NULL, "%s", error ? error->message : "");
}
GST_END_TEST;

/* ---- messaging ------------------------------------------------------------ */

GST_START_TEST (test_message_rights)
{
  g_autoptr (PtServer) server = auth_server_new (4, 10);
  g_autoptr (PeerTreeClient) alice = connect_ok (server, "alice",
      "{\"rooms\": [\"lobby\", \"team-*\"], \"clients\": [\"bob\"], "
      "\"services\": {\"provide\": [\"math\"], \"call\": [\"time\"], "
      "\"subscribe\": [\"time/sec*\"]}}");
  g_autoptr (PeerTreeClient) bob = connect_ok (server, "bob",
      "{\"services\": {\"provide\": [\"time\"]}, \"rooms\": [\"*\"]}");
  g_autoptr (PeerTreeClient) carol = connect_ok (server, "carol", "{}");

  /* rooms */
  g_autoptr (JsonObject) r1 = request_ok (alice, "room-join", "{\"room\": \"lobby\"}");
  g_autoptr (JsonObject) r2 = request_ok (alice, "room-join", "{\"room\": \"team-red\"}");
  request_fails (alice, "room-join", "{\"room\": \"secret\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "room-join", "{\"room\": \"lobby\"}", PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r3 = request_ok (alice, "room-emit",
      "{\"room\": \"lobby\", \"event\": \"hi\"}");
  request_fails (carol, "room-emit", "{\"room\": \"lobby\", \"event\": \"hi\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r4 = request_ok (alice, "room-leave", "{\"room\": \"lobby\"}");
  g_autoptr (JsonObject) r5 = request_ok (alice, "list-rooms", "{}");
  request_fails (carol, "list-rooms", "{\"clientId\": \"alice\"}", PEER_TREE_ERROR_FORBIDDEN);

  /* clients addressed */
  g_autoptr (JsonObject) r6 = request_ok (alice, "emit", "{\"to\": \"bob\", \"event\": \"x\"}");
  request_fails (alice, "emit", "{\"to\": \"carol\", \"event\": \"x\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "emit", "{\"to\": \"bob\", \"event\": \"x\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "is-connected", "{\"clientId\": \"bob\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "add-target", "{\"target\": \"bob\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "stream-open", "{\"to\": \"bob\", \"channel\": \"f\"}",
      PEER_TREE_ERROR_FORBIDDEN);

  /* services and topics */
  g_autoptr (JsonObject) r7 = request_ok (bob, "service-provide", "{\"service\": \"time\"}");
  g_autoptr (JsonObject) r8 = request_ok (bob, "topic-create",
      "{\"service\": \"time\", \"topic\": \"seconds\"}");
  g_autoptr (JsonObject) r9 = request_ok (bob, "topic-create",
      "{\"service\": \"time\", \"topic\": \"minutes\"}");
  request_fails (bob, "service-provide", "{\"service\": \"math2\"}", PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "service-provide", "{\"service\": \"math\"}", PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r10 = request_ok (alice, "service-provide", "{\"service\": \"math\"}");
  g_autoptr (JsonObject) r11 = request_ok (alice, "topic-subscribe",
      "{\"service\": \"time\", \"topic\": \"seconds\"}");
  request_fails (alice, "topic-subscribe", "{\"service\": \"time\", \"topic\": \"minutes\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "topic-subscribe", "{\"service\": \"time\", \"topic\": \"seconds\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  request_fails (carol, "service-call", "{\"service\": \"math\", \"method\": \"add\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  request_fails (alice, "service-call", "{\"service\": \"math2\", \"method\": \"add\"}",
      PEER_TREE_ERROR_FORBIDDEN);
  /* allowed: it reaches bob (who does not answer in time) */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) node = json_from_string ("{\"service\": \"time\", \"method\": "
        "\"now\", \"timeout\": 100}", NULL);
    g_autoptr (JsonObject) res = pt_test_request (alice, "service-call",
        json_node_get_object (node), &error);
    fail_unless (res == NULL && !g_error_matches (error, PEER_TREE_ERROR,
        PEER_TREE_ERROR_FORBIDDEN), "%s", error ? error->message : "answered");
  }
}
GST_END_TEST;

/* ---- the CLI -------------------------------------------------------------- */

GST_START_TEST (test_cli_token_verifies)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
      PEERTREE_SERVER, "token", "--key", key_path, "--sub", "cam-1", "--exp-in", "600",
      "--publish", "cam*", "--view", "*", "--room", "lobby", NULL);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  g_autofree char *out = NULL;
  fail_unless (g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, &error));
  fail_unless (g_subprocess_get_if_exited (proc) && g_subprocess_get_exit_status (proc) == 0);
  g_strstrip (out);

  g_autoptr (PtGrants) g = pt_auth_verify (key, out, g_get_real_time () / G_USEC_PER_SEC, &error);
  fail_unless (g != NULL, "%s", error ? error->message : "");
  fail_unless_equals_string (g->sub, "cam-1");
  fail_unless (pt_grants_match (g->publish, "cam7") && !pt_grants_match (g->publish, "x"));
  fail_unless (!pt_grants_match (g->relay, "cam7") && !g->admin);

  g_autoptr (PtServer) server = auth_server_new (4, 10);
  g_autoptr (PeerTreeClient) c = connect_with (server, NULL, out, &error);
  fail_unless (c != NULL, "%s", error ? error->message : "");
  g_autofree char *t = pt_test_create (c, "cam-a", 0, 0, &error);
  fail_unless (t != NULL, "%s", error ? error->message : "");
  request_fails (c, "create", "{\"treeId\": \"studio\"}", PEER_TREE_ERROR_FORBIDDEN);
  g_autoptr (JsonObject) r = request_ok (c, "room-join", "{\"room\": \"lobby\"}");

  /* a missing key file or a short key: refused */
  g_autoptr (GSubprocess) bad = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
      G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, PEERTREE_SERVER, "token", "--key",
      "/nonexistent", "--sub", "x", NULL);
  fail_unless (g_subprocess_wait (bad, NULL, NULL));
  fail_unless (g_subprocess_get_exit_status (bad) != 0);
}
GST_END_TEST;

/* A server whose key file is unreadable does not start open. */
GST_START_TEST (test_bad_key_refuses_to_listen)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PtServer) server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "auth-key", "/nonexistent/key", NULL);
  fail_if (pt_server_listen (server, &error));
  g_clear_error (&error);
  g_autofree char *short_key = NULL;
  int fd = g_file_open_tmp ("peertree-short-XXXXXX", &short_key, NULL);
  close (fd);
  g_file_set_contents (short_key, "short\n", -1, NULL);
  g_object_set (server, "auth-key", short_key, NULL);
  fail_if (pt_server_listen (server, &error));
  g_unlink (short_key);
}
GST_END_TEST;

/* ---- per-IP limits -------------------------------------------------------- */

static int
tcp_connect (PtServer *server)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (pt_server_get_port (server)),
    .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  fail_unless (connect (fd, (struct sockaddr *) &a, sizeof a) == 0);
  return fd;
}

/* Whether the server refused @fd: it answers 503 or closes it, without a
 * request. Iterates the server's context meanwhile. */
static gboolean
refused (int fd, guint ms)
{
  gint64 deadline = g_get_monotonic_time () + ms * 1000;
  while (g_get_monotonic_time () < deadline) {
    g_main_context_iteration (NULL, FALSE);
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll (&p, 1, 1) > 0) {
      char buf[64] = { 0 };
      ssize_t n = recv (fd, buf, sizeof buf - 1, 0);
      return n <= 0 || g_str_has_prefix (buf, "HTTP/1.1 503");
    }
  }
  return FALSE;
}

GST_START_TEST (test_connections_per_ip)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "max-connections-per-ip", 3, NULL);
  int fds[3];
  for (guint i = 0; i < 3; i++)
    fds[i] = tcp_connect (server);
  for (guint i = 0; i < 3; i++)
    fail_if (refused (fds[i], 50), "connection %u refused", i);
  guint logged = server->n_refusals_logged;
  for (guint i = 0; i < 5; i++) {
    int extra = tcp_connect (server);
    fail_unless (refused (extra, 2000), "connection over the cap accepted");
    close (extra);
  }
  /* logged once, counted four times */
  fail_unless_equals_int (server->n_refusals_logged, logged + 1);
  fail_unless (server->n_refusals_unlogged >= 4);
  /* a WebSocket client is refused too, before any upgrade */
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (PeerTreeClient) c = peer_tree_client_new (url, "ws-1");
  g_autoptr (GError) error = NULL;
  fail_if (pt_test_connect (c, &error));
  g_clear_error (&error);
  /* one closes: room for one */
  close (fds[0]);
  for (guint i = 0; i < 100; i++) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (1000);
  }
  g_autoptr (PeerTreeClient) c2 = peer_tree_client_new (url, "ws-2");
  fail_unless (pt_test_connect (c2, &error), "%s", error ? error->message : "");
  close (fds[1]);
  close (fds[2]);
}
GST_END_TEST;

GST_START_TEST (test_connection_rate_per_ip)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "connection-rate-per-ip", 1, "connection-burst-per-ip", 3, NULL);
  int fds[4];
  for (guint i = 0; i < 3; i++)
    fds[i] = tcp_connect (server);
  for (guint i = 0; i < 3; i++)
    fail_if (refused (fds[i], 50), "connection %u within the burst refused", i);
  fds[3] = tcp_connect (server);
  fail_unless (refused (fds[3], 2000), "connection over the rate accepted");
  close (fds[3]);
  /* a second later the bucket has a token again */
  g_usleep (1100 * 1000);
  fds[3] = tcp_connect (server);
  fail_if (refused (fds[3], 200), "refused after the bucket refilled");
  for (guint i = 0; i < 4; i++)
    close (fds[i]);
}
GST_END_TEST;

GST_START_TEST (test_trees_per_ip_and_global)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_object_set (server, "max-trees-per-ip", 2, NULL);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "a");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "b");
  g_autofree char *t1 = pt_test_create (a, "t1", 0, 0, &error);
  g_autofree char *t2 = pt_test_create (b, "t2", 0, 0, &error);
  fail_unless (t1 && t2);
  /* another client, the same address */
  request_fails (a, "create", "{\"treeId\": \"t3\"}", PEER_TREE_ERROR_LIMIT);
  /* a tree that closes frees its place */
  g_autoptr (JsonObject) r = request_ok (a, "leave", "{\"treeId\": \"t1\"}");
  g_autofree char *t3 = pt_test_create (a, "t3", 0, 0, &error);
  fail_unless (t3 != NULL, "%s", error ? error->message : "");

  g_object_set (server, "max-trees-per-ip", 0, "max-trees", 3, NULL);
  g_autofree char *t4 = pt_test_create (a, "t4", 0, 0, &error);
  fail_unless (t4 != NULL, "%s", error ? error->message : "");
  request_fails (b, "create", "{\"treeId\": \"t5\"}", PEER_TREE_ERROR_LIMIT);
}
GST_END_TEST;

/* Without --auth-key a token is not needed, and one sent is ignored. */
GST_START_TEST (test_open_server_ignores_tokens)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) c = connect_with (server, "x", "whatever", &error);
  fail_unless (c != NULL, "%s", error ? error->message : "");
  g_autofree char *t = pt_test_create (c, "any", 0, 0, &error);
  fail_unless (t != NULL, "%s", error ? error->message : "");
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  fail_unless (status != NULL);
}
GST_END_TEST;

static Suite *
auth_suite (void)
{
  Suite *s = suite_create ("auth");
  TCase *tc = tcase_create ("auth");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_hello_needs_a_valid_token);
  tcase_add_test (tc, test_publish_and_view_by_pattern);
  tcase_add_test (tc, test_viewer_without_relay_is_a_leaf);
  tcase_add_test (tc, test_leaves_fill_a_tree);
  tcase_add_test (tc, test_admin_rights);
  tcase_add_test (tc, test_message_rights);
  tcase_add_test (tc, test_cli_token_verifies);
  tcase_add_test (tc, test_bad_key_refuses_to_listen);
  tcase_add_test (tc, test_connections_per_ip);
  tcase_add_test (tc, test_connection_rate_per_ip);
  tcase_add_test (tc, test_trees_per_ip_and_global);
  tcase_add_test (tc, test_open_server_ignores_tokens);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (auth);
