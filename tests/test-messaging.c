/* Client-to-client messages, targets, rooms, streams, services and topics,
 * through an in-process peertree-server on 127.0.0.1. */
#include "pt-test-util.h"

/* Runs @res-producing call and returns its result for the finish function. */
#define CALL(expr)                                                             \
  G_STMT_START {                                                               \
    g_clear_object (&res);                                                     \
    expr;                                                                      \
    pt_test_await (&res);                                                      \
  } G_STMT_END

static JsonArray *
args_of (const char *first, ...)
{
  JsonArray *a = json_array_new ();
  va_list ap;
  va_start (ap, first);
  for (const char *s = first; s; s = va_arg (ap, const char *))
    json_array_add_string_element (a, s);
  va_end (ap);
  return a;
}

/* Records every message a client receives. */
typedef struct {
  GPtrArray *messages; /* PeerTreeMessage* (kept: replies may be given later) */
  gboolean reply;      /* answer with the first argument + "!" */
} Inbox;

static void
on_message (PeerTreeClient *c, PeerTreeMessage *m, Inbox *in)
{
  g_ptr_array_add (in->messages, g_object_ref (m));
  if (in->reply && peer_tree_message_expects_reply (m)) {
    g_autofree char *text = g_strdup_printf ("%s!",
        json_array_get_string_element (peer_tree_message_get_args (m), 0));
    g_autoptr (JsonNode) v = json_node_init_string (json_node_alloc (), text);
    peer_tree_message_reply (m, v);
  }
}

static Inbox *
inbox_new (PeerTreeClient *c, const char *signal, gboolean reply)
{
  Inbox *in = g_new0 (Inbox, 1);
  in->messages = g_ptr_array_new_with_free_func (g_object_unref);
  in->reply = reply;
  g_signal_connect (c, signal, G_CALLBACK (on_message), in);
  return in;
}

static void
inbox_free (Inbox *in)
{
  g_ptr_array_unref (in->messages);
  g_free (in);
}

static PeerTreeMessage *
inbox_get (Inbox *in, guint i)
{
  return in->messages->pdata[i];
}

GST_START_TEST (test_identity)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  gboolean more = TRUE, connected = FALSE;

  CALL (peer_tree_client_list_clients_async (a, NULL, NULL, pt_test_store_result, &res));
  g_auto (GStrv) all = peer_tree_client_list_clients_finish (a, res, &more, &error);
  fail_unless_equals_int (g_strv_length (all), 2);
  fail_unless (g_strv_contains ((const char *const *) all, "alice"));
  fail_unless (g_strv_contains ((const char *const *) all, "bob"));
  fail_if (more);
  CALL (peer_tree_client_list_clients_async (a, "bo", NULL, pt_test_store_result, &res));
  g_auto (GStrv) some = peer_tree_client_list_clients_finish (a, res, NULL, &error);
  fail_unless_equals_int (g_strv_length (some), 1);

  CALL (peer_tree_client_is_client_connected_async (a, "bob", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_is_client_connected_finish (a, res, &connected, &error));
  fail_unless (connected);
  peer_tree_client_close (b);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 1);
  CALL (peer_tree_client_is_client_connected_async (a, "bob", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_is_client_connected_finish (a, res, &connected, &error));
  fail_if (connected);
}
GST_END_TEST;

static void
on_client_error (PeerTreeClient *c, GError *error, GError **out)
{
  g_clear_error (out);
  *out = g_error_copy (error);
}

