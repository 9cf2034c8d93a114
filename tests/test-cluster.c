/* Several peertree-server processes on one throw-away redis-server
 * (--redis): trees across servers, placement under concurrent joins on
 * several servers, a server killed (its clients move to another and rejoin),
 * Redis restarted. Skipped (77) without redis-server. */
#include "pt-test-cluster.h"
#include "pt-auth.h"

#include <glib/gstdio.h>
#include <unistd.h>

/* The size of @tree in the "service" part of @s's /status, once three
 * servers are listed; 0 otherwise. */
static guint
service_tree_size (Server *s, const char *tree)
{
  g_autoptr (JsonNode) status = status_of (s);
  JsonObject *service = json_object_get_object_member (json_node_get_object (status), "service");
  JsonArray *servers = service ? json_object_get_array_member (service, "servers") : NULL;
  if (!servers || json_array_get_length (servers) != 3)
    return 0;
  for (guint i = 0; i < json_array_get_length (servers); i++) {
    JsonArray *trees = json_object_get_array_member (json_array_get_object_element (servers, i),
        "trees");
    for (guint j = 0; j < json_array_get_length (trees); j++) {
      JsonObject *t = json_array_get_object_element (trees, j);
      if (g_strcmp0 (json_object_get_string_member (t, "id"), tree) == 0)
        return json_object_get_int_member (t, "size");
    }
  }
  return 0;
}

GST_START_TEST (test_tree_across_servers)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 1, 1), *b = server_spawn (redis, 1, 1),
      *c = server_spawn (redis, 1, 1);
  g_autoptr (GError) error = NULL;
  g_autofree char *parent = NULL;
  guint depth = 0;

  /* a chain: source on A, v1 on B under it, v2 on C under v1 */
  PtTestPeer *src = pt_test_peer_new_full (a->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 1, 1, &error);
  fail_unless_equals_string (tree, "t");
  PtTestPeer *v1 = pt_test_peer_new_full (b->url, "v1", NULL);
  fail_unless (pt_test_join (v1->client, "t", &parent, &depth, &error), "%s",
      error ? error->message : "");
  fail_unless_equals_string (parent, "src");
  g_clear_pointer (&parent, g_free);
  PtTestPeer *v2 = pt_test_peer_new_full (c->url, "v2", NULL);
  fail_unless (pt_test_join (v2->client, "t", &parent, &depth, &error));
  fail_unless_equals_string (parent, "v1");
  fail_unless_equals_int (depth, 2);
  /* the parent on B is told of its child on C; the tree is held by A */
  WAIT_UNTIL (v1->children->len == 1);
  fail_unless_equals_string (v1->children->pdata[0], "v2");
  fail_unless (has_parent (a, "t", "v2", "v1"));

  /* SDP and ICE between B's and C's clients, through the tree's server */
  peer_tree_client_send_sdp (v1->client, "t", "v2", "offer", "v=0 offer");
  WAIT_UNTIL (v2->last_sdp_from != NULL);
  fail_unless_equals_string (v2->last_sdp_from, "v1");
  fail_unless_equals_string (v2->last_sdp, "offer:v=0 offer");
  peer_tree_client_send_ice (v2->client, "t", "v1", 0, "candidate:1 1 udp 1 127.0.0.1 9 typ host");
  WAIT_UNTIL (v1->n_ice == 1);

  /* a list of servers whose first does not answer: the next one */
  g_autofree char *dead_first = g_strdup_printf ("ws://127.0.0.1:%u,%s", pt_test_free_port (),
      c->url);
  PtTestPeer *v3 = pt_test_peer_new_full (dead_first, "v3", NULL);
  fail_unless (peer_tree_client_is_connected (v3->client));
  pt_test_peer_free (v3);

  /* a duplicate clientId on another server is refused */
  g_autoptr (PeerTreeClient) dup = peer_tree_client_new (c->url, "v1");
  fail_if (pt_test_connect (dup, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_DUPLICATE_CLIENT_ID),
      "%s", error->message);
  g_clear_error (&error);

  /* /status of any server lists the service: three servers, tree t on A's */
  WAIT_UNTIL_MS (service_tree_size (c, "t") == 3, 15000);
  /* and /metrics the service's figures: 3 servers, 3 clients (a summary may lag 2 s) */
  g_autofree char *metrics = NULL;
  WAIT_UNTIL_MS ((g_free (metrics), metrics = http_get_text (c, "/metrics"),
      strstr (metrics, "\npeertree_cluster_service_clients 3\n") != NULL), 15000);
  fail_unless (strstr (metrics, "\npeertree_cluster_servers 3\n"), "%s", metrics);
  fail_unless (strstr (metrics, "\npeertree_cluster_redis_up 1\n"));

  /* v1 leaves: v2 is placed under the source again, told on C */
  peer_tree_client_close (v1->client);
  WAIT_UNTIL (g_strcmp0 (v2->parent, "src") == 0);
  fail_unless (has_parent (a, "t", "v2", "src"));

  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (c);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

