/* PeerTreeClient itself: its typed source-lost signal, and how it dispatches
 * events it does not know or that lack fields. */
#include "pt-test-util.h"

typedef struct {
  guint events;                 /* ::event::source-lost */
  guint typed;                  /* ::source-lost */
  guint events_before_typed;    /* ::event emissions seen by the first ::source-lost */
  char *tree_id;
  guint grace;
} SourceLost;

static void
on_source_lost_event (PeerTreeClient *c, const char *name, JsonObject *ev, SourceLost *s)
{
  s->events++;
}

static void
on_source_lost (PeerTreeClient *c, const char *tree_id, guint grace, SourceLost *s)
{
  if (s->typed++ == 0)
    s->events_before_typed = s->events;
  g_free (s->tree_id);
  s->tree_id = g_strdup (tree_id);
  s->grace = grace;
}

static void
source_lost_watch (PeerTreeClient *client, SourceLost *s)
{
  g_signal_connect (client, "event::source-lost", G_CALLBACK (on_source_lost_event), s);
  g_signal_connect (client, "source-lost", G_CALLBACK (on_source_lost), s);
}

GST_START_TEST (test_source_lost_signal)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "source-grace", 7, NULL);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "cam");
  g_autofree char *tree = pt_test_create (src->client, "t", 0, 0, &error);
  fail_unless_equals_string (tree, "t");
  PtTestPeer *v0 = pt_test_peer_new (server, "v0");
  PtTestPeer *v1 = pt_test_peer_new (server, "v1");
  fail_unless (pt_test_join (v0->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");
  fail_unless (pt_test_join (v1->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");
  SourceLost lost0 = { 0 }, lost1 = { 0 };
  source_lost_watch (v0->client, &lost0);
  source_lost_watch (v1->client, &lost1);

  /* The source drops its connection without leaving. */
  peer_tree_client_close (src->client);
  WAIT_UNTIL (lost0.typed == 1 && lost1.typed == 1);
  fail_unless_equals_string (lost0.tree_id, "t");
  fail_unless_equals_int (lost0.grace, 7);
  fail_unless_equals_string (lost1.tree_id, "t");
  fail_unless_equals_int (lost1.grace, 7);
  /* The generic signal keeps working, and comes first. */
  fail_unless_equals_int (lost0.events, 1);
  fail_unless_equals_int (lost0.events_before_typed, 1);
  fail_unless_equals_int (v0->source_lost, 1);
  /* The tree waits for its source. */
  fail_unless (v0->closed_reason == NULL);

  g_signal_handlers_disconnect_by_data (v0->client, &lost0);
  g_signal_handlers_disconnect_by_data (v1->client, &lost1);
  g_free (lost0.tree_id);
  g_free (lost1.tree_id);
  pt_test_peer_free (v1);
  pt_test_peer_free (v0);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* A fake server: accepts hello, then sends the events queued in @script. */
typedef struct {
  const char *const *script;    /* JSON texts, sent after the hello reply */
  GPtrArray *conns;
} FakeServer;

static void
fake_on_message (SoupWebsocketConnection *ws, gint type, GBytes *message, FakeServer *fake)
{
  g_autoptr (JsonNode) node = json_from_string (g_bytes_get_data (message, NULL), NULL);
  fail_unless (node && JSON_NODE_HOLDS_OBJECT (node));
  JsonObject *msg = json_node_get_object (node);
  fail_unless_equals_string (json_object_get_string_member (msg, "type"), "hello");
  g_autofree char *reply = g_strdup_printf ("{\"type\": \"reply\", \"id\": %" G_GINT64_FORMAT
      ", \"ok\": true, \"result\": {\"clientId\": \"c1\"}}",
      json_object_get_int_member (msg, "id"));
  soup_websocket_connection_send_text (ws, reply);
  for (guint i = 0; fake->script[i]; i++)
    soup_websocket_connection_send_text (ws, fake->script[i]);
}

static void
fake_on_ws (SoupServer *server, SoupServerMessage *msg, const char *path,
    SoupWebsocketConnection *ws, gpointer user_data)
{
  FakeServer *fake = user_data;
  g_ptr_array_add (fake->conns, g_object_ref (ws));
  g_signal_connect (ws, "message", G_CALLBACK (fake_on_message), fake);
}

/* Every event name ::event reported, in order. */
static void
on_any_event (PeerTreeClient *c, const char *name, JsonObject *ev, GPtrArray *names)
{
  g_ptr_array_add (names, g_strdup (name));
}

/* Typed signals that must not be emitted for a malformed event. */
static void
on_upstream (PeerTreeClient *c, const char *t, const char *p, guint d, guint *n)
{
  (*n)++;
}

static void
on_child (PeerTreeClient *c, const char *t, const char *child, guint *n)
{
  (*n)++;
}

static void
on_sdp (PeerTreeClient *c, const char *t, const char *f, const char *ty, const char *s, guint *n)
{
  (*n)++;
}

static void
on_ice (PeerTreeClient *c, const char *t, const char *f, guint m, const char *cand, guint *n)
{
  (*n)++;
}

static void
on_topic (PeerTreeClient *c, const char *service, const char *topic, JsonArray *a, guint *n)
{
  (*n)++;
}

static void
on_target_gone (PeerTreeClient *c, const char *id, guint *n)
{
  (*n)++;
}

static void
on_message (PeerTreeClient *c, PeerTreeMessage *m, guint *n)
{
  (*n)++;
}

static void
on_closed (PeerTreeClient *c, const char *tree_id, const char *reason, guint *n)
{
  (*n)++;
}

typedef struct {
  guint n;
  char *tree_id;
  guint grace;
} Lost;

static void
on_lost (PeerTreeClient *c, const char *tree_id, guint grace, Lost *l)
{
  l->n++;
  g_free (l->tree_id);
  l->tree_id = g_strdup (tree_id);
  l->grace = grace;
}

GST_START_TEST (test_unknown_and_malformed_events)
{
  static const char *const script[] = {
    /* unknown names, with and without a treeId */
    "{\"type\": \"event\", \"event\": \"brand-new-event\", \"x\": [1, 2]}",
    "{\"type\": \"event\", \"event\": \"brand-new-tree-event\", \"treeId\": \"t\"}",
    "{\"type\": \"event\", \"event\": \"\"}",
    /* no name, or a name that is not a string: not even ::event */
    "{\"type\": \"event\"}",
    "{\"type\": \"event\", \"event\": 42}",
    /* known names lacking what they need: no typed signal */
    "{\"type\": \"event\", \"event\": \"source-lost\", \"grace\": 5}",
    "{\"type\": \"event\", \"event\": \"upstream\", \"treeId\": \"t\"}",
    "{\"type\": \"event\", \"event\": \"downstream-added\", \"treeId\": \"t\"}",
    "{\"type\": \"event\", \"event\": \"signal\", \"treeId\": \"t\", \"from\": \"p\"}",
    "{\"type\": \"event\", \"event\": \"topic\", \"service\": \"s\"}",
    "{\"type\": \"event\", \"event\": \"target-disconnected\"}",
    "{\"type\": \"event\", \"event\": \"message\", \"name\": \"chat\"}",
    /* a known event after all that is still handled; without grace it is 0 */
    "{\"type\": \"event\", \"event\": \"source-lost\", \"treeId\": \"t\"}",
    "{\"type\": \"event\", \"event\": \"tree-closed\", \"treeId\": \"t\", \"reason\": \"bye\"}",
    NULL
  };
  FakeServer fake = { script, g_ptr_array_new_with_free_func (g_object_unref) };
  g_autoptr (GError) error = NULL;
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  soup_server_add_websocket_handler (server, NULL, NULL, NULL, fake_on_ws, &fake, NULL);
  fail_unless (soup_server_listen_local (server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error), "%s",
      error ? error->message : "");
  GSList *uris = soup_server_get_uris (server);
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%d", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  g_autoptr (PeerTreeClient) client = peer_tree_client_new (url, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  guint closed = 0, unexpected = 0;
  Lost lost = { 0 };
  g_signal_connect (client, "event", G_CALLBACK (on_any_event), names);
  g_signal_connect (client, "tree-closed", G_CALLBACK (on_closed), &closed);
  g_signal_connect (client, "source-lost", G_CALLBACK (on_lost), &lost);
  g_signal_connect (client, "upstream-changed", G_CALLBACK (on_upstream), &unexpected);
  g_signal_connect (client, "downstream-added", G_CALLBACK (on_child), &unexpected);
  g_signal_connect (client, "remote-sdp", G_CALLBACK (on_sdp), &unexpected);
  g_signal_connect (client, "remote-ice", G_CALLBACK (on_ice), &unexpected);
  g_signal_connect (client, "topic", G_CALLBACK (on_topic), &unexpected);
  g_signal_connect (client, "target-disconnected", G_CALLBACK (on_target_gone), &unexpected);
  g_signal_connect (client, "message", G_CALLBACK (on_message), &unexpected);

  fail_unless (pt_test_connect (client, &error), "%s", error ? error->message : "");
  WAIT_UNTIL (closed == 1);
  fail_unless_equals_int (unexpected, 0);
  fail_unless_equals_int (lost.n, 1);
  fail_unless_equals_string (lost.tree_id, "t");
  fail_unless_equals_int (lost.grace, 0);
  fail_unless_equals_int (names->len, 12);
  fail_unless_equals_string (g_ptr_array_index (names, 0), "brand-new-event");
  fail_unless_equals_string (g_ptr_array_index (names, 1), "brand-new-tree-event");
  fail_unless_equals_string (g_ptr_array_index (names, 2), "");
  fail_unless_equals_string (g_ptr_array_index (names, 3), "source-lost");
  fail_unless_equals_string (g_ptr_array_index (names, 10), "source-lost");
  fail_unless_equals_string (g_ptr_array_index (names, 11), "tree-closed");
  fail_unless (peer_tree_client_is_connected (client));

  g_free (lost.tree_id);
  peer_tree_client_close (client);
  g_ptr_array_unref (fake.conns);
}
GST_END_TEST;

static Suite *
client_suite (void)
{
  Suite *s = suite_create ("client");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_source_lost_signal);
  tcase_add_test (tc, test_unknown_and_malformed_events);
  return s;
}

GST_CHECK_MAIN (client);