GST_START_TEST (test_emit_and_replies)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (PeerTreeClient) c = pt_test_client_new (server, "carol");
  g_autoptr (GAsyncResult) res = NULL, res2 = NULL;
  g_autoptr (GError) error = NULL;
  Inbox *in = inbox_new (c, "message::ping", TRUE);

  /* Without reply: delivered with the sender's identity and arguments. */
  g_autoptr (JsonArray) args = args_of ("hi", NULL);
  CALL (peer_tree_client_emit_async (a, "carol", "ping", args, FALSE, 0, NULL,
      pt_test_store_result, &res));
  g_autoptr (JsonNode) none = peer_tree_client_emit_finish (a, res, &error);
  fail_unless (none != NULL && JSON_NODE_HOLDS_NULL (none));
  WAIT_UNTIL (in->messages->len == 1);
  fail_unless_equals_string (peer_tree_message_get_sender (inbox_get (in, 0)), "alice");
  fail_unless_equals_string (peer_tree_message_get_name (inbox_get (in, 0)), "ping");
  fail_if (peer_tree_message_expects_reply (inbox_get (in, 0)));

  /* Two senders at once: each gets its own reply. */
  g_autoptr (JsonArray) from_a = args_of ("a", NULL), from_b = args_of ("b", NULL);
  g_clear_object (&res);
  peer_tree_client_emit_async (a, "carol", "ping", from_a, TRUE, 0, NULL, pt_test_store_result, &res);
  peer_tree_client_emit_async (b, "carol", "ping", from_b, TRUE, 0, NULL, pt_test_store_result, &res2);
  WAIT_UNTIL (res && res2);
  g_autoptr (JsonNode) ra = peer_tree_client_emit_finish (a, res, &error);
  g_autoptr (JsonNode) rb = peer_tree_client_emit_finish (b, res2, &error);
  fail_unless_equals_string (json_node_get_string (ra), "a!");
  fail_unless_equals_string (json_node_get_string (rb), "b!");

  /* Fire and forget: delivered without any reply; a failure still surfaces,
   * on the error signal. */
  guint before_ff = in->messages->len;
  fail_unless (peer_tree_client_emit (a, "carol", "ping", args));
  WAIT_UNTIL (in->messages->len == before_ff + 1);
  GError *async_error = NULL;
  g_signal_connect (a, "error", G_CALLBACK (on_client_error), &async_error);
  fail_unless (peer_tree_client_emit (a, "nobody", "ping", args));
  WAIT_UNTIL (async_error != NULL);
  fail_unless (g_error_matches (async_error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND), "%s",
      async_error->message);
  g_clear_error (&async_error);
  g_signal_handlers_disconnect_by_func (a, on_client_error, &async_error);

  /* Unknown target: an error, never a silent drop. */
  CALL (peer_tree_client_emit_async (a, "nobody", "ping", NULL, FALSE, 0, NULL,
      pt_test_store_result, &res));
  fail_if (peer_tree_client_emit_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND), "%s",
      error->message);
  g_clear_error (&error);

  /* A reply wanted but no handler: refused at once, not left hanging. */
  CALL (peer_tree_client_emit_async (a, "bob", "unheard", NULL, TRUE, 0, NULL,
      pt_test_store_result, &res));
  fail_if (peer_tree_client_emit_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_REMOTE), "%s",
      error->message);
  g_clear_error (&error);

  /* A handler that keeps the message without answering: the server's timeout. */
  in->reply = FALSE;
  CALL (peer_tree_client_emit_async (a, "carol", "ping", args, TRUE, 300, NULL,
      pt_test_store_result, &res));
  fail_if (peer_tree_client_emit_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TIMEOUT), "%s",
      error->message);
  g_clear_error (&error);

  /* The target disconnects before answering. */
  guint before = in->messages->len;
  g_clear_object (&res);
  peer_tree_client_emit_async (a, "carol", "ping", args, TRUE, 0, NULL, pt_test_store_result, &res);
  WAIT_UNTIL (in->messages->len == before + 1);
  peer_tree_client_close (c);
  pt_test_await (&res);
  fail_if (peer_tree_client_emit_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_DISCONNECTED), "%s",
      error->message);
  inbox_free (in);
}
GST_END_TEST;

static void
count_from (PeerTreeClient *client, PeerTreeMessage *m, gpointer user_data)
{
  (*(guint *) user_data)++;
}

GST_START_TEST (test_listen_filtered_by_sender)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (PeerTreeClient) c = pt_test_client_new (server, "carol");
  g_autoptr (GAsyncResult) res = NULL;
  guint from_a = 0, from_b_any = 0;
  Inbox *all = inbox_new (c, "message", FALSE);
  gulong h = peer_tree_client_connect_message_from (c, "alice", "news", count_from, &from_a, NULL);
  peer_tree_client_connect_message_from (c, "bob", NULL, count_from, &from_b_any, NULL);

  CALL (peer_tree_client_emit_async (b, "carol", "news", NULL, FALSE, 0, NULL, pt_test_store_result, &res));
  CALL (peer_tree_client_emit_async (a, "carol", "news", NULL, FALSE, 0, NULL, pt_test_store_result, &res));
  CALL (peer_tree_client_emit_async (a, "carol", "other", NULL, FALSE, 0, NULL, pt_test_store_result, &res));
  WAIT_UNTIL (all->messages->len == 3);
  fail_unless_equals_int (from_a, 1);     /* not bob's "news", not alice's "other" */
  fail_unless_equals_int (from_b_any, 1);
  /* "off": GObject semantics. */
  g_signal_handler_disconnect (c, h);
  CALL (peer_tree_client_emit_async (a, "carol", "news", NULL, FALSE, 0, NULL, pt_test_store_result, &res));
  WAIT_UNTIL (all->messages->len == 4);
  fail_unless_equals_int (from_a, 1);
  inbox_free (all);
}
GST_END_TEST;

static void
on_target_gone (PeerTreeClient *c, const char *id, char **out)
{
  g_free (*out);
  *out = g_strdup (id);
}

static void
refuse (PeerTreeClient *c, PeerTreeMessage *m, gpointer data)
{
  peer_tree_message_reply_error (m, "busy");
}