/* Whether every member's parent chain reaches the root, and no parent has
 * more than k (k1 for the root) children. */
static void
check_tree (GHashTable *parents, guint k, guint k1, guint n)
{
  fail_unless_equals_int (g_hash_table_size (parents), n);
  g_autoptr (GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  const char *root = NULL;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, parents);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    if (!*(const char *) value) {
      fail_unless (root == NULL, "two roots");
      root = key;
      continue;
    }
    fail_unless (g_hash_table_contains (parents, value), "%s: parent %s not in the tree",
        (char *) key, (char *) value);
    guint c = GPOINTER_TO_UINT (g_hash_table_lookup (counts, value)) + 1;
    g_hash_table_insert (counts, value, GUINT_TO_POINTER (c));
    /* acyclic: the chain reaches the root within n steps */
    const char *p = key;
    guint steps = 0;
    while (*p && steps++ <= n)
      p = g_hash_table_lookup (parents, p);
    fail_unless (steps <= n, "%s: a cycle", (char *) key);
  }
  g_hash_table_iter_init (&it, counts);
  while (g_hash_table_iter_next (&it, &key, &value))
    fail_unless (GPOINTER_TO_UINT (value) <= (g_strcmp0 (key, root) == 0 ? k1 : k),
        "%s has %u children", (char *) key, GPOINTER_TO_UINT (value));
}

static guint
tree_size (Server *s, const char *tree)
{
  g_autoptr (GHashTable) parents = tree_parents (s, tree, NULL, NULL);
  return g_hash_table_size (parents);
}

#define N_JOINERS 30

GST_START_TEST (test_concurrent_joins)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *s[3];
  for (int i = 0; i < 3; i++)
    s[i] = server_spawn (redis, 2, 2);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (s[0]->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PeerTreeClient *v[N_JOINERS];
  GAsyncResult *res[N_JOINERS] = { 0 };
  for (int i = 0; i < N_JOINERS; i++) {
    g_autofree char *id = g_strdup_printf ("v%02d", i);
    v[i] = peer_tree_client_new (s[i % 3]->url, id);
    fail_unless (pt_test_connect (v[i], &error), "%s", error ? error->message : "");
  }
  /* all at once, on the three servers */
  for (int i = 0; i < N_JOINERS; i++)
    peer_tree_client_join_async (v[i], "t", NULL, pt_test_store_result, &res[i]);
  for (int i = 0; i < N_JOINERS; i++) {
    pt_test_await (&res[i]);
    fail_unless (peer_tree_client_join_finish (v[i], res[i], NULL, NULL, &error), "%s",
        error ? error->message : "");
    g_object_unref (res[i]);
  }
  guint k = 0, k1 = 0;
  g_autoptr (GHashTable) parents = tree_parents (s[0], "t", &k, &k1);
  check_tree (parents, k, k1, N_JOINERS + 1);
  for (int i = 0; i < N_JOINERS; i++) {
    peer_tree_client_close (v[i]);
    g_object_unref (v[i]);
  }
  pt_test_peer_free (src);
  for (int i = 0; i < 3; i++)
    server_free (s[i]);
  pt_test_redis_free (redis);
}
GST_END_TEST;

