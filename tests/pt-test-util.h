/* Helpers shared by peertree's tests: an in-process server, synchronous
 * wrappers of the client's async calls, and a bounded WAIT_UNTIL. */
#pragma once

#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include "pt-server.h"
#include "peertree-client.h"

/* Iterates the default main context until @cond holds or @ms pass. */
#define WAIT_UNTIL_MS(cond, ms)                                                  \
  G_STMT_START {                                                               \
    gint64 _deadline = g_get_monotonic_time () + (gint64) (ms) * 1000;        \
    while (!(cond) && g_get_monotonic_time () < _deadline) {                   \
      if (!g_main_context_iteration (NULL, FALSE))                             \
        g_usleep (500);                                                        \
    }                                                                          \
    fail_unless ((cond), "timed out after %d ms waiting for: %s", (int) (ms), #cond); \
  } G_STMT_END

#define WAIT_UNTIL(cond) WAIT_UNTIL_MS (cond, 5000)

static inline void
pt_test_store_result (GObject *source, GAsyncResult *res, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (res);
}

/* Runs the main context until the async call started with pt_test_store_result
 * and &res completes. */
static inline GAsyncResult *
pt_test_await (GAsyncResult **res)
{
  WAIT_UNTIL_MS (*res != NULL, 10000);
  return *res;
}

#ifdef PT_TEST_CLUSTER
/* Built with -DPT_TEST_CLUSTER (the *-cluster tests): every server made here
 * comes with a sibling on a throw-away Redis of its own (one service), and
 * the clients of pt_test_client_new() and pt_test_peer_new() alternate
 * between the two, so that every conversation crosses servers. */
#include "pt-test-redis.h"

/* Skipped (77) at start without redis-server. */
__attribute__ ((constructor)) static void
pt_test_cluster_require (void)
{
  pt_test_redis_require ();
}

static inline PtServer *
pt_test_server_new (guint k, guint k1)
{
  g_autoptr (GError) error = NULL;
  PtTestRedis *redis = pt_test_redis_new ();
  PtServer *servers[2];
  for (int i = 0; i < 2; i++) {
    servers[i] = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0, "k", k,
        "k1", k1, "redis", redis->url, NULL);
    fail_unless (pt_server_listen (servers[i], &error), "listen: %s",
        error ? error->message : "");
  }
  WAIT_UNTIL (pt_server_is_clustered (servers[0]) && pt_server_is_clustered (servers[1]));
  g_object_set_data_full (G_OBJECT (servers[0]), "pt-test-sibling", servers[1], g_object_unref);
  g_object_set_data_full (G_OBJECT (servers[0]), "pt-test-redis", redis,
      (GDestroyNotify) pt_test_redis_free);
  return servers[0];
}

/* The clients of the service: @server's and its sibling's. */
static inline guint
pt_test_n_clients (PtServer *server)
{
  PtServer *sibling = g_object_get_data (G_OBJECT (server), "pt-test-sibling");
  return pt_server_get_n_clients (server) + (sibling ? pt_server_get_n_clients (sibling) : 0);
}
#define pt_server_get_n_clients(s) pt_test_n_clients (s)

/* The URL of @server and of its sibling in turn. */
static inline char *
pt_test_server_url (PtServer *server)
{
  PtServer *sibling = g_object_get_data (G_OBJECT (server), "pt-test-sibling");
  guint n = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (server), "pt-test-turn"));
  g_object_set_data (G_OBJECT (server), "pt-test-turn", GUINT_TO_POINTER (n + 1));
  return pt_server_get_url (sibling && n % 2 ? sibling : server);
}
#else
static inline PtServer *
pt_test_server_new (guint k, guint k1)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0, "k", k,
      "k1", k1, NULL);
  fail_unless (pt_server_listen (server, &error), "listen: %s", error ? error->message : "");
  return server;
}

static inline char *
pt_test_server_url (PtServer *server)
{
  return pt_server_get_url (server);
}
#endif

static inline gboolean
pt_test_connect (PeerTreeClient *client, GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  peer_tree_client_connect_async (client, NULL, pt_test_store_result, &res);
  return peer_tree_client_connect_finish (client, pt_test_await (&res), error);
}

static inline PeerTreeClient *
pt_test_client_new (PtServer *server, const char *client_id)
{
  g_autofree char *url = pt_test_server_url (server);
  g_autoptr (GError) error = NULL;
  PeerTreeClient *client = peer_tree_client_new (url, client_id);
  fail_unless (pt_test_connect (client, &error), "connect %s: %s", client_id,
      error ? error->message : "");
  return client;
}

static inline char *
pt_test_create (PeerTreeClient *client, const char *tree_id, guint k, guint k1, GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  peer_tree_client_create_async (client, tree_id, k, k1, NULL, pt_test_store_result, &res);
  return peer_tree_client_create_finish (client, pt_test_await (&res), error);
}

static inline gboolean
pt_test_join (PeerTreeClient *client, const char *tree_id, char **parent, guint *depth,
    GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  peer_tree_client_join_async (client, tree_id, NULL, pt_test_store_result, &res);
  return peer_tree_client_join_finish (client, pt_test_await (&res), parent, depth, error);
}

