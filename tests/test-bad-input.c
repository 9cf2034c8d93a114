/* peertree-server facing a hostile or broken client over a raw WebSocket:
 * every bad message gets an error reply (or a clean close for oversize,
 * floods and binary frames), and other clients keep being served. */
#include "pt-test-util.h"

typedef struct {
  SoupWebsocketConnection *ws;
  GQueue replies; /* JsonObject* */
  gboolean closed;
  gushort close_code;
} Raw;

static void
on_raw_message (SoupWebsocketConnection *ws, gint type, GBytes *msg, Raw *r)
{
  g_autoptr (JsonNode) node = json_from_string (g_bytes_get_data (msg, NULL), NULL);
  fail_unless (node && JSON_NODE_HOLDS_OBJECT (node), "server sent something that is not JSON");
  g_queue_push_tail (&r->replies, json_object_ref (json_node_get_object (node)));
}

static void
on_raw_closed (SoupWebsocketConnection *ws, Raw *r)
{
  r->closed = TRUE;
  r->close_code = soup_websocket_connection_get_close_code (ws);
}

static Raw *
raw_new (PtServer *server)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  soup_session_websocket_connect_async (session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
      pt_test_store_result, &res);
  Raw *r = g_new0 (Raw, 1);
  r->ws = soup_session_websocket_connect_finish (session, pt_test_await (&res), &error);
  fail_unless (r->ws != NULL, "%s", error ? error->message : "");
  soup_websocket_connection_set_max_incoming_payload_size (r->ws, 1 << 20);
  g_signal_connect (r->ws, "message", G_CALLBACK (on_raw_message), r);
  g_signal_connect (r->ws, "closed", G_CALLBACK (on_raw_closed), r);
  return r;
}