GST_START_TEST (test_server_killed)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 1, 1), *b = server_spawn (redis, 1, 1),
      *c = server_spawn (redis, 1, 1);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (a->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 1, 1, &error);
  /* v1 on B (then C), v2 on C (then A): a chain src - v1 - v2 */
  g_autofree char *urls1 = g_strdup_printf ("%s,%s", b->url, c->url);
  g_autofree char *urls2 = g_strdup_printf ("%s,%s", c->url, a->url);
  PtTestPeer *v1 = pt_test_peer_new_full (urls1, "v1", "v1-secret");
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error));
  PtTestPeer *v2 = pt_test_peer_new_full (urls2, "v2", "v2-secret");
  fail_unless (pt_test_join (v2->client, "t", NULL, NULL, &error));
  fail_unless (has_parent (a, "t", "v2", "v1"));

  /* B dies: v1 reconnects to C and rejoins its place; v2 keeps its parent */
  gint64 t0 = g_get_monotonic_time ();
  server_kill (b);
  WAIT_UNTIL_MS (!peer_tree_client_is_connected (v1->client), 5000);
  WAIT_UNTIL_MS (peer_tree_client_is_connected (v1->client), 15000);
  /* back through C with its secret: A keeps its place (or, if A noticed B's
   * death first, re-placed it like a client that left and came back) */
  WAIT_UNTIL_MS (tree_size (a, "t") == 3 && peer_tree_client_is_connected (v2->client), 15000);
  g_autoptr (GHashTable) parents = tree_parents (a, "t", NULL, NULL);
  check_tree (parents, 1, 1, 3);
  g_print ("server killed: its client back in the tree after %.0f ms (%s)\n",
      (g_get_monotonic_time () - t0) / 1000.0,
      has_parent (a, "t", "v2", "v1") ? "same place" : "re-placed");
  /* and the tree works through C: v2 relays to v1's new server */
  peer_tree_client_send_sdp (v2->client, "t", "v1", "answer", "v=0 answer");
  WAIT_UNTIL (g_strcmp0 (v1->last_sdp, "answer:v=0 answer") == 0);
  /* a new viewer joins through C */
  PtTestPeer *v3 = pt_test_peer_new_full (c->url, "v3", NULL);
  fail_unless (pt_test_join (v3->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");

  pt_test_peer_free (v3);
  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (c);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

/* The server holding the tree dies, with the source on it: the source comes
 * back through B with its secret and reclaims the tree there; the viewers,
 * told by their servers (their tree's server is gone), rejoin it. */
GST_START_TEST (test_tree_server_killed)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 2, 2), *b = server_spawn (redis, 2, 2),
      *c = server_spawn (redis, 2, 2);
  g_autoptr (GError) error = NULL;
  g_autofree char *urls_src = g_strdup_printf ("%s,%s", a->url, b->url);
  PtTestPeer *src = pt_test_peer_new_full (urls_src, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *v1 = pt_test_peer_new_full (b->url, "v1", "v1-secret");
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error));
  PtTestPeer *v2 = pt_test_peer_new_full (c->url, "v2", "v2-secret");
  fail_unless (pt_test_join (v2->client, "t", NULL, NULL, &error));

  gint64 t0 = g_get_monotonic_time ();
  server_kill (a);
  /* the tree is held by B or C now, with its three members */
  WAIT_UNTIL_MS (tree_size (b, "t") == 3 || tree_size (c, "t") == 3, 30000);
  Server *holder = tree_size (b, "t") == 3 ? b : c;
  g_autoptr (GHashTable) parents = tree_parents (holder, "t", NULL, NULL);
  check_tree (parents, 2, 2, 3);
  fail_unless_equals_string (g_hash_table_lookup (parents, "src"), "");
  g_print ("tree's server killed: the tree back on another after %.0f ms\n",
      (g_get_monotonic_time () - t0) / 1000.0);
  /* and it takes joins */
  PtTestPeer *v3 = pt_test_peer_new_full (c->url, "v3", NULL);
  fail_unless (pt_test_join (v3->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");

  pt_test_peer_free (v3);
  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (c);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

/* B stalls (SIGSTOP) past its heartbeat's expiry: A drops its client's place
 * (re-placing the children); B, resumed, finds it was presumed dead and
 * closes its clients, which reconnect and rejoin: the tree is whole again. */
GST_START_TEST (test_server_stalled)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 1, 1), *b = server_spawn (redis, 1, 1);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (a->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 1, 1, &error);
  g_autofree char *urls1 = g_strdup_printf ("%s,%s", b->url, a->url);
  PtTestPeer *v1 = pt_test_peer_new_full (urls1, "v1", "v1-secret");
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error));
  PtTestPeer *v2 = pt_test_peer_new_full (a->url, "v2", "v2-secret");
  fail_unless (pt_test_join (v2->client, "t", NULL, NULL, &error));
  fail_unless (has_parent (a, "t", "v2", "v1"));

  g_subprocess_send_signal (b->proc, SIGSTOP);
  /* A notices: v1 leaves the tree, v2 goes under the source */
  WAIT_UNTIL_MS (has_parent (a, "t", "v2", "src"), 15000);
  g_subprocess_send_signal (b->proc, SIGCONT);
  /* v1 comes back (through B or A) and rejoins */
  WAIT_UNTIL_MS (tree_size (a, "t") == 3 && peer_tree_client_is_connected (v1->client), 15000);
  g_autoptr (GHashTable) parents = tree_parents (a, "t", NULL, NULL);
  check_tree (parents, 1, 1, 3);

  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