GST_START_TEST (test_targets)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (PeerTreeClient) c = pt_test_client_new (server, "carol");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *a_lost = NULL, *b_lost = NULL, *c_lost = NULL;
  g_signal_connect (a, "target-disconnected", G_CALLBACK (on_target_gone), &a_lost);
  g_signal_connect (b, "target-disconnected", G_CALLBACK (on_target_gone), &b_lost);
  g_signal_connect (c, "target-disconnected", G_CALLBACK (on_target_gone), &c_lost);

  CALL (peer_tree_client_add_target_async (a, "nobody", 0, NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_add_target_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
  g_clear_error (&error);

  /* Accepted by default; refused by a handler. */
  CALL (peer_tree_client_add_target_async (a, "bob", 0, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_add_target_finish (a, res, &error), "%s", error ? error->message : "");
  g_signal_connect (c, "target-request", G_CALLBACK (refuse), NULL);
  CALL (peer_tree_client_add_target_async (a, "carol", 0, NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_add_target_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_REMOTE));
  fail_unless (strstr (error->message, "busy") != NULL, "%s", error->message);
  g_clear_error (&error);
  /* carol paired with bob the other way round. */
  CALL (peer_tree_client_add_target_async (c, "bob", 0, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_add_target_finish (c, res, &error));

  /* The target disconnects: the requester is told. */
  peer_tree_client_close (b);
  WAIT_UNTIL (a_lost && c_lost);
  fail_unless_equals_string (a_lost, "bob");
  fail_unless_equals_string (c_lost, "bob");
  /* And the other way: the requester disconnects, the target is told. */
  g_autoptr (PeerTreeClient) d = pt_test_client_new (server, "dave");
  g_autofree char *d_lost = NULL;
  g_signal_connect (d, "target-disconnected", G_CALLBACK (on_target_gone), &d_lost);
  CALL (peer_tree_client_add_target_async (a, "dave", 0, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_add_target_finish (a, res, &error));
  peer_tree_client_close (a);
  WAIT_UNTIL (d_lost != NULL);
  fail_unless_equals_string (d_lost, "alice");
  /* carol never paired with alice: not told. */
  fail_unless_equals_string (c_lost, "bob");
}
GST_END_TEST;

static GStrv
list_rooms (PeerTreeClient *c, const char *who)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  CALL (peer_tree_client_list_rooms_async (c, who, NULL, pt_test_store_result, &res));
  GStrv rooms = peer_tree_client_list_rooms_finish (c, res, &error);
  fail_unless (rooms != NULL, "%s", error ? error->message : "");
  return rooms;
}

static guint
room_emit (PeerTreeClient *c, const char *room, GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  guint n = G_MAXUINT;
  CALL (peer_tree_client_room_emit_async (c, room, "say", NULL, NULL, pt_test_store_result, &res));
  peer_tree_client_finish (c, res, &n, error);
  return n;
}

GST_START_TEST (test_rooms)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (PeerTreeClient) c = pt_test_client_new (server, "carol");
  g_autoptr (PeerTreeClient) outsider = pt_test_client_new (server, "eve");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  Inbox *ia = inbox_new (a, "message::say", FALSE), *ib = inbox_new (b, "message::say", FALSE);
  Inbox *ic = inbox_new (c, "message::say", FALSE), *ie = inbox_new (outsider, "message", FALSE);

  PeerTreeClient *members[] = { a, b, c };
  for (guint i = 0; i < 3; i++) {
    CALL (peer_tree_client_room_join_async (members[i], "lobby", NULL, pt_test_store_result, &res));
    fail_unless (peer_tree_client_finish (members[i], res, NULL, &error));
  }
  CALL (peer_tree_client_room_join_async (a, "kitchen", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (a, res, NULL, &error));
  g_auto (GStrv) rooms = list_rooms (b, "alice");
  fail_unless_equals_int (g_strv_length (rooms), 2);
  fail_unless_equals_string (rooms[0], "kitchen");
  fail_unless_equals_string (rooms[1], "lobby");

  /* The sender is excluded, non-members get nothing. */
  fail_unless_equals_int (room_emit (a, "lobby", &error), 2);
  WAIT_UNTIL (ib->messages->len == 1 && ic->messages->len == 1);
  fail_unless_equals_string (peer_tree_message_get_room (inbox_get (ib, 0)), "lobby");
  fail_unless_equals_string (peer_tree_message_get_sender (inbox_get (ic, 0)), "alice");
  /* Only members may emit. */
  fail_unless_equals_int (room_emit (outsider, "lobby", &error), G_MAXUINT);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_MEMBER));
  g_clear_error (&error);
  /* A round trip through the server so any stray delivery would have arrived. */
  g_auto (GStrv) r2 = list_rooms (outsider, NULL);
  fail_unless_equals_int (ia->messages->len, 0);
  fail_unless_equals_int (ie->messages->len, 0);

  /* Leave, then disconnect: memberships are gone. */
  CALL (peer_tree_client_room_leave_async (b, "lobby", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (b, res, NULL, &error));
  CALL (peer_tree_client_room_leave_async (b, "lobby", NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (b, res, NULL, &error));
  g_clear_error (&error);
  fail_unless_equals_int (room_emit (a, "lobby", &error), 1);
  peer_tree_client_close (c);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 3);
  fail_unless_equals_int (room_emit (a, "lobby", &error), 0);
  fail_unless_equals_int (ib->messages->len, 1);
  inbox_free (ia);
  inbox_free (ib);
  inbox_free (ic);
  inbox_free (ie);
}
GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

static void
accept_stream (PeerTreeClient *c, PeerTreeMessage *m, GIOStream **out)
{
  *out = peer_tree_message_accept_stream (m);
}

static GIOStream *
open_pair (PeerTreeClient *a, PeerTreeClient *b, const char *target, GIOStream **accepted)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  gulong h = g_signal_connect (b, "stream-request::files", G_CALLBACK (accept_stream), accepted);
  CALL (peer_tree_client_open_stream_async (a, target, "files", NULL, 0, NULL,
      pt_test_store_result, &res));
  GIOStream *s = peer_tree_client_open_stream_finish (a, res, &error);
  fail_unless (s != NULL, "%s", error ? error->message : "");
  fail_unless (*accepted != NULL);
  g_signal_handler_disconnect (b, h);
  return s;
}

#define TOTAL (50 * 1024 * 1024)
#define CHUNK (64 * 1024)

static guint8
pattern (gsize i)
{
  return (guint8) (i * 7 + i / 251);
}

typedef struct {
  GOutputStream *out;
  GInputStream *in;
  guint8 *wbuf, *rbuf;
  gsize written, read;
  gboolean write_done, read_done, intact;
  gsize max_in_flight_while_paused;
  gboolean pausing;
  GError *error;
} Transfer;

static void write_next (Transfer *t);

static void
on_written (GObject *src, GAsyncResult *res, gpointer data)
{
  Transfer *t = data;
  gssize n = g_output_stream_write_finish (G_OUTPUT_STREAM (src), res, &t->error);
  fail_unless (n > 0, "write failed: %s", t->error ? t->error->message : "");
  t->written += n;
  write_next (t);
}

static void
on_closed_out (GObject *src, GAsyncResult *res, gpointer data)
{
  Transfer *t = data;
  fail_unless (g_output_stream_close_finish (G_OUTPUT_STREAM (src), res, NULL));
  t->write_done = TRUE;
}

static void
write_next (Transfer *t)
{
  if (t->written == TOTAL) {
    g_output_stream_close_async (t->out, G_PRIORITY_DEFAULT, NULL, on_closed_out, t);
    return;
  }
  gsize n = MIN (CHUNK, TOTAL - t->written);
  for (gsize i = 0; i < n; i++)
    t->wbuf[i] = pattern (t->written + i);
  g_output_stream_write_async (t->out, t->wbuf, n, G_PRIORITY_DEFAULT, NULL, on_written, t);
}

static void read_next (Transfer *t);

static gboolean
resume_read (gpointer data)
{
  Transfer *t = data;
  /* While the reader slept, the writer could not run ahead by more than the
   * window (plus what the reader had not yet been granted back). */
  t->max_in_flight_while_paused = MAX (t->max_in_flight_while_paused, t->written - t->read);
  t->pausing = FALSE;
  read_next (t);
  return G_SOURCE_REMOVE;
}

static void
on_read (GObject *src, GAsyncResult *res, gpointer data)
{
  Transfer *t = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (src), res, &t->error);
  fail_unless (n >= 0, "read failed: %s", t->error ? t->error->message : "");
  if (n == 0) {
    t->read_done = TRUE;
    return;
  }
  for (gssize i = 0; i < n; i++)
    if (t->rbuf[i] != pattern (t->read + i))
      t->intact = FALSE;
  t->read += n;
  /* A slow reader: every 2 MiB it sleeps 50 ms. */
  if (t->read / (2 << 20) != (t->read - n) / (2 << 20)) {
    t->pausing = TRUE;
    g_timeout_add (50, resume_read, t);
    return;
  }
  read_next (t);
}

