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

static inline PtServer *
pt_test_server_new (guint k, guint k1)
{
  g_autoptr (GError) error = NULL;
  PtServer *server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0, "k", k,
      "k1", k1, NULL);
  fail_unless (pt_server_listen (server, &error), "listen: %s", error ? error->message : "");
  return server;
}

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
  g_autofree char *url = pt_server_get_url (server);
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