static void
raw_free (Raw *r)
{
  g_signal_handlers_disconnect_by_data (r->ws, r);
  if (soup_websocket_connection_get_state (r->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (r->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_object_unref (r->ws);
  g_queue_clear_full (&r->replies, (GDestroyNotify) json_object_unref);
  g_free (r);
}

/* Sends @text and returns the one reply, checking it is an error with @code. */
static void
expect_error (Raw *r, const char *text, const char *code)
{
  soup_websocket_connection_send_text (r->ws, text);
  WAIT_UNTIL (r->replies.length > 0 || r->closed);
  fail_if (r->closed, "server closed the connection on %s", text);
  g_autoptr (JsonObject) reply = g_queue_pop_head (&r->replies);
  fail_unless_equals_string (json_object_get_string_member (reply, "type"), "reply");
  fail_if (json_object_get_boolean_member (reply, "ok"), "%s was accepted", text);
  JsonObject *err = json_object_get_object_member (reply, "error");
  fail_unless_equals_string (json_object_get_string_member (err, "code"), code);
  fail_unless (strlen (json_object_get_string_member (err, "message")) > 0);
}

static void
expect_ok (Raw *r, const char *text)
{
  soup_websocket_connection_send_text (r->ws, text);
  WAIT_UNTIL (r->replies.length > 0);
  g_autoptr (JsonObject) reply = g_queue_pop_head (&r->replies);
  fail_unless (json_object_get_boolean_member (reply, "ok"), "%s refused", text);
}

/* A well-behaved client that must keep being served throughout. */
static void
assert_served (PeerTreeClient *c)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "treeId", "good");
  g_autoptr (JsonObject) res = pt_test_request (c, "reconnect-upstream", params, &error);
  fail_unless (res != NULL, "good client not served: %s", error ? error->message : "");
}

GST_START_TEST (test_bad_messages_get_error_replies)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autoptr (PeerTreeClient) good = pt_test_client_new (server, "good-viewer");
  g_autofree char *t = pt_test_create (src, "good", 0, 0, &error);
  fail_unless (pt_test_join (good, "good", NULL, NULL, &error));

  Raw *r = raw_new (server);
  expect_error (r, "", "bad-json");         /* an empty text frame once crashed the server */
  expect_error (r, "{not json", "bad-json");
  /* U+0000 would cut the name short in json-glib's C strings: refused */
  expect_error (r, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"a\\u0000 b\"}",
      "bad-json");
  expect_error (r, "[1,2,3]", "bad-request");
  expect_error (r, "\"hello\"", "bad-request");
  expect_error (r, "{\"type\":\"hello\"}", "bad-request");                  /* no id */
  expect_error (r, "{\"type\":\"hello\",\"id\":\"1\"}", "bad-request");     /* id not int */
  expect_error (r, "{\"type\":\"hello\",\"id\":-1}", "bad-request");
  expect_error (r, "{\"type\":\"hello\",\"id\":1.5}", "bad-request");
  expect_error (r, "{\"type\":7,\"id\":1}", "bad-request");
  expect_error (r, "{\"type\":\"join\",\"id\":1,\"treeId\":\"good\"}", "hello-required");
  expect_error (r, "{\"type\":\"frobnicate\",\"id\":1}", "unknown-type");
  expect_error (r, "{\"type\":\"hello\",\"id\":1}", "bad-request");        /* no version */
  expect_error (r, "{\"type\":\"hello\",\"id\":1,\"version\":99}", "unsupported-version");
  expect_error (r, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"a b\"}", "invalid-id");
  expect_error (r, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":5}", "bad-request");
  expect_error (r, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"good-viewer\"}",
      "duplicate-client-id");
  assert_served (good);
  expect_ok (r, "{\"type\":\"hello\",\"id\":2,\"version\":1,\"clientId\":\"raw\"}");
  expect_error (r, "{\"type\":\"hello\",\"id\":3,\"version\":1}", "already-hello");
  expect_error (r, "", "bad-json");
  expect_error (r, "{\"type\":\"join\",\"id\":4}", "bad-request");
  expect_error (r, "{\"type\":\"join\",\"id\":4,\"treeId\":[]}", "bad-request");
  expect_error (r, "{\"type\":\"join\",\"id\":4,\"treeId\":\"../etc\"}", "invalid-id");
  expect_error (r, "{\"type\":\"create\",\"id\":5,\"k\":\"2\"}", "bad-request");
  expect_error (r, "{\"type\":\"create\",\"id\":5,\"k1\":1000}", "bad-request");
  expect_error (r, "{\"type\":\"leave\",\"id\":6,\"treeId\":\"good\"}", "not-member");
  expect_error (r, "{\"type\":\"reconnect-upstream\",\"id\":6,\"treeId\":\"good\"}", "not-member");
  expect_ok (r, "{\"type\":\"join\",\"id\":7,\"treeId\":\"good\"}");
  /* Signals: missing or ill-typed data, and a peer that is not a neighbour. */
  expect_error (r, "{\"type\":\"signal\",\"id\":8,\"treeId\":\"good\",\"to\":\"src\"}", "bad-request");
  expect_error (r, "{\"type\":\"signal\",\"id\":8,\"treeId\":\"good\",\"to\":\"src\",\"data\":{}}",
      "bad-request");
  expect_error (r, "{\"type\":\"signal\",\"id\":8,\"treeId\":\"good\",\"to\":\"src\","
      "\"data\":{\"sdp\":{\"type\":\"pranswer\",\"sdp\":\"x\"}}}", "bad-request");
  expect_error (r, "{\"type\":\"signal\",\"id\":8,\"treeId\":\"good\",\"to\":\"src\","
      "\"data\":{\"ice\":{\"mline\":\"0\",\"candidate\":\"x\"}}}", "bad-request");
  expect_error (r, "{\"type\":\"signal\",\"id\":8,\"treeId\":\"good\",\"to\":\"good-viewer\","
      "\"data\":{\"ice\":{\"mline\":0,\"candidate\":\"x\"}}}", "relay-refused");
  expect_ok (r, "{\"type\":\"signal\",\"id\":9,\"treeId\":\"good\",\"to\":\"src\","
      "\"data\":{\"ice\":{\"mline\":0,\"candidate\":\"x\"}}}");
  /* Deeply nested JSON is refused without harm. */
  GString *deep = g_string_new ("{\"type\":\"join\",\"id\":10,\"treeId\":");
  for (int i = 0; i < 2000; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 2000; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  soup_websocket_connection_send_text (r->ws, deep->str);
  g_string_free (deep, TRUE);
  WAIT_UNTIL (r->replies.length > 0 || r->closed);
  assert_served (good);
  raw_free (r);
}
GST_END_TEST;

GST_START_TEST (test_oversize_closes_cleanly)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "max-message-size", 4096, NULL);
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autoptr (PeerTreeClient) good = pt_test_client_new (server, "good-viewer");
  g_autoptr (GError) error = NULL;
  g_autofree char *t = pt_test_create (src, "good", 0, 0, &error);
  fail_unless (pt_test_join (good, "good", NULL, NULL, &error));
  /* Only connections accepted after the change get the new cap. */
  Raw *r = raw_new (server);
  g_autofree char *big = g_strnfill (8192, 'x');
  g_autofree char *text = g_strdup_printf ("{\"type\":\"hello\",\"id\":1,\"version\":1,"
      "\"secret\":\"%s\"}", big);
  soup_websocket_connection_send_text (r->ws, text);
  WAIT_UNTIL (r->closed);
  /* The server sends close code 1009 and shuts the socket; the rest of the
   * oversize message still unread on its side makes the kernel reset the
   * connection, which can destroy the close frame in flight (code 0 here). */
  fail_unless (r->close_code == SOUP_WEBSOCKET_CLOSE_TOO_BIG || r->close_code == 0,
      "close code %u", r->close_code);
  assert_served (good);
  raw_free (r);
}
GST_END_TEST;

