/* wss:// and https on the same port as ws://: a throw-away CA and server
 * certificate made at test time with openssl; clients that trust the CA
 * (tls-ca), a plain client on the same port, and one that does not trust it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-test-util.h"

#include "pt-test-tls.h"

#include <signal.h>

static PtServer *
tls_server_new (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *cert = pt_tls_path ("server.pem");
  g_autofree char *key = pt_tls_path ("server.key");
  PtServer *server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "tls-cert", cert, "tls-key", key, "max-message-size", 1 << 20, NULL);
  fail_unless (pt_server_listen (server, &error), "listen: %s", error ? error->message : "");
  return server;
}

static char *
plain_url (PtServer *server)
{
  return g_strdup_printf ("ws://127.0.0.1:%u", pt_server_get_port (server));
}

/* A recorded peer on @url, trusting @ca (NULL: the system's CAs). */
static PtTestPeer *
peer_new (const char *url, const char *id, const char *ca, GError **error)
{
  PtTestPeer *p = g_new0 (PtTestPeer, 1);
  p->client = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", id, "tls-ca", ca,
      NULL);
  p->children = g_ptr_array_new_with_free_func (g_free);
  p->id = g_strdup (id);
  g_signal_connect (p->client, "remote-sdp", G_CALLBACK (pt_test_peer_on_sdp), p);
  if (!pt_test_connect (p->client, error)) {
    pt_test_peer_free (p);
    return NULL;
  }
  return p;
}

GST_START_TEST (test_wss_and_ws_on_one_port)
{
  pt_tls_make_certificates ();
  g_autoptr (PtServer) server = tls_server_new ();
  g_autofree char *url = pt_server_get_url (server);
  fail_unless (g_str_has_prefix (url, "wss://"), "%s", url);
  g_autofree char *ca = pt_tls_path ("ca.pem");
  g_autofree char *ws_url = plain_url (server);
  g_autoptr (GError) error = NULL;

  PtTestPeer *src = peer_new (url, "src", ca, &error);
  fail_unless (src != NULL, "wss connect: %s", error ? error->message : "");
  g_autofree char *tree = pt_test_create (src->client, "t", 0, 0, &error);
  fail_unless_equals_string (tree, "t");
  PtTestPeer *a = peer_new (url, "a", ca, &error);
  fail_unless (a != NULL, "wss connect: %s", error ? error->message : "");
  g_autofree char *parent = NULL;
  fail_unless (pt_test_join (a->client, "t", &parent, NULL, &error), "%s",
      error ? error->message : "");
  fail_unless_equals_string (parent, "src");
  /* ws:// on the same port */
  PtTestPeer *b = peer_new (ws_url, "b", NULL, &error);
  fail_unless (b != NULL, "ws connect: %s", error ? error->message : "");
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error), "%s",
      error ? error->message : "");

  /* Small and large messages both ways over TLS (several records, more than
   * a turn's read budget), and to the plain client. */
  peer_tree_client_send_sdp (src->client, "t", "a", "offer", "v=0 offer");
  WAIT_UNTIL (a->last_sdp != NULL);
  fail_unless_equals_string (a->last_sdp_from, "src");
  fail_unless_equals_string (a->last_sdp, "offer:v=0 offer");
  GString *big = g_string_new ("v=0 ");
  while (big->len < 300 * 1024)
    g_string_append (big, "a=candidate-padding-0123456789\r\n");
  for (int i = 0; i < 3; i++) {
    g_clear_pointer (&src->last_sdp, g_free);
    peer_tree_client_send_sdp (a->client, "t", "src", "answer", big->str);
    WAIT_UNTIL (src->last_sdp != NULL);
    fail_unless (src->last_sdp && strlen (src->last_sdp) == big->len + strlen ("answer:"));
  }
  peer_tree_client_send_sdp (src->client, "t", "b", "offer", big->str);
  WAIT_UNTIL (b->last_sdp != NULL);
  fail_unless (b->last_sdp && strlen (b->last_sdp) == big->len + strlen ("offer:"));
  g_string_free (big, TRUE);

  pt_test_peer_free (b);
  pt_test_peer_free (a);
  pt_test_peer_free (src);
  g_clear_object (&server);
  pt_tls_remove_certificates ();
}
GST_END_TEST;