GST_START_TEST (test_redis_restart)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 2, 2), *b = server_spawn (redis, 2, 2);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (a->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *v1 = pt_test_peer_new_full (b->url, "v1", NULL);
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error));

  /* Redis restarts empty: the servers re-register what they hold */
  pt_test_redis_kill (redis);
  fail_unless (server_wait_log (a, "lost Redis", 5000));
  pt_test_redis_start (redis);
  fail_unless (server_wait_log (a, "connected to Redis", 10000));
  fail_unless (server_wait_log (b, "connected to Redis", 10000));
  PtTestPeer *v2 = pt_test_peer_new_full (b->url, "v2", NULL);
  fail_unless (pt_test_join (v2->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");
  g_autoptr (GHashTable) parents = tree_parents (a, "t", NULL, NULL);
  fail_unless_equals_int (g_hash_table_size (parents), 3);
  /* and messages cross again */
  peer_tree_client_send_sdp (src->client, "t", "v1", "offer", "v=0 again");
  WAIT_UNTIL (g_strcmp0 (v1->last_sdp, "offer:v=0 again") == 0);

  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

/* One command to @r in RESP; returns the raw reply (bounded read). */
static char *
redis_command (PtTestRedis *r, guint argc, const char *const *argv, const gsize *lens)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) conn = g_socket_client_connect_to_host (client, "127.0.0.1",
      r->port, NULL, NULL);
  fail_unless (conn != NULL);
  GString *cmd = g_string_new (NULL);
  g_string_append_printf (cmd, "*%u\r\n", argc);
  for (guint i = 0; i < argc; i++) {
    gsize len = lens ? lens[i] : strlen (argv[i]);
    g_string_append_printf (cmd, "$%" G_GSIZE_FORMAT "\r\n", len);
    g_string_append_len (cmd, argv[i], len);
    g_string_append (cmd, "\r\n");
  }
  fail_unless (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
      cmd->str, cmd->len, NULL, NULL, NULL));
  g_string_free (cmd, TRUE);
  char buf[4096];
  gssize n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn)), buf,
      sizeof buf - 1, NULL, NULL);
  fail_unless (n > 0);
  return g_strndup (buf, n);
}