static void
read_next (Transfer *t)
{
  g_input_stream_read_async (t->in, t->rbuf, CHUNK, G_PRIORITY_DEFAULT, NULL, on_read, t);
}

GST_START_TEST (test_stream_50mb_backpressure_eof)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (GIOStream) accepted = NULL;
  g_autoptr (GIOStream) s = open_pair (a, b, "bob", &accepted);
  fail_unless_equals_string (peer_tree_stream_get_peer (PEER_TREE_STREAM (accepted)), "alice");

  Transfer t = { 0 };
  t.out = g_io_stream_get_output_stream (s);
  t.in = g_io_stream_get_input_stream (accepted);
  t.wbuf = g_malloc (CHUNK);
  t.rbuf = g_malloc (CHUNK);
  t.intact = TRUE;
  gint64 start = g_get_monotonic_time ();
  write_next (&t);
  read_next (&t);
  WAIT_UNTIL_MS (t.read_done && t.write_done, 120000);
  gint64 us = g_get_monotonic_time () - start;
  GST_INFO ("50 MB in %.2f s (%.1f MB/s)", us / 1e6, TOTAL / (us / 1e6) / 1e6);
  fail_unless_equals_uint64 (t.read, TOTAL);
  fail_unless (t.intact, "bytes changed on the way");
  /* Back-pressure: the window is 256 KiB, credit comes back in quarters. */
  fail_unless (t.max_in_flight_while_paused <= 256 * 1024 + CHUNK,
      "writer ran %" G_GSIZE_FORMAT " bytes ahead of a sleeping reader",
      t.max_in_flight_while_paused);
  fail_unless (t.max_in_flight_while_paused > 0);
  g_free (t.wbuf);
  g_free (t.rbuf);
}
GST_END_TEST;

static void
store_read (GObject *src, GAsyncResult *res, gpointer data)
{
  GError **error = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (src), res, error);
  fail_unless (n < 0, "read returned %" G_GSSIZE_FORMAT " instead of failing", n);
}

