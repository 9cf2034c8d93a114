/* Helpers of the cluster tests: peertree-server processes (PEERTREE_SERVER)
 * on a throw-away redis-server, their /status.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "pt-test-util.h"
#include "pt-test-redis.h"

#include <signal.h>
#include <string.h>

typedef struct {
  GSubprocess *proc;
  GDataInputStream *err;
  char *url;     /* ws:// */
  guint port;
} Server;

/* Reads the server's stderr until a line contains @what (bounded). */
static inline gboolean
server_wait_log (Server *s, const char *what, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (g_get_monotonic_time () < deadline) {
    g_autofree char *line = g_data_input_stream_read_line (s->err, NULL, NULL, NULL);
    if (!line)
      return FALSE;
    if (strstr (line, what))
      return TRUE;
  }
  return FALSE;
}

static inline Server *server_spawn_with (PtTestRedis *redis, guint k, guint k1,
    const char *auth_key);

static inline Server *
server_spawn (PtTestRedis *redis, guint k, guint k1)
{
  return server_spawn_with (redis, k, k1, NULL);
}

/* With @auth_key (a file), the server needs tokens. */
static inline Server *
server_spawn_with (PtTestRedis *redis, guint k, guint k1, const char *auth_key)
{
  Server *s = g_new0 (Server, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (l, pt_test_redis_child_setup, NULL, NULL);
  g_autofree char *ks = g_strdup_printf ("%u", k), *k1s = g_strdup_printf ("%u", k1);
  s->proc = g_subprocess_launcher_spawn (l, &error, PEERTREE_SERVER, "--port", "0", "--k", ks,
      "--k1", k1s, "--source-grace", "30", "--redis", redis->url,
      auth_key ? "--auth-key" : NULL, auth_key, NULL);
  fail_unless (s->proc != NULL, "%s", error ? error->message : "");
  g_autoptr (GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (s->proc));
  g_autofree char *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
  const char *at = line ? strstr (line, "ws://") : NULL;
  fail_unless (at != NULL, "no URL in \"%s\"", line ? line : "");
  s->url = g_strndup (at, strcspn (at, " "));
  s->port = atoi (strrchr (s->url, ':') + 1);
  s->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (s->proc));
  fail_unless (server_wait_log (s, "connected to Redis", 10000), "server %s: no Redis", s->url);
  return s;
}

static inline void
server_kill (Server *s)
{
  if (!s->proc)
    return;
  g_subprocess_send_signal (s->proc, SIGKILL);
  g_subprocess_wait (s->proc, NULL, NULL);
  g_clear_object (&s->proc);
}

static inline void
server_free (Server *s)
{
  server_kill (s);
  g_clear_object (&s->err);
  g_free (s->url);
  g_free (s);
}

/* GET @path of @s, its body as text. */
static inline char *
http_get_text (Server *s, const char *path)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u%s", s->port, path);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, pt_test_store_result,
      &res);
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
      &error);
  fail_unless (body != NULL, "GET %s: %s", path, error ? error->message : "");
  return g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
}

/* GET /status of @s: its trees (held by it). */
static inline JsonNode *
status_of (Server *s)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/status", s->port);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, pt_test_store_result,
      &res);
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
      &error);
  fail_unless (body != NULL, "GET /status: %s", error ? error->message : "");
  return json_from_string (g_bytes_get_data (body, NULL), NULL);
}

/* The members of tree @id in @s's status: clientId -> parent ("" for the root). */
static inline GHashTable *
tree_parents (Server *s, const char *id, guint *k, guint *k1)
{
  g_autoptr (JsonNode) status = status_of (s);
  GHashTable *parents = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  for (guint i = 0; i < json_array_get_length (trees); i++) {
    JsonObject *t = json_array_get_object_element (trees, i);
    if (g_strcmp0 (json_object_get_string_member (t, "id"), id) != 0)
      continue;
    if (k)
      *k = json_object_get_int_member (t, "k");
    if (k1)
      *k1 = json_object_get_int_member (t, "k1");
    JsonArray *members = json_object_get_array_member (t, "members");
    for (guint j = 0; j < json_array_get_length (members); j++) {
      JsonObject *m = json_array_get_object_element (members, j);
      JsonNode *p = json_object_get_member (m, "parent");
      g_hash_table_insert (parents, g_strdup (json_object_get_string_member (m, "id")),
          g_strdup (p && !JSON_NODE_HOLDS_NULL (p) ? json_node_get_string (p) : ""));
    }
  }
  return parents;
}

static inline gboolean
has_parent (Server *s, const char *tree, const char *member, const char *parent)
{
  g_autoptr (GHashTable) parents = tree_parents (s, tree, NULL, NULL);
  return g_strcmp0 (g_hash_table_lookup (parents, member), parent) == 0;
}