GST_START_TEST (test_untrusted_certificate)
{
  pt_tls_make_certificates ();
  g_autoptr (PtServer) server = tls_server_new ();
  g_autofree char *url = pt_server_get_url (server);
  g_autoptr (GError) error = NULL;
  /* No tls-ca: the system's CAs do not know ours. */
  PtTestPeer *p = peer_new (url, "x", NULL, &error);
  fail_unless (p == NULL);
  fail_unless (error != NULL);
  fail_unless (strstr (error->message, "not trusted") != NULL, "%s", error->message);
  g_clear_error (&error);
  /* A missing CA file is an error of its own. */
  g_autofree char *missing = pt_tls_path ("missing.pem");
  p = peer_new (url, "x", missing, &error);
  fail_unless (p == NULL);
  fail_unless (strstr (error->message, "tls-ca") != NULL, "%s", error->message);
  g_clear_error (&error);
  /* The server still serves the next one. */
  g_autofree char *ca = pt_tls_path ("ca.pem");
  p = peer_new (url, "y", ca, &error);
  fail_unless (p != NULL, "%s", error ? error->message : "");
  pt_test_peer_free (p);
  g_clear_object (&server);
  pt_tls_remove_certificates ();
}
GST_END_TEST;

/* GET /status over https, and over http on the same port. */
GST_START_TEST (test_https_status)
{
  pt_tls_make_certificates ();
  g_autoptr (PtServer) server = tls_server_new ();
  g_autofree char *ca = pt_tls_path ("ca.pem");
  g_autoptr (GError) error = NULL;
  g_autoptr (GTlsDatabase) db = g_tls_file_database_new (ca, &error);
  fail_unless (db != NULL, "%s", error ? error->message : "");
  g_autoptr (SoupSession) session = soup_session_new ();
  soup_session_set_tls_database (session, db);
  const char *schemes[] = { "https", "http" };
  for (gsize i = 0; i < G_N_ELEMENTS (schemes); i++) {
    g_autofree char *uri = g_strdup_printf ("%s://127.0.0.1:%u/status", schemes[i],
        pt_server_get_port (server));
    g_autoptr (SoupMessage) msg = soup_message_new ("GET", uri);
    g_autoptr (GAsyncResult) res = NULL;
    soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL,
        pt_test_store_result, &res);
    g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
        &error);
    fail_unless (body != NULL, "%s: %s", uri, error ? error->message : "");
    fail_unless_equals_int (soup_message_get_status (msg), 200);
  }
  g_clear_object (&server);
  pt_tls_remove_certificates ();
}
GST_END_TEST;

static guint
count_fds (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;
  while (dir && g_dir_read_name (dir))
    n++;
  return n;
}

/* wss clients that come and go leave no descriptor behind (the TLS
 * connection, its socket and the epoll duplicate are all released). */
GST_START_TEST (test_no_descriptor_leak)
{
  pt_tls_make_certificates ();
  g_autoptr (PtServer) server = tls_server_new ();
  g_autofree char *url = pt_server_get_url (server);
  g_autofree char *ca = pt_tls_path ("ca.pem");
  g_autoptr (GError) error = NULL;
  /* one first: lazily opened descriptors (TLS backend, resolver) stay */
  PtTestPeer *p = peer_new (url, "warm", ca, &error);
  fail_unless (p != NULL, "%s", error ? error->message : "");
  pt_test_peer_free (p);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 0);
  guint before = count_fds ();
  for (int i = 0; i < 10; i++) {
    g_autofree char *id = g_strdup_printf ("c%d", i);
    p = peer_new (url, id, ca, &error);
    fail_unless (p != NULL, "%s", error ? error->message : "");
    pt_test_peer_free (p);
  }
  WAIT_UNTIL (pt_server_get_n_clients (server) == 0 && count_fds () <= before);
  fail_unless (count_fds () <= before, "%u descriptors, %u before", count_fds (), before);
  g_clear_object (&server);
  pt_tls_remove_certificates ();
}
GST_END_TEST;

/* Whether the server closed @socket (EOF or reset), without blocking. */
static gboolean
closed_by_server (GSocket *socket)
{
  char buf[256];
  if (!g_socket_condition_check (socket, G_IO_IN | G_IO_HUP | G_IO_ERR))
    return FALSE;
  gssize r = g_socket_receive_with_blocking (socket, buf, sizeof buf, FALSE, NULL, NULL);
  return r <= 0;
}

/* A handshake that never completes, and a connection that never says a
 * byte, are closed within http-timeout; others are served meanwhile. */