GST_START_TEST (test_stream_failures)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  char buf[16];

  /* No handler for the channel: refused with a clear error. */
  CALL (peer_tree_client_open_stream_async (a, "bob", "video", NULL, 0, NULL,
      pt_test_store_result, &res));
  fail_if (peer_tree_client_open_stream_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_REMOTE), "%s",
      error->message);
  g_clear_error (&error);
  CALL (peer_tree_client_open_stream_async (a, "ghost", "files", NULL, 0, NULL,
      pt_test_store_result, &res));
  fail_if (peer_tree_client_open_stream_finish (a, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
  g_clear_error (&error);

  /* Destroying one end fails the other's pending read and later writes. */
  g_autoptr (GIOStream) acc1 = NULL;
  g_autoptr (GIOStream) s1 = open_pair (a, b, "bob", &acc1);
  GError *read_error = NULL;
  g_input_stream_read_async (g_io_stream_get_input_stream (acc1), buf, sizeof buf,
      G_PRIORITY_DEFAULT, NULL, store_read, &read_error);
  fail_unless (g_io_stream_close (s1, NULL, NULL));
  WAIT_UNTIL (read_error != NULL);
  fail_unless (read_error->domain == G_IO_ERROR, "%s", read_error->message);
  g_clear_error (&read_error);
  fail_unless (g_output_stream_write (g_io_stream_get_output_stream (acc1), "x", 1, NULL, &error) < 0);
  g_clear_error (&error);

  /* Half-close: end of stream reaches the peer as end-of-file, after the data. */
  g_autoptr (GIOStream) acc2 = NULL;
  g_autoptr (GIOStream) s2 = open_pair (a, b, "bob", &acc2);
  fail_unless (g_output_stream_write_all (g_io_stream_get_output_stream (s2), "hello", 5, NULL,
      NULL, &error));
  fail_unless (g_output_stream_close (g_io_stream_get_output_stream (s2), NULL, &error));
  gsize got = 0;
  fail_unless (g_input_stream_read_all (g_io_stream_get_input_stream (acc2), buf, sizeof buf,
      &got, NULL, &error));
  fail_unless_equals_int (got, 5); /* read_all stops at end-of-file */
  /* The other direction still works after the half-close. */
  fail_unless (g_output_stream_write_all (g_io_stream_get_output_stream (acc2), "back", 4, NULL,
      NULL, &error));
  fail_unless (g_output_stream_close (g_io_stream_get_output_stream (acc2), NULL, &error));
  fail_unless (g_input_stream_read_all (g_io_stream_get_input_stream (s2), buf, sizeof buf, &got,
      NULL, &error));
  fail_unless_equals_int (got, 4);

  /* The peer disconnects: a pending read fails. */
  g_autoptr (GIOStream) acc3 = NULL;
  g_autoptr (GIOStream) s3 = open_pair (a, b, "bob", &acc3);
  g_input_stream_read_async (g_io_stream_get_input_stream (s3), buf, sizeof buf,
      G_PRIORITY_DEFAULT, NULL, store_read, &read_error);
  peer_tree_client_close (b);
  WAIT_UNTIL (read_error != NULL);
  fail_unless (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED), "%s",
      read_error->message);
  g_clear_error (&read_error);
}
GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Services and topics                                                      */

static JsonNode *
call_service (PeerTreeClient *c, const char *service, const char *method, JsonArray *args,
    GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  CALL (peer_tree_client_call_service_async (c, service, method, args, 0, NULL,
      pt_test_store_result, &res));
  return peer_tree_client_call_service_finish (c, res, error);
}

static void
on_service_call (PeerTreeClient *c, PeerTreeMessage *m, gpointer data)
{
  const char *method = peer_tree_message_get_name (m);
  if (g_str_equal (method, "add")) {
    JsonArray *args = peer_tree_message_get_args (m);
    gint64 sum = json_array_get_int_element (args, 0) + json_array_get_int_element (args, 1);
    g_autoptr (JsonNode) v = json_node_init_int (json_node_alloc (), sum);
    peer_tree_message_reply (m, v);
  } else if (g_str_equal (method, "fail")) {
    peer_tree_message_reply_error (m, "it failed on purpose");
  } else if (data) {
    *(PeerTreeMessage **) data = g_object_ref (m); /* answered never: provider leaves */
  }
}

static JsonNode *
server_echo (PtServer *server, const char *caller, const char *method, JsonArray *args,
    gpointer user_data, GError **error)
{
  if (g_str_equal (method, "fail")) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "it failed on purpose");
    return NULL;
  }
  return json_node_init_string (json_node_alloc (), caller);
}