/* Another server's channel is read like client input: malformed messages,
 * bad ids, deep JSON, a request from a server that does not exist, a short
 * stream frame that ends its proxy — dropped or handled, and the servers go
 * on serving. */
GST_START_TEST (test_bad_channel_messages)
{
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn (redis, 2, 2), *b = server_spawn (redis, 2, 2);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new_full (a->url, "src", "s3cret");
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  PtTestPeer *v1 = pt_test_peer_new_full (b->url, "v1", NULL);
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error));

  const char *keys_argv[] = { "KEYS", "pt:server:*" };
  g_autofree char *keys = redis_command (redis, 2, keys_argv, NULL);
  g_autoptr (GPtrArray) channels = g_ptr_array_new_with_free_func (g_free);
  for (const char *p = keys; (p = strstr (p, "pt:server:")); p += 10)
    g_ptr_array_add (channels, g_strdup_printf ("pt:srv:%.*s", (int) strcspn (p + 10, "\r\n"),
        p + 10));
  fail_unless_equals_int (channels->len, 2);

  g_autofree char *deep = g_strnfill (60000, '[');
  g_autofree char *deep_req = g_strconcat ("req\ns-fake\nv9\n", deep, NULL);
  g_autofree char *long_head = g_strnfill (400, 'a');
  static const char short_frame[] = "breq\ns-fake\nv9\n\001";
  struct { const char *data; gsize len; } bad[] = {
    { "", 0 }, { "req", 3 }, { long_head, 400 },
    { "req\nbad id!\nv1\n{}", 0 }, { "req\ns-fake\nbad id\n{}", 0 },
    { "req\ns-fake\nv9\n{not json", 0 }, { deep_req, 0 },
    { "req\ns-fake\nv9\n{\"type\":\"join\",\"id\":1,\"treeId\":\"t\"}", 0 },
    { "msg\ns-fake\nnobody\nhello", 0 }, { "gone\ns-fake\nv1\n", 0 },
    { "kick\ns-fake\nnobody\n", 0 }, { "zzz\ns-fake\nv1\n", 0 },
    { short_frame, sizeof short_frame - 1 },
  };
  for (guint c = 0; c < channels->len; c++)
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
      const char *argv[] = { "PUBLISH", channels->pdata[c], bad[i].data };
      gsize lens[] = { 7, strlen (channels->pdata[c]), bad[i].len ? bad[i].len :
        strlen (bad[i].data) };
      g_free (redis_command (redis, 3, argv, lens));
    }

  /* still serving: a join through B, v1 still there, the fake server's
   * client v9 gone again (its proxy ended by its short frame) */
  PtTestPeer *v2 = pt_test_peer_new_full (b->url, "v2", NULL);
  fail_unless (pt_test_join (v2->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");
  WAIT_UNTIL (tree_size (a, "t") == 3);
  fail_unless (has_parent (a, "t", "v1", "src"));
  fail_unless (peer_tree_client_is_connected (v1->client));
  fail_unless (g_subprocess_get_identifier (a->proc) != NULL); /* still running */
  fail_unless (g_subprocess_get_identifier (b->proc) != NULL);

  pt_test_peer_free (v2);
  pt_test_peer_free (v1);
  pt_test_peer_free (src);
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
}
GST_END_TEST;

static char *
mint (GBytes *key, const char *sub, const char *rights)
{
  g_autoptr (JsonNode) node = json_from_string (rights, NULL);
  JsonObject *claims = json_node_get_object (node);
  json_object_set_string_member (claims, "sub", sub);
  json_object_set_int_member (claims, "exp", g_get_real_time () / G_USEC_PER_SEC + 3600);
  return pt_auth_sign (key, claims);
}

static PtTestPeer *
peer_with_token (const char *url, const char *id, const char *token)
{
  PtTestPeer *p = g_new0 (PtTestPeer, 1);
  g_autoptr (GError) error = NULL;
  p->client = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", id, "token", token,
      NULL);
  fail_unless (pt_test_connect (p->client, &error), "%s", error ? error->message : "");
  p->id = g_strdup (id);
  p->children = g_ptr_array_new_with_free_func (g_free);
  return p;
}