GST_START_TEST (test_stalled_handshake)
{
  pt_tls_make_certificates ();
  g_autoptr (PtServer) server = tls_server_new ();
  g_object_set (server, "http-timeout", 1, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketClient) sc = g_socket_client_new ();
  g_autoptr (GSocketConnection) half = g_socket_client_connect_to_host (sc, "127.0.0.1",
      pt_server_get_port (server), NULL, &error);
  fail_unless (half != NULL, "%s", error ? error->message : "");
  g_autoptr (GSocketConnection) mute = g_socket_client_connect_to_host (sc, "127.0.0.1",
      pt_server_get_port (server), NULL, &error);
  fail_unless (mute != NULL, "%s", error ? error->message : "");
  /* the first bytes of a TLS record, then nothing */
  const guint8 start[] = { 0x16, 0x03, 0x01 };
  fail_unless (g_socket_send (g_socket_connection_get_socket (half), (const char *) start,
      sizeof start, NULL, &error) == sizeof start);

  g_autofree char *url = pt_server_get_url (server);
  g_autofree char *ca = pt_tls_path ("ca.pem");
  PtTestPeer *p = peer_new (url, "p", ca, &error);
  fail_unless (p != NULL, "%s", error ? error->message : "");

  GSocket *hs = g_socket_connection_get_socket (half);
  GSocket *ms = g_socket_connection_get_socket (mute);
  gboolean half_closed = FALSE, mute_closed = FALSE;
  WAIT_UNTIL_MS ((half_closed = half_closed || closed_by_server (hs)) &&
      (mute_closed = mute_closed || closed_by_server (ms)), 5000);
  fail_unless (half_closed, "the stalled handshake is still open");
  fail_unless (mute_closed, "the mute connection is still open");
  /* the WebSocket client is not an HTTP connection any more: still there */
  fail_unless (peer_tree_client_is_connected (p->client));
  g_autofree char *tree = pt_test_create (p->client, "t", 0, 0, &error);
  fail_unless_equals_string (tree, "t");
  pt_test_peer_free (p);
  g_clear_object (&server);
  pt_tls_remove_certificates ();
}
GST_END_TEST;

/* The binary: --tls-cert/--tls-key print a wss:// URL and serve https;
 * one without the other, or an unreadable file, is refused. */
GST_START_TEST (test_binary_flags)
{
  pt_tls_make_certificates ();
  g_autofree char *cert = pt_tls_path ("server.pem");
  g_autofree char *key = pt_tls_path ("server.key");
  g_autofree char *ca = pt_tls_path ("ca.pem");
  g_autofree char *missing = pt_tls_path ("missing.pem");
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, PEERTREE_SERVER, "--port", "0", "--tls-cert",
      cert, "--tls-key", key, NULL);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  fail_unless (line != NULL && strstr (line, "wss://127.0.0.1:") != NULL, "%s", line);
  const char *at = strstr (line, "wss://");
  g_autofree char *status = g_strdup_printf ("https%.*s/status", (int) strcspn (at + 3, " "),
      at + 3);
  g_autoptr (GTlsDatabase) db = g_tls_file_database_new (ca, &error);
  g_autoptr (SoupSession) session = soup_session_new ();
  soup_session_set_tls_database (session, db);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", status);
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (body != NULL, "%s: %s", status, error ? error->message : "");
  fail_unless_equals_int (soup_message_get_status (msg), 200);
  g_subprocess_send_signal (proc, SIGTERM);
  fail_unless (g_subprocess_wait (proc, NULL, NULL));
  fail_unless_equals_int (g_subprocess_get_exit_status (proc), 0);

  const char *const bad[][5] = {
    { "--tls-cert", cert, NULL },
    { "--tls-key", key, NULL },
    { "--tls-cert", missing, "--tls-key", key, NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GPtrArray) argv = g_ptr_array_new ();
    g_ptr_array_add (argv, (gpointer) PEERTREE_SERVER);
    g_ptr_array_add (argv, (gpointer) "--port");
    g_ptr_array_add (argv, (gpointer) "0");
    for (gsize j = 0; bad[i][j]; j++)
      g_ptr_array_add (argv, (gpointer) bad[i][j]);
    g_ptr_array_add (argv, NULL);
    g_autoptr (GSubprocess) p = g_subprocess_newv ((const char *const *) argv->pdata,
        G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);
    fail_unless (p != NULL);
    fail_unless (g_subprocess_wait (p, NULL, NULL));
    fail_if (g_subprocess_get_if_exited (p) && g_subprocess_get_exit_status (p) == 0,
        "case %zu accepted", i);
  }
  pt_tls_remove_certificates ();
}
GST_END_TEST;

static Suite *
tls_suite (void)
{
  Suite *s = suite_create ("tls");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_wss_and_ws_on_one_port);
  tcase_add_test (tc, test_untrusted_certificate);
  tcase_add_test (tc, test_https_status);
  tcase_add_test (tc, test_stalled_handshake);
  tcase_add_test (tc, test_binary_flags);
  tcase_add_test (tc, test_no_descriptor_leak);
  return s;
}

GST_CHECK_MAIN (tls);