GST_START_TEST (test_flood_and_binary_close)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "rate", 20, "burst", 50, NULL);
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autoptr (PeerTreeClient) good = pt_test_client_new (server, "good-viewer");
  g_autoptr (GError) error = NULL;
  g_autofree char *t = pt_test_create (src, "good", 0, 0, &error);
  fail_unless (pt_test_join (good, "good", NULL, NULL, &error));

  Raw *r = raw_new (server);
  for (int i = 0; i < 500 &&
      soup_websocket_connection_get_state (r->ws) == SOUP_WEBSOCKET_STATE_OPEN; i++) {
    soup_websocket_connection_send_text (r->ws, "{\"type\":\"frobnicate\",\"id\":1}");
    g_main_context_iteration (NULL, FALSE);
  }
  WAIT_UNTIL (r->closed);
  fail_unless_equals_int (r->close_code, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
  /* It was answered until the bucket ran dry, not more. */
  fail_unless (r->replies.length >= 40 && r->replies.length <= 60, "%u replies",
      r->replies.length);
  assert_served (good);
  raw_free (r);

  /* Binary frames carry streams: refused before hello, and a frame too short
   * for the stream header closes the connection. */
  Raw *b = raw_new (server);
  soup_websocket_connection_send_binary (b->ws, "\x01\x02", 2);
  WAIT_UNTIL (b->closed);
  fail_unless_equals_int (b->close_code, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
  assert_served (good);
  raw_free (b);
  b = raw_new (server);
  expect_ok (b, "{\"type\":\"hello\",\"id\":1,\"version\":1}");
  soup_websocket_connection_send_binary (b->ws, "\x01\x02", 2);
  WAIT_UNTIL (b->closed);
  fail_unless_equals_int (b->close_code, SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA);
  raw_free (b);
  /* A frame for a stream that does not exist is dropped (it may have just
   * ended); one for a stream of other clients closes the connection. */
  b = raw_new (server);
  expect_ok (b, "{\"type\":\"hello\",\"id\":1,\"version\":1}");
  soup_websocket_connection_send_binary (b->ws, "\0\0\0\x63\0data", 9);
  expect_ok (b, "{\"type\":\"is-connected\",\"id\":2,\"clientId\":\"src\"}");
  fail_if (b->closed);
  raw_free (b);
}
GST_END_TEST;

/* A client whose socket is closed mid-tree (no close frame, no leave): the
 * server notices and repairs the tree. */
GST_START_TEST (test_abrupt_disconnect)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autofree char *t = pt_test_create (src, "t", 1, 1, &error);
  Raw *r = raw_new (server);
  expect_ok (r, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"mid\"}");
  expect_ok (r, "{\"type\":\"join\",\"id\":2,\"treeId\":\"t\"}");
  g_autoptr (PeerTreeClient) leaf = pt_test_client_new (server, "leaf");
  char *parent = NULL;
  fail_unless (pt_test_join (leaf, "t", &parent, NULL, &error));
  fail_unless_equals_string (parent, "mid");
  g_free (parent);
  g_io_stream_close (soup_websocket_connection_get_io_stream (r->ws), NULL, NULL);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 2);
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  JsonArray *members = json_object_get_array_member (json_array_get_object_element (trees, 0),
      "members");
  fail_unless_equals_int (json_array_get_length (members), 2);
  JsonObject *m = json_array_get_object_element (members, 1);
  fail_unless_equals_string (json_object_get_string_member (m, "id"), "leaf");
  fail_unless_equals_string (json_object_get_string_member (m, "parent"), "src");
  raw_free (r);
}
GST_END_TEST;

/* A client that completes the WebSocket handshake by hand, says hello and
 * joins, then goes silent: it never answers the server's pings (as when a
 * host dies or a cable is pulled). The server must reap it and re-parent its
 * child. */
static void
send_frame (GOutputStream *out, const char *text)
{
  gsize len = strlen (text);
  fail_unless (len < 126);
  /* FIN + text opcode; masked with a zero key, so the payload is unchanged. */
  guint8 header[6] = { 0x81, 0x80 | (guint8) len, 0, 0, 0, 0 };
  fail_unless (g_output_stream_write_all (out, header, sizeof header, NULL, NULL, NULL));
  fail_unless (g_output_stream_write_all (out, text, len, NULL, NULL, NULL));
}