static inline JsonObject *
pt_test_request (PeerTreeClient *client, const char *type, JsonObject *params, GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  peer_tree_client_request_async (client, type, params, NULL, pt_test_store_result, &res);
  return peer_tree_client_request_finish (client, pt_test_await (&res), error);
}

/* GET /status of @server, parsed. */
static inline JsonNode *
pt_test_get_status (PtServer *server)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/status", pt_server_get_port (server));
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, pt_test_store_result,
      &res);
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
      &error);
  fail_unless (body != NULL, "GET /status: %s", error ? error->message : "");
  fail_unless_equals_int (soup_message_get_status (msg), 200);
  return json_from_string (g_bytes_get_data (body, NULL), NULL);
}

/* A client and what the server has told it, as recorded from its signals. */
typedef struct {
  PeerTreeClient *client;
  char *id;
  char *parent;
  guint depth;
  guint upstream_changes;
  GPtrArray *children;
  guint children_added;
  guint source_lost;
  char *closed_reason;
  char *last_sdp_from, *last_sdp;
  guint n_ice;
} PtTestPeer;

static inline void
pt_test_peer_on_upstream (PeerTreeClient *c, const char *tree, const char *parent, guint depth,
    PtTestPeer *p)
{
  g_free (p->parent);
  p->parent = g_strdup (parent);
  p->depth = depth;
  p->upstream_changes++;
}

static inline void
pt_test_peer_on_down_added (PeerTreeClient *c, const char *tree, const char *child, PtTestPeer *p)
{
  fail_if (g_ptr_array_find_with_equal_func (p->children, child, g_str_equal, NULL),
      "%s told twice about child %s", p->id, child);
  g_ptr_array_add (p->children, g_strdup (child));
  p->children_added++;
}

static inline void
pt_test_peer_on_down_removed (PeerTreeClient *c, const char *tree, const char *child,
    PtTestPeer *p)
{
  guint i;
  fail_unless (g_ptr_array_find_with_equal_func (p->children, child, g_str_equal, &i),
      "%s told to remove unknown child %s", p->id, child);
  g_ptr_array_remove_index (p->children, i);
}

static inline void
pt_test_peer_on_source_lost (PeerTreeClient *c, const char *name, JsonObject *ev, PtTestPeer *p)
{
  p->source_lost++;
}

static inline void
pt_test_peer_on_closed (PeerTreeClient *c, const char *tree, const char *reason, PtTestPeer *p)
{
  g_free (p->closed_reason);
  p->closed_reason = g_strdup (reason);
}

static inline void
pt_test_peer_on_sdp (PeerTreeClient *c, const char *tree, const char *from, const char *type,
    const char *sdp, PtTestPeer *p)
{
  g_free (p->last_sdp_from);
  g_free (p->last_sdp);
  p->last_sdp_from = g_strdup (from);
  p->last_sdp = g_strdup_printf ("%s:%s", type, sdp);
}

static inline void
pt_test_peer_on_ice (PeerTreeClient *c, const char *tree, const char *from, guint mline,
    const char *cand, PtTestPeer *p)
{
  p->n_ice++;
}

/* Connects a client to @url as @id, with @secret unless it is NULL (then the
 * secret is random), and records what it is told. */
static inline PtTestPeer *
pt_test_peer_new_full (const char *url, const char *id, const char *secret)
{
  g_autoptr (GError) error = NULL;
  PtTestPeer *p = g_new0 (PtTestPeer, 1);
  p->client = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", id, "secret", secret,
      NULL);
  fail_unless (pt_test_connect (p->client, &error), "connect %s: %s", id,
      error ? error->message : "");
  p->id = g_strdup (peer_tree_client_get_client_id (p->client));
  p->children = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (p->client, "upstream-changed", G_CALLBACK (pt_test_peer_on_upstream), p);
  g_signal_connect (p->client, "downstream-added", G_CALLBACK (pt_test_peer_on_down_added), p);
  g_signal_connect (p->client, "downstream-removed", G_CALLBACK (pt_test_peer_on_down_removed),
      p);
  g_signal_connect (p->client, "event::source-lost", G_CALLBACK (pt_test_peer_on_source_lost), p);
  g_signal_connect (p->client, "tree-closed", G_CALLBACK (pt_test_peer_on_closed), p);
  g_signal_connect (p->client, "remote-sdp", G_CALLBACK (pt_test_peer_on_sdp), p);
  g_signal_connect (p->client, "remote-ice", G_CALLBACK (pt_test_peer_on_ice), p);
  return p;
}

/* A recorded client of @server, as @id. */
static inline PtTestPeer *
pt_test_peer_new (PtServer *server, const char *id)
{
  g_autofree char *url = pt_test_server_url (server);
  return pt_test_peer_new_full (url, id, NULL);
}

static inline void
pt_test_peer_free (PtTestPeer *p)
{
  g_signal_handlers_disconnect_by_data (p->client, p);
  peer_tree_client_close (p->client);
  g_object_unref (p->client);
  g_ptr_array_unref (p->children);
  g_free (p->id);
  g_free (p->parent);
  g_free (p->closed_reason);
  g_free (p->last_sdp_from);
  g_free (p->last_sdp);
  g_free (p);
}