GST_START_TEST (test_services)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) prov = pt_test_client_new (server, "calc");
  g_autoptr (PeerTreeClient) user = pt_test_client_new (server, "user");
  g_autoptr (PeerTreeClient) rival = pt_test_client_new (server, "rival");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  PeerTreeMessage *held = NULL;
  static const char *const methods[] = { "add", "fail", "hang", NULL };
  static const char *const server_methods[] = { "whoami", "fail", NULL };
  fail_unless (pt_server_provide_service (server, "echo", server_methods, server_echo, NULL,
      NULL, &error));
  g_signal_connect (prov, "service-call::math", G_CALLBACK (on_service_call), &held);

  CALL (peer_tree_client_provide_service_async (prov, "math", methods, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error));
  /* A second provider for the same name is refused, whether it is a client's or the server's. */
  CALL (peer_tree_client_provide_service_async (rival, "math", NULL, NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (rival, res, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_EXISTS));
  g_clear_error (&error);
  CALL (peer_tree_client_provide_service_async (rival, "echo", NULL, NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (rival, res, NULL, &error));
  g_clear_error (&error);
  fail_if (pt_server_provide_service (server, "math", NULL, server_echo, NULL, NULL, NULL));

  /* Called identically whoever provides it. */
  g_autoptr (JsonArray) nums = json_array_new ();
  json_array_add_int_element (nums, 2);
  json_array_add_int_element (nums, 40);
  g_autoptr (JsonNode) sum = call_service (user, "math", "add", nums, &error);
  fail_unless (sum != NULL, "%s", error ? error->message : "");
  fail_unless_equals_int (json_node_get_int (sum), 42);
  g_autoptr (JsonNode) who = call_service (user, "echo", "whoami", NULL, &error);
  fail_unless_equals_string (json_node_get_string (who), "user");
  g_autoptr (JsonNode) trees = call_service (user, "peertree", "list-trees", NULL, &error);
  fail_unless (trees && JSON_NODE_HOLDS_ARRAY (trees), "built-in service");
  /* Errors: the provider's failure, unknown method, unknown service. */
  const char *fails[][2] = { { "math", "fail" }, { "echo", "fail" } };
  for (guint i = 0; i < G_N_ELEMENTS (fails); i++) {
    fail_if (call_service (user, fails[i][0], fails[i][1], NULL, &error));
    fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_REMOTE));
    fail_unless (strstr (error->message, "on purpose") != NULL, "%s", error->message);
    g_clear_error (&error);
  }
  fail_if (call_service (user, "math", "divide", NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
  g_clear_error (&error);
  fail_if (call_service (user, "nothing", "add", NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
  g_clear_error (&error);

  /* The provider disconnects while a call waits: an error reply, and the
   * service is gone. */
  CALL (peer_tree_client_call_service_async (user, "math", "hang", NULL, 0, NULL,
      pt_test_store_result, &res);
      WAIT_UNTIL (held != NULL);
      peer_tree_client_close (prov));
  fail_if (peer_tree_client_call_service_finish (user, res, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_DISCONNECTED), "%s",
      error->message);
  g_clear_error (&error);
  g_clear_object (&held);
  fail_if (call_service (user, "math", "add", nums, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
}
GST_END_TEST;

typedef struct {
  guint received;
  char *destroyed;
} TopicLog;

static void
on_topic (PeerTreeClient *c, const char *service, const char *topic, JsonArray *args, TopicLog *l)
{
  l->received++;
}

static void
on_topic_destroyed (PeerTreeClient *c, const char *service, const char *topic, TopicLog *l)
{
  g_free (l->destroyed);
  l->destroyed = g_strdup_printf ("%s/%s", service, topic);
}

static guint
publish (PeerTreeClient *c, const char *service, const char *topic)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  guint n = G_MAXUINT;
  g_autoptr (JsonArray) args = args_of ("tick", NULL);
  CALL (peer_tree_client_publish_async (c, service, topic, args, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (c, res, &n, &error), "%s", error ? error->message : "");
  return n;
}

GST_START_TEST (test_topics)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) prov = pt_test_client_new (server, "clock");
  g_autoptr (PeerTreeClient) s1 = pt_test_client_new (server, "s1");
  g_autoptr (PeerTreeClient) s2 = pt_test_client_new (server, "s2");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  TopicLog l1 = { 0 }, l2 = { 0 };
  g_signal_connect (s1, "topic", G_CALLBACK (on_topic), &l1);
  g_signal_connect (s2, "topic", G_CALLBACK (on_topic), &l2);
  g_signal_connect (s1, "topic-destroyed", G_CALLBACK (on_topic_destroyed), &l1);
  g_signal_connect (s2, "topic-destroyed", G_CALLBACK (on_topic_destroyed), &l2);

  CALL (peer_tree_client_provide_service_async (prov, "time", NULL, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error));
  CALL (peer_tree_client_topic_create_async (prov, "time", "seconds", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error));
  /* Only the provider creates topics. */
  CALL (peer_tree_client_topic_create_async (s1, "time", "fake", NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (s1, res, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_PERMITTED));
  g_clear_error (&error);
  CALL (peer_tree_client_subscribe_async (s1, "time", "nope", NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (s1, res, NULL, &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND));
  g_clear_error (&error);

  PeerTreeClient *subs[] = { s1, s2 };
  for (guint i = 0; i < 2; i++) {
    CALL (peer_tree_client_subscribe_async (subs[i], "time", "seconds", NULL, pt_test_store_result, &res));
    fail_unless (peer_tree_client_finish (subs[i], res, NULL, &error));
  }
  fail_unless_equals_int (publish (prov, "time", "seconds"), 2);
  WAIT_UNTIL (l1.received == 1 && l2.received == 1);
  CALL (peer_tree_client_unsubscribe_async (s2, "time", "seconds", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (s2, res, NULL, &error));
  fail_unless_equals_int (publish (prov, "time", "seconds"), 1);
  WAIT_UNTIL (l1.received == 2);

  /* Destroying a topic tells its subscribers. */
  CALL (peer_tree_client_subscribe_async (s2, "time", "seconds", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (s2, res, NULL, &error));
  CALL (peer_tree_client_topic_destroy_async (prov, "time", "seconds", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error));
  WAIT_UNTIL (l1.destroyed && l2.destroyed);
  fail_unless_equals_string (l1.destroyed, "time/seconds");

  /* A subscriber's disconnect removes its membership. */
  CALL (peer_tree_client_topic_create_async (prov, "time", "minutes", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error));
  for (guint i = 0; i < 2; i++) {
    CALL (peer_tree_client_subscribe_async (subs[i], "time", "minutes", NULL, pt_test_store_result, &res));
    fail_unless (peer_tree_client_finish (subs[i], res, NULL, &error));
  }
  peer_tree_client_close (s2);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 2);
  fail_unless_equals_int (publish (prov, "time", "minutes"), 1);

  /* Server-provided topics. */
  static const char *const m[] = { "x", NULL };
  fail_unless (pt_server_provide_service (server, "srv", m, server_echo, NULL, NULL, &error));
  fail_unless (pt_server_create_topic (server, "srv", "news", &error));
  CALL (peer_tree_client_subscribe_async (s1, "srv", "news", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (s1, res, NULL, &error));
  fail_unless_equals_int (pt_server_publish (server, "srv", "news", NULL), 1);
  WAIT_UNTIL (l1.received == 3);
  g_free (l1.destroyed);
  l1.destroyed = NULL;
  fail_unless (pt_server_destroy_topic (server, "srv", "news"));
  WAIT_UNTIL (l1.destroyed != NULL);
  g_free (l1.destroyed);
  g_free (l2.destroyed);
}
GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */

static void
keep (PeerTreeClient *c, PeerTreeMessage *m, GPtrArray *kept)
{
  g_ptr_array_add (kept, g_object_ref (m));
}

GST_START_TEST (test_limits)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (PeerTreeClient) p = pt_test_client_new (server, "prov");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;

  /* Rooms: 64. */
  for (guint i = 0; i <= 64; i++) {
    g_autofree char *room = g_strdup_printf ("room%u", i);
    CALL (peer_tree_client_room_join_async (a, room, NULL, pt_test_store_result, &res));
    gboolean ok = peer_tree_client_finish (a, res, NULL, &error);
    fail_unless (ok == (i < 64), "room %u", i);
  }
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_LIMIT));
  g_clear_error (&error);

  /* Requests waiting for other clients' replies: 256. */
  g_autoptr (GPtrArray) kept = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (b, "message::hold", G_CALLBACK (keep), kept);
  GAsyncResult *pending[257] = { 0 };
  for (guint i = 0; i < 257; i++)
    peer_tree_client_emit_async (a, "bob", "hold", NULL, TRUE, 0, NULL, pt_test_store_result,
        &pending[i]);
  WAIT_UNTIL (pending[256] != NULL && kept->len == 256);
  fail_if (peer_tree_client_emit_finish (a, pending[256], &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_LIMIT), "%s", error->message);
  g_clear_error (&error);
  for (guint i = 0; i < 256; i++)
    fail_unless (pending[i] == NULL);
  g_ptr_array_set_size (kept, 0); /* answered "no handler replied" */
  for (guint i = 0; i < 256; i++) {
    pt_test_await (&pending[i]);
    g_clear_object (&pending[i]);
  }
  g_clear_object (&pending[256]);

  /* Subscriptions: 256. */
  CALL (peer_tree_client_provide_service_async (p, "svc", NULL, NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (p, res, NULL, &error));
  for (guint i = 0; i < 257; i++) {
    g_autofree char *topic = g_strdup_printf ("t%u", i);
    CALL (peer_tree_client_topic_create_async (p, "svc", topic, NULL, pt_test_store_result, &res));
    gboolean created = peer_tree_client_finish (p, res, NULL, &error);
    fail_unless (created == (i < 256), "topic %u", i);  /* topics per service: 256 too */
    g_clear_error (&error);
  }
  for (guint i = 0; i < 256; i++) {
    g_autofree char *topic = g_strdup_printf ("t%u", i);
    CALL (peer_tree_client_subscribe_async (a, "svc", topic, NULL, pt_test_store_result, &res));
    fail_unless (peer_tree_client_finish (a, res, NULL, &error));
  }
  CALL (peer_tree_client_topic_destroy_async (p, "svc", "t0", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (p, res, NULL, &error));
  CALL (peer_tree_client_topic_create_async (p, "svc", "extra", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (p, res, NULL, &error));
  CALL (peer_tree_client_subscribe_async (a, "svc", "extra", NULL, pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (a, res, NULL, &error)); /* t0's slot was freed */
  CALL (peer_tree_client_topic_create_async (p, "svc", "extra2", NULL, pt_test_store_result, &res));
  fail_if (peer_tree_client_finish (p, res, NULL, &error));   /* 256 topics again */
  g_clear_error (&error);

  /* Streams: 64 per client. */
  g_autoptr (GPtrArray) streams = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i <= 64; i++) {
    GIOStream *accepted = NULL;
    gulong h = g_signal_connect (b, "stream-request", G_CALLBACK (accept_stream), &accepted);
    CALL (peer_tree_client_open_stream_async (a, "bob", "any", NULL, 0, NULL,
        pt_test_store_result, &res));
    GIOStream *s = peer_tree_client_open_stream_finish (a, res, &error);
    g_signal_handler_disconnect (b, h);
    fail_unless ((s != NULL) == (i < 64), "stream %u", i);
    if (s) {
      g_ptr_array_add (streams, s);
      g_ptr_array_add (streams, accepted);
    }
  }
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_LIMIT));
  g_clear_error (&error);
  /* Everyone is still served. */
  g_auto (GStrv) rooms = list_rooms (b, "alice");
  fail_unless_equals_int (g_strv_length (rooms), 64);
}
GST_END_TEST;


/* ------------------------------------------------------------------------ */
/* Names                                                                    */

/* Joins @room; FALSE with @error set if refused. */
static gboolean
room_join (PeerTreeClient *c, const char *room, GError **error)
{
  g_autoptr (GAsyncResult) res = NULL;
  CALL (peer_tree_client_room_join_async (c, room, NULL, pt_test_store_result, &res));
  return peer_tree_client_finish (c, res, NULL, error);
}

static void
expect_bad_request (gboolean ok, GError **error, const char *what)
{
  fail_if (ok, "%s was accepted", what);
  fail_unless (g_error_matches (*error, PEER_TREE_ERROR, PEER_TREE_ERROR_BAD_REQUEST),
      "%s: %s", what, (*error)->message);
  g_clear_error (error);
}

/* Service, method, topic, room, event and channel names are any UTF-8 of 1
 * to 128 bytes without control characters; ids stay strict. */
GST_START_TEST (test_names)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (PeerTreeClient) prov = pt_test_client_new (server, "seed");
  g_autoptr (PeerTreeClient) a = pt_test_client_new (server, "alice");
  g_autoptr (PeerTreeClient) b = pt_test_client_new (server, "bob");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  TopicLog l = { 0 };
  g_signal_connect (a, "topic", G_CALLBACK (on_topic), &l);

  /* The seed's own topic name, in a service whose name has a space too. */
  CALL (peer_tree_client_provide_service_async (prov, "seed service", NULL, NULL,
      pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error), "%s", error ? error->message : "");
  CALL (peer_tree_client_topic_create_async (prov, "seed service", "first one", NULL,
      pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (prov, res, NULL, &error), "%s", error ? error->message : "");
  CALL (peer_tree_client_subscribe_async (a, "seed service", "first one", NULL,
      pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (a, res, NULL, &error), "%s", error ? error->message : "");
  fail_unless_equals_int (publish (prov, "seed service", "first one"), 1);
  WAIT_UNTIL (l.received == 1);
  /* The server's own API takes the same names. */
  static const char *const m[] = { "say hello", NULL };
  fail_unless (pt_server_provide_service (server, "server service", m, server_echo, NULL, NULL,
      &error));
  fail_unless (pt_server_create_topic (server, "server service", "first one", &error));

  /* A UTF-8 room, and a UTF-8 event name in it. */
  const char *room = "salle de séjour ☕";
  Inbox *ib = inbox_new (b, "message", FALSE);
  fail_unless (room_join (a, room, &error), "%s", error ? error->message : "");
  fail_unless (room_join (b, room, &error), "%s", error ? error->message : "");
  g_auto (GStrv) rooms = list_rooms (b, "alice");
  fail_unless_equals_int (g_strv_length (rooms), 1);
  fail_unless_equals_string (rooms[0], room);
  guint n = 0;
  CALL (peer_tree_client_room_emit_async (a, room, "dît « bonjour »", NULL, NULL,
      pt_test_store_result, &res));
  fail_unless (peer_tree_client_finish (a, res, &n, &error), "%s", error ? error->message : "");
  fail_unless_equals_int (n, 1);
  WAIT_UNTIL (ib->messages->len == 1);
  fail_unless_equals_string (peer_tree_message_get_room (inbox_get (ib, 0)), room);
  fail_unless_equals_string (peer_tree_message_get_name (inbox_get (ib, 0)), "dît « bonjour »");

  /* 128 bytes is the limit: 64 two-byte characters pass, 65 do not. */
  g_autoptr (GString) name = g_string_new (NULL);
  for (guint i = 0; i < 64; i++)
    g_string_append (name, "é");
  fail_unless_equals_int (name->len, 128);
  fail_unless (room_join (a, name->str, &error), "%s", error ? error->message : "");
  g_string_append (name, "é");
  expect_bad_request (room_join (a, name->str, &error), &error, "a room of 130 bytes");
  CALL (peer_tree_client_topic_create_async (prov, "seed service", name->str, NULL,
      pt_test_store_result, &res));
  expect_bad_request (peer_tree_client_finish (prov, res, NULL, &error), &error,
      "a topic of 130 bytes");

  /* Control characters: C0, DEL and C1. */
  expect_bad_request (room_join (a, "tab\there", &error), &error, "a room with a tab");
  expect_bad_request (room_join (a, "del\x7f", &error), &error, "a room with DEL");
  expect_bad_request (room_join (a, "next\xc2\x85line", &error), &error, "a room with U+0085");
  CALL (peer_tree_client_topic_create_async (prov, "seed service", "line\nbreak", NULL,
      pt_test_store_result, &res));
  expect_bad_request (peer_tree_client_finish (prov, res, NULL, &error), &error,
      "a topic with a newline");
  CALL (peer_tree_client_provide_service_async (prov, "bell\a", NULL, NULL,
      pt_test_store_result, &res));
  expect_bad_request (peer_tree_client_finish (prov, res, NULL, &error), &error,
      "a service with BEL");
  CALL (peer_tree_client_emit_async (a, "bob", "esc\x1b", NULL, FALSE, 0, NULL,
      pt_test_store_result, &res));
  g_autoptr (JsonNode) v = peer_tree_client_emit_finish (a, res, &error);
  expect_bad_request (error == NULL, &error, "an event with ESC");
  CALL (peer_tree_client_open_stream_async (a, "bob", "files\x01", NULL, 0, NULL,
      pt_test_store_result, &res));
  g_autoptr (GIOStream) stream = peer_tree_client_open_stream_finish (a, res, &error);
  expect_bad_request (stream != NULL, &error, "a channel with SOH");
  fail_if (pt_server_create_topic (server, "server service", "bad\x01", NULL));

  /* Ids stay strict. */
  CALL (peer_tree_client_emit_async (a, "bob smith", "hi", NULL, FALSE, 0, NULL,
      pt_test_store_result, &res));
  g_autoptr (JsonNode) v2 = peer_tree_client_emit_finish (a, res, &error);
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_INVALID_ID));
  g_clear_error (&error);
  inbox_free (ib);
}
GST_END_TEST;

static Suite *
messaging_suite (void)
{
  Suite *s = suite_create ("messaging");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_identity);
  tcase_add_test (tc, test_emit_and_replies);
  tcase_add_test (tc, test_listen_filtered_by_sender);
  tcase_add_test (tc, test_targets);
  tcase_add_test (tc, test_rooms);
  tcase_add_test (tc, test_stream_50mb_backpressure_eof);
  tcase_add_test (tc, test_stream_failures);
  tcase_add_test (tc, test_services);
  tcase_add_test (tc, test_topics);
  tcase_add_test (tc, test_limits);
  tcase_add_test (tc, test_names);
  return s;
}

GST_CHECK_MAIN (messaging);