/* With --auth-key, a client's rights hold on the tree's server too: a viewer
 * of B whose token does not let it relay is never given children by A. */
GST_START_TEST (test_rights_across_servers)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *key_path = NULL;
  int fd = g_file_open_tmp ("peertree-key-XXXXXX", &key_path, &error);
  fail_unless (fd >= 0);
  close (fd);
  fail_unless (g_file_set_contents (key_path, "0123456789abcdef0123456789abcdef-cluster\n", -1,
      NULL));
  g_autoptr (GBytes) key = pt_auth_load_key (key_path, &error);
  PtTestRedis *redis = pt_test_redis_new ();
  Server *a = server_spawn_with (redis, 2, 2, key_path), *b = server_spawn_with (redis, 2, 2,
      key_path);
  g_autofree char *ts = mint (key, "src", "{\"trees\": {\"publish\": [\"t\"]}}");
  g_autofree char *t1 = mint (key, "leaf", "{\"trees\": {\"view\": [\"t\"]}}");
  g_autofree char *t2 = mint (key, "relay", "{\"trees\": {\"view\": [\"t\"], \"relay\": [\"t\"]}}");
  g_autofree char *t3 = mint (key, "late", "{\"trees\": {\"view\": [\"t\"]}}");
  PtTestPeer *src = peer_with_token (a->url, "src", ts);
  g_autofree char *tree = pt_test_create (src->client, "t", 2, 2, &error);
  fail_unless_equals_string (tree, "t");
  PtTestPeer *leaf = peer_with_token (b->url, "leaf", t1);
  PtTestPeer *relay = peer_with_token (b->url, "relay", t2);
  PtTestPeer *late = peer_with_token (b->url, "late", t3);
  fail_unless (pt_test_join (leaf->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (relay->client, "t", NULL, NULL, &error));
  g_autofree char *parent = NULL;
  fail_unless (pt_test_join (late->client, "t", &parent, NULL, &error), "%s",
      error ? error->message : "");
  /* breadth-first would pick "leaf" (first at depth 1) if its rights were ignored */
  fail_unless_equals_string (parent, "relay");
  /* a token that does not allow viewing is refused by the tree's server's rules too:
   * its own server checks it before anything is forwarded */
  g_autofree char *t4 = mint (key, "nosy", "{\"trees\": {\"view\": [\"other\"]}}");
  PtTestPeer *nosy = peer_with_token (b->url, "nosy", t4);
  fail_if (pt_test_join (nosy->client, "t", NULL, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_FORBIDDEN), "%s",
      error->message);

  PtTestPeer *peers[] = { nosy, late, relay, leaf, src };
  for (guint i = 0; i < G_N_ELEMENTS (peers); i++) {
    peer_tree_client_close (peers[i]->client);
    g_object_unref (peers[i]->client);
    g_ptr_array_unref (peers[i]->children);
    g_free (peers[i]->id);
    g_free (peers[i]);
  }
  server_free (b);
  server_free (a);
  pt_test_redis_free (redis);
  g_unlink (key_path);
}
GST_END_TEST;

static Suite *
cluster_suite (void)
{
  pt_test_redis_require ();
  Suite *s = suite_create ("cluster");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_tree_across_servers);
  tcase_add_test (tc, test_concurrent_joins);
  tcase_add_test (tc, test_server_killed);
  tcase_add_test (tc, test_tree_server_killed);
  tcase_add_test (tc, test_server_stalled);
  tcase_add_test (tc, test_redis_restart);
  tcase_add_test (tc, test_bad_channel_messages);
  tcase_add_test (tc, test_rights_across_servers);
  return s;
}

GST_CHECK_MAIN (cluster);