/* A TCP connection upgraded to a WebSocket by hand; nothing reads it. */
static GSocketConnection *
hand_made_websocket (PtServer *server)
{
  g_autoptr (GSocketClient) sc = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  GSocketConnection *conn = g_socket_client_connect_to_host (sc, "127.0.0.1",
      pt_server_get_port (server), NULL, &error);
  fail_unless (conn != NULL, "%s", error ? error->message : "");
  const char *upgrade = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  fail_unless (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
      upgrade, strlen (upgrade), NULL, NULL, NULL));
  return conn;
}

GST_START_TEST (test_silent_peer_reaped)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "keepalive-interval", 1, "dead-timeout", 2, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  g_autofree char *t = pt_test_create (src, "t", 1, 1, &error);

  g_autoptr (GSocketConnection) conn = hand_made_websocket (server);
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  send_frame (out, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"mute\"}");
  send_frame (out, "{\"type\":\"join\",\"id\":2,\"treeId\":\"t\"}");
  WAIT_UNTIL (pt_server_get_n_clients (server) == 2);

  g_autoptr (PeerTreeClient) leaf = pt_test_client_new (server, "leaf");
  char *parent = NULL;
  fail_unless (pt_test_join (leaf, "t", &parent, NULL, &error));
  fail_unless_equals_string (parent, "mute");
  g_free (parent);

  /* Nothing more is read from or written to the socket: within dead-timeout
   * plus the sweep period the server gives up on it. */
  gint64 start = g_get_monotonic_time ();
  fail_unless_equals_int (pt_server_get_n_clients (server), 3);
  WAIT_UNTIL_MS (pt_server_get_n_clients (server) == 2, 5000);
  gint64 elapsed = g_get_monotonic_time () - start;
  fail_unless (elapsed >= G_USEC_PER_SEC, "reaped too early: %" G_GINT64_FORMAT " us", elapsed);
  g_autoptr (JsonNode) status = pt_test_get_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  JsonArray *members = json_object_get_array_member (json_array_get_object_element (trees, 0),
      "members");
  fail_unless_equals_int (json_array_get_length (members), 2);
  fail_unless_equals_string (json_object_get_string_member (
      json_array_get_object_element (members, 1), "parent"), "src");
}
GST_END_TEST;

/* A client that connects and says hello, then never reads its socket while
 * another client sends to it: the server must not queue without bound. */
GST_START_TEST (test_non_reading_client_disconnected)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "max-buffered", 1024 * 1024, "rate", 100000, "burst", 100000, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) sender = pt_test_client_new (server, "sender");
  g_autoptr (GSocketConnection) conn = hand_made_websocket (server);
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  send_frame (out, "{\"type\":\"hello\",\"id\":1,\"version\":1,\"clientId\":\"deaf\"}");
  WAIT_UNTIL (pt_server_get_n_clients (server) == 2);

  g_autoptr (JsonArray) args = json_array_new ();
  g_autofree char *blob = g_strnfill (50000, 'z');
  json_array_add_string_element (args, blob);
  guint sent = 0;
  gboolean refused = FALSE;
  /* Bounded: 2000 x 50 KB at most. */
  while (sent < 2000 && !refused) {
    g_autoptr (GAsyncResult) res = NULL;
    peer_tree_client_emit_async (sender, "deaf", "spam", args, FALSE, 0, NULL,
        pt_test_store_result, &res);
    g_autoptr (JsonNode) r = peer_tree_client_emit_finish (sender, pt_test_await (&res), &error);
    if (!r) {
      fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_FOUND), "%s",
          error->message);
      refused = TRUE;
    }
    sent++;
  }
  fail_unless (refused, "server kept queueing to a client that does not read");
  /* Its 1 MiB allowance plus what the kernel buffers hold, not 100 MB. */
  fail_unless (sent < 1000, "%u messages of 50 KB went to a client that reads nothing", sent);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 1);
  GST_INFO ("deaf client dropped after %u messages of 50 KB", sent);
}
GST_END_TEST;

static Suite *
bad_input_suite (void)
{
  Suite *s = suite_create ("bad-input");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_bad_messages_get_error_replies);
  tcase_add_test (tc, test_oversize_closes_cleanly);
  tcase_add_test (tc, test_flood_and_binary_close);
  tcase_add_test (tc, test_abrupt_disconnect);
  tcase_add_test (tc, test_silent_peer_reaped);
  tcase_add_test (tc, test_non_reading_client_disconnected);
  return s;
}

GST_CHECK_MAIN (bad_input);
